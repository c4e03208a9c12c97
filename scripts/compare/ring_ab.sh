#!/usr/bin/env bash
# In-process A/B of our MP/MC ring against DPDK 22.11's rte_ring: two pinned threads run
# the no-cache mempool pattern (dequeue N, enqueue them back) on each ring in alternating
# rounds, so both see the same vCPU placement (see scripts/compare/ring_ab/src/main.rs for
# why that matters on a small VM). Prints per-round rates and the geometric mean of
# ours / DPDK per bulk size (above 1: ours faster).
#
# Builds scripts/compare/ring_ab (not a workspace member: it links Debian's DPDK through
# a small C shim) into target/ring_ab. Installs dpdk-dev and pkg-config if missing (root).
# No hugepages needed: both rings live in ordinary memory.
#
# Usage: scripts/compare/ring_ab.sh [--bulk 1,4,32] [--rounds 20] [--ms 200]
#                                   [--cpus 0,1] [--single] [--one-line]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=scripts/compare/lib.sh
. "$ROOT/scripts/compare/lib.sh"
dpdk_dev_need ring_ab.sh || exit 1
echo "== building ring-ab (release)" >&2
CARGO_TARGET_DIR="$ROOT/target/ring_ab" cargo build --release -q \
    --manifest-path "$ROOT/scripts/compare/ring_ab/Cargo.toml"
echo "== DPDK $(pkg-config --modversion libdpdk), $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
exec "$ROOT/target/ring_ab/release/ring-ab" "$@"
