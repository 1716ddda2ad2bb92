# one small JSON record per attempt, read by `genrecon batch status` (works without SLURM accounting)
record() {  # record OUTCOME EXIT_CODE
    local file="$RECORDS/$RECORD_NAME.json"
    mkdir -p "$RECORDS"
    printf '{"job": "%s", "task": %s, "attempt": %d, "outcome": "%s", "exit_code": %d, "signal_state": "%s", "host": "%s", "end": "%s"}\n' \
        "$REQUEUE_ID" "@TASK_JSON@" "$ATTEMPT" "$1" "$2" "$term_state" "$(hostname)" "$(date -Is)" >"$file.tmp.$$" \
        && mv -f "$file.tmp.$$" "$file"
}
