#!/usr/bin/env bash
# Make sure SPDK itself (v25.09, the peer our storage tests check formats against and
# compare with) is built in $FP_SPDK_DIR (default <repo>/.testbed-cache/spdk). Builds it
# with scripts/build-spdk.sh when missing (root, about 1-3 minutes); prints the directory.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${FP_SPDK_DIR:-$ROOT/.testbed-cache/spdk}
if [ -x "$DIR/build/bin/spdk_tgt" ] && [ -x "$DIR/build/examples/bdevperf" ]; then
    echo "$DIR"; exit 0
fi
[ "$(id -u)" = 0 ] || { echo "scripts/spdk.sh: SPDK is not built in $DIR and building it needs root (apt-get)" >&2; exit 1; }
mkdir -p "$(dirname "$DIR")"
log=$(mktemp /tmp/fp-spdk-build.XXXXXX)
echo "building SPDK in $DIR (log $log)" >&2
if ! SPDK_DIR=$DIR bash "$ROOT/scripts/build-spdk.sh" > "$log" 2>&1; then
    tail -30 "$log" >&2; echo "scripts/spdk.sh: SPDK build failed (log $log)" >&2; exit 1
fi
rm -f "$log"
echo "$DIR"
