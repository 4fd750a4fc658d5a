#!/usr/bin/env bash
# Runs every test of Platform: installs what the tests need, starts a throwaway PostgreSQL,
# builds once, runs all test projects, and ends with the line "N passed, N failed, N skipped".
# Works from a clone in any folder, /root (mode 0700) included: what another user must reach (the
# PostgreSQL server runs as postgres; containers run as mapped ids) lives outside the repository.
set -euo pipefail
umask 022   # folders the tests make (agent data, bundles under /var/tmp) must stay traversable by containers' mapped users
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${PLATFORM_TEST_WORK:-$ROOT/.test-run}
PG_BIN=/usr/lib/postgresql/15/bin

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# --- prerequisites (Debian 12) -------------------------------------------------------------
need=()
[ -x "$PG_BIN/initdb" ] || need+=(postgresql)
command -v git >/dev/null || need+=(git)
for tool in skopeo umoci buildah runc iptables; do command -v $tool >/dev/null || need+=($tool); done
command -v ip >/dev/null || need+=(iproute2)
command -v newuidmap >/dev/null || need+=(uidmap)   # builds run buildah rootless (the build account's user name-space)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
[ -f /usr/share/containers/seccomp.json ] || need+=(golang-github-containers-common)
command -v docker-registry >/dev/null || need+=(docker-registry)   # an upstream registry for builds (its own config, loopback)
command -v pebble >/dev/null || need+=(pebble)   # Let's Encrypt's test ACME server (and pebble-challtestsrv) for custom domains, loopback
command -v curl >/dev/null || need+=(curl)
command -v haproxy >/dev/null || need+=(haproxy)   # the load balancer in front of two Api replicas (loopback)
[ -x /usr/bin/chromium ] || need+=(chromium)   # the Portal's browser tests (Playwright drives it; never `playwright install`)
command -v npm >/dev/null || need+=(npm)   # s3rver, an S3-compatible server for the registry's bucket store (below)
[ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep static >/dev/null || need+=(busybox-static file)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then echo "installing ${need[*]} needs root (apt-get)"; exit 1; fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  # The tests start their own server; the packaged cluster is not needed.
  systemctl disable --now postgresql >/dev/null 2>&1 || true
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
  systemctl disable --now haproxy >/dev/null 2>&1 || true
fi
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet tool restore >/dev/null
# An S3-compatible server on loopback for the registry's bucket store (tests/Api.Tests/Registry/S3Server.cs): no Debian
# package serves one without a Ceph cluster, so s3rver from npm, pinned, outside the repository.
S3RVER_DIR=/opt/platform-tests/s3rver
if [ ! -x "$S3RVER_DIR/node_modules/.bin/s3rver" ]; then
  log "installing s3rver 3.7.1 (npm) into $S3RVER_DIR"
  mkdir -p "$S3RVER_DIR" && (cd / && npm install --prefix "$S3RVER_DIR" --no-audit --no-fund --loglevel=error s3rver@3.7.1 >/dev/null)
fi
export PLATFORM_TEST_S3RVER="$S3RVER_DIR/node_modules/.bin/s3rver"

# --- a throwaway PostgreSQL on loopback ------------------------------------------------------
# Its data folder is a fresh 0700 folder under /var/tmp owned by postgres, not below the repository:
# postgres cannot enter a clone under /root (0700). Its log is copied into $WORK when it stops.
rm -rf "$WORK" && mkdir -p "$WORK"
PGDATA=$(mktemp -d /var/tmp/platform-test-pg.XXXXXX)
PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 55432)
# From / as postgres: the repository (our working directory) may be where postgres cannot enter.
as_pg() { if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$PGDATA"
stop_pg() {
  as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m immediate stop >/dev/null 2>&1 || true
  cp "$PGDATA/server.log" "$WORK/postgres.log" 2>/dev/null || true
  rm -rf "$PGDATA"
}
trap stop_pg EXIT
log "starting PostgreSQL 15 on 127.0.0.1:$PGPORT (data in $PGDATA)"
as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres -A trust --no-sync >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -w -l "$PGDATA/server.log" \
  -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGDATA -c fsync=off -c max_connections=300" start >/dev/null
export PLATFORM_TEST_POSTGRES="Host=127.0.0.1;Port=$PGPORT;Username=postgres;Database=postgres;Maximum Pool Size=50"

# --- build once, then every test project ----------------------------------------------------
log "building"
dotnet build Platform.sln -c Release -nologo -v q -clp:ErrorsOnly
log "testing"
set +e
# One test project after another (-m:1): the root integration tests of Api.Tests, NodeAgent.Tests and the
# Portal's journey each run real agents, builds and name-spaces on this machine, and an Api starting
# sweeps build name-spaces it does not know; in one project they share a serial collection, across
# projects nothing would keep them apart.
dotnet test Platform.sln -c Release --no-build -nologo -v q -m:1 \
  --results-directory "$WORK/results" --logger "trx" 2>&1 | tee "$WORK/test.log"
status=${PIPESTATUS[0]}
set -e

# Each project prints "Passed!  - Failed: 0, Passed: 7, Skipped: 0, Total: 7, …" (or Failed!/Skipped!).
summary='(Passed|Failed|Skipped)! +- Failed: +([0-9]+), Passed: +([0-9]+), Skipped: +([0-9]+)'
passed=0; failed=0; skipped=0
while read -r f p s; do passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s)); done < <(
  sed -nE "s/.*$summary.*/\2 \3 \4/p" "$WORK/test.log")
projects=$(find tests -name '*.Tests.csproj' | wc -l)   # one test project per product project, all named *.Tests
reported=$(grep -cE "$summary" "$WORK/test.log" || true)
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi           # a crash with no summary still fails
if [ "$reported" -lt "$projects" ]; then failed=$((failed + projects - reported)); fi   # so does a project that reported none
# The failures again, at the end where a reader (or a CI log cut to its tail) sees them: each failed test's
# name, message, the top of its stack and the end of what it printed, read from the trx results.
if [ "$failed" -gt 0 ] && command -v python3 >/dev/null; then
  log "failed tests"
  python3 - "$WORK/results" <<'PY' || true
import glob, sys, xml.etree.ElementTree as ET
ns = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}
for trx in sorted(glob.glob(sys.argv[1] + "/*.trx")):
    for r in ET.parse(trx).getroot().iterfind(".//t:UnitTestResult[@outcome='Failed']", ns):
        text = lambda path: (r.findtext(path, "", ns) or "").strip().splitlines()
        print(f"--- {r.get('testName')} ({r.get('duration')})")
        print("\n".join(text("t:Output/t:ErrorInfo/t:Message")[:60]))
        print("\n".join(text("t:Output/t:ErrorInfo/t:StackTrace")[:8]))
        out = text("t:Output/t:StdOut") + text("t:Output/t:StdErr")
        if out: print("... what it printed, last lines:\n" + "\n".join(out[-40:]))
PY
fi
[ -d "$WORK/screenshots" ] && log "browser screenshots of failures: $WORK/screenshots"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
