#!/usr/bin/env bash
# Runs Platform on this machine: the Api (control plane, OIDC, jobs), the Portal and one local
# node agent, on SQLite under ./data. Prints where to sign in and the admin's credentials.
# Ctrl-C stops everything. Environment: PLATFORM_API_PORT (5080), PLATFORM_PORTAL_PORT (5000),
# PLATFORM_DATA (./data).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DATA=${PLATFORM_DATA:-$ROOT/data}
API_PORT=${PLATFORM_API_PORT:-5080}
PORTAL_PORT=${PLATFORM_PORTAL_PORT:-5000}
API_URL=http://localhost:$API_PORT
PORTAL_URL=http://localhost:$PORTAL_PORT
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

command -v dotnet >/dev/null || { echo "Platform needs the .NET 10 SDK (dotnet) on PATH."; exit 1; }
# The base image (library/busybox) is made from Debian's busybox-static with umoci and skopeo.
need=()
for tool in skopeo umoci curl file; do command -v $tool >/dev/null || need+=($tool); done
[ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep static >/dev/null || need+=(busybox-static)
# The local node runs containers: runc, the CNI plugins, iptables, iproute2 and the default seccomp profile.
for tool in runc iptables ip; do command -v $tool >/dev/null || need+=($([ $tool = ip ] && echo iproute2 || echo $tool)); done
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
[ -f /usr/share/containers/seccomp.json ] || need+=(golang-github-containers-common)
# Apps built from source: git (hosting and clones) and buildah (the builds).
for tool in git buildah; do command -v $tool >/dev/null || need+=($tool); done
command -v newuidmap >/dev/null || need+=(uidmap)   # builds run buildah rootless, as the build account
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "Please install: ${need[*]} (apt-get install ${need[*]})"; exit 1; fi
  echo "==> installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
mkdir -p "$DATA/logs" && chmod 0700 "$DATA/logs"   # the logs are the operator's, not every local account's

# The first run creates the admin's credentials; later runs reuse them (the file is mode 0600).
CRED=$DATA/admin-credentials
if [ ! -f "$CRED" ]; then
  umask 077
  password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=' | cut -c1-20)
  token=plat_$(head -c 32 /dev/urandom | base64 | tr -d '/+=' | cut -c1-40)
  printf 'ADMIN_EMAIL=admin@platform.local\nADMIN_PASSWORD=%s\nADMIN_TOKEN=%s\n' "$password" "$token" > "$CRED"
  umask 022
fi
# shellcheck disable=SC1090
. "$CRED"

echo "==> building (Release)"
dotnet build Platform.sln -c Release -nologo -v q -clp:ErrorsOnly

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

echo "==> starting the Api on $API_URL"
Platform__DataDir=$DATA \
Platform__Bootstrap__AdminEmail=$ADMIN_EMAIL \
Platform__Bootstrap__AdminPassword=$ADMIN_PASSWORD \
Platform__Bootstrap__AdminToken=$ADMIN_TOKEN \
Platform__Portal__Url=$PORTAL_URL \
Platform__PublicUrl=$API_URL \
  dotnet src/Api/bin/Release/net10.0/Platform.Api.dll --urls "http://0.0.0.0:$API_PORT" --contentRoot "$ROOT/src/Api" \
  >>"$DATA/logs/api.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 120); do
  curl -fs "$API_URL/readyz" >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "The Api stopped; see $DATA/logs/api.log:"; tail -20 "$DATA/logs/api.log"; exit 1; }
  sleep 0.5
done

# First start: push the busybox base image so a fresh install can deploy something at once.
if ! curl -fs -u "admin:$ADMIN_TOKEN" "$API_URL/v2/library/hello/tags/list" >/dev/null 2>&1; then
  echo "==> pushing the library/busybox base image and library/hello"
  scripts/make-base-image.sh "localhost:$API_PORT" "$ADMIN_TOKEN"
fi

echo "==> starting the Portal on $PORTAL_URL"
Portal__ApiUrl=$API_URL Portal__DataDir=$DATA \
  dotnet src/Portal/bin/Release/net10.0/Platform.Portal.dll --urls "http://0.0.0.0:$PORTAL_PORT" --contentRoot "$ROOT/src/Portal" \
  >>"$DATA/logs/portal.log" 2>&1 &
pids+=($!)

echo "==> starting a local node agent"
[ "$(id -u)" -eq 0 ] || echo "    (not root: the node joins, but cannot run containers — runc, cgroups and CNI need root)"
# The containers' mapped users must be able to pass every folder above the node's data (a clone under
# /root, mode 0700, is not): then the node keeps its data under /var/lib, one folder per clone.
NODE_DATA=$DATA/node
closed=""; dir=/
for part in $(echo "$DATA" | tr '/' ' '); do
  dir=${dir%/}/$part
  [ -d "$dir" ] || break
  [ -z "$closed" ] && [ $(( 0$(stat -c %a "$dir") & 1 )) -eq 0 ] && closed=$dir
done
if [ -n "$closed" ]; then
  NODE_DATA=/var/lib/platform/node-$(printf '%s' "$DATA" | sha256sum | cut -c1-12)
  mkdir -p "$NODE_DATA" && chmod 0755 /var/lib/platform
  echo "    ($closed is closed to others: the node's data is in $NODE_DATA)"
fi
join_token=""
if [ ! -f "$NODE_DATA/credentials.json" ]; then   # first start: the agent exchanges a join token for its own credentials
  join_token=$(curl -fsS -X POST -H "Authorization: Bearer $ADMIN_TOKEN" -H 'content-type: application/json' -d '{}' \
    "$API_URL/api/v1/nodes/join-tokens" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
fi
Agent__ApiUrl=$API_URL Agent__DataDir=$NODE_DATA Agent__NodeName=local Agent__JoinToken=$join_token \
  dotnet src/NodeAgent/bin/Release/net10.0/Platform.NodeAgent.dll \
  >>"$DATA/logs/node.log" 2>&1 &
pids+=($!)

cat <<BANNER

  Platform is running.

    Portal        $PORTAL_URL
    Api           $API_URL   (OpenAPI: $API_URL/openapi/v1.json, jobs: $API_URL/hangfire)
    Registry      localhost:$API_PORT  (skopeo login --tls-verify=false -u admin -p \$TOKEN localhost:$API_PORT)
    Sign in       $API_URL/account/login
    Apps          http://{app}-{project}-{team}.apps.localhost:8080  (the router)

    Admin email     $ADMIN_EMAIL
    Admin password  $ADMIN_PASSWORD
    Admin token     $ADMIN_TOKEN
                    (curl -H "Authorization: Bearer \$TOKEN" $API_URL/api/v1/me)

  Data and logs are in $DATA (credentials: $CRED). Press Ctrl-C to stop
  (running app containers stay up; the node agent adopts them on the next start).

BANNER
wait -n "${pids[@]}"
echo "A process stopped; see $DATA/logs. Stopping the others."
