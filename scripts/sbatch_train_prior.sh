#!/bin/bash
# Train a genrecon prior on a SLURM cluster with torchrun: several processes per node, one or more nodes.
#
#   sbatch --nodes=2 --gpus-per-node=4 --cpus-per-task=32 --time=1-00:00:00 --partition=gpu \
#          scripts/sbatch_train_prior.sh configs/train_prior_brain_diffusion.yaml [--set train.steps=50000 ...]
#
# `genrecon batch train --config CONFIG --nodes K --procs-per-node P [...]` writes a filled-in copy of this
# template into the training folder (with the resolved config, logs and per-attempt records) and submits it;
# use this file when you want to edit the job by hand.
#
# How it works
# - The job holds K nodes with ONE task per node (--ntasks-per-node=1). `srun` starts one torchrun agent per
#   node; the agents meet in a c10d rendezvous hosted on the first node of the allocation (port derived from
#   the job id, rendezvous id = job id) and each starts NPROC_PER_NODE workers: WORLD_SIZE = K * NPROC_PER_NODE.
#   Workers use NCCL on GPUs and gloo on CPUs; gradients are averaged over all ranks every step; rank 0 alone
#   writes checkpoints and the exported prior.
# - `--resume` continues from <output.dir>/checkpoint.pt, so the same command picks up an interrupted run.
# - --signal=B:TERM@300 makes SLURM send SIGTERM to this script 300 s before the time limit (also on
#   preemption). The handler signals the job steps (not srun, which would kill them at once): every rank
#   finishes its step, they agree to stop, rank 0 saves the checkpoint, and this script requeues the job
#   (at most MAX_REQUEUE times). A job cancelled with `scancel` is not requeued.
#
# Settings (environment variables, read at submission through sbatch's --export=ALL default):
#   NPROC_PER_NODE  workers per node (default: the GPUs SLURM gives a node, else 1)
#   PYTHON          interpreter with genrecon installed (default: python on PATH)
#   MAX_REQUEUE     requeues after a time limit or preemption (default: 3)
#
#SBATCH --job-name=genrecon-train
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=4
#SBATCH --output=genrecon-train_%j.out
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=B:TERM@300

set -uo pipefail  # no -e: the exit status of the training is examined below

CONFIG=${1:?usage: sbatch [options] scripts/sbatch_train_prior.sh CONFIG [--set key=value ...]}
shift
: "${SLURM_JOB_ID:?submit this script with sbatch}"
NPROC_PER_NODE=${NPROC_PER_NODE:-${SLURM_GPUS_ON_NODE:-1}}
PYTHON=${PYTHON:-python}
MAX_REQUEUE=${MAX_REQUEUE:-3}
ATTEMPT=${SLURM_RESTART_COUNT:-0}

# the CPUs of a node are shared by its workers
export OMP_NUM_THREADS=$(( ${SLURM_CPUS_PER_TASK:-$NPROC_PER_NODE} / NPROC_PER_NODE ))
[ "$OMP_NUM_THREADS" -ge 1 ] || export OMP_NUM_THREADS=1
# site set-up goes here, e.g.:
# module load cuda/12.1
# source ~/venvs/genrecon/bin/activate
# export NCCL_SOCKET_IFNAME=ib0   # if the nodes have several networks

RDZV_HOST=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
RDZV_PORT=$(( 20000 + SLURM_JOB_ID % 20000 ))
echo "[genrecon] training $CONFIG on $SLURM_JOB_NUM_NODES node(s) x $NPROC_PER_NODE (job $SLURM_JOB_ID, attempt $ATTEMPT, rendezvous $RDZV_HOST:$RDZV_PORT) at $(date -Is)"

term_state=""
child=""
on_term() {
    if [ -z "$term_state" ]; then
        # RUNNING: time limit or preemption (requeue); COMPLETING: cancelled by a user (do not)
        term_state=$(scontrol show job "$SLURM_JOB_ID" -o 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2)
        term_state=${term_state:-UNKNOWN}
        echo "[genrecon] SIGTERM received (job state $term_state)"
    fi
    # signal the job steps (the torchrun agents and their workers), not srun itself
    scancel --signal=TERM "$SLURM_JOB_ID" 2>/dev/null || { [ -n "$child" ] && kill -TERM "$child" 2>/dev/null; }
}
trap on_term TERM

srun --nodes="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 --kill-on-bad-exit=1 \
    "$PYTHON" -m torch.distributed.run \
        --nnodes="$SLURM_JOB_NUM_NODES" --nproc_per_node="$NPROC_PER_NODE" \
        --rdzv_backend=c10d --rdzv_endpoint="$RDZV_HOST:$RDZV_PORT" --rdzv_id="$SLURM_JOB_ID" \
        -m genrecon.training --config "$CONFIG" --resume "$@" \
        --summary-json "genrecon-train_${SLURM_JOB_ID}_summary_{rank}.json" &
child=$!
# the first `wait` returns early when the trap runs; the second collects the real exit status
wait "$child"; rc=$?
if [ -n "$term_state" ]; then wait "$child"; rc=$?; fi

if [ "$rc" -ne 0 ] && [ "$term_state" = RUNNING ] && [ "$ATTEMPT" -lt "$MAX_REQUEUE" ]; then
    if scontrol requeue "$SLURM_JOB_ID"; then
        echo "[genrecon] stopped before the time limit; requeued (requeue $((ATTEMPT + 1)) of at most $MAX_REQUEUE)"
        exit 0
    fi
fi
if [ "$rc" -ne 0 ] && [ -n "$term_state" ]; then
    echo "[genrecon] interrupted (exit $rc): the checkpoint is kept; submit the same command again to continue"
    exit 130
fi
exit "$rc"
