//! NVMe-oF target methods (rpc.py's python/spdk/cli/nvmf.py).

use serde_json::{Map, Value};

use super::{m, mf, Method, Print};
use crate::args::{opt, pos, pos_opt, req, Arg, Kind};
use Kind::{Choice, Int, Set, Str};
use Print::{Dict, Nothing};

/// rpc.py: 'discovery' stands for the discovery subsystem's NQN.
fn listener_nqn(m: &mut Map<String, Value>) -> Result<(), String> {
    if m.get("nqn").and_then(Value::as_str) == Some("discovery") {
        m.insert(
            "nqn".into(),
            Value::from("nqn.2014-08.org.nvmexpress.discovery"),
        );
    }
    Ok(())
}

fn allow_any_host_given(m: &mut Map<String, Value>) -> Result<(), String> {
    if m.contains_key("allow_any_host") {
        Ok(())
    } else {
        Err("one of the arguments -e/--enable -d/--disable --allow-any-host --no-allow-any-host is required".into())
    }
}

const TGT: Arg = opt(
    &["-t", "--tgt-name"],
    "tgt_name",
    Str,
    "Parent NVMe-oF target name",
);
const NQN: Arg = pos("nqn", Str, "Subsystem NQN");

/// DH-HMAC-CHAP keys (nvmf_subsystem_add_host, bdev_nvme_attach_controller).
pub(super) const DHCHAP_KEY: Arg = opt(
    &["--dhchap-key"],
    "dhchap_key",
    Str,
    "DH-HMAC-CHAP key name",
);
pub(super) const DHCHAP_CTRLR_KEY: Arg = opt(
    &["--dhchap-ctrlr-key"],
    "dhchap_ctrlr_key",
    Str,
    "DH-HMAC-CHAP controller key name",
);

pub static METHODS: &[Method] = &[
    m(
        "nvmf_create_transport",
        "Create NVMf transport",
        &[
            req(
                &["-t", "--trtype"],
                "trtype",
                Str,
                "Transport type (ex. TCP, RDMA)",
            ),
            opt(
                &["-g", "--tgt-name"],
                "tgt_name",
                Str,
                "Parent NVMe-oF target name",
            ),
            opt(
                &["-q", "--max-queue-depth"],
                "max_queue_depth",
                Int,
                "Max outstanding I/O per queue",
            ),
            opt(
                &["-m", "--max-io-qpairs-per-ctrlr"],
                "max_io_qpairs_per_ctrlr",
                Int,
                "Max I/O qpairs per controller",
            ),
            opt(
                &["-c", "--in-capsule-data-size"],
                "in_capsule_data_size",
                Int,
                "Max in-capsule data size",
            ),
            opt(
                &["-i", "--max-io-size"],
                "max_io_size",
                Int,
                "Max I/O size (bytes)",
            ),
            opt(
                &["-u", "--io-unit-size"],
                "io_unit_size",
                Int,
                "I/O unit size (bytes)",
            ),
            opt(
                &["-a", "--max-aq-depth"],
                "max_aq_depth",
                Int,
                "Max admin commands per AQ",
            ),
            opt(
                &["-n", "--num-shared-buffers"],
                "num_shared_buffers",
                Int,
                "Pooled data buffers of the transport",
            ),
            opt(
                &["-b", "--buf-cache-size"],
                "buf_cache_size",
                Int,
                "Shared buffers reserved per poll group",
            ),
            opt(
                &["--iobuf-small-cache-size"],
                "iobuf_small_cache_size",
                Int,
                "Small iobuf buffers per poll group",
            ),
            opt(
                &["--iobuf-large-cache-size"],
                "iobuf_large_cache_size",
                Int,
                "Large iobuf buffers per poll group",
            ),
            opt(
                &["-z", "--zcopy"],
                "zcopy",
                Set(true),
                "Use zero-copy operations",
            ),
            opt(
                &["-d", "--num-cqe"],
                "num_cqe",
                Int,
                "CQ entries (RDMA, no SRQ)",
            ),
            opt(
                &["-s", "--max-srq-depth"],
                "max_srq_depth",
                Int,
                "Shared receive queue depth (RDMA)",
            ),
            opt(
                &["-r", "--no-srq"],
                "no_srq",
                Set(true),
                "Disable shared receive queue (RDMA)",
            ),
            opt(
                &["-o", "--c2h-success"],
                "c2h_success",
                Set(false),
                "Disable C2H success optimization (TCP)",
            ),
            opt(
                &["-f", "--dif-insert-or-strip"],
                "dif_insert_or_strip",
                Set(true),
                "DIF insert/strip (TCP)",
            ),
            opt(
                &["-y", "--sock-priority"],
                "sock_priority",
                Int,
                "Socket priority (TCP)",
            ),
            opt(
                &["-l", "--acceptor-backlog"],
                "acceptor_backlog",
                Int,
                "Pending connections backlog (RDMA)",
            ),
            opt(
                &["-x", "--abort-timeout-sec"],
                "abort_timeout_sec",
                Int,
                "Abort execution timeout, seconds",
            ),
            opt(
                &["-w", "--no-wr-batching"],
                "no_wr_batching",
                Set(true),
                "Disable work request batching (RDMA)",
            ),
            opt(
                &["-e", "--control-msg-num"],
                "control_msg_num",
                Int,
                "Control messages per poll group (TCP)",
            ),
            opt(
                &["--acceptor-poll-rate"],
                "acceptor_poll_rate",
                Int,
                "Acceptor polling interval (us)",
            ),
            opt(&["--ack-timeout"], "ack_timeout", Int, "ACK timeout in ms"),
            opt(
                &["--kas"],
                "kas",
                Int,
                "Keep-alive timeout granularity (100 ms units)",
            ),
            opt(
                &["--min-kato"],
                "min_kato",
                Int,
                "Minimum keep-alive timeout in ms",
            ),
        ],
        Nothing,
    ),
    m(
        "nvmf_get_stats",
        "Get NVMf-TCP target statistics",
        &[TGT],
        Dict,
    ),
    m(
        "nvmf_get_subsystems",
        "Display nvmf subsystems or required subsystem",
        &[pos_opt("nqn", Str, "Subsystem NQN"), TGT],
        Dict,
    ),
    m(
        "nvmf_create_subsystem",
        "Create an NVMe-oF subsystem",
        &[
            NQN,
            TGT,
            opt(
                &["-s", "--serial-number"],
                "serial_number",
                Str,
                "Serial number of the virtual controller",
            ),
            opt(
                &["-d", "--model-number"],
                "model_number",
                Str,
                "Model number of the virtual controller",
            ),
            opt(
                &["-a", "--allow-any-host"],
                "allow_any_host",
                Set(true),
                "Allow any host to connect",
            ),
            opt(
                &["-m", "--max-namespaces"],
                "max_namespaces",
                Int,
                "Maximum number of namespaces",
            ),
            opt(
                &["-r", "--ana-reporting"],
                "ana_reporting",
                Set(true),
                "Enable ANA reporting",
            ),
            opt(
                &["-i", "--min-cntlid"],
                "min_cntlid",
                Int,
                "Minimum controller ID",
            ),
            opt(
                &["-I", "--max-cntlid"],
                "max_cntlid",
                Int,
                "Maximum controller ID",
            ),
            opt(
                &["--dmrsl"],
                "dmrsl",
                Int,
                "Dataset Management Range Size Limit",
            ),
            opt(
                &["--wzsl"],
                "wzsl",
                Int,
                "Write Zeroes Size Limit (power of two)",
            ),
            opt(
                &["-p", "--passthrough"],
                "passthrough",
                Set(true),
                "NVMe passthrough for I/O commands",
            ),
            opt(
                &["-n", "--enable-nssr"],
                "enable_nssr",
                Set(true),
                "Enable NVM subsystem reset",
            ),
            opt(
                &["--admin-label"],
                "admin_label",
                Str,
                "Admin label for the discovery log page",
            ),
        ],
        Nothing,
    ),
    m(
        "nvmf_delete_subsystem",
        "Delete a nvmf subsystem",
        &[NQN, TGT],
        Nothing,
    ),
    mf(
        "nvmf_subsystem_add_listener",
        "Add a listener to an NVMe-oF subsystem",
        &[
            pos(
                "nqn",
                Str,
                "Subsystem NQN ('discovery' for the discovery NQN)",
            ),
            req(
                &["-t", "--trtype"],
                "listen_address.trtype",
                Str,
                "Transport type: e.g. tcp, rdma",
            ),
            req(
                &["-a", "--traddr"],
                "listen_address.traddr",
                Str,
                "Transport address: e.g. an IP address",
            ),
            opt(
                &["-p", "--tgt-name"],
                "tgt_name",
                Str,
                "Parent NVMe-oF target name",
            ),
            opt(
                &["-f", "--adrfam"],
                "listen_address.adrfam",
                Str,
                "Address family: ipv4, ipv6, ib, fc, intra_host",
            ),
            opt(
                &["-s", "--trsvcid"],
                "listen_address.trsvcid",
                Str,
                "Transport service id: e.g. a port number",
            ),
            opt(
                &["-k", "--secure-channel"],
                "secure_channel",
                Set(true),
                "Require a secure channel",
            ),
            opt(
                &["-n", "--ana-state"],
                "ana_state",
                Choice(&["optimized", "non_optimized", "inaccessible"]),
                "ANA state",
            ),
            opt(
                &["-S", "--sock-impl"],
                "sock_impl",
                Str,
                "Socket implementation",
            ),
        ],
        Nothing,
        listener_nqn,
    ),
    m(
        "nvmf_subsystem_add_ns",
        "Add a namespace to an NVMe-oF subsystem",
        &[
            NQN,
            pos(
                "namespace.bdev_name",
                Str,
                "Name of the bdev to expose as a namespace",
            ),
            TGT,
            opt(
                &["-p", "--ptpl-file"],
                "namespace.ptpl_file",
                Str,
                "Persistent reservation file",
            ),
            opt(&["-n", "--nsid"], "namespace.nsid", Int, "Namespace ID"),
            opt(
                &["-g", "--nguid"],
                "namespace.nguid",
                Str,
                "Namespace globally unique identifier (hex)",
            ),
            opt(
                &["-e", "--eui64"],
                "namespace.eui64",
                Str,
                "Namespace EUI-64 (hex)",
            ),
            opt(&["-u", "--uuid"], "namespace.uuid", Str, "Namespace UUID"),
            opt(
                &["-a", "--anagrpid"],
                "namespace.anagrpid",
                Int,
                "ANA group ID",
            ),
            opt(
                &["-i", "--no-auto-visible"],
                "namespace.no_auto_visible",
                Set(true),
                "Not visible to controllers by default",
            ),
        ],
        Nothing,
    ),
    m(
        "nvmf_subsystem_remove_ns",
        "Remove a namespace to an NVMe-oF subsystem",
        &[NQN, pos("nsid", Int, "The requested NSID"), TGT],
        Nothing,
    ),
    m(
        "nvmf_subsystem_add_host",
        "Add a host to an NVMe-oF subsystem",
        &[
            NQN,
            pos("host", Str, "Host NQN to allow"),
            TGT,
            opt(&["--psk"], "psk", Str, "Pre-shared key name for TLS"),
            DHCHAP_KEY,
            DHCHAP_CTRLR_KEY,
        ],
        Nothing,
    ),
    mf(
        "nvmf_subsystem_allow_any_host",
        "Allow any host to connect to the subsystem",
        &[
            NQN,
            opt(
                &["-e", "--enable", "--allow-any-host"],
                "allow_any_host",
                Set(true),
                "Allow any host",
            ),
            opt(
                &["-d", "--disable", "--no-allow-any-host"],
                "allow_any_host",
                Set(false),
                "Enforce the allowed host list",
            ),
            TGT,
        ],
        Nothing,
        allow_any_host_given,
    ),
];
