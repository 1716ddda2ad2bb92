set -uo pipefail  # no -e: the exit status of the training is examined below

NPROC_PER_NODE=@PROCS_PER_NODE@
MAX_REQUEUE=@MAX_REQUEUE@
: "${SLURM_JOB_ID:?submit this script with sbatch}"
REQUEUE_ID="$SLURM_JOB_ID"
ATTEMPT=${SLURM_RESTART_COUNT:-0}
RECORDS=@RECORDS@
RECORD_NAME="$SLURM_JOB_ID"
# the CPUs of a node are shared by its worker processes
export OMP_NUM_THREADS=$(( ${SLURM_CPUS_PER_TASK:-$NPROC_PER_NODE} / NPROC_PER_NODE ))
[ "$OMP_NUM_THREADS" -ge 1 ] || export OMP_NUM_THREADS=1
# rendezvous: the first node of the allocation hosts the c10d store, on a port derived from the job id
RDZV_HOST=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
RDZV_PORT=$(( 20000 + SLURM_JOB_ID % 20000 ))

@SETUP@
echo "[genrecon] training on $SLURM_JOB_NUM_NODES node(s) x $NPROC_PER_NODE (job $SLURM_JOB_ID, attempt $ATTEMPT, rendezvous $RDZV_HOST:$RDZV_PORT) at $(date -Is)"

@RECORD@

@TERM_HANDLER@

srun --nodes="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 --kill-on-bad-exit=1 \
    @PYTHON@ -m torch.distributed.run \
        --nnodes="$SLURM_JOB_NUM_NODES" --nproc_per_node="$NPROC_PER_NODE" \
        --rdzv_backend=c10d --rdzv_endpoint="$RDZV_HOST:$RDZV_PORT" --rdzv_id="$SLURM_JOB_ID" \
        -m genrecon.training --config @CONFIG@ --resume \
        --summary-json @SUMMARY_JSON@ &
child=$!

@FINISH@
