#!/usr/bin/env bash
# Ferroplane's whole test suite: the README's second command and what CI runs.
#
# Installs what is missing (Debian packages, Rust components), sets up hugepages when run
# as root (and gives them back at the end), then runs: build without warnings, clippy
# -D warnings, every unit/integration/doc test, the loom models, and Miri on the
# single-threaded paths. Each stage prints its name; the script stops at the first failure
# and exits non-zero.
#
# Skips are loud and counted: a test that cannot run here calls testkit::skip, which
# appends "test<TAB>need<TAB>why" to $FP_SKIP_LOG (a fresh file per run); the list and
# the count are printed at the end, also when a stage fails. Under CI (CI=true) as root,
# FP_REQUIRE=1 is exported: a test that would skip for want of root, hugepages, a
# network namespace, the QEMU guest or an installed tool fails the run instead.
#
# Environment knobs:
#   FP_SKIP_MIRI=1   skip the Miri stage (it is slow: a few minutes)
#   FP_SKIP_LOOM=1   skip the loom stage
#   FP_TEST_JOBS=N   test threads (default: cargo's)
#   FP_TESTBED=1     force the QEMU guest tests: a guest that cannot boot is a failure
#   FP_TESTBED=0     skip the guest tests (counted like every skip; a failure under CI)
#   FP_REQUIRE=1     fail instead of skipping for a missing required need (set by CI=true as root)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
stage() { printf '\n==== %s ====\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
START=$(date +%s)

# ---------- skip log and CI policy ----------
mkdir -p "$ROOT/target"
export FP_SKIP_LOG="$ROOT/target/test-skips.tsv"
: > "$FP_SKIP_LOG"
if [ "${CI:-}" = true ] && [ "$(id -u)" = 0 ]; then
    export FP_REQUIRE=1
fi
# A stage this script leaves out is listed with the skipped tests.
skip_stage() { printf '%s\tstage\t%s\n' "$1" "$2" >> "$FP_SKIP_LOG"; echo "$1 skipped: $2"; }
report_skips() {
    local n
    n=$(grep -c . "$FP_SKIP_LOG" 2>/dev/null || true)
    printf '\n==== skipped: %s ====\n' "${n:-0}"
    if [ "${n:-0}" -gt 0 ]; then
        sort "$FP_SKIP_LOG" | awk -F '\t' '{ printf "  %-50s %-10s %s\n", $1, $2, $3 }'
    fi
    echo "(FP_REQUIRE=${FP_REQUIRE:-0}; wall time $(( $(date +%s) - START )) s)"
}

# ---------- tools ----------
stage "tools"
if [ "$(id -u)" = 0 ] && have apt-get; then
    need=()
    for pair in ip:iproute2 ping:iputils-ping tcpdump:tcpdump tshark:tshark nvme:nvme-cli fio:fio \
                qemu-storage-daemon:qemu-system-common dpdk-testpmd:dpdk; do
        have "${pair%%:*}" || need+=("${pair#*:}")
    done
    if [ ${#need[@]} -gt 0 ]; then
        echo "installing: ${need[*]}"
        apt-get update -qq || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
fi
if ! have cargo; then
    echo "cargo not found: install Rust with rustup (https://rustup.rs)" >&2
    exit 1
fi
rustup component add clippy >/dev/null 2>&1 || echo "note: could not add clippy through rustup; using what is installed"
cargo --version

# ---------- SPDK, the storage peer (built under CI; used where present otherwise) ----------
if [ "${FP_REQUIRE:-}" = 1 ]; then
    stage "SPDK"
    FP_SPDK_DIR=$(scripts/spdk.sh)
    export FP_SPDK_DIR
    echo "SPDK in $FP_SPDK_DIR"
fi

# ---------- hugepages (root only) ----------
HP_SYS=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
HP_RESTORE=""
HP_MOUNTED=""
cleanup() {
    report_skips
    if [ -n "$HP_MOUNTED" ]; then umount "$HP_MOUNTED" 2>/dev/null || true; rmdir "$HP_MOUNTED" 2>/dev/null || true; fi
    if [ -n "$HP_RESTORE" ]; then echo "$HP_RESTORE" > "$HP_SYS" 2>/dev/null || true; fi
}
trap cleanup EXIT
if [ "$(id -u)" = 0 ] && [ -w "$HP_SYS" ]; then
    stage "hugepages"
    HP_RESTORE=$(cat "$HP_SYS")
    want=512
    if [ "$HP_RESTORE" -lt "$want" ]; then echo "$want" > "$HP_SYS"; fi
    echo "2 MiB hugepages: $(cat "$HP_SYS") (was $HP_RESTORE)"
    if ! grep -q ' hugetlbfs ' /proc/mounts; then
        HP_MOUNTED=$(mktemp -d /tmp/fp-huge.XXXXXX)
        mount -t hugetlbfs -o pagesize=2M nodev "$HP_MOUNTED"
        echo "mounted hugetlbfs at $HP_MOUNTED"
    fi
    # The EAL's hugepage tests use this reservation as it is instead of resizing the pool.
    export FP_TEST_HUGEPAGES=1
else
    echo "not root: hugepage tests will skip and say so"
fi

# ---------- build, lint ----------
stage "build (warnings are errors)"
RUSTFLAGS="${RUSTFLAGS:-} -D warnings" cargo build --workspace --all-targets

stage "format"
rustup component add rustfmt >/dev/null 2>&1 || true
cargo fmt --all -- --check

stage "clippy"
cargo clippy --workspace --all-targets -- -D warnings

# ---------- tests ----------
stage "tests"
targs=()
[ -n "${FP_TEST_JOBS:-}" ] && targs+=(--test-threads "$FP_TEST_JOBS")
cargo test --workspace --no-fail-fast -- "${targs[@]}"

# ---------- loom ----------
if [ -z "${FP_SKIP_LOOM:-}" ]; then
    stage "loom models (ring)"
    LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-2} RUSTFLAGS="--cfg loom" \
        CARGO_TARGET_DIR="$ROOT/target/loom" \
        cargo test -p ferroplane-ring --test loom --release
else
    skip_stage "loom models" "FP_SKIP_LOOM set"
fi

# ---------- miri ----------
if [ -z "${FP_SKIP_MIRI:-}" ]; then
    stage "miri (single-threaded paths)"
    if rustup component add miri rust-src --toolchain nightly >/dev/null 2>&1; then
        for crate in ferroplane-ring ferroplane-mempool ferroplane-mbuf; do
            MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation}" CARGO_TARGET_DIR="$ROOT/target/miri" \
                cargo +nightly miri test -p "$crate" --lib
        done
    else
        skip_stage "miri" "could not install the nightly miri component (no network or no nightly toolchain)"
    fi
else
    skip_stage "miri" "FP_SKIP_MIRI set"
fi

stage "all tests passed"
