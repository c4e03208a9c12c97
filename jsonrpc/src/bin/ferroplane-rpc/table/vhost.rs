//! vhost methods (rpc.py's python/spdk/cli/vhost.py).

use super::{m, Method, Print};
use crate::args::{opt, pos, Kind};
use Kind::{Set, Str};
use Print::{Dict, Nothing};

pub static METHODS: &[Method] = &[
    m(
        "vhost_create_blk_controller",
        "Add a new vhost block controller",
        &[
            pos("ctrlr", Str, "Name of the vhost controller"),
            pos("dev_name", Str, "Name of the bdev to expose"),
            opt(
                &["--cpumask"],
                "cpumask",
                Str,
                "CPU mask for the controller's threads",
            ),
            opt(
                &["--transport"],
                "transport",
                Str,
                "virtio blk transport name",
            ),
            opt(
                &["-r", "--readonly"],
                "readonly",
                Set(true),
                "Read-only block device",
            ),
            opt(
                &["-p", "--packed-ring"],
                "packed_ring",
                Set(true),
                "Packed ring support",
            ),
        ],
        Nothing,
    ),
    m(
        "vhost_get_controllers",
        "List all or specific vhost controller(s)",
        &[opt(
            &["-n", "--name"],
            "name",
            Str,
            "Name of a vhost controller",
        )],
        Dict,
    ),
    m(
        "vhost_delete_controller",
        "Delete a vhost controller",
        &[pos("ctrlr", Str, "Name of the vhost controller")],
        Nothing,
    ),
];
