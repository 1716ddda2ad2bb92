set -uo pipefail  # no -e: the exit status of genrecon is examined below

N_TASKS=@N_TASKS@
MAX_REQUEUE=@MAX_REQUEUE@
: "${SLURM_ARRAY_TASK_ID:?this is a job-array script: submit it with sbatch}"
# braces matter: "$SLURM_ARRAY_JOB_ID_$SLURM_ARRAY_TASK_ID" would read a variable named SLURM_ARRAY_JOB_ID_
REQUEUE_ID="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
ATTEMPT=${SLURM_RESTART_COUNT:-0}
RECORDS=@RECORDS@
RECORD_NAME="$REQUEUE_ID"
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}

@SETUP@
echo "[genrecon] task $SLURM_ARRAY_TASK_ID of $N_TASKS (job $REQUEUE_ID, attempt $ATTEMPT) on $(hostname) at $(date -Is)"

@RECORD@

@TERM_HANDLER@

# genrecon runs in the background so that the trap can run while it works
@PYTHON@ -m genrecon.cli.main reconstruct --config @CONFIG@ --shard "$SLURM_ARRAY_TASK_ID/$N_TASKS" --no-evaluate -q &
child=$!

@FINISH@
