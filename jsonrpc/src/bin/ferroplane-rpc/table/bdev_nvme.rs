//! NVMe bdev controller methods (rpc.py's python/spdk/cli/bdev.py, the
//! `bdev_nvme_*_controller` commands).

use super::{m, Method, Print};
use crate::args::{opt, pos, req, Arg, Kind};
use Kind::{Int, Set, Str};
use Print::{Array, Nothing};

const TRTYPE: Arg = opt(
    &["-t", "--trtype"],
    "trtype",
    Str,
    "NVMe-oF target trtype: e.g., rdma, pcie",
);
const TRADDR: Arg = opt(
    &["-a", "--traddr"],
    "traddr",
    Str,
    "NVMe-oF target address: e.g., an ip address or BDF",
);
const ADRFAM: Arg = opt(
    &["-f", "--adrfam"],
    "adrfam",
    Str,
    "NVMe-oF target adrfam: e.g., ipv4, ipv6, ib, fc, intra_host",
);
const TRSVCID: Arg = opt(
    &["-s", "--trsvcid"],
    "trsvcid",
    Str,
    "NVMe-oF target trsvcid: e.g., a port number",
);
const SUBNQN: Arg = opt(&["-n", "--subnqn"], "subnqn", Str, "NVMe-oF target subnqn");
const HOSTADDR: Arg = opt(
    &["-i", "--hostaddr"],
    "hostaddr",
    Str,
    "NVMe-oF host address: e.g., an ip address",
);
const HOSTSVCID: Arg = opt(
    &["-c", "--hostsvcid"],
    "hostsvcid",
    Str,
    "NVMe-oF host svcid: e.g., a port number",
);

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
            opt(
                &["--dhchap-key"],
                "dhchap_key",
                Str,
                "DH-HMAC-CHAP key name",
            ),
            opt(
                &["--dhchap-ctrlr-key"],
                "dhchap_ctrlr_key",
                Str,
                "DH-HMAC-CHAP controller key name",
            ),
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
