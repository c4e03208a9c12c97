//! NVMe bdev controller methods (rpc.py's python/spdk/cli/bdev.py, the
//! `bdev_nvme_*_controller` commands).

use super::nvmf::{DHCHAP_CTRLR_KEY, DHCHAP_KEY};
use super::{m, Method, Print};
use crate::args::{opt, pos, req, Arg, Kind};
use Kind::{Int, Set, Str};
use Print::{Array, Nothing};

/// A string option.
const fn text(names: &'static [&'static str], dest: &'static str, help: &'static str) -> Arg {
    opt(names, dest, Str, help)
}

const TRTYPE: Arg = text(&["-t", "--trtype"], "trtype", "Target trtype: tcp, pcie");
const TRADDR: Arg = text(&["-a", "--traddr"], "traddr", "Target address: IP or BDF");
const ADRFAM: Arg = text(&["-f", "--adrfam"], "adrfam", "Target adrfam: ipv4, ipv6");
const TRSVCID: Arg = text(&["-s", "--trsvcid"], "trsvcid", "Target trsvcid: a port");
const SUBNQN: Arg = text(&["-n", "--subnqn"], "subnqn", "NVMe-oF target subnqn");
const HOSTADDR: Arg = text(&["-i", "--hostaddr"], "hostaddr", "Host address: an IP");
const HOSTSVCID: Arg = text(&["-c", "--hostsvcid"], "hostsvcid", "Host svcid: a port");

pub static METHODS: &[Method] = &[
    m(
        "bdev_nvme_attach_controller",
        "Add bdevs with nvme backend",
        &[
            req(
                &["-b", "--name"],
                "name",
                Str,
                "Name of the NVMe controller, prefix for each bdev name",
            ),
            req(
                &["-t", "--trtype"],
                "trtype",
                Str,
                "NVMe-oF target trtype: e.g., rdma, pcie",
            ),
            req(
                &["-a", "--traddr"],
                "traddr",
                Str,
                "NVMe-oF target address: e.g., an ip address or BDF",
            ),
            ADRFAM,
            TRSVCID,
            opt(
                &["-p", "--priority"],
                "priority",
                Str,
                "NVMe-oF connection priority",
            ),
            SUBNQN,
            opt(&["-q", "--hostnqn"], "hostnqn", Str, "NVMe-oF host subnqn"),
            HOSTADDR,
            HOSTSVCID,
            opt(
                &["-r", "--prchk-reftag"],
                "prchk_reftag",
                Set(true),
                "Enable checking of PI reference tag",
            ),
            opt(
                &["-g", "--prchk-guard"],
                "prchk_guard",
                Set(true),
                "Enable checking of PI guard",
            ),
            opt(
                &["-e", "--hdgst"],
                "hdgst",
                Set(true),
                "Enable TCP header digest",
            ),
            opt(
                &["-d", "--ddgst"],
                "ddgst",
                Set(true),
                "Enable TCP data digest",
            ),
            opt(
                &["--fabrics-timeout"],
                "fabrics_connect_timeout_us",
                Int,
                "Fabrics connect timeout in microseconds",
            ),
            opt(
                &["-x", "--multipath"],
                "multipath",
                Str,
                "Multipath behavior (disable, failover, multipath)",
            ),
            opt(
                &["--num-io-queues"],
                "num_io_queues",
                Int,
                "I/O queues to request",
            ),
            opt(
                &["-l", "--ctrlr-loss-timeout-sec"],
                "ctrlr_loss_timeout_sec",
                Int,
                "Seconds to keep reconnecting (-1: forever)",
            ),
            opt(
                &["-o", "--reconnect-delay-sec"],
                "reconnect_delay_sec",
                Int,
                "Seconds between reconnect attempts",
            ),
            opt(
                &["-u", "--fast-io-fail-timeout-sec"],
                "fast_io_fail_timeout_sec",
                Int,
                "Seconds before I/O fails while reconnecting",
            ),
            opt(&["-k", "--psk"], "psk", Str, "TLS pre-shared key name"),
            opt(
                &["-m", "--max-bdevs"],
                "max_bdevs",
                Int,
                "Size of the name array for new bdevs",
            ),
            DHCHAP_KEY,
            DHCHAP_CTRLR_KEY,
            opt(
                &["-U", "--allow-unrecognized-csi"],
                "allow_unrecognized_csi",
                Set(true),
                "Attach namespaces of unrecognized command sets",
            ),
        ],
        Array,
    ),
    m(
        "bdev_nvme_detach_controller",
        "Detach an NVMe controller and delete any associated bdevs",
        &[
            pos("name", Str, "Name of the controller"),
            TRTYPE,
            TRADDR,
            ADRFAM,
            TRSVCID,
            SUBNQN,
            HOSTADDR,
            HOSTSVCID,
        ],
        Nothing,
    ),
];
