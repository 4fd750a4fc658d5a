#!/usr/bin/env bash
# Push + pull of a 256 MiB single-layer image through the Platform Api's registry and through
# Debian's docker-registry (the CNCF distribution registry) on the same machine, side by side, with
# the same client (skopeo). Prints the median of N runs per direction, the ratio, and the Api's RSS.
# Usage: bench/registry/run-registry-bench.sh [runs=5] [size MiB=256]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
RUNS=${1:-5}
SIZE_MIB=${2:-256}
for tool in skopeo umoci docker-registry python3 curl; do command -v $tool >/dev/null || { echo "missing $tool (apt-get install skopeo umoci docker-registry)"; exit 1; }; done

work=$(mktemp -d /tmp/registry-bench.XXXX)
api_pid=""; reg_pid=""
cleanup() { [ -n "$api_pid" ] && kill "$api_pid" 2>/dev/null; [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "==> building the image: one ${SIZE_MIB} MiB layer of random bytes"
mkdir -p "$work/rootfs"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$work/rootfs/payload"
umoci init --layout "$work/oci" >/dev/null
umoci new --image "$work/oci:v1" >/dev/null
umoci insert --rootless --image "$work/oci:v1" "$work/rootfs" / >/dev/null
umoci gc --layout "$work/oci"
layer_bytes=$(du -sb "$work/oci/blobs" | cut -f1)

echo "==> starting the Api (Release, SQLite) and docker-registry"
dotnet build "$ROOT/src/Api" -c Release -nologo -v q -clp:ErrorsOnly >/dev/null
api_port=$(free_port)
TOKEN=plat_registry_bench_token_0123456789abcdef
Platform__DataDir=$work/api Platform__Bootstrap__AdminEmail=admin@bench.test Platform__Bootstrap__AdminPassword=bench-password-1 \
Platform__Bootstrap__AdminToken=$TOKEN Logging__LogLevel__Default=Warning \
  dotnet "$ROOT/src/Api/bin/Release/net10.0/Platform.Api.dll" --urls "http://127.0.0.1:$api_port" --contentRoot "$ROOT/src/Api" >"$work/api.log" 2>&1 &
api_pid=$!
reg_port=$(free_port)
cat > "$work/registry.yml" <<YML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $work/reference }, delete: { enabled: true } }
http: { addr: 127.0.0.1:$reg_port }
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
for _ in $(seq 1 120); do curl -fs "http://127.0.0.1:$api_port/readyz" >/dev/null 2>&1 && break; sleep 0.5; done
curl -fs -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"name":"bench"}' "http://127.0.0.1:$api_port/api/v1/teams" >/dev/null
curl -fs -X PUT -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"memoryMiB":1,"cpuMillicores":1,"instances":1,"apps":1,"projects":5,"registryGiB":100,"concurrentBuilds":1}' \
  "http://127.0.0.1:$api_port/api/v1/teams/bench/quota" >/dev/null
curl -fs -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"name":"p"}' "http://127.0.0.1:$api_port/api/v1/teams/bench/projects" >/dev/null
rss() { awk '/VmRSS/ {print $2}' /proc/$api_pid/status; }
hwm() { awk '/VmHWM/ {print $2}' /proc/$api_pid/status; }
# Warm the Api (JIT, connection pools) with a tiny push so the baseline RSS is a running server's.
skopeo copy -q --insecure-policy --dest-tls-verify=false --dest-creds "b:$TOKEN" "oci:$work/oci:v1" "docker://127.0.0.1:$api_port/bench/p/warm:v1" >/dev/null
rss_before=$(rss)

# skopeo remembers where it saw a blob and would mount it instead of uploading: forget before each push.
forget() { rm -f /var/lib/containers/cache/blob-info-cache-v1.boltdb "$HOME/.local/share/containers/cache/blob-info-cache-v1.boltdb"; }
time_it() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); python3 -c "print(f'{$e-$s:.3f}')"; }
declare -A results
for run in $(seq 1 "$RUNS"); do
  for target in api reference; do
    if [ $target = api ]; then dest="docker://127.0.0.1:$api_port/bench/p/app$run:v1"; creds=(--dest-creds "b:$TOKEN"); src_creds=(--src-creds "b:$TOKEN");
    else dest="docker://127.0.0.1:$reg_port/bench/app$run:v1"; creds=(); src_creds=(); fi
    forget
    push=$(time_it skopeo copy -q --insecure-policy --dest-tls-verify=false "${creds[@]}" "oci:$work/oci:v1" "$dest")
    rm -rf "$work/out"
    pull=$(time_it skopeo copy -q --insecure-policy --src-tls-verify=false "${src_creds[@]}" "$dest" "oci:$work/out:v1")
    results[$target-push]+="$push "; results[$target-pull]+="$pull "
    echo "run $run $target: push ${push}s pull ${pull}s"
  done
done
rss_peak=$(hwm)

python3 - "$layer_bytes" "$rss_before" "$rss_peak" "${results[api-push]}" "${results[api-pull]}" "${results[reference-push]}" "${results[reference-pull]}" <<'PY'
import sys, statistics as st
size = int(sys.argv[1]); before, peak = int(sys.argv[2]), int(sys.argv[3])
series = [list(map(float, a.split())) for a in sys.argv[4:8]]
names = ["push", "pull"]
print()
print(f"image: {size/2**20:.0f} MiB in blobs; runs: {len(series[0])}; client: skopeo copy (oci layout <-> registry)")
print()
print("| direction | Platform Api median (s) | MiB/s | docker-registry median (s) | MiB/s | throughput ratio (Api / reference) |")
print("|---|---|---|---|---|---|")
for i, n in enumerate(names):
    a, r = st.median(series[i]), st.median(series[i + 2])
    print(f"| {n} | {a:.2f} | {size/2**20/a:.0f} | {r:.2f} | {size/2**20/r:.0f} | {r/a:.2f}x |")
print()
print(f"Api RSS: {before/1024:.0f} MiB after warm-up, peak {peak/1024:.0f} MiB during the runs (growth {(peak-before)/1024:.0f} MiB)")
PY
