#!/usr/bin/env bash
# Compare Ferroplane's ring with DPDK's rte_ring, same machine, same invocation.
#
# Runs DPDK 22.11's ring_perf_autotest (Debian package `dpdk-dev`, binary dpdk-test) and our
# apps/src/bin/ring_perf.rs (release build), normalises DPDK's units to cycles per element
# and prints one table: case, DPDK, ours, ratio (ours/DPDK; below 1.0 means we are faster).
#
# Units (DPDK 22.11 app/test/test_ring_perf.c): the one-core burst/bulk cases print
# cycles per (enqueue N + dequeue N) call pair -> divided by N here; "single" is per
# enqueue+dequeue pair in both; the empty-dequeue case is per call in both; the two-core
# cases are per element (producer + consumer side) in both. ring_perf already prints
# cycles per element. The "all worker nodes" counts of DPDK are not compared.
#
# Needs root (hugepages for dpdk-test). Reserves 2 MiB hugepages and mounts
# /dev/hugepages if needed, and restores both on exit.
#
# Usage: scripts/compare/ring.sh [--full]   (--full: DPDK's iteration counts for ours too)
set -euo pipefail

cd "$(dirname "$0")/../.."
FULL=""
[[ "${1:-}" == "--full" ]] && FULL="--full"

die() { echo "ring.sh: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root (hugepages for dpdk-test); try: sudo $0"
command -v python3 >/dev/null || die "python3 is needed to build the table (apt-get install -y python3)"

# shellcheck source=scripts/compare/lib.sh
. scripts/compare/lib.sh
dpdk_need ring.sh dpdk-test || exit 1

# ---- hugepages: 256 free 2 MiB pages and hugetlbfs on /dev/hugepages ----
restore() {
    set +e
    hp_restore
    rm -rf "$TMP"
}
TMP=$(mktemp -d)
trap restore EXIT
hp_reserve ring.sh 256 || exit 1

echo "ring.sh: building ring_perf (release)" >&2
cargo build --release -q -p ferroplane-apps --bin ring_perf
BIN=target/release/ring_perf
[[ -n "${CARGO_TARGET_DIR:-}" ]] && BIN="$CARGO_TARGET_DIR/release/ring_perf"

echo "ring.sh: running DPDK ring_perf_autotest on lcores 0-1" >&2
echo ring_perf_autotest | dpdk-test --no-pci -l 0-1 -m 256 --file-prefix fp_ring_cmp$$ \
    > "$TMP/dpdk.txt" 2>&1 || die "dpdk-test failed; output: $(tail -20 "$TMP/dpdk.txt")"
grep -q "Test OK" "$TMP/dpdk.txt" || echo "ring.sh: warning: dpdk-test did not report 'Test OK'" >&2

echo "ring.sh: running ferroplane ring_perf on lcores 0-1" >&2
"$BIN" $FULL > "$TMP/ours.txt" 2>&1 || die "ring_perf failed; output: $(tail -20 "$TMP/ours.txt")"

python3 - "$TMP/dpdk.txt" "$TMP/ours.txt" <<'PY'
import re, sys

LINE = re.compile(r'^(legacy APIs|elem APIs: element size \d+B): (SP/SC|MP/MC|default enqueue/dequeue): '
                  r'(single|bulk \(size: (\d+)\)|burst \(size: (\d+)\)): ([0-9.]+)\s*$')

def parse(path, dpdk):
    out, section = {}, "?"
    for raw in open(path, errors="replace"):
        line = raw.strip()
        m = re.match(r'^### Testing (.*) ###$', line)
        if m:
            section = m.group(1)
            continue
        m = LINE.match(line)
        if not m:
            continue
        api, sync, kind, n1, n2, val = m.groups()
        v = float(val)
        n = int(n1 or n2 or 1)
        # DPDK 22.11 prints one-core burst/bulk per (enq N + deq N) pair.
        if dpdk and section in ("burst enq/deq", "bulk enq/deq"):
            v /= n
        out[(api, section, f"{sync} {kind}")] = v
    return out

d, o = parse(sys.argv[1], True), parse(sys.argv[2], False)
if not d:
    sys.exit("ring.sh: no DPDK results parsed; see dpdk-test output")
keys = [k for k in d if k in o] + [k for k in o if k not in d]
w = max(len(f"{a} | {s} | {c}") for a, s, c in keys)
print(f"{'case':<{w}}  {'DPDK':>9}  {'ours':>9}  {'ratio':>6}")
print("-" * (w + 32))
behind = 0
for k in keys:
    name = " | ".join(k)
    dv, ov = d.get(k), o.get(k)
    ratio = f"{ov / dv:6.2f}" if dv and ov is not None and dv > 0 else "   n/a"
    if dv and ov is not None and ov > dv:
        behind += 1
    fmt = lambda x: f"{x:9.2f}" if x is not None else "      n/a"
    print(f"{name:<{w}}  {fmt(dv)}  {fmt(ov)}  {ratio}")
print(f"\nunits: cycles per element (empty bulk deq: per call); ratio = ours/DPDK; {behind} case(s) behind DPDK")
PY
