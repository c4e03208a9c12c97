//! Block device methods (rpc.py's python/spdk/cli/bdev.py).

use serde_json::{Map, Value};

use super::{m, mf, Method, Print};
use crate::args::{opt, pos, Kind};
use Kind::{Choice, Float, Int, IntChoice, List, Set, Str};
use Print::{Dict, Json, Nothing};

const MIB: f64 = 1024.0 * 1024.0;

fn int_of(m: &Map<String, Value>, k: &str) -> Option<i64> {
    m.get(k).and_then(Value::as_i64)
}

/// rpc.py: num_blocks = (total_size MiB) // block_size, total_size a float.
fn malloc_blocks(m: &mut Map<String, Value>) -> Result<(), String> {
    let size = m.get("_total_size").and_then(Value::as_f64).unwrap_or(0.0);
    let bs = int_of(m, "block_size").unwrap_or(0);
    if bs <= 0 {
        return Err(format!("argument block_size: must be > 0, got {bs}"));
    }
    if size <= 0.0 {
        return Err(format!("argument total_size: must be > 0, got {size}"));
    }
    m.insert(
        "num_blocks".into(),
        Value::from((size * MIB / bs as f64).floor() as u64),
    );
    Ok(())
}

/// rpc.py: num_blocks = (total_size MiB) // block_size, total_size an int;
/// --dif-type needs --md-size.
fn null_blocks(m: &mut Map<String, Value>) -> Result<(), String> {
    let size = int_of(m, "_total_size").unwrap_or(0);
    let bs = int_of(m, "block_size").unwrap_or(0);
    if bs <= 0 {
        return Err(format!("argument block_size: must be > 0, got {bs}"));
    }
    if size <= 0 {
        return Err(format!("argument total_size: must be > 0, got {size}"));
    }
    if int_of(m, "dif_type").unwrap_or(0) != 0 && int_of(m, "md_size").unwrap_or(0) == 0 {
        return Err("argument -t/--dif-type: --md-size must be > 0 when --dif-type is > 0".into());
    }
    m.insert("num_blocks".into(), Value::from(size * 1024 * 1024 / bs));
    Ok(())
}

pub static METHODS: &[Method] = &[
    mf(
        "bdev_malloc_create",
        "Create a bdev with malloc backend",
        &[
            opt(&["-b", "--name"], "name", Str, "Name of the bdev"),
            opt(&["-u", "--uuid"], "uuid", Str, "UUID of the bdev"),
            pos(
                "_total_size",
                Float,
                "Size of malloc bdev in MiB (float > 0)",
            ),
            pos("block_size", Int, "Data block size for this bdev"),
            opt(
                &["-p", "--physical-block-size"],
                "physical_block_size",
                Int,
                "Physical block size",
            ),
            opt(
                &["-o", "--optimal-io-boundary"],
                "optimal_io_boundary",
                Int,
                "Split on optimal IO boundary, in blocks",
            ),
            opt(
                &["-m", "--md-size"],
                "md_size",
                Int,
                "Metadata size (0, 8, 16, 32, 64 or 128)",
            ),
            opt(
                &["-i", "--md-interleave"],
                "md_interleave",
                Set(true),
                "Metadata interleaved with data",
            ),
            opt(
                &["-t", "--dif-type"],
                "dif_type",
                IntChoice(&[0, 1, 2, 3]),
                "Protection information type",
            ),
            opt(
                &["-d", "--dif-is-head-of-md"],
                "dif_is_head_of_md",
                Set(true),
                "PI in the first 8 bytes of metadata",
            ),
            opt(
                &["-f", "--dif-pi-format"],
                "dif_pi_format",
                IntChoice(&[0, 1, 2]),
                "PI format: 0=16b, 1=32b, 2=64b guard",
            ),
            opt(
                &["-n", "--numa-id"],
                "numa_id",
                Int,
                "NUMA node for the memory, -1 any",
            ),
        ],
        Json,
        malloc_blocks,
    ),
    m(
        "bdev_malloc_delete",
        "Delete a malloc disk",
        &[pos("name", Str, "malloc bdev name")],
        Nothing,
    ),
    mf(
        "bdev_null_create",
        "Add a bdev with null backend",
        &[
            pos("name", Str, "Block device name"),
            opt(&["-u", "--uuid"], "uuid", Str, "UUID of the bdev"),
            pos("_total_size", Int, "Size of null bdev in MiB (int > 0)"),
            pos("block_size", Int, "Data block size for this bdev"),
            opt(
                &["-p", "--physical-block-size"],
                "physical_block_size",
                Int,
                "Physical block size",
            ),
            opt(&["-m", "--md-size"], "md_size", Int, "Metadata size"),
            opt(
                &["-t", "--dif-type"],
                "dif_type",
                IntChoice(&[0, 1, 2, 3]),
                "Protection information type",
            ),
            opt(
                &["-d", "--dif-is-head-of-md"],
                "dif_is_head_of_md",
                Set(true),
                "PI in the first 8 bytes of metadata",
            ),
            opt(
                &["-f", "--dif-pi-format"],
                "dif_pi_format",
                IntChoice(&[0, 1, 2]),
                "PI format",
            ),
            opt(
                &["-a", "--preferred-write-alignment"],
                "preferred_write_alignment",
                Int,
                "Preferred write alignment in blocks",
            ),
            opt(
                &["-g", "--preferred-write-granularity"],
                "preferred_write_granularity",
                Int,
                "Preferred write granularity in blocks",
            ),
            opt(
                &["-s", "--optimal-write-size"],
                "optimal_write_size",
                Int,
                "Optimal write size in blocks",
            ),
            opt(
                &["-c", "--preferred-unmap-alignment"],
                "preferred_unmap_alignment",
                Int,
                "Preferred unmap alignment in blocks",
            ),
            opt(
                &["-r", "--preferred-unmap-granularity"],
                "preferred_unmap_granularity",
                Int,
                "Preferred unmap granularity in blocks",
            ),
        ],
        Json,
        null_blocks,
    ),
    m(
        "bdev_null_delete",
        "Delete a null bdev",
        &[pos("name", Str, "null bdev name")],
        Nothing,
    ),
    m(
        "bdev_get_bdevs",
        "Display current blockdev list or required blockdev",
        &[
            opt(&["-b", "--name"], "name", Str, "Name of the blockdev"),
            opt(
                &["-t", "--timeout-ms"],
                "timeout",
                Int,
                "Time in ms to wait for the bdev to appear",
            ),
        ],
        Dict,
    ),
    m(
        "bdev_get_iostat",
        "Display I/O statistics of all or the given blockdevs",
        &[
            opt(
                &["-b", "--name"],
                "name",
                Str,
                "Name of the blockdev (older rpc.py)",
            ),
            opt(
                &["-c", "--per-channel"],
                "per_channel",
                Set(true),
                "Per-channel statistics",
            ),
            opt(
                &["--reset-mode"],
                "reset_mode",
                Choice(&["all", "maxmin", "error", "none"]),
                "Reset after getting",
            ),
            opt(&["--names"], "names", List, "Comma-separated bdev names"),
        ],
        Dict,
    ),
    m(
        "bdev_set_qos_limit",
        "Set QoS rate limits on a blockdev",
        &[
            pos("name", Str, "Blockdev name to set QoS. Example: Malloc0"),
            opt(
                &["--rw_ios_per_sec"],
                "rw_ios_per_sec",
                Int,
                "R/W IOs per second limit (>=1000, example: 20000). 0 means unlimited.",
            ),
            opt(
                &["--rw_mbytes_per_sec"],
                "rw_mbytes_per_sec",
                Int,
                "R/W megabytes per second limit (>=10, example: 100). 0 means unlimited.",
            ),
            opt(
                &["--r_mbytes_per_sec"],
                "r_mbytes_per_sec",
                Int,
                "Read megabytes per second limit (>=10, example: 100). 0 means unlimited.",
            ),
            opt(
                &["--w_mbytes_per_sec"],
                "w_mbytes_per_sec",
                Int,
                "Write megabytes per second limit (>=10, example: 100). 0 means unlimited.",
            ),
        ],
        Nothing,
    ),
];
