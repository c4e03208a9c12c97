# Shared by the compare scripts (sourced): 2 MiB hugepages and a hugetlbfs mount on
# /dev/hugepages for DPDK (its default), given back afterwards.
#
#   hp_reserve WHO NEED   make sure NEED 2 MiB pages are free (raising nr_hugepages by
#                         what is missing) and hugetlbfs is mounted; on failure prints
#                         "WHO: ..." and returns 1.
#   dpdk_need WHO TOOL    install Debian's `dpdk-dev` package (which ships dpdk-test
#                         and dpdk-testpmd; `dpdk` alone has only the libraries and
#                         the python tools) if TOOL is missing; sets DPDK_VER; on
#                         failure prints "WHO: ..." and returns 1.
#   dpdk_dev_need WHO     install `dpdk-dev` and `pkg-config` (headers and flags for
#                         code linked against DPDK) unless `pkg-config libdpdk` works;
#                         needs root to install; on failure prints "WHO: ..." and
#                         returns 1.
#   hp_restore            put nr_hugepages back and unmount what hp_reserve mounted;
#                         does nothing if hp_reserve never ran or KEEP_HP=1. Call it from
#                         the script's EXIT trap.

HP_DIR=/sys/kernel/mm/hugepages/hugepages-2048kB
HP_OLD=""
HP_MOUNTED=0

hp_reserve() {
    local who=$1 need=$2 free
    HP_OLD="$(cat "$HP_DIR/nr_hugepages")"
    free="$(cat "$HP_DIR/free_hugepages")"
    if [ "$free" -lt "$need" ]; then
        echo $((HP_OLD + need - free)) > "$HP_DIR/nr_hugepages" 2>/dev/null || true
        free="$(cat "$HP_DIR/free_hugepages")"
    fi
    if [ "$free" -lt "$need" ]; then
        echo "$who: could only get $free free 2 MiB hugepages (need $need); free memory and retry" >&2
        return 1
    fi
    if ! mountpoint -q /dev/hugepages; then
        mkdir -p /dev/hugepages
        mount -t hugetlbfs nodev /dev/hugepages
        HP_MOUNTED=1
    fi
}

hp_restore() {
    [ "${KEEP_HP:-0}" = 0 ] || return 0
    [ -n "$HP_OLD" ] || return 0
    if [ "$HP_MOUNTED" = 1 ]; then umount /dev/hugepages 2>/dev/null || true; fi
    echo "$HP_OLD" > "$HP_DIR/nr_hugepages" 2>/dev/null || true
}

dpdk_need() {
    local who=$1 tool=$2
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "== $who: $tool missing: installing Debian's dpdk-dev package" >&2
        apt_install "$who" dpdk-dev || return 1
    fi
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "$who: $tool is still missing after installing dpdk-dev" >&2
        return 1
    fi
    DPDK_VER="$(dpkg-query -W -f='${Version}' dpdk 2>/dev/null || echo unknown)"
}

# apt_install WHO PKG...: quiet install, with one `apt-get update` if the first try fails.
apt_install() {
    local who=$1
    shift
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; }; } || {
        echo "$who: failed to install $* (apt-get install -y $*)" >&2
        return 1
    }
}

dpdk_dev_need() {
    local who=$1
    pkg-config --exists libdpdk 2>/dev/null && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "$who: DPDK's headers are missing: run as root to install them, or apt-get install dpdk-dev pkg-config" >&2
        return 1
    fi
    echo "== $who: installing dpdk-dev and pkg-config" >&2
    apt_install "$who" dpdk-dev pkg-config
}
