#!/usr/bin/env bash
# Instructions per enqueue+dequeue pair of the ring's single-thread paths, under
# valgrind's callgrind (deterministic, whatever else the machine does): for the ring in
# this checkout and, with REV, the ring at git revision REV beside it.
#   scripts/ring-insns.sh [REV]        e.g. scripts/ring-insns.sh baseline-pre-cleanup
# Each count is (Ir(2N) - Ir(N)) / N, so setup costs cancel.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REV=${1:-}
WORK=$(mktemp -d /tmp/fp-ring-insns.XXXXXX)
cleanup() { [ -n "$REV" ] && git -C "$ROOT" worktree remove --force "$WORK/tree" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
build() { # name, ring crate dir
    mkdir -p "$WORK/$1/src"
    cp "$ROOT/scripts/ring-insns/main.rs" "$WORK/$1/src/main.rs"
    cat > "$WORK/$1/Cargo.toml" <<EOT
[package]
name = "ringcg"
version = "0.1.0"
edition = "2021"
[dependencies]
ring = { package = "ferroplane-ring", path = "$2" }
[profile.release]
debug = 1
[workspace]
EOT
    (cd "$WORK/$1" && cargo build --release -q)
}
sides=(now)
build now "$ROOT/ring"
if [ -n "$REV" ]; then
    git -C "$ROOT" worktree add -q --detach "$WORK/tree" "$REV"
    build rev "$WORK/tree/ring"
    sides=(rev now)
fi
ir() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" "$2" "$3" 2>&1 | sed -n 's/.*Collected : *\([0-9]*\).*/\1/p'; }
N=200000
printf '%-10s' case; for s in "${sides[@]}"; do printf '%8s' "$s"; done; echo
for c in spsc1 spsc32 mpmc1 mpmc8 mpmc32 mpmc_h1 mpmc_h32 opt1 opt4 opt32 rts8 hts8; do
    printf '%-10s' "$c"
    for s in "${sides[@]}"; do
        b="$WORK/$s/target/release/ringcg"
        a=$(ir "$b" "$c" $N); d=$(ir "$b" "$c" $((2 * N)))
        printf '%8d' $(( (d - a) / N ))
    done
    echo
done
