#!/usr/bin/env bash
# Reproducible build of SPDK v25.09 (called by scripts/spdk.sh) against Debian 12's packaged DPDK 22.11.11.
# This worked on 2026-12-07 (Debian 12.11, 2 cores, gcc 12; build took about 1 minute).
#
# Why v25.09 and not a newer one: SPDK v26.01 and later put rte_log and rte_argparse into
# lib/env_dpdk/env.mk. Those libraries first appear in DPDK 24.x, so linking against
# DPDK 22.11 fails. v25.09 is the newest release tag whose env.mk links against 22.11.
#
# Two local patches are needed, and both are applied below:
#  1. configure: the isa-l git submodule is missing, so build without ISA-L instead of
#     exiting. Without ISA-L, crypto and compression are turned off as well.
#  2. lib/env_dpdk/pci_dpdk.c: every SPDK version turns down DPDK 22.11.x when x > 4 at
#     runtime ("DPDK version 22.11.11 is not supported"). The patch accepts x up to 11.
#     SPDK's copies of the private DPDK headers in lib/env_dpdk/22.11 match DPDK v22.11.4,
#     and the dpdk-stable 22.11 branch had not changed them as of 2024-03. No one has
#     checked the releases from 22.11.5 to 22.11.11.
set -euo pipefail

SPDK_DIR=${SPDK_DIR:-/tmp/spdk}
# Source: shared/peers/spdk-v25.09.tar.gz (git archive of tag v25.09), or MIRROR=<bare git
# dir of github:spdk/spdk> with TAG.
MIRROR=${MIRROR:-}
STRIP=0
if [ -z "${TARBALL:-}" ]; then
  for t in "$(cd "$(dirname "$0")/.." && pwd)/../shared/peers/spdk-v25.09.tar.gz" /work/shared/peers/spdk-v25.09.tar.gz; do
    [ -f "$t" ] && TARBALL=$t && break
  done
fi
if [ -z "${TARBALL:-}" ] && [ -z "$MIRROR" ]; then
  TARBALL=$(mktemp --suffix=.tar.gz)
  curl -fsSL -o "$TARBALL" https://github.com/spdk/spdk/archive/refs/tags/v25.09.tar.gz
  STRIP=1
fi
TAG=${TAG:-v25.09}                                # commit a2f2a0b2794366fe1e42b97061782aae25119457

# Dependencies. dpdk-dev/libdpdk-dev 22.11.11-0+deb12u1, uuid-dev, libssl-dev, libnuma-dev and
# libncurses-dev were already installed on this machine.
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y \
  dpdk-dev libdpdk-dev pkg-config build-essential python3 \
  libaio-dev uuid-dev libssl-dev libnuma-dev libjson-c-dev libcunit1-dev libncurses-dev \
  python3-pyelftools meson ninja-build libarchive-dev libkeyutils-dev
# Do not install nasm. It does no harm, because patch 1 forces ISA-L off, but nothing needs it.

rm -rf "$SPDK_DIR"
mkdir -p "$SPDK_DIR"
if [ -n "$MIRROR" ]; then
  git --git-dir="$MIRROR" archive "$TAG" | tar -x -C "$SPDK_DIR"
else
  tar -xzf "$TARBALL" -C "$SPDK_DIR" --strip-components=$STRIP
fi
cd "$SPDK_DIR"

python3 - <<'EOF'
p = 'configure'; s = open(p).read()
old = '''	if [ ! -f "$rootdir"/isa-l/autogen.sh ]; then
		echo "ISA-L is required but was not found, please init the submodule with:"
		echo "  git submodule update --init"
		echo "and then re-run this script."
		exit 1
	fi'''
new = '''	if [ ! -f "$rootdir"/isa-l/autogen.sh ]; then
		echo "WARNING: isa-l submodule not present; building without ISA-L (local patch)."
		CONFIG[ISAL]=n
	fi'''
assert s.count(old) == 1; s = s.replace(old, new)
old2 = '''		ver=$(nasm -v 2> /dev/null | awk '{print $3}' | awk -Fr '{print $1}')
		if lt "$ver" 2.14; then'''
new2 = '''		ver=$(nasm -v 2> /dev/null | awk '{print $3}' | awk -Fr '{print $1}')
		if [[ "${CONFIG[ISAL]}" = "n" ]] || lt "$ver" 2.14; then'''
assert s.count(old2) == 1; s = s.replace(old2, new2)
open(p, 'w').write(s)

p = 'lib/env_dpdk/pci_dpdk.c'; s = open(p).read()
old = '''	if (year == 22 && month == 11) {
		if (minor > 4) {'''
new = '''	if (year == 22 && month == 11) {
		if (minor > 11) { /* local patch: Debian 12 ships 22.11.11 */'''
assert s.count(old) == 1; s = s.replace(old, new)
open(p, 'w').write(s)
EOF

# --with-dpdk (no path) uses pkg-config libdpdk. With a packaged DPDK, configure switches on
# --with-shared by itself, so the binaries need LD_LIBRARY_PATH=$SPDK_DIR/build/lib.
./configure --with-dpdk --without-crypto --without-vhost --without-virtio --without-idxd \
  --without-fio --without-xnvme --without-vfio-user --without-ocf --without-rdma \
  --without-fsdev --without-nvme-cuse --without-iscsi-initiator --without-rbd --without-usdt \
  --without-dpdk-compressdev --without-golang --disable-tests --disable-unit-tests

nice -n 10 make -j2

ls build/bin build/examples

# Smoke test (root; needs 2 MiB hugepages and hugetlbfs on /dev/hugepages):
#   echo 512 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
#   mountpoint -q /dev/hugepages || mount -t hugetlbfs nodev /dev/hugepages
#   echo '{"subsystems":[{"subsystem":"bdev","config":[{"method":"bdev_malloc_create","params":{"name":"Malloc0","num_blocks":65536,"block_size":4096}}]}]}' > /tmp/spdk-malloc.json
#   LD_LIBRARY_PATH=$SPDK_DIR/build/lib $SPDK_DIR/build/examples/bdevperf -u --json /tmp/spdk-malloc.json -q 32 -o 4096 -w randread -t 5 -m 0x1
#   (-u = --no-pci. Without it, Debian's DPDK loads all of its PMDs and tries, and fails, to probe the VM's virtio NIC. The failure does no harm.)
#   Afterwards: rm -rf /var/run/dpdk/spdk_pid*   (SPDK's apps run with --huge-unlink --no-shconf, so nothing is left in /dev/hugepages or /dev/shm)
