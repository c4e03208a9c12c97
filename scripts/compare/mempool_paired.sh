#!/usr/bin/env bash
# Paired comparison of our mempool with DPDK 22.11's, case by case.
#
# mempool.sh runs dpdk-test's whole mempool_perf_autotest and then ours, so a case's two
# rates are measured minutes apart; on a small VM the host's placement of the vCPUs
# changes in that time and moves single rates by 1.5-3x for both sides alike. Here each
# case group (section, cores, n_keep, get/put bulk) runs on DPDK's mempool
# (scripts/compare/mempool_case.c: the autotest's pool and loop, linked against Debian's
# DPDK) and on ours (mempool_perf, same cases) back to back, the order alternating
# between rounds. A case's ratio is the geometric mean over the rounds of ours/DPDK from
# the same round, and "ahead" counts the rounds in which ours was faster.
#
# Cases: mempool.sh --subset's 96 (no cache and cache 512, 1 and 2 cores, n_keep 32/128,
# get/put bulk 1/4/32, constant and variable n).
#   --time-s T   seconds per case and side (default 0.2)
#   --rounds R   rounds (default 3)
# Needs root (hugepages; installs dpdk-dev and pkg-config if missing).
set -euo pipefail

TIME_S=0.2
ROUNDS=3
while [ $# -gt 0 ]; do
    case "$1" in
        --time-s) TIME_S="${2:?--time-s needs a value}"; shift ;;
        --rounds) ROUNDS="${2:?--rounds needs a value}"; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "mempool_paired.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if ! awk -v t="$TIME_S" 'BEGIN { exit !(t > 0 && t <= 5) }'; then
    echo "mempool_paired.sh: invalid value '$TIME_S' for --time-s: must be in (0, 5]" >&2
    exit 2
fi
case "$ROUNDS" in ''|*[!0-9]*|0) echo "mempool_paired.sh: invalid value '$ROUNDS' for --rounds: a whole number >= 1" >&2; exit 2 ;; esac
if [ "$(id -u)" != 0 ]; then
    echo "mempool_paired.sh: needs root to reserve hugepages (run with sudo)" >&2
    exit 1
fi

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$(mktemp -d /tmp/fp-cmp-mempool-paired.XXXXXX)"
# shellcheck source=scripts/compare/lib.sh
. "$ROOT/scripts/compare/lib.sh"
cleanup() {
    hp_restore
    rm -rf "$WORK"
}
trap cleanup EXIT

dpdk_need mempool_paired.sh dpdk-test || exit 1
dpdk_dev_need mempool_paired.sh || exit 1
hp_reserve mempool_paired.sh 256 || exit 1

echo "== building mempool_case (DPDK $(pkg-config --modversion libdpdk)) and mempool_perf (release)"
# shellcheck disable=SC2046
cc -O3 $(pkg-config --cflags libdpdk) -o "$WORK/mempool_case" "$ROOT/scripts/compare/mempool_case.c" \
    $(pkg-config --libs libdpdk)
(cd "$ROOT" && cargo build --release -q -p ferroplane-apps --bin mempool_perf)
OURS_BIN="$ROOT/target/release/mempool_perf"

# One group on each side; appends "key rate" lines (key: section|cache|cores|get|put|keep|const).
dpdk_group() { # sec cores keep get put round
    local cache=0 cs=0
    [ "$1" = cache ] && { cache=1; cs=512; }
    "$WORK/mempool_case" --no-pci -l 0-1 --file-prefix "fpcase$$" --log-level=1 -- \
        "$cache" "$2" "$3" "$4" "$5" "$TIME_S" > "$WORK/d.out" 2>&1 || {
        echo "mempool_paired.sh: DPDK case $* failed:" >&2; tail -5 "$WORK/d.out" >&2; exit 1; }
    awk -v k="$1|$cs|$2|$4|$5|$3" -v r="$6" '/rate_persec=/ {
        split($1, c, "="); split($2, v, "="); print k "|" c[2], r, v[2] }' "$WORK/d.out" >> "$WORK/dpdk.tab"
}
ours_group() { # sec cores keep get put round
    local bulk="$4"
    [ "$4" != "$5" ] && bulk="$4,$5"
    "$OURS_BIN" -l 0-1 --file-prefix "fpcaseours$$" -- --sections "$1" --keep "$3" --bulk "$bulk" \
        --cores "$2" --time-s "$TIME_S" > "$WORK/o.out" 2>&1 || {
        echo "mempool_paired.sh: our case $* failed:" >&2; tail -5 "$WORK/o.out" >&2; exit 1; }
    awk -v s="$1" -v g="$4" -v p="$5" -v r="$6" '/mempool_autotest cache=/ {
        for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
        if (f["n_get_bulk"] != g || f["n_put_bulk"] != p) next
        print s "|" f["cache"] "|" f["cores"] "|" g "|" p "|" f["n_keep"] "|" f["constant_n"], r, f["rate_persec"] }' \
        "$WORK/o.out" >> "$WORK/ours.tab"
}

: > "$WORK/dpdk.tab"; : > "$WORK/ours.tab"
T0=$(date +%s)
for round in $(seq 1 "$ROUNDS"); do
    for sec in nocache cache; do
        for cores in 1 2; do
            for keep in 32 128; do
                for g in 1 4 32; do
                    for p in 1 4 32; do
                        if [ $((round % 2)) = 1 ]; then
                            dpdk_group "$sec" "$cores" "$keep" "$g" "$p" "$round"
                            ours_group "$sec" "$cores" "$keep" "$g" "$p" "$round"
                        else
                            ours_group "$sec" "$cores" "$keep" "$g" "$p" "$round"
                            dpdk_group "$sec" "$cores" "$keep" "$g" "$p" "$round"
                        fi
                    done
                done
            done
        done
    done
    echo "   round $round done ($(( $(date +%s) - T0 )) s)"
done

echo
echo "mempool rates (objects/s), DPDK $DPDK_VER (its mempool, mempool_case.c) vs Ferroplane, ${TIME_S} s per case, $ROUNDS paired rounds"
printf "%-8s %5s %5s %4s %4s %5s %5s %13s %13s %7s %6s\n" section cache cores get put keep const "dpdk median" "ours median" ratio ahead
awk -v rounds="$ROUNDS" '
    NR == FNR { d[$1 "#" $2] = $3; next }
    {
        k = $1; if (!((k "#" $2) in d)) next
        if (!(k in seen)) { seen[k] = 1; order[++m] = k }
        r = $3 / d[k "#" $2]; lr[k] += log(r); n[k]++; if (r > 1) ahead[k]++
        dv[k, n[k]] = d[k "#" $2]; ov[k, n[k]] = $3
    }
    function median(a, k, c,   i, j, t, v) {
        for (i = 1; i <= c; i++) v[i] = a[k, i]
        for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
        return (c % 2) ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
    }
    END {
        for (i = 1; i <= m; i++) {
            k = order[i]; split(k, f, "|"); g = exp(lr[k] / n[k])
            printf "%-8s %5s %5s %4s %4s %5s %5s %13.0f %13.0f %7.2f %3d/%-2d\n", f[1], f[2], f[3], f[4], f[5], f[6], f[7],
                median(dv, k, n[k]), median(ov, k, n[k]), g, ahead[k], n[k]
            all += log(g); cnt++; if (g < 1) below++
        }
        printf "\n%d cases; geometric mean of the paired ratios ours/DPDK = %.2f; %d cases below 1.0\n", cnt, exp(all / cnt), below
    }
' "$WORK/dpdk.tab" "$WORK/ours.tab"
