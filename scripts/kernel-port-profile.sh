#!/bin/bash
# Where the time of a kernel-backed port goes (PERFORMANCE.md, "Kernel-backed ports"):
# txonly on one end of a veth pair and rxonly on the other, in a namespace made here,
# each testpmd under `perf record -g -e cpu-clock` and /usr/bin/time; prints frames,
# user and system CPU and the hottest kernel and user functions of each side.
#
#   scripts/kernel-port-profile.sh BIN DRIVER [SECONDS] [DEVARGS]
#   scripts/kernel-port-profile.sh target/release/testpmd net_af_packet 6 ,tx_ring=1
#   scripts/kernel-port-profile.sh dpdk-testpmd net_af_xdp 6
#
# Needs root, perf and 2 x 128 free 2 MiB hugepages. Output files go to $OUT (default a
# fresh directory under /tmp).
set -euo pipefail
BIN=$1 DRV=$2 SECS=${3:-6} EXTRA=${4:-}
OUT=${OUT:-$(mktemp -d /tmp/fp-kport.XXXXXX)}
NS=fpkport$$
cleanup() { ip netns del "$NS" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$NS"
# Interface indices differing in bit 15: DPDK's net_af_packet derives its fanout id
# from (pid ^ ifindex) & 0xffff.
ip netns exec "$NS" ip link add pa index 1000 type veth peer name pb index 33768
ip netns exec "$NS" ip link set pa up
ip netns exec "$NS" ip link set pb up
run() { # iface mode main-lcore
    (sleep 3; echo start; sleep "$SECS"; echo stop; sleep 0.5; echo quit) |
        perf record -q -g -e cpu-clock -F 999 -o "$OUT/$2.data" -- \
            /usr/bin/time -f "user %U sys %S" -o "$OUT/$2.time" \
            ip netns exec "$NS" "$BIN" -l 0-1 --main-lcore "$3" -m 256 --no-pci \
            --file-prefix "fpk$2$$" --vdev="${DRV}0,iface=$1$EXTRA" -- -i \
            --forward-mode="$2" --nb-cores=1 --total-num-mbufs=16384 >"$OUT/$2.out" 2>&1
}
run pb rxonly 1 &
sleep 0.5
run pa txonly 0
wait
for m in txonly rxonly; do
    k=TX
    [ $m = rxonly ] && k=RX
    n=$(grep -A3 "Accumulated" "$OUT/$m.out" | grep -oE "$k-packets: *[0-9]+" | head -1 | awk '{print $2}')
    echo "== $BIN $DRV$EXTRA $m: $k frames ${n:-?}, $(cat "$OUT/$m.time")"
    perf report -q -i "$OUT/$m.data" --children --sort sym -g none 2>/dev/null | head -25
done
echo "files in $OUT"
