# The first `wait` returns early when the trap runs; the second collects the real exit status.
wait "$child"; rc=$?
if [ -n "$term_state" ]; then wait "$child"; rc=$?; fi

# requeue on time limit / preemption (at most MAX_REQUEUE times), else exit with the command's status:
# 0 done; @INTERRUPTED@ stopped by a signal, finished work kept (submit again to finish); 1 data error; 2 config error
if [ "$rc" -ne 0 ] && [ "$term_state" = RUNNING ] && [ "$ATTEMPT" -lt "$MAX_REQUEUE" ]; then
    record requeued "$rc"
    if scontrol requeue "$REQUEUE_ID"; then
        echo "[genrecon] stopped before the time limit; requeued $REQUEUE_ID (requeue $((ATTEMPT + 1)) of at most $MAX_REQUEUE)"
        exit 0
    fi
    echo "[genrecon] scontrol requeue $REQUEUE_ID failed; submit again to finish"
fi
if [ "$rc" -eq 0 ]; then
    record completed 0
elif [ "$rc" -eq @INTERRUPTED@ ] || [ -n "$term_state" ]; then
    # a signal may end genrecon before its handler runs (exit 128+15=143): the task's code is @INTERRUPTED@ either way
    echo "[genrecon] interrupted (exit $rc): finished work is kept; submit the same command again to finish"
    rc=@INTERRUPTED@
    record interrupted "$rc"
else
    record failed "$rc"
fi
exit "$rc"
