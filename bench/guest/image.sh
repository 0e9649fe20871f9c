#!/usr/bin/env bash
# The bench variant of the guest image: build/guest/initrd.img with a second
# cpio archive appended (the kernel unpacks both, later files win) holding
# runc, crun, their libraries, a busybox bundle for /bin/true, and the guest
# bench program in place of the agent. Output: build/guest-bench/initrd.img.
# Needs: build/guest (rootfs/build.sh), runc and crun (apt-get install -y runc crun).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$ROOT/build/guest-bench"
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT

[ -f "$ROOT/build/guest/initrd.img" ] || { echo "bench/guest/image.sh: build the guest image first (rootfs/build.sh)" >&2; exit 1; }
mkdir -p "$OUT"

node "$ROOT/bench/guest/bundle.mjs" "$STAGE/opt/kapsel/agent.mjs"
# init starts agent-boot.cjs when the image has it (the code-cached agent):
# here it runs the bench program instead.
printf '%s\n' "import('/opt/kapsel/agent.mjs');" >"$STAGE/opt/kapsel/agent-boot.cjs"

for exe in /usr/sbin/runc /usr/bin/crun; do
  [ -x "$exe" ] || continue
  install -D -m 0755 "$exe" "$STAGE$exe"
  for lib in $(ldd "$exe" | awk '/=> \//{print $3}'); do
    install -D -m 0755 "$(readlink -f "$lib")" "$STAGE$lib"
  done
done

BUNDLE="$STAGE/bench/bundle"
mkdir -p "$BUNDLE/rootfs/bin" "$BUNDLE/rootfs/proc" "$BUNDLE/rootfs/dev" "$BUNDLE/rootfs/sys"
install -m 0755 /bin/busybox "$BUNDLE/rootfs/bin/busybox"
ln -s busybox "$BUNDLE/rootfs/bin/true"
cp "$ROOT/build/guest-bench/config.json" "$BUNDLE/config.json"

(cd "$STAGE" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet) >"$STAGE.cpio"
cat "$ROOT/build/guest/initrd.img" "$STAGE.cpio" >"$OUT/initrd.img.tmp"
mv "$OUT/initrd.img.tmp" "$OUT/initrd.img"
rm -f "$STAGE.cpio"
echo "bench/guest/image.sh: wrote $OUT/initrd.img ($(du -h "$OUT/initrd.img" | cut -f1))" >&2
