//! Framework methods (rpc.py's python/spdk/cli/app.py and misc.py).

use super::{m, Method, Print, Run};
use crate::args::{opt, pos, req, Kind};
use Kind::{Choice, Int, Set, Str};
use Print::{Dict, Json, Nothing};

pub static METHODS: &[Method] = &[
    m(
        "rpc_get_methods",
        "Get list of supported RPC methods",
        &[
            opt(
                &["-c", "--current"],
                "current",
                Set(true),
                "Only methods callable in the current state",
            ),
            opt(
                &["-i", "--include-aliases"],
                "include_aliases",
                Set(true),
                "Include deprecated method aliases",
            ),
        ],
        Dict,
    ),
    m(
        "spdk_get_version",
        "Get the target's version (SPDK-compatible name)",
        &[],
        Json,
    ),
    m(
        "ferroplane_get_version",
        "Get Ferroplane's version",
        &[],
        Json,
    ),
    m(
        "spdk_kill_instance",
        "Send signal to instance",
        &[pos(
            "sig_name",
            Choice(&[
                "SIGINT", "SIGTERM", "SIGQUIT", "SIGHUP", "SIGKILL", "SIGUSR1",
            ]),
            "Signal to send",
        )],
        Nothing,
    ),
    m(
        "framework_start_init",
        "Start initialization of subsystems",
        &[],
        Nothing,
    ),
    m(
        "framework_wait_init",
        "Block until subsystems have been initialized",
        &[],
        Nothing,
    ),
    m(
        "framework_get_reactors",
        "Display list of all reactors",
        &[],
        Dict,
    ),
    m(
        "framework_set_scheduler",
        "Select thread scheduler that will be activated and its period",
        &[
            pos("name", Str, "Scheduler name: static or dynamic"),
            opt(
                &["-p", "--period"],
                "period",
                Int,
                "Scheduler period in microseconds",
            ),
            opt(
                &["--load-limit"],
                "load_limit",
                Int,
                "Thread load % above which threads may move (dynamic)",
            ),
            opt(
                &["--core-limit"],
                "core_limit",
                Int,
                "Core busy % at which a core is full (dynamic)",
            ),
            opt(
                &["--core-busy"],
                "core_busy",
                Int,
                "Core busy % at which threads start moving (dynamic)",
            ),
            opt(
                &["--mappings"],
                "mappings",
                Str,
                "Comma-separated thread:core mappings (static)",
            ),
        ],
        Nothing,
    ),
    m(
        "framework_get_scheduler",
        "Display currently set scheduler and its properties",
        &[],
        Dict,
    ),
    m(
        "scheduler_set_options",
        "Set scheduler options",
        &[
            opt(
                &["-i", "--isolated-core-mask"],
                "isolated_core_mask",
                Str,
                "Cores excluded from scheduling",
            ),
            opt(
                &["-s", "--scheduling-core"],
                "scheduling_core",
                Int,
                "Core the scheduler runs on",
            ),
        ],
        Nothing,
    ),
    m(
        "framework_get_subsystems",
        "Print subsystems array in initialization order",
        &[],
        Dict,
    ),
    m(
        "framework_get_config",
        "Print subsystem configuration",
        &[pos("name", Str, "Name of the subsystem to query")],
        Dict,
    ),
    m(
        "thread_get_stats",
        "Display current statistics of all the threads",
        &[],
        Dict,
    ),
    m(
        "thread_get_pollers",
        "Display current pollers of all the threads",
        &[],
        Dict,
    ),
    m(
        "thread_get_io_channels",
        "Display current IO channels of all the threads",
        &[],
        Dict,
    ),
    m(
        "thread_set_cpumask",
        "Set the cpumask of a thread",
        &[
            req(&["-i", "--id"], "id", Int, "ID of the thread to move"),
            req(
                &["-m", "--cpumask"],
                "cpumask",
                Str,
                "CPU mask of cores the thread may run on",
            ),
        ],
        Nothing,
    ),
    Method {
        name: "save_config",
        help: "Write the live configuration of all subsystems to stdout",
        args: &[
            opt(
                &["-i", "--indent"],
                "indent",
                Int,
                "Indent level, < 0 for compact; default 2",
            ),
            opt(
                &["-s", "--subsystems"],
                "subsystems",
                Str,
                "Comma-separated subsystems (and their dependencies) to save",
            ),
        ],
        print: Nothing,
        run: Run::SaveConfig,
        finish: None,
    },
    Method {
        name: "load_config",
        help: "Configure subsystems from a JSON config read from stdin (or -j)",
        args: &[
            opt(
                &["-i", "--include-aliases"],
                "include_aliases",
                Set(true),
                "Include RPC aliases",
            ),
            opt(
                &["-j", "--json-conf"],
                "json_conf",
                Str,
                "Config file path or JSON text; default stdin",
            ),
        ],
        print: Nothing,
        run: Run::LoadConfig,
        finish: None,
    },
];
