#!/usr/bin/env bash
# Compare Ferroplane's testpmd with Debian's DPDK 22.11 `dpdk-testpmd` on this machine,
# in one invocation, driving both the same way: interactive mode fed on stdin with
#   start; sleep 1; show port stats all; sleep S; show port stats all; stop; quit
# The rate is the "Throughput (since last show)" of the second show, i.e. over S
# seconds of steady forwarding, as each program computes it. Prints Mpps and the ratio
# ours / DPDK per scenario.
#
# Scenarios:
#   null     io forwarding between two net_null ports on one forwarding core
#            (-l 0-1, --nb-cores=1); rate = sum of the ports' Rx-pps.
#   afpacket txonly on one end of a veth pair, rxonly on the other, over AF_PACKET,
#            two processes (main lcores 0 and 1, forwarding lcores 1 and 0) in a network
#            namespace this script makes and deletes, both fed the same schedule;
#            rates = the txonly side's Tx-pps and the rxonly side's Rx-pps (delivered).
#
# Options: --seconds S (measuring window, default 5), --only null|afpacket,
#          --keep-hugepages (do not restore the hugepage reservation/mount).
# Needs root (hugepages for DPDK, a network namespace). Installs Debian's `dpdk-dev` if
# dpdk-testpmd is missing; reserves 512 x 2 MiB hugepages and mounts /dev/hugepages if
# needed, and restores both at exit. Both sides use the hugepages (-m 256) and
# --total-num-mbufs=16384. The machine is shared: the script prints the load average.
set -euo pipefail

SECS=5
ONLY=""
KEEP_HP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) SECS="${2:?--seconds needs a value}"; shift ;;
        --only) ONLY="${2:?--only needs a value}"; shift ;;
        --keep-hugepages) KEEP_HP=1 ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "testpmd.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$SECS" in ''|*[!0-9]*) echo "testpmd.sh: --seconds takes a whole number, got '$SECS'" >&2; exit 2 ;; esac
[ "$SECS" -ge 1 ] || { echo "testpmd.sh: --seconds must be at least 1" >&2; exit 2; }
case "$ONLY" in ''|null|afpacket) ;; *) echo "testpmd.sh: --only takes null or afpacket, got '$ONLY'" >&2; exit 2 ;; esac
if [ "$(id -u)" != 0 ]; then
    echo "testpmd.sh: needs root (hugepages for DPDK, a network namespace); run with sudo" >&2
    exit 1
fi

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$(mktemp -d /tmp/fp-cmp-testpmd.XXXXXX)"
# shellcheck source=scripts/compare/lib.sh
. "$ROOT/scripts/compare/lib.sh"
NS="fp-cmp-tpmd-$$"

cleanup() {
    ip netns del "$NS" 2>/dev/null || true
    hp_restore
    if [ -n "${FP_KEEP_WORK:-}" ]; then echo "work files kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

dpdk_need testpmd.sh dpdk-testpmd || exit 1

hp_reserve testpmd.sh 300 || exit 1

echo "== building testpmd (release)"
(cd "$ROOT" && cargo build --release -q -p ferroplane-apps --bin testpmd)
OURS="$ROOT/target/release/testpmd"

ip netns add "$NS"
ip netns exec "$NS" sh -c 'ip link set lo up; sysctl -qw net.ipv6.conf.all.disable_ipv6=1;
    sysctl -qw net.ipv6.conf.default.disable_ipv6=1;
    ip link add fpt0 type veth peer name fpt1; ip link set fpt0 up; ip link set fpt1 up'

# The command schedule: $1 = delay before start, $2 = seconds of measurement.
feed() {
    sleep "$1"; echo start
    sleep 1; echo "show port stats all"
    sleep "$2"; echo "show port stats all"
    echo stop; sleep 0.5; echo quit
}

# Sum of the last $2 "$3" values (Rx-pps / Tx-pps) in file $1, in Mpps.
last_rate() {
    awk -v n="$2" -v key="$3" '{ for (i = 1; i < NF; i++) if ($i == key) v[++k] = $(i + 1) }
        END { s = 0; for (i = k - n + 1; i <= k; i++) if (i > 0) s += v[i]; printf "%.3f\n", s / 1e6 }' "$1"
}

# $1 = which (dpdk|ours), $2 = netns or "", $3 = output file, $4 = main lcore, rest =
# EAL vdevs then -- app args.
run_one() {
    local which="$1" inns="$2" out="$3" main="$4"; shift 4
    local pre=(); [ -n "$inns" ] && pre=(ip netns exec "$NS")
    local bin=dpdk-testpmd; [ "$which" = ours ] && bin="$OURS"
    "${pre[@]}" "$bin" -l 0-1 --main-lcore "$main" -m 256 --no-pci --file-prefix "fp$which-$main-$$" "$@" > "$out" 2>&1
}

declare -A R T
scen_null() {
    for w in dpdk ours; do
        echo "== null: $w io forwarding, 2 x net_null, 1 core ($SECS s)"
        feed 2 "$SECS" | run_one "$w" "" "$WORK/null-$w.txt" 0 --vdev=net_null0 --vdev=net_null1 \
            -- -i --forward-mode=io --nb-cores=1 --total-num-mbufs=16384 || true
        R[null-$w]="$(last_rate "$WORK/null-$w.txt" 2 Rx-pps:)"
    done
}

scen_afpacket() {
    for w in dpdk ours; do
        echo "== afpacket: $w txonly (fpt0) -> rxonly (fpt1) over a veth pair ($SECS s)"
        # Same schedule for both processes, so both "since last show" windows cover the
        # same S seconds of traffic.
        feed 2 "$SECS" | run_one "$w" netns "$WORK/af-rx-$w.txt" 1 --vdev=net_af_packet0,iface=fpt1 \
            -- -i --forward-mode=rxonly --total-num-mbufs=16384 &
        local rxpid=$!
        feed 2 "$SECS" | run_one "$w" netns "$WORK/af-tx-$w.txt" 0 --vdev=net_af_packet0,iface=fpt0 \
            -- -i --forward-mode=txonly --total-num-mbufs=16384 || true
        wait "$rxpid" || true
        R[af-$w]="$(last_rate "$WORK/af-rx-$w.txt" 1 Rx-pps:)"
        T[af-$w]="$(last_rate "$WORK/af-tx-$w.txt" 1 Tx-pps:)"
    done
}

echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -z "$ONLY" ] || [ "$ONLY" = null ] && scen_null
[ -z "$ONLY" ] || [ "$ONLY" = afpacket ] && scen_afpacket
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

ratio() { awk -v o="$1" -v d="$2" 'BEGIN { if (d > 0) printf "%.2f", o / d; else print "n/a" }'; }
echo
echo "testpmd, Mpps (DPDK $DPDK_VER dpdk-testpmd vs ferroplane testpmd, same commands)"
printf '%-28s %10s %10s %8s\n' scenario dpdk ours ratio
if [ -n "${R[null-dpdk]:-}" ]; then
    printf '%-28s %10s %10s %8s\n' "null io fwd (sum Rx-pps)" "${R[null-dpdk]}" "${R[null-ours]}" "$(ratio "${R[null-ours]}" "${R[null-dpdk]}")"
fi
if [ -n "${R[af-dpdk]:-}" ]; then
    printf '%-28s %10s %10s %8s\n' "af_packet txonly Tx-pps" "${T[af-dpdk]}" "${T[af-ours]}" "$(ratio "${T[af-ours]}" "${T[af-dpdk]}")"
    printf '%-28s %10s %10s %8s\n' "af_packet rxonly delivered" "${R[af-dpdk]}" "${R[af-ours]}" "$(ratio "${R[af-ours]}" "${R[af-dpdk]}")"
fi
