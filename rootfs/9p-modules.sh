#!/usr/bin/env bash
# Builds the virtio-9p modules (9pnet, 9pnet_virtio, 9p) for a Debian kernel
# that does not ship them, and prints the directory holding the .ko files.
#
# Usage: rootfs/9p-modules.sh KDIR RELEASE VERSION CACHE
#   KDIR     the kernel .deb extracted (lib/modules/RELEASE, boot/config-RELEASE)
#   RELEASE  e.g. 6.1.0-57-cloud-amd64
#   VERSION  the Debian version of that kernel, e.g. 6.1.192-3
#   CACHE    where downloads and the build are kept (build/cache)
#
# Why: Debian 12's cloud kernel has CONFIG_NET_9P unset, and kapsel's
# `shared_fs = "virtio-9p"` mode (docs/light-sandboxes.md) mounts the
# containers' files over 9p. The modules are built as external modules
# (Documentation/kbuild/modules.rst) from linux-source at the kernel's own
# version, against its own headers and Module.symvers, so their vermagic and
# symbol CRCs are the kernel's (CONFIG_MODVERSIONS=y). They are not signed:
# the guest boots without secure boot, where an unsigned module loads and
# taints the kernel (CONFIG_MODULE_SIG_FORCE is unset).
#
# Downloads, once, into CACHE: linux-source-MAJOR.MINOR (~140 MB),
# linux-headers-RELEASE, linux-headers-ABI-common, linux-kbuild-MAJOR.MINOR,
# all of VERSION. Needs gcc (the kernel's gcc-12), make, dpkg-deb, xz, strip.
set -euo pipefail

[ $# -eq 4 ] || { echo "usage: rootfs/9p-modules.sh KDIR RELEASE VERSION CACHE" >&2; exit 2; }
KDIR="$1" RELEASE="$2" VERSION="$3" CACHE="$(cd "$4" && pwd)"

die() { echo "rootfs/9p-modules.sh: $*" >&2; exit 1; }
log() { echo "rootfs/9p-modules.sh: $*" >&2; }

CONFIG="$KDIR/boot/config-$RELEASE"
[ -f "$CONFIG" ] || die "no $CONFIG"
MODDIR="$KDIR/lib/modules/$RELEASE"
# A kernel that ships them needs no build: print its own module directory.
if grep -q '^CONFIG_9P_FS=m$' "$CONFIG" && grep -q '^CONFIG_NET_9P_VIRTIO=m$' "$CONFIG"; then
  echo "$MODDIR/kernel"
  exit 0
fi
grep -q '^CONFIG_NETFS_SUPPORT=[my]$' "$CONFIG" || die "$RELEASE has no NETFS_SUPPORT, which 9p needs"

# 6.1.0-57-cloud-amd64 -> ABI 6.1.0-57, series 6.1.
[[ "$RELEASE" =~ ^(([0-9]+\.[0-9]+)\.[0-9]+-[0-9]+)-.+$ ]] || die "unexpected kernel release $RELEASE"
ABI="${BASH_REMATCH[1]}" SERIES="${BASH_REMATCH[2]}"
# Named for the options below too: a build with other options is another.
OUT="$CACHE/9p-modules-${RELEASE}_${VERSION//:/%3a}-acl-security"
if [ -f "$OUT/.built" ]; then
  echo "$OUT"
  exit 0
fi

PKGS=("linux-source-$SERIES" "linux-headers-$RELEASE" "linux-headers-$ABI-common" "linux-kbuild-$SERIES")
for p in "${PKGS[@]}"; do
  deb="$(ls "$CACHE/${p}_${VERSION//:/%3a}_"*.deb 2>/dev/null | head -1)" || true
  [ -n "$deb" ] && continue
  log "downloading $p $VERSION"
  dl="$(mktemp -d "$CACHE/dl.XXXXXX")"
  chmod 0777 "$dl" # apt downloads as _apt
  (cd "$dl" && apt-get download -q "$p=$VERSION" 2>&1 | grep -v 'unsandboxed' >&2) || true
  got="$(ls "$dl"/*.deb 2>/dev/null | head -1)" || true
  [ -n "$got" ] || { rm -rf "$dl"; die "apt-get download $p=$VERSION failed (network to the Debian mirror? apt-get update?)"; }
  mv "$got" "$CACHE/"
  rm -rf "$dl"
done

WORK="$(mktemp -d "$CACHE/9p-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
log "building 9pnet, 9pnet_virtio and 9p for $RELEASE"
for p in "${PKGS[@]}"; do
  dpkg-deb -x "$(ls "$CACHE/${p}_${VERSION//:/%3a}_"*.deb | head -1)" "$WORK/root"
done
HEADERS="$WORK/root/usr/src/linux-headers-$RELEASE"
# Its Makefile includes the common headers by absolute path (/usr/src/...).
sed -i "s|/usr/src/linux-headers-$ABI-common|$WORK/root/usr/src/linux-headers-$ABI-common|" "$HEADERS/Makefile"
SRC_TAR="$WORK/root/usr/src/linux-source-$SERIES.tar.xz"
[ -f "$SRC_TAR" ] || die "linux-source-$SERIES has no $(basename "$SRC_TAR")"
mkdir -p "$WORK/src"
tar -xJf "$SRC_TAR" -C "$WORK/src" --strip-components=1 \
  "linux-source-$SERIES/fs/9p" "linux-source-$SERIES/net/9p"
printf 'obj-m := net/9p/ fs/9p/\n' >"$WORK/src/Kbuild"
# The options these objects test, as Debian's own amd64 config sets them
# (the Makefiles read the CONFIG_ variables, the C the -D macros): POSIX
# ACLs, and the security.* xattrs that file capabilities live in. Not
# 9P_FSCACHE: kapsel mounts with cache=mmap, which does not use it.
make -s -C "$HEADERS" M="$WORK/src" \
  CONFIG_NET_9P=m CONFIG_NET_9P_VIRTIO=m CONFIG_9P_FS=m CONFIG_9P_FS_POSIX_ACL=y \
  CONFIG_9P_FS_SECURITY=y \
  KCFLAGS="-DCONFIG_NET_9P_MODULE=1 -DCONFIG_NET_9P_VIRTIO_MODULE=1 -DCONFIG_9P_FS_MODULE=1 -DCONFIG_9P_FS_POSIX_ACL=1 -DCONFIG_9P_FS_SECURITY=1" \
  modules >"$WORK/make.log" 2>&1 || { cat "$WORK/make.log" >&2; die "make of the 9p modules failed"; }
rm -rf "$OUT"
mkdir -p "$OUT"
for ko in net/9p/9pnet.ko net/9p/9pnet_virtio.ko fs/9p/9p.ko; do
  [ -f "$WORK/src/$ko" ] || die "the build made no $ko"
  strip --strip-debug -o "$OUT/$(basename "$ko")" "$WORK/src/$ko"
  [ "$(modinfo -F vermagic "$OUT/$(basename "$ko")" | cut -d' ' -f1)" = "$RELEASE" ] ||
    die "$ko was built for another kernel than $RELEASE"
done
touch "$OUT/.built"
echo "$OUT"
