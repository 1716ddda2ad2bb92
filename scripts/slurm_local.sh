#!/usr/bin/env bash
# A one-node SLURM cluster on localhost, for genrecon's tests and for trying `genrecon batch` on a laptop.
#
#   bash scripts/slurm_local.sh start    # install (root, apt) if needed, start munged + slurmctld + slurmd
#   bash scripts/slurm_local.sh status   # what runs; exit 0 when the node is up, 3 otherwise
#   bash scripts/slurm_local.sh stop     # cancel this cluster's jobs, stop the daemons this script started
#
# `start` prints one line on stdout, `export SLURM_CONF=...`, and its progress on stderr, so
#   eval "$(bash scripts/slurm_local.sh start)"
# points sbatch/squeue/srun at the cluster. Everything lives in $SLURM_LOCAL_DIR (default
# /tmp/genrecon-slurm): slurm.conf, state, spool, logs, pid files and a private munge socket and key, so
# a system munge or SLURM on the same machine is left alone (set SLURM_LOCAL_PORT if 6817/6818 are taken).
#
# Made for a Debian/Ubuntu machine without systemd (containers, CI): packages slurmctld slurmd
# slurm-client munge (SLURM 22.05 on Debian 12, ~13 MB) are installed with --no-install-recommends and a
# temporary policy-rc.d, so apt starts no service. There is no accounting (slurmdbd): `sacct` does not work
# here, and genrecon reads task states from squeue and from the records its job scripts leave in the run
# folder. `start` and `stop` are idempotent; `stop` signals only the PIDs recorded by `start`.
set -euo pipefail

DIR=${SLURM_LOCAL_DIR:-/tmp/genrecon-slurm}
PORT=${SLURM_LOCAL_PORT:-6817}
CONF=$DIR/etc/slurm.conf
MUNGE_DIR=$DIR/munge
SOCKET=$MUNGE_DIR/munge.socket.2
export PATH=$PATH:/usr/sbin:/sbin
export SLURM_CONF=$CONF

log() { echo "slurm_local: $*" >&2; }
die() { echo "slurm_local: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------------------
# installation
# ---------------------------------------------------------------------------------------------------------
missing_commands() {
    local c out=""
    for c in slurmctld slurmd sbatch squeue srun scontrol munged munge; do
        command -v "$c" >/dev/null 2>&1 || out="$out $c"
    done
    echo "$out"
}

install_packages() {
    local missing
    missing=$(missing_commands)
    [ -z "$missing" ] && return 0
    [ "$(id -u)" = 0 ] || die "SLURM is not installed (missing:$missing) and installing it needs root: run 'sudo bash $0 start', or install slurmctld slurmd slurm-client munge yourself"
    command -v apt-get >/dev/null 2>&1 || die "SLURM is not installed (missing:$missing) and apt-get is not available: install slurmctld, slurmd, slurm-client and munge with this system's package manager"
    local t0=$SECONDS policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e "$policy" ]; then  # keep apt from starting daemons (there is no systemd here anyway)
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        made_policy=1
    fi
    local pkgs=(slurmctld slurmd slurm-client munge) rc=0
    log "installing ${pkgs[*]} (apt, --no-install-recommends)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${pkgs[@]}" </dev/null >&2; then
        log "apt-get install failed; updating the package lists and trying again"
        { apt-get update -q </dev/null >&2 && apt-get install -y -q --no-install-recommends "${pkgs[@]}" </dev/null >&2; } || rc=$?
    fi
    [ "$made_policy" = 1 ] && rm -f "$policy"
    [ "$rc" = 0 ] || die "apt-get could not install ${pkgs[*]} (exit $rc); see the apt output above"
    log "installed in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------------------------------------------------
# pid files: only processes this script started are ever signalled
# ---------------------------------------------------------------------------------------------------------
pid_of() {  # pid_of NAME PIDFILE -> the pid if that process is alive and is NAME
    local name=$1 file=$2 pid
    [ -s "$file" ] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
    [ "$(cat "/proc/$pid/comm")" = "$name" ] || return 1
    echo "$pid"
}

munged_pid() { pid_of munged "$MUNGE_DIR/munged.pid"; }
slurmctld_pid() { pid_of slurmctld "$DIR/run/slurmctld.pid"; }
slurmd_pid() { pid_of slurmd "$DIR/run/slurmd.pid"; }

node_state() { timeout 10 sinfo -h -n localhost -o %T 2>/dev/null | head -n1 || true; }

is_up() {
    munged_pid >/dev/null && slurmctld_pid >/dev/null && slurmd_pid >/dev/null || return 1
    case "$(node_state)" in idle* | mixed* | allocated* | completing*) return 0 ;; esac
    return 1
}

stop_pid() {  # stop_pid NAME PID: SIGTERM, then SIGKILL after 10 s
    local name=$1 pid=$2 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 100); do
        [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 0
        sleep 0.1
    done
    log "$name ($pid) did not stop on SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------------------
write_config() {
    # The node must be declared as slurmd sees it, or slurmctld drains it.
    local hw cpus sockets cores threads mem
    hw=$(slurmd -C 2>/dev/null | head -n1)
    cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
    sockets=$(sed -n 's/.* SocketsPerBoard=\([0-9]*\).*/\1/p' <<<"$hw")
    cores=$(sed -n 's/.* CoresPerSocket=\([0-9]*\).*/\1/p' <<<"$hw")
    threads=$(sed -n 's/.* ThreadsPerCore=\([0-9]*\).*/\1/p' <<<"$hw")
    mem=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
    [ -n "$cpus" ] && [ -n "$mem" ] || die "could not read this machine's CPUs and memory from 'slurmd -C' (got: $hw)"
    mem=$((mem * 9 / 10))
    cat >"$CONF" <<EOF
# Written by scripts/slurm_local.sh: a one-node SLURM cluster on localhost (no accounting).
ClusterName=genrecon-local
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
AuthType=auth/munge
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket=$SOCKET,cred_expire=5
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups, no systemd: track and launch tasks the plain way
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# schedule at once (the default batch_sched_delay adds ~3 s per submission wave; the main loop runs every
# 2 s instead of 60 s, so a requeued array task starts as soon as it is eligible)
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,bf_interval=1,sched_interval=2
# forget finished jobs after 4 s (else 'sbatch --wait' backs off to 32 s polls)
MinJobAge=4
KillWait=10
InactiveLimit=0
JobRequeue=1
MailProg=/bin/true
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus Sockets=${sockets:-1} CoresPerSocket=${cores:-$cpus} ThreadsPerCore=${threads:-1} RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    log "node: CPUs=$cpus RealMemory=${mem} MB; config $CONF"
}

# ---------------------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------------------
start() {
    if is_up 2>/dev/null; then
        log "already running ($DIR)"
        echo "export SLURM_CONF=$CONF"
        return 0
    fi
    install_packages
    [ "$(id -u)" = 0 ] || die "starting slurmd needs root (it launches jobs as their users): run 'sudo bash $0 start'"
    local t0=$SECONDS
    stop_daemons  # leftovers of an earlier start that died half-way
    mkdir -p "$DIR"/etc "$DIR"/state "$DIR"/spool "$DIR"/log "$DIR"/run "$MUNGE_DIR"
    chmod 0755 "$DIR"

    # munge: a private key and socket; munged refuses to run as root
    id munge >/dev/null 2>&1 || die "user 'munge' does not exist: reinstall the munge package"
    if [ ! -s "$MUNGE_DIR/munge.key" ]; then
        dd if=/dev/urandom of="$MUNGE_DIR/munge.key" bs=1024 count=1 status=none
    fi
    chown -R munge: "$MUNGE_DIR"
    chmod 0755 "$MUNGE_DIR"  # every user must reach the socket
    chmod 0400 "$MUNGE_DIR/munge.key"
    runuser -u munge -- munged --socket="$SOCKET" --key-file="$MUNGE_DIR/munge.key" \
        --pid-file="$MUNGE_DIR/munged.pid" --log-file="$MUNGE_DIR/munged.log" --seed-file="$MUNGE_DIR/munged.seed" \
        || die "munged did not start; see $MUNGE_DIR/munged.log"
    munge -S "$SOCKET" -n | unmunge -S "$SOCKET" >/dev/null || die "munge does not work; see $MUNGE_DIR/munged.log"

    write_config
    slurmctld -f "$CONF" || die "slurmctld did not start; see $DIR/log/slurmctld.log"
    slurmd -N localhost -f "$CONF" || die "slurmd did not start; see $DIR/log/slurmd.log"

    local i state=""
    for i in $(seq 300); do  # up to 30 s
        state=$(node_state)
        case "$state" in
            idle* | mixed* | allocated*) break ;;
            drain* | down*) scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 0.1
    done
    case "$state" in
        idle* | mixed* | allocated*) ;;
        *)
            tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
            die "the node did not become idle in 30 s (state: '${state:-none}'); logs above"
            ;;
    esac
    log "cluster up in $((SECONDS - t0)) s (node $state)"
    echo "export SLURM_CONF=$CONF"
}

stop_daemons() {
    local pid
    if pid=$(slurmd_pid); then stop_pid slurmd "$pid"; fi
    if pid=$(slurmctld_pid); then stop_pid slurmctld "$pid"; fi
    if pid=$(munged_pid); then stop_pid munged "$pid"; fi
    return 0
}

stop() {
    if slurmctld_pid >/dev/null; then
        # cancel this cluster's jobs first, so no job step outlives its slurmd
        local jobs i
        jobs=$(timeout 10 squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ' || true)
        if [ -n "${jobs// /}" ]; then
            log "cancelling jobs: $jobs"
            # shellcheck disable=SC2086
            timeout 10 scancel $jobs 2>/dev/null || true
            for i in $(seq 100); do
                [ -z "$(timeout 5 squeue -h -o %A 2>/dev/null || true)" ] && break
                sleep 0.1
            done
        fi
    fi
    stop_daemons
    log "stopped ($DIR)"
}

status() {
    local name pid
    for name in munged slurmctld slurmd; do
        if pid=$("${name}_pid"); then echo "$name: running (pid $pid)"; else echo "$name: not running"; fi
    done
    if is_up; then
        echo "node localhost: $(node_state)"
        echo "export SLURM_CONF=$CONF"
        return 0
    fi
    return 3
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *)
        echo "usage: bash $0 start|stop|status   (folder: \$SLURM_LOCAL_DIR, default /tmp/genrecon-slurm)" >&2
        exit 2
        ;;
esac
