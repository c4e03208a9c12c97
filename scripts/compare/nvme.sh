#!/usr/bin/env bash
# Compare Ferroplane's user-space NVMe driver with the kernel's NVMe stack, same guest,
# same emulated device, one boot.
#
# Boots the testbed guest (testbed/run.sh: QEMU TCG, emulated NVMe 1b36:0010) once with
# fio 3.33 (Debian package) and our nvme-perf inside, and runs 4 KiB random reads at
# queue depth 1 and 32 on namespace 1 with:
#   fio      --ioengine=io_uring --direct=1 on /dev/nvme0n1 (kernel nvme driver)
#   nvme-perf -r 'trtype:kernel path:/dev/nvme0n1 engine:io_uring' (kernel, our tool)
#   nvme-perf -r 'trtype:PCIe traddr:...' (our driver over vfio-pci)
# and prints one table: IOPS, average latency, CPU time per I/O, and ratios of our driver
# to fio. CPU time per I/O: fio's usr_cpu+sys_cpu (percent of the job's runtime) times
# the runtime over the I/O count; nvme-perf's getrusage of its worker thread over its
# I/O count. A polling driver burns its core whatever the load, so its CPU per I/O is
# 1/IOPS of that core.
#
# The emulator (TCG) bounds every number here; the ratio is the point, not the values.
#
# Usage: scripts/compare/nvme.sh [SECONDS]   (per run, default 5; plus 1 s warm-up)
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SECS=${1:-5}
die() { echo "nvme.sh: $*" >&2; exit 1; }
command -v python3 >/dev/null || die "python3 is needed to build the table (apt-get install -y python3)"
if ! command -v fio >/dev/null; then
    [[ $(id -u) -eq 0 ]] || die "fio missing and not root to install it (apt-get install -y fio)"
    echo "nvme.sh: installing fio" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fio >/dev/null || {
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fio >/dev/null
    } || die "failed to install fio (apt-get install -y fio)"
fi

echo "nvme.sh: building nvme-perf (release)" >&2
cargo build --release -q -p ferroplane-apps --bin nvme-perf --bin ferroplane-devbind --bin fp-devtest

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# Namespace 1 fully written once, so reads hit allocated blocks on every path.
truncate -s 256M "$TMP/ns1.img"

cat > "$TMP/guest.sh" <<EOF
n=0; until [ -e /dev/nvme0n1 ] || [ \$n -ge 100 ]; do sleep 0.1; n=\$((n+1)); done
A=\$(ferroplane-devbind --status | grep 1b36:0010 | awk '{print \$1}')
dd if=/dev/zero of=/dev/nvme0n1 bs=1M count=256 conv=fsync 2>/dev/null
for d in 1 32; do
  echo "@@BENCH fio \$d"
  fio --name=rr --filename=/dev/nvme0n1 --ioengine=io_uring --direct=1 --rw=randread --bs=4k --iodepth=\$d \
      --time_based --runtime=$SECS --ramp_time=1 --output-format=json | tr -d '\n'; echo
  echo "@@BENCH kernel \$d"
  nvme-perf -q \$d -o 4096 -w randread -t $SECS -a 1 -s 32 -r 'trtype:kernel path:/dev/nvme0n1 engine:io_uring'
done
ferroplane-devbind --bind=vfio-pci \$A >/dev/null
for d in 1 32; do
  echo "@@BENCH ours \$d"
  nvme-perf -q \$d -o 4096 -w randread -t $SECS -a 1 -s 64 -r "trtype:PCIe traddr:\$A ns:1"
done
echo "@@BENCH end"
EOF

LOG=$TMP/console.log
echo "nvme.sh: booting the guest (fio and nvme-perf, ${SECS} s per run)" >&2
set +e
testbed/run.sh --no-build --nvme-img "$TMP/ns1.img" --bin "$(command -v fio)" --bin "$TARGET/release/nvme-perf" \
    --timeout 900 --log "$LOG" -- "$(cat "$TMP/guest.sh")" >/dev/null 2>"$TMP/run.err"
rc=$?
set -e
if ! grep -q "@@BENCH end" "$LOG" 2>/dev/null; then
    cat "$TMP/run.err" >&2
    [ -f "$LOG" ] && tail -40 "$LOG" >&2
    die "the guest run did not finish (run.sh status $rc)"
fi

python3 - "$LOG" <<'PY'
import json, re, sys
lines = open(sys.argv[1], errors="replace").read().replace("\r", "").split("\n")
runs, cur, buf = {}, None, []
for l in lines:
    m = re.match(r"^@@BENCH (\S+)(?: (\d+))?$", l)
    if m:
        if cur: runs[cur] = buf
        cur, buf = ((m.group(1), int(m.group(2))) if m.group(2) else None), []
    elif cur:
        buf.append(l)
def fio(buf):
    j = json.loads(next(x for x in buf if x.startswith("{")))["jobs"][0]
    r = j["read"]; ios = r["total_ios"]; rt_us = j["job_runtime"] * 1000.0
    cpu = (j["usr_cpu"] + j["sys_cpu"]) / 100.0 * rt_us / max(ios, 1)
    return r["iops"], r["lat_ns"]["mean"] / 1000.0, cpu
def perf(buf):
    tot = next(x for x in buf if x.startswith("Total"))
    v = tot.split(":")[1].split()
    cpu = next(x for x in buf if x.startswith("CPU time per I/O"))
    return float(v[0]), float(v[2]), float(re.search(r"I/O: ([0-9.]+) us", cpu).group(1))
print()
print("4 KiB random read, namespace 1, one core, same guest (QEMU TCG, emulated NVMe)")
print(f"{'depth':>5}  {'stack':<34} {'IOPS':>10} {'avg lat us':>11} {'CPU us/IO':>10}")
res = {}
for d in (1, 32):
    for key, name, f in (("fio", "fio io_uring (kernel nvme)", fio), ("kernel", "nvme-perf io_uring (kernel nvme)", perf), ("ours", "nvme-perf PCIe (ferroplane, vfio)", perf)):
        try:
            res[(key, d)] = f(runs[(key, d)])
        except Exception as e:
            print(f"{d:>5}  {name:<34} parse failed: {e}"); continue
        i, l, c = res[(key, d)]
        print(f"{d:>5}  {name:<34} {i:>10.0f} {l:>11.1f} {c:>10.2f}")
print()
print("ratios, ferroplane driver vs fio io_uring (IOPS: >1 better; latency, CPU: <1 better)")
for d in (1, 32):
    if ("ours", d) in res and ("fio", d) in res:
        o, f = res[("ours", d)], res[("fio", d)]
        print(f"  depth {d:>2}: IOPS x{o[0]/f[0]:.2f}   avg latency x{o[1]/f[1]:.2f}   CPU per I/O x{o[2]/f[2]:.2f}")
    if ("kernel", d) in res and ("fio", d) in res:
        k, f = res[("kernel", d)], res[("fio", d)]
        print(f"  depth {d:>2}: (tool check) nvme-perf io_uring vs fio io_uring: IOPS x{k[0]/f[0]:.2f}   latency x{k[1]/f[1]:.2f}")
PY
