//! The methods `ferroplane-rpc` knows, with rpc.py's argument names (SPDK's
//! python/spdk/cli/*.py argparse definitions), so SPDK users' scripts work.

use serde_json::{Map, Value};

use crate::args::{opt, pos, pos_opt, req, Arg, Kind};

/// How a result is printed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Print {
    /// Pretty JSON (rpc.py's print_dict).
    Dict,
    /// Pretty JSON, a bare string without quotes (rpc.py's print_json).
    Json,
    /// Nothing (rpc.py prints nothing for these).
    Nothing,
}

/// What the command does with the parsed params.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Run {
    /// One call of the method.
    Call,
    /// rpc.py's save_config: framework_get_subsystems, then
    /// framework_get_config per subsystem, printed as one config.
    SaveConfig,
    /// rpc.py's load_config: replay a config, stepping through the states.
    LoadConfig,
}

/// A hook that completes the params (rpc.py's per-method computations).
pub type Finish = fn(&mut Map<String, Value>) -> Result<(), String>;

pub struct Method {
    pub name: &'static str,
    pub help: &'static str,
    pub args: &'static [Arg],
    pub print: Print,
    pub run: Run,
    pub finish: Option<Finish>,
}

const fn m(name: &'static str, help: &'static str, args: &'static [Arg], print: Print) -> Method {
    Method { name, help, args, print, run: Run::Call, finish: None }
}

const fn mf(name: &'static str, help: &'static str, args: &'static [Arg], print: Print, f: Finish) -> Method {
    Method { name, help, args, print, run: Run::Call, finish: Some(f) }
}

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
    m.insert("num_blocks".into(), Value::from((size * MIB / bs as f64).floor() as u64));
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

/// rpc.py: 'discovery' stands for the discovery subsystem's NQN.
fn listener_nqn(m: &mut Map<String, Value>) -> Result<(), String> {
    if m.get("nqn").and_then(Value::as_str) == Some("discovery") {
        m.insert("nqn".into(), Value::from("nqn.2014-08.org.nvmexpress.discovery"));
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

const TGT: Arg = opt(&["-t", "--tgt-name"], "tgt_name", Str, "Parent NVMe-oF target name");
const NQN: Arg = pos("nqn", Str, "Subsystem NQN");

pub static METHODS: &[Method] = &[
    // Framework (python/spdk/cli/app.py, misc.py).
    m("rpc_get_methods", "Get list of supported RPC methods", &[
        opt(&["-c", "--current"], "current", Set(true), "Only methods callable in the current state"),
        opt(&["-i", "--include-aliases"], "include_aliases", Set(true), "Include deprecated method aliases"),
    ], Dict),
    m("spdk_get_version", "Get the target's version (SPDK-compatible name)", &[], Json),
    m("ferroplane_get_version", "Get Ferroplane's version", &[], Json),
    m("spdk_kill_instance", "Send signal to instance", &[
        pos("sig_name", Choice(&["SIGINT", "SIGTERM", "SIGQUIT", "SIGHUP", "SIGKILL", "SIGUSR1"]), "Signal to send"),
    ], Nothing),
    m("framework_start_init", "Start initialization of subsystems", &[], Nothing),
    m("framework_wait_init", "Block until subsystems have been initialized", &[], Nothing),
    m("framework_get_reactors", "Display list of all reactors", &[], Dict),
    m("framework_set_scheduler", "Select thread scheduler that will be activated and its period", &[
        pos("name", Str, "Scheduler name: static or dynamic"),
        opt(&["-p", "--period"], "period", Int, "Scheduler period in microseconds"),
        opt(&["--load-limit"], "load_limit", Int, "Thread load % above which threads may move (dynamic)"),
        opt(&["--core-limit"], "core_limit", Int, "Core busy % at which a core is full (dynamic)"),
        opt(&["--core-busy"], "core_busy", Int, "Core busy % at which threads start moving (dynamic)"),
        opt(&["--mappings"], "mappings", Str, "Comma-separated thread:core mappings (static)"),
    ], Nothing),
    m("framework_get_scheduler", "Display currently set scheduler and its properties", &[], Dict),
    m("scheduler_set_options", "Set scheduler options", &[
        opt(&["-i", "--isolated-core-mask"], "isolated_core_mask", Str, "Cores excluded from scheduling"),
        opt(&["-s", "--scheduling-core"], "scheduling_core", Int, "Core the scheduler runs on"),
    ], Nothing),
    m("framework_get_subsystems", "Print subsystems array in initialization order", &[], Dict),
    m("framework_get_config", "Print subsystem configuration", &[
        pos("name", Str, "Name of the subsystem to query"),
    ], Dict),
    m("thread_get_stats", "Display current statistics of all the threads", &[], Dict),
    m("thread_get_pollers", "Display current pollers of all the threads", &[], Dict),
    m("thread_get_io_channels", "Display current IO channels of all the threads", &[], Dict),
    m("thread_set_cpumask", "Set the cpumask of a thread", &[
        req(&["-i", "--id"], "id", Int, "ID of the thread to move"),
        req(&["-m", "--cpumask"], "cpumask", Str, "CPU mask of cores the thread may run on"),
    ], Nothing),
    Method {
        name: "save_config",
        help: "Write the live configuration of all subsystems to stdout",
        args: &[
            opt(&["-i", "--indent"], "indent", Int, "Indent level, < 0 for compact; default 2"),
            opt(&["-s", "--subsystems"], "subsystems", Str, "Comma-separated subsystems (and their dependencies) to save"),
        ],
        print: Nothing,
        run: Run::SaveConfig,
        finish: None,
    },
    Method {
        name: "load_config",
        help: "Configure subsystems from a JSON config read from stdin (or -j)",
        args: &[
            opt(&["-i", "--include-aliases"], "include_aliases", Set(true), "Include RPC aliases"),
            opt(&["-j", "--json-conf"], "json_conf", Str, "Config file path or JSON text; default stdin"),
        ],
        print: Nothing,
        run: Run::LoadConfig,
        finish: None,
    },
    // Block devices (python/spdk/cli/bdev.py).
    mf("bdev_malloc_create", "Create a bdev with malloc backend", &[
        opt(&["-b", "--name"], "name", Str, "Name of the bdev"),
        opt(&["-u", "--uuid"], "uuid", Str, "UUID of the bdev"),
        pos("_total_size", Float, "Size of malloc bdev in MiB (float > 0)"),
        pos("block_size", Int, "Data block size for this bdev"),
        opt(&["-p", "--physical-block-size"], "physical_block_size", Int, "Physical block size"),
        opt(&["-o", "--optimal-io-boundary"], "optimal_io_boundary", Int, "Split on optimal IO boundary, in blocks"),
        opt(&["-m", "--md-size"], "md_size", Int, "Metadata size (0, 8, 16, 32, 64 or 128)"),
        opt(&["-i", "--md-interleave"], "md_interleave", Set(true), "Metadata interleaved with data"),
        opt(&["-t", "--dif-type"], "dif_type", IntChoice(&[0, 1, 2, 3]), "Protection information type"),
        opt(&["-d", "--dif-is-head-of-md"], "dif_is_head_of_md", Set(true), "PI in the first 8 bytes of metadata"),
        opt(&["-f", "--dif-pi-format"], "dif_pi_format", IntChoice(&[0, 1, 2]), "PI format: 0=16b, 1=32b, 2=64b guard"),
        opt(&["-n", "--numa-id"], "numa_id", Int, "NUMA node for the memory, -1 any"),
    ], Json, malloc_blocks),
    m("bdev_malloc_delete", "Delete a malloc disk", &[pos("name", Str, "malloc bdev name")], Nothing),
    mf("bdev_null_create", "Add a bdev with null backend", &[
        pos("name", Str, "Block device name"),
        opt(&["-u", "--uuid"], "uuid", Str, "UUID of the bdev"),
        pos("_total_size", Int, "Size of null bdev in MiB (int > 0)"),
        pos("block_size", Int, "Data block size for this bdev"),
        opt(&["-p", "--physical-block-size"], "physical_block_size", Int, "Physical block size"),
        opt(&["-m", "--md-size"], "md_size", Int, "Metadata size"),
        opt(&["-t", "--dif-type"], "dif_type", IntChoice(&[0, 1, 2, 3]), "Protection information type"),
        opt(&["-d", "--dif-is-head-of-md"], "dif_is_head_of_md", Set(true), "PI in the first 8 bytes of metadata"),
        opt(&["-f", "--dif-pi-format"], "dif_pi_format", IntChoice(&[0, 1, 2]), "PI format"),
        opt(&["-a", "--preferred-write-alignment"], "preferred_write_alignment", Int, "Preferred write alignment in blocks"),
        opt(&["-g", "--preferred-write-granularity"], "preferred_write_granularity", Int, "Preferred write granularity in blocks"),
        opt(&["-s", "--optimal-write-size"], "optimal_write_size", Int, "Optimal write size in blocks"),
        opt(&["-c", "--preferred-unmap-alignment"], "preferred_unmap_alignment", Int, "Preferred unmap alignment in blocks"),
        opt(&["-r", "--preferred-unmap-granularity"], "preferred_unmap_granularity", Int, "Preferred unmap granularity in blocks"),
    ], Json, null_blocks),
    m("bdev_null_delete", "Delete a null bdev", &[pos("name", Str, "null bdev name")], Nothing),
    m("bdev_get_bdevs", "Display current blockdev list or required blockdev", &[
        opt(&["-b", "--name"], "name", Str, "Name of the blockdev"),
        opt(&["-t", "--timeout-ms"], "timeout", Int, "Time in ms to wait for the bdev to appear"),
    ], Dict),
    m("bdev_get_iostat", "Display I/O statistics of all or the given blockdevs", &[
        opt(&["-b", "--name"], "name", Str, "Name of the blockdev (older rpc.py)"),
        opt(&["-c", "--per-channel"], "per_channel", Set(true), "Per-channel statistics"),
        opt(&["--reset-mode"], "reset_mode", Choice(&["all", "maxmin", "error", "none"]), "Reset after getting"),
        opt(&["--names"], "names", List, "Comma-separated bdev names"),
    ], Dict),
    // NVMe-oF target (python/spdk/cli/nvmf.py).
    m("nvmf_create_transport", "Create NVMf transport", &[
        req(&["-t", "--trtype"], "trtype", Str, "Transport type (ex. TCP, RDMA)"),
        opt(&["-g", "--tgt-name"], "tgt_name", Str, "Parent NVMe-oF target name"),
        opt(&["-q", "--max-queue-depth"], "max_queue_depth", Int, "Max outstanding I/O per queue"),
        opt(&["-m", "--max-io-qpairs-per-ctrlr"], "max_io_qpairs_per_ctrlr", Int, "Max I/O qpairs per controller"),
        opt(&["-c", "--in-capsule-data-size"], "in_capsule_data_size", Int, "Max in-capsule data size"),
        opt(&["-i", "--max-io-size"], "max_io_size", Int, "Max I/O size (bytes)"),
        opt(&["-u", "--io-unit-size"], "io_unit_size", Int, "I/O unit size (bytes)"),
        opt(&["-a", "--max-aq-depth"], "max_aq_depth", Int, "Max admin commands per AQ"),
        opt(&["-n", "--num-shared-buffers"], "num_shared_buffers", Int, "Pooled data buffers of the transport"),
        opt(&["-b", "--buf-cache-size"], "buf_cache_size", Int, "Shared buffers reserved per poll group"),
        opt(&["--iobuf-small-cache-size"], "iobuf_small_cache_size", Int, "Small iobuf buffers per poll group"),
        opt(&["--iobuf-large-cache-size"], "iobuf_large_cache_size", Int, "Large iobuf buffers per poll group"),
        opt(&["-z", "--zcopy"], "zcopy", Set(true), "Use zero-copy operations"),
        opt(&["-d", "--num-cqe"], "num_cqe", Int, "CQ entries (RDMA, no SRQ)"),
        opt(&["-s", "--max-srq-depth"], "max_srq_depth", Int, "Shared receive queue depth (RDMA)"),
        opt(&["-r", "--no-srq"], "no_srq", Set(true), "Disable shared receive queue (RDMA)"),
        opt(&["-o", "--c2h-success"], "c2h_success", Set(false), "Disable C2H success optimization (TCP)"),
        opt(&["-f", "--dif-insert-or-strip"], "dif_insert_or_strip", Set(true), "DIF insert/strip (TCP)"),
        opt(&["-y", "--sock-priority"], "sock_priority", Int, "Socket priority (TCP)"),
        opt(&["-l", "--acceptor-backlog"], "acceptor_backlog", Int, "Pending connections backlog (RDMA)"),
        opt(&["-x", "--abort-timeout-sec"], "abort_timeout_sec", Int, "Abort execution timeout, seconds"),
        opt(&["-w", "--no-wr-batching"], "no_wr_batching", Set(true), "Disable work request batching (RDMA)"),
        opt(&["-e", "--control-msg-num"], "control_msg_num", Int, "Control messages per poll group (TCP)"),
        opt(&["--acceptor-poll-rate"], "acceptor_poll_rate", Int, "Acceptor polling interval (us)"),
        opt(&["--ack-timeout"], "ack_timeout", Int, "ACK timeout in ms"),
        opt(&["--kas"], "kas", Int, "Keep-alive timeout granularity (100 ms units)"),
        opt(&["--min-kato"], "min_kato", Int, "Minimum keep-alive timeout in ms"),
    ], Nothing),
    m("nvmf_get_subsystems", "Display nvmf subsystems or required subsystem", &[
        pos_opt("nqn", Str, "Subsystem NQN"),
        TGT,
    ], Dict),
    m("nvmf_create_subsystem", "Create an NVMe-oF subsystem", &[
        NQN,
        TGT,
        opt(&["-s", "--serial-number"], "serial_number", Str, "Serial number of the virtual controller"),
        opt(&["-d", "--model-number"], "model_number", Str, "Model number of the virtual controller"),
        opt(&["-a", "--allow-any-host"], "allow_any_host", Set(true), "Allow any host to connect"),
        opt(&["-m", "--max-namespaces"], "max_namespaces", Int, "Maximum number of namespaces"),
        opt(&["-r", "--ana-reporting"], "ana_reporting", Set(true), "Enable ANA reporting"),
        opt(&["-i", "--min-cntlid"], "min_cntlid", Int, "Minimum controller ID"),
        opt(&["-I", "--max-cntlid"], "max_cntlid", Int, "Maximum controller ID"),
        opt(&["--dmrsl"], "dmrsl", Int, "Dataset Management Range Size Limit"),
        opt(&["--wzsl"], "wzsl", Int, "Write Zeroes Size Limit (power of two)"),
        opt(&["-p", "--passthrough"], "passthrough", Set(true), "NVMe passthrough for I/O commands"),
        opt(&["-n", "--enable-nssr"], "enable_nssr", Set(true), "Enable NVM subsystem reset"),
        opt(&["--admin-label"], "admin_label", Str, "Admin label for the discovery log page"),
    ], Nothing),
    m("nvmf_delete_subsystem", "Delete a nvmf subsystem", &[NQN, TGT], Nothing),
    mf("nvmf_subsystem_add_listener", "Add a listener to an NVMe-oF subsystem", &[
        pos("nqn", Str, "Subsystem NQN ('discovery' for the discovery NQN)"),
        req(&["-t", "--trtype"], "listen_address.trtype", Str, "Transport type: e.g. tcp, rdma"),
        req(&["-a", "--traddr"], "listen_address.traddr", Str, "Transport address: e.g. an IP address"),
        opt(&["-p", "--tgt-name"], "tgt_name", Str, "Parent NVMe-oF target name"),
        opt(&["-f", "--adrfam"], "listen_address.adrfam", Str, "Address family: ipv4, ipv6, ib, fc, intra_host"),
        opt(&["-s", "--trsvcid"], "listen_address.trsvcid", Str, "Transport service id: e.g. a port number"),
        opt(&["-k", "--secure-channel"], "secure_channel", Set(true), "Require a secure channel"),
        opt(&["-n", "--ana-state"], "ana_state", Choice(&["optimized", "non_optimized", "inaccessible"]), "ANA state"),
        opt(&["-S", "--sock-impl"], "sock_impl", Str, "Socket implementation"),
    ], Nothing, listener_nqn),
    m("nvmf_subsystem_add_ns", "Add a namespace to an NVMe-oF subsystem", &[
        NQN,
        pos("namespace.bdev_name", Str, "Name of the bdev to expose as a namespace"),
        TGT,
        opt(&["-p", "--ptpl-file"], "namespace.ptpl_file", Str, "Persistent reservation file"),
        opt(&["-n", "--nsid"], "namespace.nsid", Int, "Namespace ID"),
        opt(&["-g", "--nguid"], "namespace.nguid", Str, "Namespace globally unique identifier (hex)"),
        opt(&["-e", "--eui64"], "namespace.eui64", Str, "Namespace EUI-64 (hex)"),
        opt(&["-u", "--uuid"], "namespace.uuid", Str, "Namespace UUID"),
        opt(&["-a", "--anagrpid"], "namespace.anagrpid", Int, "ANA group ID"),
        opt(&["-i", "--no-auto-visible"], "namespace.no_auto_visible", Set(true), "Not visible to controllers by default"),
    ], Nothing),
    m("nvmf_subsystem_add_host", "Add a host to an NVMe-oF subsystem", &[
        NQN,
        pos("host", Str, "Host NQN to allow"),
        TGT,
        opt(&["--psk"], "psk", Str, "Pre-shared key name for TLS"),
        opt(&["--dhchap-key"], "dhchap_key", Str, "DH-HMAC-CHAP key name"),
        opt(&["--dhchap-ctrlr-key"], "dhchap_ctrlr_key", Str, "DH-HMAC-CHAP controller key name"),
    ], Nothing),
    mf("nvmf_subsystem_allow_any_host", "Allow any host to connect to the subsystem", &[
        NQN,
        opt(&["-e", "--enable", "--allow-any-host"], "allow_any_host", Set(true), "Allow any host"),
        opt(&["-d", "--disable", "--no-allow-any-host"], "allow_any_host", Set(false), "Enforce the allowed host list"),
        TGT,
    ], Nothing, allow_any_host_given),
    // vhost (python/spdk/cli/vhost.py).
    m("vhost_create_blk_controller", "Add a new vhost block controller", &[
        pos("ctrlr", Str, "Name of the vhost controller"),
        pos("dev_name", Str, "Name of the bdev to expose"),
        opt(&["--cpumask"], "cpumask", Str, "CPU mask for the controller's threads"),
        opt(&["--transport"], "transport", Str, "virtio blk transport name"),
        opt(&["-r", "--readonly"], "readonly", Set(true), "Read-only block device"),
        opt(&["-p", "--packed-ring"], "packed_ring", Set(true), "Packed ring support"),
    ], Nothing),
    m("vhost_get_controllers", "List all or specific vhost controller(s)", &[
        opt(&["-n", "--name"], "name", Str, "Name of a vhost controller"),
    ], Dict),
    m("vhost_delete_controller", "Delete a vhost controller", &[pos("ctrlr", Str, "Name of the vhost controller")], Nothing),
];

pub fn find(name: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.name == name)
}
