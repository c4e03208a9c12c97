//! Block device methods (rpc.py's python/spdk/cli/bdev.py).

use serde_json::{Map, Value};

use super::{m, mf, Method, Print};
use crate::args::{opt, pos, pos_opt, Arg, Kind};
use Kind::{Choice, Float, Int, IntChoice, List, Set, Str};
use Print::{Dict, Json, Nothing};

const MIB: f64 = 1024.0 * 1024.0;

/// The block-size arguments the malloc and null bdevs share.
const BLOCK_SIZE: Arg = pos("block_size", Int, "Data block size for this bdev");
const PHYSICAL_BLOCK_SIZE: Arg = opt(
    &["-p", "--physical-block-size"],
    "physical_block_size",
    Int,
    "Physical block size",
);

/// The protection-information options the malloc and null bdevs share.
const DIF_TYPE: Arg = opt(
    &["-t", "--dif-type"],
    "dif_type",
    IntChoice(&[0, 1, 2, 3]),
    "Protection information type",
);
const DIF_IS_HEAD_OF_MD: Arg = opt(
    &["-d", "--dif-is-head-of-md"],
    "dif_is_head_of_md",
    Set(true),
    "PI in the first 8 bytes of metadata",
);

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

/// rpc.py: base_bdevs is the whitespace-separated argument split into a list.
fn raid_base_list(m: &mut Map<String, Value>) -> Result<(), String> {
    if let Some(Value::String(s)) = m.get("base_bdevs") {
        let list: Vec<Value> = s.split_whitespace().map(Value::from).collect();
        m.insert("base_bdevs".into(), Value::Array(list));
    }
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
            BLOCK_SIZE,
            PHYSICAL_BLOCK_SIZE,
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
            DIF_TYPE,
            DIF_IS_HEAD_OF_MD,
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
            BLOCK_SIZE,
            PHYSICAL_BLOCK_SIZE,
            opt(&["-m", "--md-size"], "md_size", Int, "Metadata size"),
            DIF_TYPE,
            DIF_IS_HEAD_OF_MD,
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
        "bdev_aio_create",
        "Add a bdev with aio backend",
        &[
            pos("filename", Str, "Path to device or file (ex: /dev/sda)"),
            pos("name", Str, "Block device name"),
            pos_opt("block_size", Int, "Block size for this bdev"),
            opt(
                &["-r", "--readonly"],
                "readonly",
                Set(true),
                "Set this bdev as read-only",
            ),
            opt(
                &["--fallocate"],
                "fallocate",
                Set(true),
                "Support fallocate for write-zeroes",
            ),
            opt(&["-u", "--uuid"], "uuid", Str, "UUID of the bdev"),
        ],
        Json,
    ),
    m(
        "bdev_aio_delete",
        "Delete an aio disk",
        &[pos("name", Str, "aio bdev name")],
        Nothing,
    ),
    m(
        "bdev_uring_create",
        "Create a bdev with io_uring backend",
        &[
            pos("filename", Str, "Path to device or file (ex: /dev/nvme0n1)"),
            pos("name", Str, "bdev name"),
            pos_opt("block_size", Int, "Block size for this bdev"),
            opt(&["-u", "--uuid"], "uuid", Str, "UUID of the bdev"),
        ],
        Json,
    ),
    m(
        "bdev_uring_delete",
        "Delete a uring bdev",
        &[pos("name", Str, "uring bdev name")],
        Nothing,
    ),
    m(
        "bdev_wait_for_examine",
        "Report when all bdevs have been examined",
        &[],
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
    m(
        "bdev_split_create",
        "Add given disk name to split config. If bdev with base_name name exist the split bdevs will be created right away, if not split bdevs will be created when base bdev became available (if it became available)",
        &[
            pos("base_bdev", Str, "base bdev name"),
            pos("split_count", Int, "number of splits"),
            opt(
                &["-s", "--split-size-mb"],
                "split_size_mb",
                Int,
                "size in MiB to restrict size of split bdevs",
            ),
        ],
        Json,
    ),
    m(
        "bdev_split_delete",
        "Delete split config with all created splits.",
        &[pos("base_bdev", Str, "base bdev name")],
        Nothing,
    ),
    mf(
        "bdev_raid_create",
        "Create new raid bdev",
        &[
            opt(&["-n", "--name"], "name", Str, "raid bdev name"),
            opt(
                &["-z", "--strip-size-kb"],
                "strip_size_kb",
                Int,
                "strip size in KB",
            ),
            opt(&["-r", "--raid-level"], "raid_level", Str, "raid level, raid0, raid1 and a number are supported"),
            opt(
                &["-b", "--base-bdevs"],
                "base_bdevs",
                Str,
                "base bdevs name, whitespace separated list in quotes",
            ),
            opt(&["--uuid"], "uuid", Str, "UUID for this raid bdev"),
            opt(
                &["-s", "--superblock"],
                "superblock",
                Set(true),
                "information about raid bdev will be stored in superblock on each base bdev",
            ),
        ],
        Nothing,
        raid_base_list,
    ),
    m(
        "bdev_raid_delete",
        "Delete existing raid bdev",
        &[pos("name", Str, "raid bdev name")],
        Nothing,
    ),
    m(
        "bdev_raid_get_bdevs",
        "This is used to list all the raid bdev details based on the input category requested.",
        &[pos(
            "category",
            Choice(&["all", "online", "configuring", "offline"]),
            "all or online or configuring or offline",
        )],
        Dict,
    ),
    m(
        "bdev_passthru_create",
        "Add a pass through bdev on existing bdev",
        &[
            opt(&["-b", "--base-bdev-name"], "base_bdev_name", Str, "Name of the existing bdev"),
            opt(&["-p", "--name"], "name", Str, "Name of the pass through bdev"),
            opt(&["-u", "--uuid"], "uuid", Str, "UUID of passthru bdev"),
        ],
        Json,
    ),
    m(
        "bdev_passthru_delete",
        "Delete a pass through bdev",
        &[pos("name", Str, "pass through bdev name")],
        Nothing,
    ),
];
