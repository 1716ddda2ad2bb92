    # signal the job steps (the torchrun agents and their workers), not srun itself
    scancel --signal=TERM "$SLURM_JOB_ID" 2>/dev/null || { [ -n "$child" ] && kill -TERM "$child" 2>/dev/null; }
