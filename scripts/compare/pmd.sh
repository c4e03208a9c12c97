#!/usr/bin/env bash
# Compare Ferroplane's ethdev + software drivers with DPDK 22.11's testpmd on this
# machine, in one invocation: for each scenario, run Debian's `dpdk-testpmd` in io
# forwarding mode and our `pmd_perf` (apps/src/bin/pmd_perf.rs) with the same --vdev
# arguments, one forwarding core each, and print Mpps and the ratio ours / DPDK.
#
# Scenarios (same vdevs both sides):
#   null      --vdev net_null0 --vdev net_null1                    (io forward)
#   ring      --vdev net_ring0 --vdev net_ring1, --tx-first        (packets circulate)
#   afpacket  --vdev net_af_packet0,iface=fpv0 --vdev net_af_packet1,iface=fpv1 over a
#             veth pair in a network namespace this script makes and deletes, --tx-first
# DPDK's rate: testpmd --stats-period 1, sum of the ports' Rx-pps, median of the
# samples after the first; ours: pmd_perf's average over the run.
#
# Options: --seconds S (per side per scenario, default 5), --only null|ring|afpacket,
#          --keep-hugepages (do not restore the hugepage reservation/mount).
# Needs root (hugepages for DPDK, network namespace). Installs Debian's `dpdk-dev` if
# dpdk-testpmd is missing. Total time about 3 x 2 x S seconds plus the build.
set -euo pipefail

SECS=5
ONLY=""
KEEP_HP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) SECS="${2:?--seconds needs a value}"; shift ;;
        --only) ONLY="${2:?--only needs a value}"; shift ;;
        --keep-hugepages) KEEP_HP=1 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "pmd.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$SECS" in ''|*[!0-9]*) echo "pmd.sh: --seconds takes a whole number, got '$SECS'" >&2; exit 2 ;; esac
[ "$SECS" -ge 2 ] || { echo "pmd.sh: --seconds must be at least 2" >&2; exit 2; }
case "$ONLY" in ''|null|ring|afpacket) ;; *) echo "pmd.sh: --only takes null, ring or afpacket, got '$ONLY'" >&2; exit 2 ;; esac
if [ "$(id -u)" != 0 ]; then
    echo "pmd.sh: needs root (hugepages for DPDK, a network namespace); run with sudo" >&2
    exit 1
fi

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$(mktemp -d /tmp/fp-cmp-pmd.XXXXXX)"
# shellcheck source=scripts/compare/lib.sh
. "$ROOT/scripts/compare/lib.sh"
NS="fp-cmp-pmd-$$"

cleanup() {
    ip netns del "$NS" 2>/dev/null || true
    hp_restore
    if [ -n "${FP_KEEP_WORK:-}" ]; then echo "work files kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

dpdk_need pmd.sh dpdk-testpmd || exit 1

hp_reserve pmd.sh 256 || exit 1

echo "== building pmd_perf (release)"
(cd "$ROOT" && cargo build --release -q -p ferroplane-apps --bin pmd_perf)
OURS="$ROOT/target/release/pmd_perf"

ip netns add "$NS"
ip netns exec "$NS" sh -c 'ip link set lo up; sysctl -qw net.ipv6.conf.all.disable_ipv6=1;
    ip link add fpv0 type veth peer name fpv1; ip link set fpv0 up; ip link set fpv1 up'

# $1 = scenario, $2 = "netns" or "", $3 = tx-first (0/1), rest = vdevs
run_dpdk() {
    local sc="$1" inns="$2" txf="$3"; shift 3
    local vd=() ; for v in "$@"; do vd+=("--vdev=$v"); done
    local extra=(); [ "$txf" = 1 ] && extra+=(--tx-first)
    local pre=(); [ -n "$inns" ] && pre=(ip netns exec "$NS")
    timeout -s INT "$((SECS + 3))" "${pre[@]}" dpdk-testpmd -l 0-1 --no-pci --file-prefix "fpcmp$$" "${vd[@]}" \
        -- --forward-mode=io --stats-period=1 --nb-cores=1 "${extra[@]}" > "$WORK/dpdk-$sc.txt" 2>&1 || true
    # sum Rx-pps over the ports of each period; median of the periods after the first
    awk '/Port statistics/ { if (n) s[++k] = sum; sum = 0; n = 1 }
         /Rx-pps:/ { sum += $2 }
         END { if (n) s[++k] = sum; m = 0; for (i = 2; i <= k; i++) v[++m] = s[i];
               if (m == 0) { print "0"; exit }
               for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
               printf "%.3f\n", v[int((m + 1) / 2)] / 1e6 }' "$WORK/dpdk-$sc.txt"
}

run_ours() {
    local sc="$1" inns="$2" txf="$3"; shift 3
    local vd=() ; for v in "$@"; do vd+=(--vdev "$v"); done
    local extra=(); [ "$txf" = 1 ] && extra+=(--tx-first)
    local pre=(); [ -n "$inns" ] && pre=(ip netns exec "$NS")
    "${pre[@]}" "$OURS" --no-huge -m 256 -l 1 --file-prefix "fpours$$" "${vd[@]}" -- --seconds "$SECS" "${extra[@]}" \
        > "$WORK/ours-$sc.txt" 2>&1 || { echo "pmd.sh: pmd_perf failed:" >&2; tail -5 "$WORK/ours-$sc.txt" >&2; echo 0; return; }
    sed -n 's/.*mpps=\([0-9.]*\).*/\1/p' "$WORK/ours-$sc.txt" | tail -1
}

declare -A D O
scen() {
    local sc="$1"; shift
    [ -n "$ONLY" ] && [ "$ONLY" != "$sc" ] && return 0
    echo "== $sc: DPDK testpmd ($SECS s)"
    D[$sc]="$(run_dpdk "$sc" "$@")"
    echo "== $sc: ferroplane pmd_perf ($SECS s)"
    O[$sc]="$(run_ours "$sc" "$@")"
}
scen null "" 0 net_null0 net_null1
scen ring "" 1 net_ring0 net_ring1
scen afpacket netns 1 net_af_packet0,iface=fpv0 net_af_packet1,iface=fpv1

echo
echo "io forwarding, one core, Mpps (DPDK $DPDK_VER testpmd vs ferroplane pmd_perf)"
printf '%-10s %12s %12s %8s\n' scenario dpdk ours ratio
for sc in null ring afpacket; do
    [ -n "${D[$sc]:-}" ] || continue
    printf '%-10s %12s %12s %8s\n' "$sc" "${D[$sc]}" "${O[$sc]}" \
        "$(awk -v o="${O[$sc]}" -v d="${D[$sc]}" 'BEGIN { if (d > 0) printf "%.2f", o / d; else print "n/a" }')"
done
