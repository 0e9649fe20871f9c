#!/bin/sh
# Installs what kapsel needs on a Debian 12 machine with Node 20 and builds
# everything: npm packages, the bundles, the native code, the guest image and
# the default busybox bundle. Safe to run again; each step skips what is
# already current.
set -eu
cd "$(dirname "$0")/.."

APT_PACKAGES="qemu-system-x86 busybox-static cpio kmod erofs-utils lz4 xz-utils binutils gcc make libc6-dev libseccomp-dev protobuf-compiler docker.io containerd runc podman crun python3 iproute2 iptables curl dnsmasq-base golang-github-containerd-containerd-dev golang-github-containerd-cgroups-dev golang-github-gogo-protobuf-dev acl libcap2-bin containernetworking-plugins"

missing=""
for p in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: needs root to install:$missing" >&2
    exit 1
  fi
  echo "setup: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi

echo "setup: building"
node scripts/bundle.mjs
make -s -C native
rootfs/build.sh
rootfs/default-bundle.sh build/bundle
