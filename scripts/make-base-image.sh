#!/usr/bin/env bash
# Builds the library/busybox base image from Debian's busybox-static (no internet needed) and
# pushes it into a Platform registry. Usage: make-base-image.sh <registry host:port> <token> [layout-dir]
# With a layout dir, the OCI layout is also kept there (tests reuse it).
set -euo pipefail
REGISTRY=${1:?registry host:port}
TOKEN=${2:?a platform admin personal access token}
KEEP=${3:-}
for tool in umoci skopeo; do command -v $tool >/dev/null || { echo "$tool is missing (apt-get install umoci skopeo busybox-static)"; exit 1; }; done
BUSYBOX=/bin/busybox
# (Readers here read all their input: with pipefail, a reader that stops early, as head or grep -q do, can end the
# writer with SIGPIPE and the script with status 141, depending on timing.)
[ -x "$BUSYBOX" ] && file -L "$BUSYBOX" 2>/dev/null | grep static >/dev/null || BUSYBOX=$(dpkg -L busybox-static 2>/dev/null | grep -m1 '/busybox$' || true)
[ -x "$BUSYBOX" ] || { echo "busybox-static is missing (apt-get install busybox-static)"; exit 1; }
VERSION=$("$BUSYBOX" 2>/dev/null | sed -nE '1s/^BusyBox v([0-9]+\.[0-9]+).*/\1/p')

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp" "$work/rootfs/www"
cp "$BUSYBOX" "$work/rootfs/bin/busybox"
for applet in $("$BUSYBOX" --list); do [ "$applet" = busybox ] || ln -sf busybox "$work/rootfs/bin/$applet"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$work/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$work/rootfs/etc/group"
chmod 1777 "$work/rootfs/tmp"

layout=$work/oci
umoci init --layout "$layout"
umoci new --image "$layout:$VERSION"
umoci insert --rootless --image "$layout:$VERSION" "$work/rootfs" / >/dev/null
umoci config --image "$layout:$VERSION" --os linux --architecture amd64 \
  --config.env PATH=/bin --config.cmd sh --config.workingdir / >/dev/null
# library/hello: the same layer, serving a greeting on $PORT (an app to try the platform with).
umoci config --image "$layout:$VERSION" --tag hello --config.cmd sh --config.cmd -c \
  --config.cmd 'mkdir -p /tmp/www && echo "Hello from $HOSTNAME (${GREETING:-no greeting set})" > /tmp/www/index.html && echo "serving on port $PORT" && exec httpd -f -v -p "$PORT" -h /tmp/www' >/dev/null
umoci gc --layout "$layout"
for tag in "$VERSION" latest; do
  skopeo copy -q --dest-tls-verify=false --dest-creds "platform:$TOKEN" \
    "oci:$layout:$VERSION" "docker://$REGISTRY/library/busybox:$tag"
done
skopeo copy -q --dest-tls-verify=false --dest-creds "platform:$TOKEN" "oci:$layout:hello" "docker://$REGISTRY/library/hello:latest"
umoci rm --image "$layout:hello" && umoci gc --layout "$layout"   # the kept layout holds busybox alone
if [ -n "$KEEP" ]; then rm -rf "$KEEP"; cp -r "$layout" "$KEEP"; fi
echo "pushed $REGISTRY/library/busybox:$VERSION and :latest, and $REGISTRY/library/hello:latest"
