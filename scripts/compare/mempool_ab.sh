#!/usr/bin/env bash
# In-process A/B of our mempool against DPDK 22.11's rte_mempool, case by case: DPDK's
# EAL and ours both run in one process, and every case of mempool_perf_autotest runs on
# DPDK's pool and on ours in alternating slices on the same pinned threads (see
# scripts/compare/mempool_ab/src/main.rs for why that matters on a small VM). Prints per
# case the medians, the geometric mean of the same-round ratios ours/DPDK (above 1: ours
# faster), how many rounds ours was ahead, a 95% confidence interval of the ratio with a
# verdict (ahead / level / behind); then per-group summaries.
#
# Builds scripts/compare/mempool_ab (not a workspace member: it links Debian's DPDK) into
# target/mempool_ab. Needs root: reserves 256 2 MiB hugepages for the two EALs (and gives
# them back); installs dpdk-dev and pkg-config if missing.
#
# Usage: scripts/compare/mempool_ab.sh [--rounds 5] [--ms 200] [--cpus 0,1]
#            [--sections nocache,cache] [--cores 1,2] [--keep 32,128] [--bulk 1,4,32]
#            [--verbose]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=scripts/compare/lib.sh
. "$ROOT/scripts/compare/lib.sh"
if [ "$(id -u)" != 0 ]; then
    echo "mempool_ab.sh: needs root to reserve hugepages (run with sudo)" >&2
    exit 1
fi
trap hp_restore EXIT
dpdk_dev_need mempool_ab.sh || exit 1
echo "== building mempool-ab (release)" >&2
CARGO_TARGET_DIR="$ROOT/target/mempool_ab" cargo build --release -q \
    --manifest-path "$ROOT/scripts/compare/mempool_ab/Cargo.toml"
hp_reserve mempool_ab.sh 256 || exit 1
echo "== DPDK $(pkg-config --modversion libdpdk), $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
"$ROOT/target/mempool_ab/release/mempool-ab" "$@"
