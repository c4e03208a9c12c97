#!/bin/bash
# Instructions per frame of net_af_xdp's burst functions (PERFORMANCE.md, "Kernel-backed
# ports"): testpmd on one end of a veth pair in a namespace made here, under valgrind
# --tool=callgrind, in txonly (TX side measured) or rxonly (RX side measured, fed by a
# txonly testpmd on the other end, not under valgrind). Prints the frames testpmd
# counted, the inclusive instruction count of the driver's tx_burst or rx_burst, and
# their quotient. Deterministic: the count does not depend on the machine's load (an
# rxonly count includes its polls of an empty ring, which do depend on it).
#
#   scripts/af_xdp-callgrind.sh BIN txonly|rxonly [SECONDS] [DEVARGS]
#   scripts/af_xdp-callgrind.sh target/release/testpmd txonly 20
#
# Needs root and valgrind. Output files go to $OUT (default a fresh directory under
# /tmp). PEER (default BIN) is the txonly testpmd that feeds an rxonly run.
set -euo pipefail
BIN=$1 MODE=$2 SECS=${3:-20} EXTRA=${4:-}
PEER=${PEER:-$BIN}
OUT=${OUT:-$(mktemp -d /tmp/fp-xdpcg.XXXXXX)}
mkdir -p "$OUT"
NS=fpxdpcg$$
cleanup() { ip netns del "$NS" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$NS"
ip netns exec "$NS" ip link add pa type veth peer name pb
ip netns exec "$NS" ip link set pa up
ip netns exec "$NS" ip link set pb up
testpmd() { # wrapper iface mode main-lcore settle
    local w=$1 bin=$2 ifc=$3 mode=$4 lc=$5 settle=$6
    (sleep "$settle"; echo start; sleep "$SECS"; echo stop; sleep 1; echo quit) |
        ip netns exec "$NS" $w "$bin" -l 0-1 --main-lcore "$lc" --no-huge -m 256 --no-pci \
            --file-prefix "fpx$mode$$" --vdev="net_af_xdp0,iface=$ifc$EXTRA" -- -i \
            --forward-mode="$mode" --nb-cores=1 --total-num-mbufs=16384
}
CG="valgrind --tool=callgrind --callgrind-out-file=$OUT/cg.out"
if [ "$MODE" = txonly ]; then
    testpmd "$CG" "$BIN" pa txonly 0 12 >"$OUT/measured.out" 2>&1
    fn=tx_burst k=TX
else
    testpmd "$CG" "$BIN" pb rxonly 1 12 >"$OUT/measured.out" 2>&1 &
    sleep 14
    SECS=$((SECS - 4)) testpmd "" "$PEER" pa txonly 0 1 >"$OUT/peer.out" 2>&1
    wait
    fn=rx_burst k=RX
fi
n=$(grep -A3 "Accumulated" "$OUT/measured.out" | grep -oE "$k-packets: *[0-9]+" | head -1 | awk '{print $2}')
ir=$(callgrind_annotate --inclusive=yes "$OUT/cg.out" 2>/dev/null |
    grep -E "af_xdp::queue::(Tx|Rx)Q as .*::$fn" | head -1 | awk '{gsub(",","",$1); print $1}')
echo "== $BIN net_af_xdp$EXTRA $MODE: $k frames ${n:-?}, $fn Ir ${ir:-?}," \
    "per frame $(awk -v a="${ir:-0}" -v b="${n:-0}" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "?" }')"
echo "files in $OUT"
