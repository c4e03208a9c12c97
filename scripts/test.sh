#!/usr/bin/env bash
# Ferroplane's whole test suite: the README's second command and what CI runs.
#
# Installs what is missing (Debian packages, Rust components), sets up hugepages when run
# as root (and gives them back at the end), then runs: build without warnings, clippy
# -D warnings, every unit/integration/doc test, the loom models, and Miri on the
# single-threaded paths. Each stage prints its name; the script stops at the first failure
# and exits non-zero.
#
# Environment knobs:
#   FP_SKIP_MIRI=1   skip the Miri stage (it is slow: a few minutes)
#   FP_SKIP_LOOM=1   skip the loom stage
#   FP_TEST_JOBS=N   test threads (default: cargo's)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
stage() { printf '\n==== %s ====\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }

# ---------- tools ----------
stage "tools"
if [ "$(id -u)" = 0 ] && have apt-get; then
    need=()
    for pair in ip:iproute2 ping:iputils-ping tcpdump:tcpdump tshark:tshark; do
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

# ---------- hugepages (root only) ----------
HP_SYS=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
HP_RESTORE=""
HP_MOUNTED=""
cleanup() {
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
    echo "loom skipped: FP_SKIP_LOOM set"
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
        echo "miri skipped: could not install the nightly miri component (no network or no nightly toolchain)"
    fi
else
    echo "miri skipped: FP_SKIP_MIRI set"
fi

stage "all tests passed"
