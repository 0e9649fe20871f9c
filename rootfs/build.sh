#!/usr/bin/env bash
# Builds the guest image into build/guest/:
#   vmlinuz           Debian's cloud kernel (linux-image-cloud-amd64)
#   vmlinux           the same kernel uncompressed (ELF, from vmlinuz's
#                     payload): QEMU boots it through its PVH entry
#                     (CONFIG_PVH=y), skipping the decompressor, which is
#                     slow under TCG and leaves guest RAM touched
#   initrd.img        uncompressed newc cpio: kapsel-init as PID 1, node and
#                     its libraries, the agent, libkapsel.so, koffi, busybox,
#                     iproute2's ip, the kernel modules the guest needs
#   image.erofs       the read-only part of that tree (everything but init,
#                     /etc and the modules) as an uncompressed erofs image,
#                     which QEMU maps into every guest with virtio-pmem and
#                     the guest mounts with DAX: one copy in the host's page
#                     cache for all VMs (docs/light-sandboxes.md)
#   image-initrd.img  what must be there before that image is mounted:
#                     kapsel-init, /etc, the modules, and symlinks from /usr,
#                     /bin, /opt... into /.kapsel-image
#   floor-initrd.img  the boot-benchmark floor: kapsel-floor-init + the
#                     virtio-serial modules only
#   kernel-release    e.g. 6.1.0-50-cloud-amd64
#   load.list         the modules init loads, in order (a copy, for reading)
#   stamp             hash of every input; the build is skipped while it matches
#
# Usage: rootfs/build.sh [--force]      (from any directory; no Docker needed)
#
# Inputs (a missing one is an error that says how to get it):
#   build/dist/agent.mjs        npm run build:ts     (override: KAPSEL_GUEST_AGENT)
#   build/dist/agent.cjs, agent-boot.cjs
#                               npm run build:ts: the same agent as CommonJS
#                               and its boot loader, which runs it with a V8
#                               code cache made here (agent.cjs.cache, by the
#                               same node binary with the guest's flags from
#                               native/init/agent-flags.h); left out when
#                               KAPSEL_GUEST_AGENT is set
#   build/native/libkapsel.so   make -C native       (override: KAPSEL_GUEST_LIB)
#   build/native/kapsel-init, kapsel-floor-init,
#   kapsel-dns-relay                                 (built here with make)
#   /usr/bin/node (Node 20)     the nodejs package   (override: KAPSEL_GUEST_NODE)
#   /bin/busybox                apt-get install busybox-static
#   /usr/bin/ip (iproute2)      apt-get install iproute2 (busybox's ip has no
#                               `link set netns` and no JSON output)
#   node_modules/koffi          npm ci
#   the kernel .deb             apt-get download, cached in build/cache/
#                               (override the package: KAPSEL_KERNEL_PKG)
#   the 9p modules              rootfs/9p-modules.sh builds them for a kernel
#                               that has none (the cloud kernel), from
#                               linux-source and its headers (apt-get download,
#                               cached in build/cache/)
#   tools: apt-get apt-cache dpkg-deb modinfo (kmod) cpio ldd sha256sum
#          mkfs.erofs (apt-get install erofs-utils), lz4 od dd (the kernel's
#          payload is lz4 in Debian 12's cloud kernel; zstd xz gzip also read)
#
# The initrd is not compressed. Measured under TCG (q35, 94 MB image), QEMU
# start to `kapsel-init: started`: none 2.0-2.6 s, lz4 2.1-2.3 s, gzip 3.1 s,
# zstd 3.1-3.6 s. The kernel decompresses on one slow emulated CPU; lz4 only
# breaks even, and a raw cpio can later be mapped (pmem/DAX) as it is.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPT="$ROOT/rootfs/build.sh"
OUT="$ROOT/build/guest"
CACHE="$ROOT/build/cache"
NATIVE="$ROOT/build/native"

AGENT="${KAPSEL_GUEST_AGENT:-$ROOT/build/dist/agent.mjs}"
AGENT_CJS="$ROOT/build/dist/agent.cjs"
AGENT_BOOT="$ROOT/build/dist/agent-boot.cjs"
AGENT_FLAGS_H="$ROOT/native/init/agent-flags.h"
# An agent given by KAPSEL_GUEST_AGENT runs as it is, without the cache.
WITH_CODE_CACHE=1
[ -n "${KAPSEL_GUEST_AGENT:-}" ] && WITH_CODE_CACHE=0
LIBKAPSEL="${KAPSEL_GUEST_LIB:-$NATIVE/libkapsel.so}"
NODE_BIN="${KAPSEL_GUEST_NODE:-/usr/bin/node}"
BUSYBOX=/bin/busybox
IP_BIN=/usr/bin/ip
KOFFI="$ROOT/node_modules/koffi"
KOFFI_NATIVE="$ROOT/node_modules/@koromix/koffi-linux-x64"
META_PKG=linux-image-cloud-amd64

# Modules the guest loads. build.sh adds their dependencies (from each .ko's
# depends= field) and orders the list so that dependencies come first.
#   virtio_pci       the transport of every virtio device (q35: PCI)
#   virtio_console   virtio-serial: the agent's channel
#   fuse virtiofs    container rootfs shared from the host
#   overlay          writable layer over a read-only rootfs
#   virtio_blk       block devices hot-plugged later
#   virtio_pmem nd_pmem  read-only image mapped with DAX (virtio-pmem, nvdimm)
#   erofs            the filesystem of that read-only image
#   virtio_net       the NICs the host hot-plugs for container networking
#                    (PCIe hotplug itself, pciehp, is built in: HOTPLUG_PCI_PCIE=y)
#   virtio_balloon   free page reporting: memory the guest frees goes back to
#                    the host (PAGE_REPORTING=y)
#   9pnet_virtio 9p  the shared_fs = "virtio-9p" mode; the cloud kernel has
#                    no 9p, so rootfs/9p-modules.sh builds them for it
GUEST_MODULES=(virtio virtio_ring virtio_pci virtio_console fuse virtiofs overlay
  virtio_blk virtio_pmem nd_pmem nd_virtio erofs virtio_net virtio_balloon 9pnet_virtio 9p)
FLOOR_MODULES=(virtio virtio_ring virtio_pci virtio_console)

FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$SCRIPT" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "rootfs/build.sh: unknown argument: $arg (usage: rootfs/build.sh [--force])" >&2; exit 2 ;;
  esac
done

die() { echo "rootfs/build.sh: $*" >&2; exit 1; }
log() { echo "rootfs/build.sh: $*" >&2; }

# --- inputs -----------------------------------------------------------------

for tool in apt-get apt-cache dpkg-deb modinfo cpio ldd sha256sum make mkfs.erofs; do
  command -v "$tool" >/dev/null ||
    die "missing tool '$tool' (apt-get install apt dpkg kmod cpio libc-bin coreutils make erofs-utils)"
done

[ -f "$AGENT" ] || die "missing the agent bundle $AGENT: build it with 'npm run build:ts' (or set KAPSEL_GUEST_AGENT)"
if [ "$WITH_CODE_CACHE" = 1 ]; then
  [ -f "$AGENT_CJS" ] && [ -f "$AGENT_BOOT" ] ||
    die "missing $AGENT_CJS or $AGENT_BOOT: build them with 'npm run build:ts'"
fi
[ -x "$NODE_BIN" ] || die "missing $NODE_BIN: install Node 20 (the nodejs package) or set KAPSEL_GUEST_NODE"
[ -x "$BUSYBOX" ] || die "missing $BUSYBOX: apt-get install busybox-static"
"$IP_BIN" -V 2>/dev/null | grep -q iproute2 || die "missing iproute2's $IP_BIN: apt-get install iproute2"
"$BUSYBOX" --list >/dev/null 2>&1 || die "$BUSYBOX does not run"
[ -f "$KOFFI/package.json" ] || die "missing $KOFFI: run 'npm ci' in $ROOT"
KOFFI_VERSION="$(sed -n 's/^ *"version": *"\(.*\)",*$/\1/p' "$KOFFI/package.json" | head -1)"
[ -f "$KOFFI_NATIVE/linux_x64/koffi.node" ] ||
  die "missing $KOFFI_NATIVE/linux_x64/koffi.node (koffi $KOFFI_VERSION's prebuilt binary, an optional dependency): run 'npm ci' on linux x64"

# The native parts are cheap to build and must match native/: let make bring
# them up to date (it does nothing when they are).
make -s -C "$ROOT/native" OUT="$NATIVE" "$NATIVE/kapsel-init" "$NATIVE/kapsel-floor-init" \
  "$NATIVE/kapsel-dns-relay" ||
  die "building kapsel-init failed (make -C native): needs gcc and static glibc (libc6-dev)"
if [ -z "${KAPSEL_GUEST_LIB:-}" ] && compgen -G "$ROOT/native/lib/*.c" >/dev/null; then
  make -s -C "$ROOT/native" OUT="$NATIVE" "$NATIVE/libkapsel.so" ||
    die "building libkapsel.so failed (make -C native)"
fi
[ -f "$LIBKAPSEL" ] || die "missing $LIBKAPSEL: build it with 'make -C native' (or set KAPSEL_GUEST_LIB)"

# The kernel: whatever version the meta package points at today.
KERNEL_PKG="${KAPSEL_KERNEL_PKG:-}"
if [ -z "$KERNEL_PKG" ]; then
  KERNEL_PKG="$(apt-cache depends "$META_PKG" 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -1)" || true
fi
mkdir -p "$CACHE"
KERNEL_VERSION=""
if [ -n "$KERNEL_PKG" ]; then
  KERNEL_VERSION="$(apt-cache show "$KERNEL_PKG" 2>/dev/null | sed -n 's/^Version: //p' | sort -V | tail -1)" || true
fi
if [ -z "$KERNEL_PKG" ] || [ -z "$KERNEL_VERSION" ]; then
  # No apt lists (offline, or a fresh container): fall back to the newest
  # cached .deb, if any.
  cached="$(ls "$CACHE"/linux-image-[0-9]*-cloud-amd64_*_amd64.deb 2>/dev/null | sort -V | tail -1)" || true
  [ -n "$cached" ] ||
    die "cannot resolve the kernel package from $META_PKG: run 'apt-get update' (Debian 12 sources), or set KAPSEL_KERNEL_PKG"
  log "apt cannot resolve $META_PKG; using cached $(basename "$cached")"
  KERNEL_PKG="$(dpkg-deb -f "$cached" Package)"
  KERNEL_VERSION="$(dpkg-deb -f "$cached" Version)"
fi
KERNEL_DEB="$CACHE/${KERNEL_PKG}_${KERNEL_VERSION//:/%3a}_amd64.deb"

# --- stamp: is there anything to do? ---------------------------------------

hash_of() { sha256sum "$1" | cut -d' ' -f1; }
exe_libs() { ldd "$1" | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}'; }
node_libs() { exe_libs "$NODE_BIN"; }

manifest() {
  echo "script $(hash_of "$SCRIPT") $(hash_of "$ROOT/rootfs/9p-modules.sh")"
  echo "kernel $KERNEL_PKG $KERNEL_VERSION"
  echo "node $(hash_of "$NODE_BIN")"
  for lib in $(node_libs); do echo "lib $lib $(hash_of "$lib")"; done
  # libkapsel's own dependencies (libseccomp) are copied into the image too.
  for lib in $(ldd "$LIBKAPSEL" | awk '/=> \//{print $3}'); do
    echo "libkapsel-dep $lib $(hash_of "$lib")"
  done
  echo "agent $(hash_of "$AGENT")"
  if [ "$WITH_CODE_CACHE" = 1 ]; then
    echo "agent-cjs $(hash_of "$AGENT_CJS") $(hash_of "$AGENT_BOOT") $(hash_of "$AGENT_FLAGS_H")"
  fi
  for f in "$NATIVE/kapsel-init" "$NATIVE/kapsel-floor-init" "$NATIVE/kapsel-dns-relay" "$LIBKAPSEL"; do
    echo "native $(basename "$f") $(hash_of "$f")"
  done
  echo "busybox $("$BUSYBOX" 2>&1 | head -1) $(hash_of "$BUSYBOX")"
  echo "ip $("$IP_BIN" -V) $(hash_of "$IP_BIN")"
  for lib in $(exe_libs "$IP_BIN"); do echo "ip-lib $lib $(hash_of "$lib")"; done
  echo "koffi $KOFFI_VERSION $(hash_of "$KOFFI_NATIVE/linux_x64/koffi.node")"
  echo "erofs $(mkfs.erofs --help 2>&1 | head -1)"
}

MANIFEST="$(manifest)"
STAMP_HASH="$(printf '%s\n' "$MANIFEST" | sha256sum | cut -d' ' -f1)"
if [ "$FORCE" = 0 ] && [ -f "$OUT/stamp" ] && [ "$(head -1 "$OUT/stamp")" = "$STAMP_HASH" ] &&
  [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/vmlinux" ] && [ -f "$OUT/initrd.img" ] && [ -f "$OUT/floor-initrd.img" ] &&
  [ -f "$OUT/image.erofs" ] && [ -f "$OUT/image-initrd.img" ] && [ -f "$OUT/kernel-release" ]; then
  log "build/guest is up to date ($(cat "$OUT/kernel-release"))"
  exit 0
fi

# --- kernel -----------------------------------------------------------------

if [ ! -f "$KERNEL_DEB" ]; then
  log "downloading $KERNEL_PKG $KERNEL_VERSION"
  dl="$(mktemp -d "$CACHE/dl.XXXXXX")"
  # apt drops privileges to _apt for downloads: let it write there.
  chmod 0777 "$dl"
  (cd "$dl" && apt-get download -q "$KERNEL_PKG=$KERNEL_VERSION" 2>&1 | grep -v 'unsandboxed' >&2) || true
  got="$(ls "$dl"/*.deb 2>/dev/null | head -1)" || true
  [ -n "$got" ] || { rm -rf "$dl"; die "apt-get download $KERNEL_PKG=$KERNEL_VERSION failed (network to the Debian mirror? apt-get update?)"; }
  mv "$got" "$KERNEL_DEB"
  rm -rf "$dl"
fi

KDIR="$CACHE/${KERNEL_PKG}_${KERNEL_VERSION//:/%3a}"
if [ ! -f "$KDIR/.extracted" ]; then
  rm -rf "$KDIR"
  dpkg-deb -x "$KERNEL_DEB" "$KDIR"
  touch "$KDIR/.extracted"
fi
RELEASE="$(ls "$KDIR/lib/modules" | head -1)"
[ -n "$RELEASE" ] && [ -f "$KDIR/boot/vmlinuz-$RELEASE" ] || die "unexpected layout in $KERNEL_DEB (no boot/vmlinuz-*)"
MODDIR="$KDIR/lib/modules/$RELEASE"

# --- modules: dependency closure, dependencies first ----------------------

NINEP_DIR="$("$ROOT/rootfs/9p-modules.sh" "$KDIR" "$RELEASE" "$KERNEL_VERSION" "$CACHE")" ||
  die "the 9p modules could not be had (rootfs/9p-modules.sh, above)"

# KO_PATH: where each module's file is; KO_REL: where it goes in the guest.
declare -A KO_PATH=() KO_REL=()
while IFS= read -r f; do
  name="$(basename "$f")"; name="${name%.ko*}"; name="${name//-/_}"
  KO_PATH[$name]="$f"
  case "$f" in
    "$KDIR"/*) KO_REL[$name]="${f#"$KDIR"}" ;;
    *) KO_REL[$name]="/lib/modules/$RELEASE/extra/$(basename "$f")" ;;
  esac
done < <(find "$MODDIR/kernel" "$NINEP_DIR" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst')

# Depth-first, post-order: a module is listed after everything it depends on.
module_order() {
  local -A seen=()
  local -a order=()
  visit() {
    local m="$1" dep
    [ -n "${seen[$m]:-}" ] && return 0
    seen[$m]=1
    local f="${KO_PATH[$m]:-}"
    if [ -z "$f" ]; then
      grep -qE "/${m//_/[-_]}\.ko" "$MODDIR/modules.builtin" 2>/dev/null && return 0
      die "kernel module $m is neither in $KERNEL_PKG nor built in"
    fi
    case "$f" in *.ko) ;; *) die "compressed module $f: the guest init loads plain .ko files only" ;; esac
    local deps
    deps="$(modinfo -F depends "$f")" || die "modinfo $f failed"
    for dep in ${deps//,/ }; do visit "${dep//-/_}"; done
    order+=("$m")
  }
  for m in "$@"; do visit "$m"; done
  printf '%s\n' "${order[@]}"
}

# Copies the modules into a staging root and writes load.list.
install_modules() {
  local stage="$1"; shift
  : >"$stage/lib/modules/load.list"
  local m rel order
  order="$(module_order "$@")" || exit 1
  for m in $order; do
    rel="${KO_REL[$m]}"
    mkdir -p "$stage$(dirname "$rel")"
    cp "${KO_PATH[$m]}" "$stage$rel"
    echo "$rel" >>"$stage/lib/modules/load.list"
  done
}

# --- staging helpers -------------------------------------------------------

base_layout() {
  local stage="$1"
  mkdir -p "$stage"/{bin,sbin,etc,proc,sys,dev,run,tmp,root,lib/modules,usr/bin,usr/sbin,mnt}
  chmod 1777 "$stage/tmp"
  chmod 0700 "$stage/root"
  # The kernel opens /dev/console for PID 1 before any devtmpfs exists; the
  # node must be in the archive or init starts with no stdout.
  mknod -m 0600 "$stage/dev/console" c 5 1 2>/dev/null ||
    log "warning: cannot mknod dev/console (not root?); init will open it after mounting /dev"
  # The kernel runs /init from an initramfs (and panics looking for a root
  # device when there is none), so /init points at /sbin/init.
  ln -s sbin/init "$stage/init"
}

install_exe() { install -D -m 0755 "$1" "$2"; strip_if_possible "$2"; }
strip_if_possible() { command -v strip >/dev/null && strip --strip-unneeded "$1" 2>/dev/null || true; }

make_cpio() {
  local stage="$1" out="$2"
  (cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$out.tmp"
  mv "$out.tmp" "$out"
}

# The ELF kernel inside a bzImage: the x86 boot protocol's header gives the
# compressed payload's place (Documentation/x86/boot.rst: setup_sects at
# 0x1f1, payload_offset and payload_length at 0x248 and 0x24c, little endian).
u8_at() { od -An -t u1 -j "$2" -N 1 "$1" | tr -d ' '; }
u32_at() { od -An -t u4 -j "$2" -N 4 --endian=little "$1" | tr -d ' '; }
extract_vmlinux() {
  local in="$1" out="$2" sects offset length magic
  sects="$(u8_at "$in" $((0x1f1)))"
  [ "$sects" = 0 ] && sects=4
  offset=$(( (sects + 1) * 512 + $(u32_at "$in" $((0x248))) ))
  length="$(u32_at "$in" $((0x24c)))"
  magic="$(od -An -t x1 -j "$offset" -N 4 "$in" | tr -d ' ')"
  local dec
  case "$magic" in
    02214c18) dec="lz4 -dc" ;;
    28b52ffd) dec="zstd -dc" ;;
    fd377a58) dec="xz -dc" ;;
    1f8b*) dec="gzip -dc" ;;
    *) die "$in: unknown kernel payload compression (magic $magic)" ;;
  esac
  command -v "${dec%% *}" >/dev/null || die "missing '${dec%% *}' to unpack the kernel (apt-get install lz4 zstd xz-utils)"
  # The payload ends with the kernel's size (4 bytes) after the stream, which
  # lz4 reports as an error: judge by the result, not the exit status.
  tail -c +$((offset + 1)) "$in" | head -c "$length" | $dec >"$out" 2>/dev/null || true
  [ "$(od -An -t x1 -N 4 "$out" | tr -d ' ')" = 7f454c46 ] ||
    die "unpacking the kernel payload of $in failed (not an ELF kernel)"
}

# --- the full image --------------------------------------------------------

mkdir -p "$OUT"
STAGE="$OUT/.stage"
FLOOR_STAGE="$OUT/.stage-floor"
IMAGE_STAGE="$OUT/.stage-image"
SMALL_STAGE="$OUT/.stage-small"
rm -rf "$STAGE" "$FLOOR_STAGE" "$IMAGE_STAGE" "$SMALL_STAGE"
trap 'rm -rf "$STAGE" "$FLOOR_STAGE" "$IMAGE_STAGE" "$SMALL_STAGE"' EXIT

log "staging the guest image ($RELEASE)"
base_layout "$STAGE"
install_exe "$NATIVE/kapsel-init" "$STAGE/sbin/init"

# iproute2's ip, which the agent's network RPCs run (nsenter, the other
# tool they need, is busybox's: it takes --net=FILE), and its libraries at
# the paths ldd shows. busybox's own ip applet (sbin/ip) points at it, so
# there is one ip whatever PATH says.
install_exe "$IP_BIN" "$STAGE/usr/bin/ip"
for lib in $(exe_libs "$IP_BIN"); do
  [ -e "$STAGE$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$STAGE$lib"
done
ln -s /usr/bin/ip "$STAGE/sbin/ip"

# busybox, with a link for each applet that does not clash with our files.
install -m 0755 "$BUSYBOX" "$STAGE/bin/busybox"
while IFS= read -r applet; do
  [ -e "$STAGE/$applet" ] || [ -L "$STAGE/$applet" ] && continue
  case "$applet" in sbin/init|linuxrc|init) continue ;; esac
  mkdir -p "$STAGE/$(dirname "$applet")"
  ln -s /bin/busybox "$STAGE/$applet"
done < <("$BUSYBOX" --list-full)

# node and exactly what the loader needs for it, at the paths ldd shows.
install_exe "$NODE_BIN" "$STAGE/usr/bin/node"
for lib in $(node_libs); do
  install -D -m 0755 "$(readlink -f "$lib")" "$STAGE$lib"
done

install -D -m 0644 "$AGENT" "$STAGE/opt/kapsel/agent.mjs"
if [ "$WITH_CODE_CACHE" = 1 ]; then
  install -D -m 0644 "$AGENT_CJS" "$STAGE/opt/kapsel/agent.cjs"
  install -D -m 0644 "$AGENT_BOOT" "$STAGE/opt/kapsel/agent-boot.cjs"
fi
install_exe "$LIBKAPSEL" "$STAGE/opt/kapsel/lib/libkapsel.so"
# The guest end of the DNS relay (agent/src/network/dns-relay.ts starts it).
install_exe "$NATIVE/kapsel-dns-relay" "$STAGE/opt/kapsel/bin/kapsel-dns-relay"
# libkapsel links libseccomp (native/Makefile): its loader needs, as for node.
for lib in $(ldd "$LIBKAPSEL" | awk '/=> \//{print $3}'); do
  [ -e "$STAGE$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$STAGE$lib"
done

# koffi 3: the JS front end in node_modules/koffi, the prebuilt binary in the
# optional dependency @koromix/koffi-linux-x64 (glibc and musl builds). Keep
# the JS, drop the C++ sources, docs and vendored headers, keep only glibc.
KOUT="$STAGE/opt/kapsel/node_modules"
(cd "$KOFFI" && find . -type f \( -name '*.js' -o -name '*.cjs' -o -name '*.mjs' -o -name 'package.json' -o -name 'LICENSE*' \) \
  -not -path './vendor/*' -not -path './doc/*' -not -path './lib/*' -not -path './build/*' -not -name 'cnoke.cjs' -print0) |
  while IFS= read -r -d '' f; do install -D -m 0644 "$KOFFI/$f" "$KOUT/koffi/$f"; done
for f in package.json index.js linux_x64/koffi.node; do
  install -D -m 0644 "$KOFFI_NATIVE/$f" "$KOUT/@koromix/koffi-linux-x64/$f"
done

mkdir -p "$STAGE/lib/modules"
install_modules "$STAGE" "${GUEST_MODULES[@]}"

# The agent's V8 code cache: the staged agent runs standalone on the host
# (the guest's node is this node binary) until it listens, and the boot
# loader writes what V8 compiled on the way. The flags must be the ones init
# passes. Without a cache the guest still starts, compiling from source.
if [ "$WITH_CODE_CACHE" = 1 ]; then
  mapfile -t agent_flags < <(grep -o '"--[^"]*"' "$AGENT_FLAGS_H" | tr -d '"')
  cc_dir="$(mktemp -d)"
  if KAPSEL_NATIVE_LIB="$LIBKAPSEL" KAPSEL_CGROUP_ROOT=/nonexistent NODE_PATH="$STAGE/opt/kapsel/node_modules" \
    "$NODE_BIN" "${agent_flags[@]}" "$STAGE/opt/kapsel/agent-boot.cjs" \
    --produce-code-cache "$STAGE/opt/kapsel/agent.cjs.cache" --listen "unix:$cc_dir/agent.sock" \
    >"$cc_dir/log" 2>&1; then
    log "agent code cache: $(du -h "$STAGE/opt/kapsel/agent.cjs.cache" | cut -f1) (node flags: ${agent_flags[*]:-none})"
  else
    log "warning: making the agent's code cache failed; the guest compiles the agent at each start:"
    sed 's/^/  /' "$cc_dir/log" >&2
    rm -f "$STAGE/opt/kapsel/agent.cjs.cache"
  fi
  rm -rf "$cc_dir"
fi

cat >"$STAGE/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$STAGE/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
echo kapsel >"$STAGE/etc/hostname"
printf '127.0.0.1\tlocalhost kapsel\n::1\tlocalhost\n' >"$STAGE/etc/hosts"

# --- the mapped image and its small initrd ---------------------------------

# The image: the tree above without what PID 1 needs before it can mount it
# (itself, the modules) and without what must be writable or per-VM (/etc,
# the mount points of kernel filesystems).
IMAGE_MOUNT=.kapsel-image
cp -a "$STAGE" "$IMAGE_STAGE"
(cd "$IMAGE_STAGE" && rm -rf init sbin/init etc lib/modules dev proc sys run tmp root mnt)
# The small initrd: init as /init itself (no /sbin to reach it through),
# /etc and the modules as files, and every other top-level entry of the
# image as a symlink into its mount point; /lib holds both (modules here,
# libraries there), so its entries are linked one level down.
mkdir -p "$SMALL_STAGE"/{proc,sys,dev,run,tmp,root,mnt,lib,"$IMAGE_MOUNT"}
chmod 1777 "$SMALL_STAGE/tmp"
chmod 0700 "$SMALL_STAGE/root"
mknod -m 0600 "$SMALL_STAGE/dev/console" c 5 1 2>/dev/null || true
install_exe "$NATIVE/kapsel-init" "$SMALL_STAGE/init"
cp -a "$STAGE/etc" "$SMALL_STAGE/etc"
cp -a "$STAGE/lib/modules" "$SMALL_STAGE/lib/modules"
for e in "$IMAGE_STAGE"/*; do
  name="$(basename "$e")"
  if [ "$name" = lib ]; then
    for c in "$e"/*; do ln -s "/$IMAGE_MOUNT/lib/$(basename "$c")" "$SMALL_STAGE/lib/$(basename "$c")"; done
  else
    ln -s "/$IMAGE_MOUNT/$name" "$SMALL_STAGE/$name"
  fi
done

# Uncompressed, and no tail packing (-E noinline_data): erofs maps only
# plain-layout files with DAX (fs/erofs/inode.c: EROFS_INODE_FLAT_PLAIN), and
# DAX is what lets every guest execute node from the host's page cache.
# Fixed timestamps and uuid: the same inputs give the same image.
rm -f "$OUT/image.erofs.tmp"
mkfs.erofs --quiet --all-root -E noinline_data -T 0 -U 00000000-0000-0000-0000-000000000000 \
  "$OUT/image.erofs.tmp" "$IMAGE_STAGE" >&2 || die "mkfs.erofs failed"
# virtio-pmem maps whole 2 MiB pages (the guest hot-plugs it as device
# memory in subsections): pad; the tail is a hole, no disk or RAM.
size="$(stat -c %s "$OUT/image.erofs.tmp")"
truncate -s $(( (size + 2097151) / 2097152 * 2097152 )) "$OUT/image.erofs.tmp"

# --- the floor image -------------------------------------------------------

base_layout "$FLOOR_STAGE"
install_exe "$NATIVE/kapsel-floor-init" "$FLOOR_STAGE/sbin/init"
install_modules "$FLOOR_STAGE" "${FLOOR_MODULES[@]}"

# --- outputs ---------------------------------------------------------------

log "writing cpio archives"
cp "$KDIR/boot/vmlinuz-$RELEASE" "$OUT/vmlinuz.tmp" && mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
extract_vmlinux "$OUT/vmlinuz" "$OUT/vmlinux.tmp" && mv "$OUT/vmlinux.tmp" "$OUT/vmlinux"
make_cpio "$STAGE" "$OUT/initrd.img"
make_cpio "$FLOOR_STAGE" "$OUT/floor-initrd.img"
make_cpio "$SMALL_STAGE" "$OUT/image-initrd.img"
mv "$OUT/image.erofs.tmp" "$OUT/image.erofs"
echo "$RELEASE" >"$OUT/kernel-release"
cp "$STAGE/lib/modules/load.list" "$OUT/load.list"
printf '%s\n%s\n' "$STAMP_HASH" "$MANIFEST" >"$OUT/stamp"
log "done: $OUT (initrd $(du -h "$OUT/initrd.img" | cut -f1), image $(du -h "$OUT/image.erofs" | cut -f1) + initrd $(du -h "$OUT/image-initrd.img" | cut -f1), floor $(du -h "$OUT/floor-initrd.img" | cut -f1), kernel $RELEASE)"
