#!/usr/bin/env bash
# Control plane API benchmark (issues 2 and 16): builds Platform.Api and bench/ApiBench in Release, starts a throwaway
# PostgreSQL 15 on loopback, runs the benchmark on SQLite, on PostgreSQL, and on PostgreSQL with one and two Api
# replicas behind haproxy, prints the markdown tables and
# cleans up (Api processes, PostgreSQL, scratch directory). Extra arguments go to ApiBench, e.g.
#   bench/run-api-bench.sh --duration 5 --apps 2000
# Set BENCH_KEEP=1 to keep the scratch directory (Api logs) for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_BIN=/usr/lib/postgresql/15/bin
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

WORK=$(mktemp -d /tmp/apibench.XXXXXX)
chmod 0755 "$WORK"
PGDATA=$WORK/pg
cleanup() {
  for f in "$WORK"/run/api-*.pid "$WORK"/run/haproxy-*.pid; do   # the harness kills its Api; this covers an interrupted run
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
  [ -f "$PGDATA/PG_VERSION" ] && as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true
  if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT INT TERM

log "building src/Api and bench/ApiBench (Release)"
dotnet build -c Release src/Api -nologo -v q -clp:ErrorsOnly >&2
dotnet build -c Release bench/ApiBench -nologo -v q -clp:ErrorsOnly >&2
# Run a private copy, so that a concurrent build of src/Api cannot swap assemblies under the running Api.
cp -r src/Api/bin/Release/net10.0 "$WORK/api-bin"

PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 55433)
log "starting PostgreSQL 15 on 127.0.0.1:$PGPORT"
mkdir -p "$PGDATA"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$PGDATA"
as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres -A trust --no-sync >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -w -l "$PGDATA/server.log" \
  -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGDATA -c fsync=off -c max_connections=300" start >/dev/null
for db in bench bench_lb1 bench_lb2; do as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -qc "create database $db"; done
command -v haproxy >/dev/null || { log "installing haproxy (the load balancer in front of the replicas)"; apt-get install -y -qq haproxy >/dev/null; systemctl disable --now haproxy >/dev/null 2>&1 || true; }

log "load average before the run: $(cut -d" " -f1-3 /proc/loadavg) (other work on the machine skews the figures; see the \"other\" CPU column)"
log "machine: $(nproc) cores, $(uname -r), $(dotnet --version), $(as_pg "$PG_BIN/postgres" --version)"
mkdir -p "$WORK/run"
dotnet bench/ApiBench/bin/Release/net10.0/ApiBench.dll \
  --api "$WORK/api-bin/Platform.Api.dll" --work "$WORK/run" \
  --postgres "Host=127.0.0.1;Port=$PGPORT;Username=postgres;Database=bench" \
  --pg-pid "$(head -1 "$PGDATA/postmaster.pid")" "$@"
