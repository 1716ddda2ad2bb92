# SIGTERM arrives here @BEFORE@ s before the time limit (--signal=B:TERM@@BEFORE@), on preemption, and from
# `scancel --signal=TERM --batch`. The handler notes the job's state at that moment (RUNNING: time limit or
# preemption, worth a requeue; COMPLETING: cancelled by a user, not requeued) and passes the signal on.
term_state=""
child=""
on_term() {
    if [ -z "$term_state" ]; then
        term_state=$(scontrol show job "$SLURM_JOB_ID" -o 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2)
        term_state=${term_state:-UNKNOWN}
        echo "[genrecon] SIGTERM received (job state $term_state)"
    fi
@FORWARD@
}
trap on_term TERM
