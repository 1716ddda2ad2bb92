set -uo pipefail

REQUEUE_ID="${SLURM_JOB_ID:?submit this script with sbatch}"
ATTEMPT=${SLURM_RESTART_COUNT:-0}
RECORDS=@RECORDS@
RECORD_NAME="$SLURM_JOB_ID"
term_state=""
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}

@SETUP@
@RECORD@

@PYTHON@ -m genrecon.cli.main evaluate @RUN_DIR@
rc=$?
if [ "$rc" -eq 0 ]; then record completed 0; else record failed "$rc"; fi
exit "$rc"
