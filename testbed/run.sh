#!/usr/bin/env bash
# Ferroplane testbed: boot a QEMU guest (TCG, q35, intel-iommu) with an emulated NVMe
# controller and two e1000 NICs, run a command in it, exit with the command's status.
# See testbed/README.md. Never touches host devices: all binding happens in the guest.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: testbed/run.sh [options] -- CMD...
  --nvme-img FILE     raw image for NVMe namespace 1 (512-byte LBAs; default: a fresh 64 MiB file)
  --nvme-img2 FILE    raw image for namespace 2 (4096-byte LBAs; default: a fresh 16 MiB file)
  --nvme-serial S     serial number of the NVMe controller (default fp-nvme-0001)
  --net-sock DIR      directory for the NICs' datagram sockets: the guest binds DIR/guestN.sock
                      and sends to DIR/hostN.sock (N = 0, 1); default: a private temp dir
  --bin FILE          extra binary to put in the guest's /fp/bin (repeatable)
  --file SRC:DST      copy file or directory SRC to DST in the guest (repeatable); an ELF
                      file brings the libraries ldd lists
  --mem MB            guest memory (default 1024)
  --memfd             guest memory in a shared memfd (vhost-user back ends need it)
  --hugepages N       2 MiB hugepages the guest reserves (default 64)
  --qemu-arg ARG      one more QEMU argument (repeatable; for example -chardev/-device pairs)
  --timeout SECS      kill the guest after SECS (default 300; interactive 1800)
  --log FILE          console log (default $CACHE/console.log)
  --interactive       no command: the guest reads command lines from stdin (testbed crate)
  --no-build          do not run cargo build --release for the guest binaries
  --prepare           only install/download what is missing, print the cache dir, exit
Modules: those in WANT_MODS load at boot; those in EXTRA_MODS are in the guest and load
with `fp-modprobe NAME` (dependencies first).
Environment: FP_TESTBED_CACHE (default <repo>/.testbed-cache), FP_TESTBED_QEMU_ARGS (extra args).
EOF
}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${FP_TESTBED_CACHE:-$ROOT/.testbed-cache}
NVME_IMG="" NVME_IMG2="" SERIAL="fp-nvme-0001" NETDIR="" TIMEOUT="" LOG="" INTERACTIVE=0 BUILD=1 PREPARE=0
EXTRA_BINS=() EXTRA_FILES=() QEMU_EXTRA=() MEM=1024 MEMFD=0 HUGEPAGES=64
while [ $# -gt 0 ]; do
    case "$1" in
        --nvme-img) NVME_IMG=$2; shift 2 ;;
        --nvme-img2) NVME_IMG2=$2; shift 2 ;;
        --nvme-serial) SERIAL=$2; shift 2 ;;
        --net-sock) NETDIR=$2; shift 2 ;;
        --bin) EXTRA_BINS+=("$2"); shift 2 ;;
        --file) EXTRA_FILES+=("$2"); shift 2 ;;
        --mem) MEM=$2; shift 2 ;;
        --memfd) MEMFD=1; shift ;;
        --hugepages) HUGEPAGES=$2; shift 2 ;;
        --qemu-arg) QEMU_EXTRA+=("$2"); shift 2 ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        --log) LOG=$2; shift 2 ;;
        --interactive) INTERACTIVE=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --prepare) PREPARE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        *) echo "testbed/run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
if [ $# -eq 0 ] && [ $INTERACTIVE = 0 ] && [ $PREPARE = 0 ]; then
    echo "testbed/run.sh: no command given after '--' (see --help)" >&2; exit 2
fi
[ -n "$TIMEOUT" ] || { [ $INTERACTIVE = 1 ] && TIMEOUT=1800 || TIMEOUT=300; }
mkdir -p "$CACHE"
LOG=${LOG:-$CACHE/console.log}

say() { echo "testbed: $*" >&2; }

# ---- host tools -------------------------------------------------------------------
need_install=()
command -v qemu-system-x86_64 >/dev/null || need_install+=(qemu-system-x86)
dpkg -s busybox-static >/dev/null 2>&1 || need_install+=(busybox-static)
command -v cpio >/dev/null || need_install+=(cpio)
if [ ${#need_install[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        say "missing ${need_install[*]} and not root to install them"; exit 125
    fi
    say "installing ${need_install[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${need_install[@]}" >/dev/null 2>&1 || {
        apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need_install[@]}" >/dev/null
    }
fi

# ---- kernel and modules (cached) ---------------------------------------------------
WANT_MODS="irqbypass vfio vfio_iommu_type1 vfio_virqfd vfio-pci-core vfio-pci uio uio_pci_generic nvme-core nvme e1000"
# Present in the guest but loaded only on request (fp-modprobe): the kernel's own storage
# and network peers, which must not claim devices our drivers are tested on.
EXTRA_MODS="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk virtio_net \
 nvme-fabrics nvme-tcp crc32c_generic configfs nvmet nvmet-tcp loop"
MODS_KEY=$(echo "$WANT_MODS / $EXTRA_MODS" | md5sum | cut -c1-12)
kpkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
PKG=${FP_TESTBED_KERNEL_PKG:-$(kpkg)}
if [ -z "$PKG" ]; then
    # No package lists yet (fresh machine): fetch them once, unless a kernel is cached.
    if [ -e "$CACHE/kernel/current" ]; then
        PKG=$(readlink "$CACHE/kernel/current")
    else
        apt-get update -qq >/dev/null 2>&1 || true
        PKG=$(kpkg)
    fi
fi
[ -n "$PKG" ] || { say "cannot find the kernel package linux-image-amd64 depends on"; exit 125; }
KDIR=$CACHE/kernel/$PKG
if [ ! -f "$KDIR/ready-$MODS_KEY" ]; then
    say "fetching $PKG"
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && apt-get download "$PKG" >/dev/null 2>&1) || {
        apt-get update -qq >/dev/null 2>&1; (cd "$tmp" && apt-get download "$PKG" >/dev/null)
    }
    dpkg -x "$tmp"/*.deb "$tmp/x"
    rm -rf "$KDIR"; mkdir -p "$KDIR/mods" "$KDIR/deps"
    cp "$tmp"/x/boot/vmlinuz-* "$KDIR/vmlinuz"
    MODTREE=$(ls -d "$tmp"/x/lib/modules/*)
    basename "$MODTREE" > "$KDIR/release"
    # Resolve dependencies from each module's .modinfo "depends=" (the package ships no
    # modules.dep: depmod runs at install time), depth first, dependencies first.
    declare -A done_mods=()
    order=()
    find_mod() { find "$MODTREE" -type f \( -name "$1.ko" -o -name "$1.ko.xz" -o -name "$1.ko.zst" \
                 -o -name "${1//-/_}.ko*" -o -name "${1//_/-}.ko*" \) | head -1; }
    # deps/<name>: the modules to insmod for <name>, dependencies first.
    deps_of() {
        local d
        for d in $(tr '\0' '\n' < "$KDIR/mods/$1.ko" | { grep -a '^depends=' || true; } | head -1 | cut -d= -f2 | tr ',' ' '); do
            f=$(find_mod "$d"); [ -n "$f" ] || continue
            d=$(basename "${f%%.ko*}"); cat "$KDIR/deps/$d" 2>/dev/null || deps_of "$d"
        done
        echo "$1"
    }
    add_mod() {
        local m=$1 f key out deps d
        key=${m//-/_}
        [ -n "${done_mods[$key]:-}" ] && return 0
        done_mods[$key]=1
        f=$(find_mod "$m")
        [ -n "$f" ] || { say "module $m not found in $PKG (built in?)"; return 0; }
        out="$KDIR/mods/$(basename "${f%%.ko*}").ko"
        case "$f" in
            *.ko.xz) xz -dc "$f" > "$out" ;;
            *.ko.zst) zstd -qdc "$f" > "$out" ;;
            *) cp "$f" "$out" ;;
        esac
        deps=$(tr '\0' '\n' < "$out" | { grep -a '^depends=' || true; } | head -1 | cut -d= -f2 | tr ',' ' ')
        for d in $deps; do add_mod "$d"; done
        order+=("$(basename "${out%.ko}")")
        deps_of "$(basename "${out%.ko}")" | awk '!seen[$0]++' > "$KDIR/deps/$(basename "${out%.ko}")"
        tr '\0' '\n' < "$out" | { grep -a '^alias=pci:' || true; } | sed "s/^alias=\(.*\)/alias \1 $(basename "${out%.ko}" | tr - _)/" >> "$KDIR/modules.alias"
    }
    : > "$KDIR/modules.alias"
    for m in $WANT_MODS; do add_mod "$m"; done
    printf '%s\n' "${order[@]}" > "$KDIR/order"
    for m in $EXTRA_MODS; do add_mod "$m"; done
    touch "$KDIR/ready-$MODS_KEY"
    ln -sfn "$PKG" "$CACHE/kernel/current"
    rm -rf "$tmp"; trap - EXIT
fi
if [ $PREPARE = 1 ]; then echo "$CACHE"; exit 0; fi

# ---- guest binaries -----------------------------------------------------------------
# The operator tool that binds devices (apps/) and the device-access test program
# (testbed/src/bin/); tests add their own with --bin.
BINS=(ferroplane-devbind fp-devtest)
if [ $BUILD = 1 ]; then
    (cd "$ROOT" && cargo build --release -q -p ferroplane-apps -p ferroplane-testbed \
        --bin ferroplane-devbind --bin fp-devtest) >&2
fi

# ---- initrd -------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fp-testbed.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
ST=$WORK/root
mkdir -p "$ST/bin" "$ST/fp/bin" "$ST/lib/modules/fp" "$ST/lib/modules/$(cat "$KDIR/release")" "$ST/dev"
cp /bin/busybox "$ST/bin/busybox"
cp "$ROOT/testbed/init" "$ST/init"; chmod +x "$ST/init"
cp "$KDIR"/mods/*.ko "$ST/lib/modules/fp/"
cp "$KDIR/order" "$ST/lib/modules/fp/order"
cp -r "$KDIR/deps" "$ST/lib/modules/fp/deps"
cat > "$ST/fp/bin/fp-modprobe" <<'EOS'
#!/bin/sh
# fp-modprobe NAME...: insmod NAME and its dependencies (testbed guest).
for want in "$@"; do
    [ -f "/lib/modules/fp/deps/$want" ] || { echo "fp-modprobe: no module $want in the guest" >&2; exit 1; }
    for m in $(cat "/lib/modules/fp/deps/$want"); do
        grep -q "^$(echo "$m" | tr - _) " /proc/modules || insmod "/lib/modules/fp/$m.ko" || exit 1
    done
done
EOS
chmod +x "$ST/fp/bin/fp-modprobe"
echo "$HUGEPAGES" > "$ST/fp/hugepages"
cp "$KDIR/modules.alias" "$ST/lib/modules/$(cat "$KDIR/release")/modules.alias"
allbins=()
for b in "${BINS[@]}"; do
    p="$ROOT/target/release/$b"
    [ -x "$p" ] || { say "$p missing (build with: cargo build --release -p ferroplane-apps -p ferroplane-testbed --bin $b)"; exit 125; }
    allbins+=("$p")
done
allbins+=("${EXTRA_BINS[@]}")
for p in "${allbins[@]}"; do
    strip --strip-debug -o "$ST/fp/bin/$(basename "$p")" "$p" 2>/dev/null || cp "$p" "$ST/fp/bin/"
    chmod +x "$ST/fp/bin/$(basename "$p")"
    ldd "$p" 2>/dev/null | grep -o '/[^ ]*' | while read -r lib; do
        [ -e "$ST$lib" ] || { mkdir -p "$ST$(dirname "$lib")"; cp -L "$lib" "$ST$lib"; }
    done
done
copy_libs() {
    ldd "$1" 2>/dev/null | grep -o '/[^ ]*' | while read -r lib; do
        [ -e "$ST$lib" ] || { mkdir -p "$ST$(dirname "$lib")"; cp -L "$lib" "$ST$lib"; }
    done
}
for spec in "${EXTRA_FILES[@]}"; do
    src=${spec%%:*} dst=${spec#*:}
    [ -e "$src" ] || { say "--file $src: no such file"; exit 125; }
    mkdir -p "$ST$(dirname "$dst")"
    cp -rL "$src" "$ST$dst"
    while IFS= read -r f; do
        head -c 4 "$f" 2>/dev/null | grep -q 'ELF' && copy_libs "$f"
    done < <(find "$ST$dst" -type f)
done
if [ $# -gt 0 ]; then printf '%s\n' "$*" > "$ST/fp/cmd"; fi
(cd "$ST" && find . | cpio -o -H newc --quiet) > "$WORK/initrd.cpio"

# ---- devices ------------------------------------------------------------------------
if [ -z "$NVME_IMG" ]; then NVME_IMG=$WORK/ns1.img; truncate -s 64M "$NVME_IMG"; fi
if [ -z "$NVME_IMG2" ]; then NVME_IMG2=$WORK/ns2.img; truncate -s 16M "$NVME_IMG2"; fi
if [ -z "$NETDIR" ]; then NETDIR=$WORK/net; fi
mkdir -p "$NETDIR"
rm -f "$NETDIR"/guest0.sock "$NETDIR"/guest1.sock
NET=()
for i in 0 1; do
    NET+=(-netdev "dgram,id=n$i,local.type=unix,local.path=$NETDIR/guest$i.sock,remote.type=unix,remote.path=$NETDIR/host$i.sock"
          -device "e1000,netdev=n$i,mac=52:54:00:fe:00:0$i")
done

QEMU=(qemu-system-x86_64 -accel tcg,thread=multi -machine q35,kernel-irqchip=split
      -cpu max -smp 2 -m "$MEM" -display none -vga none -monitor none -serial stdio -no-reboot
      -device intel-iommu,intremap=on,caching-mode=on,aw-bits=48 -nic none
      -kernel "$KDIR/vmlinuz" -initrd "$WORK/initrd.cpio"
      -append "console=ttyS0 intel_iommu=on iommu=pt quiet panic=-1 no_timer_check"
      -device "nvme,id=nvme0,serial=$SERIAL"
      -drive "file=$NVME_IMG,if=none,id=nvm1,format=raw,discard=unmap"
      -device "nvme-ns,drive=nvm1,bus=nvme0,nsid=1,logical_block_size=512,physical_block_size=512"
      -drive "file=$NVME_IMG2,if=none,id=nvm2,format=raw,discard=unmap"
      -device "nvme-ns,drive=nvm2,bus=nvme0,nsid=2,logical_block_size=4096,physical_block_size=4096"
      "${NET[@]}" "${QEMU_EXTRA[@]}" ${FP_TESTBED_QEMU_ARGS:-})
if [ $MEMFD = 1 ]; then
    QEMU+=(-object "memory-backend-memfd,id=mem,size=${MEM}M,share=on" -numa "node,memdev=mem")
fi

if [ $INTERACTIVE = 1 ]; then
    # stdin/stdout are the guest console; the caller logs and drives it.
    say "booting (interactive, timeout ${TIMEOUT}s, sockets in $NETDIR)"
    # --foreground keeps QEMU in the caller's process group, so the caller can end the
    # whole guest by that group's id. Not `exec`: this shell stays to remove $WORK (the
    # initrd and the NVMe images, ~40 MB) when the guest powers off.
    set +e
    timeout --foreground -k 10 "$TIMEOUT" "${QEMU[@]}"
    rc=$?
    cleanup
    exit $rc
fi

say "booting (timeout ${TIMEOUT}s, console log $LOG)"
start=$(date +%s)
set +e
timeout -k 10 "$TIMEOUT" "${QEMU[@]}" < /dev/null | tee "$LOG"
qrc=${PIPESTATUS[0]}
set -e
say "guest ran $(( $(date +%s) - start )) s"
st=$(tr -d '\r' < "$LOG" | sed -n 's/^@@FP-EXIT \([0-9]*\)$/\1/p' | tail -1)
if [ -z "$st" ]; then
    if [ "$qrc" = 124 ]; then say "timed out after ${TIMEOUT}s"; exit 124; fi
    say "guest ended (qemu status $qrc) without an exit marker; see $LOG"; exit 125
fi
exit "$st"
