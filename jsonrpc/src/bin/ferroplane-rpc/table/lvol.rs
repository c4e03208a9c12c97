//! Logical volume methods (rpc.py's python/spdk/cli/lvol.py).

use super::{m, Method, Print};
use crate::args::{opt, pos, Arg, Kind};
use Kind::{Int, Set, Str};
use Print::{Dict, Json, Nothing};

/// The store selectors that create, get and delete share.
const LVS_UUID: Arg = opt(&["-u", "--uuid"], "uuid", Str, "lvol store UUID");
const LVS_NAME: Arg = opt(&["-l", "--lvs-name"], "lvs_name", Str, "lvol store name");
const CLEAR_METHOD: &str =
    "Change clear method for data region. Available: none, unmap, write_zeroes";
/// The one argument of the methods on one lvol.
const LVOL: &[Arg] = &[pos("name", Str, "lvol bdev name")];
/// The store selectors alone.
const STORE: &[Arg] = &[LVS_UUID, LVS_NAME];
/// The renames' arguments.
const RENAME: &[Arg] = &[
    pos("old_name", Str, "old name"),
    pos("new_name", Str, "new name"),
];

pub(super) const METHODS: &[Method] = &[
    m(
        "bdev_lvol_create_lvstore",
        "Add logical volume store on base bdev",
        &[
            pos("bdev_name", Str, "base bdev name"),
            pos("lvs_name", Str, "name for lvol store"),
            opt(
                &["-c", "--cluster-sz"],
                "cluster_sz",
                Int,
                "size of cluster (in bytes)",
            ),
            opt(&["--clear-method"], "clear_method", Str, CLEAR_METHOD),
            opt(
                &["-m", "--md-pages-per-cluster-ratio"],
                "num_md_pages_per_cluster_ratio",
                Int,
                "reserved metadata pages for each cluster",
            ),
        ],
        Json,
    ),
    m(
        "bdev_lvol_rename_lvstore",
        "Change logical volume store name",
        RENAME,
        Nothing,
    ),
    m(
        "bdev_lvol_create",
        "Add a bdev with an logical volume backend",
        &[
            LVS_UUID,
            LVS_NAME,
            opt(
                &["-t", "--thin-provision"],
                "thin_provision",
                Set(true),
                "create lvol bdev as thin provisioned",
            ),
            opt(&["-c", "--clear-method"], "clear_method", Str, CLEAR_METHOD),
            pos("lvol_name", Str, "name for this lvol"),
            pos("size_in_mib", Int, "size in MiB for this bdev"),
        ],
        Json,
    ),
    m(
        "bdev_lvol_snapshot",
        "Create a snapshot of an lvol bdev",
        &[
            pos("lvol_name", Str, "lvol bdev name"),
            pos("snapshot_name", Str, "lvol snapshot name"),
        ],
        Json,
    ),
    m(
        "bdev_lvol_clone",
        "Create a clone of an lvol snapshot",
        &[
            pos("snapshot_name", Str, "lvol snapshot name"),
            pos("clone_name", Str, "lvol clone name"),
        ],
        Json,
    ),
    m("bdev_lvol_rename", "Change lvol bdev name", RENAME, Nothing),
    m(
        "bdev_lvol_inflate",
        "Make thin provisioned lvol a thick provisioned lvol",
        LVOL,
        Nothing,
    ),
    m(
        "bdev_lvol_decouple_parent",
        "Decouple parent of lvol",
        LVOL,
        Nothing,
    ),
    m(
        "bdev_lvol_resize",
        "Resize existing lvol bdev",
        &[
            pos("name", Str, "lvol bdev name"),
            pos("size_in_mib", Int, "new size in MiB for this bdev"),
        ],
        Nothing,
    ),
    m(
        "bdev_lvol_delete",
        "Destroy a logical volume",
        LVOL,
        Nothing,
    ),
    m(
        "bdev_lvol_delete_lvstore",
        "Destroy an logical volume store",
        STORE,
        Nothing,
    ),
    m(
        "bdev_lvol_get_lvstores",
        "Display current logical volume store list",
        STORE,
        Dict,
    ),
];
