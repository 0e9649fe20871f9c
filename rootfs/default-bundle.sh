#!/usr/bin/env bash
# Writes kapsel's built-in default image as an OCI bundle:
#   OUT_DIR/config.json   rootfs/default-spec.json: what `runc spec` writes,
#                         except terminal false and hostname "kapsel"
#   OUT_DIR/rootfs/       Debian's busybox-static: /bin/busybox, a symlink for
#                         every applet, /etc/passwd group hostname, and the
#                         empty /tmp /proc /sys /dev /root mount points
#
# Usage: rootfs/default-bundle.sh OUT_DIR      (from any directory)
#
# Idempotent: the rootfs is rebuilt next to OUT_DIR/rootfs and swapped in, so a
# second run gives the same bundle and an interrupted run leaves the old one.
# busybox comes from the installed busybox-static package (/bin/busybox); if
# that is not installed, the .deb is downloaded once into build/cache/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SPEC="$ROOT/rootfs/default-spec.json"
CACHE="$ROOT/build/cache"

die() { echo "rootfs/default-bundle.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] && [ -n "$1" ] || die "usage: rootfs/default-bundle.sh OUT_DIR"
[ -f "$SPEC" ] || die "missing $SPEC"
mkdir -p "$1"
OUT="$(cd "$1" && pwd)"

# Debian's busybox-static: the installed one if it is there, else the .deb.
busybox_binary() {
  if dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' &&
    [ -x /bin/busybox ]; then
    echo /bin/busybox
    return
  fi
  command -v apt-get >/dev/null || die "need busybox-static: apt-get install busybox-static"
  mkdir -p "$CACHE"
  local deb
  deb="$(ls "$CACHE"/busybox-static_*_amd64.deb 2>/dev/null | sort -V | tail -1)" || true
  if [ -z "$deb" ]; then
    local dl
    dl="$(mktemp -d "$CACHE/dl.XXXXXX")"
    chmod 0777 "$dl" # apt downloads as the _apt user
    (cd "$dl" && apt-get download -q busybox-static >&2) ||
      { rm -rf "$dl"; die "apt-get download busybox-static failed (apt-get update? network?)"; }
    mv "$dl"/busybox-static_*.deb "$CACHE/" && rm -rf "$dl"
    deb="$(ls "$CACHE"/busybox-static_*_amd64.deb | sort -V | tail -1)"
  fi
  local x="$CACHE/busybox-static"
  rm -rf "$x" && dpkg-deb -x "$deb" "$x"
  echo "$x/bin/busybox"
}

BUSYBOX="$(busybox_binary)"
# The container has no loader and no libc: a dynamic busybox would not run.
if ldd "$BUSYBOX" >/dev/null 2>&1; then
  die "$BUSYBOX is dynamically linked; the default image needs busybox-static"
fi

NEW="$OUT/.rootfs.new"
OLD="$OUT/.rootfs.old"
rm -rf "$NEW" "$OLD"
mkdir -p "$NEW"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,proc,sys,dev,root}
chmod 0755 "$NEW"
chmod 1777 "$NEW/tmp"
chmod 0700 "$NEW/root"

install -m 0755 "$BUSYBOX" "$NEW/bin/busybox"
while IFS= read -r applet; do
  case "$applet" in bin/busybox | linuxrc) continue ;; esac
  mkdir -p "$NEW/$(dirname "$applet")"
  ln -sfn /bin/busybox "$NEW/$applet"
done < <("$BUSYBOX" --list-full)

cat >"$NEW/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$NEW/etc/group" <<'EOF'
root:x:0:
tty:x:5:
nogroup:x:65534:
EOF
echo kapsel >"$NEW/etc/hostname"

if [ -d "$OUT/rootfs" ]; then mv "$OUT/rootfs" "$OLD"; fi
mv "$NEW" "$OUT/rootfs"
rm -rf "$OLD"
install -m 0644 "$SPEC" "$OUT/config.json.tmp"
mv "$OUT/config.json.tmp" "$OUT/config.json"
echo "rootfs/default-bundle.sh: wrote $OUT (config.json, rootfs/ with busybox $("$OUT/rootfs/bin/busybox" 2>&1 | head -1 | sed -n 's/^BusyBox \(v[^ ]*\).*/\1/p'))" >&2
