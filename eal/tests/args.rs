//! Table tests of EAL command-line parsing: good inputs with their parsed values, bad
//! inputs with the error variant and the argument it names, and odd strings that must give
//! an error (never a panic).

use std::path::PathBuf;

use eal::args::{usage, EalArgs, IovaMode, ProcType};
use eal::lcore::{CpuInfo, CpuTopology};
use eal::log::Level;
use eal::pci::PciAddr;
use eal::Error;

fn argv(s: &[&str]) -> Vec<String> {
    std::iter::once("prog")
        .chain(s.iter().copied())
        .map(String::from)
        .collect()
}

fn parse(s: &[&str]) -> eal::Result<(EalArgs, Vec<String>)> {
    EalArgs::parse(&argv(s))
}

fn ok(s: &[&str]) -> EalArgs {
    match parse(s) {
        Ok((a, _)) => a,
        Err(e) => panic!("{s:?} refused: {e}"),
    }
}

fn pci(s: &str) -> PciAddr {
    s.parse().unwrap()
}

#[test]
fn defaults() {
    let (a, app) = parse(&[]).unwrap();
    assert_eq!(a, EalArgs::default());
    assert!(app.is_empty());
    assert_eq!(a.file_prefix, "ferroplane");
    assert_eq!(a.proc_type, ProcType::Primary);
    assert_eq!(a.log_level, Level::Info);
    assert!(a.lcores.is_empty() && a.main_lcore.is_none() && !a.no_huge && !a.no_pci);
    // No argv at all (not even a program name) is the defaults too.
    assert_eq!(EalArgs::parse(&[]).unwrap().0, EalArgs::default());
}

/// Good inputs: each row is an argv and a check of the parsed value.
#[test]
fn good_table() {
    type Check = fn(&EalArgs) -> bool;
    let rows: &[(&[&str], Check)] = &[
        (&["-l", "0-3,5"], |a| {
            a.lcores == [(0, 0), (1, 1), (2, 2), (3, 3), (5, 5)]
        }),
        (&["-l0-1"], |a| a.lcores == [(0, 0), (1, 1)]),
        (&["--lcores=2,0"], |a| a.lcores == [(0, 0), (2, 2)]),
        (&["--lcores", "7"], |a| a.lcores == [(7, 7)]),
        (&["-l", "(0-3)@1"], |a| {
            a.lcores == [(0, 1), (1, 1), (2, 1), (3, 1)]
        }),
        (&["-l", "4@0,(5,6)@(1),9"], |a| {
            a.lcores == [(4, 0), (5, 1), (6, 1), (9, 9)]
        }),
        (&["-l", "10-11@1"], |a| a.lcores == [(10, 1), (11, 1)]),
        (&["-l", "127"], |a| a.lcores == [(127, 127)]),
        (&["-c", "0x5"], |a| a.lcores == [(0, 0), (2, 2)]),
        (&["-c", "3"], |a| a.lcores == [(0, 0), (1, 1)]),
        (&["-cF0"], |a| a.lcores == [(4, 4), (5, 5), (6, 6), (7, 7)]),
        (&["-c", "0X1"], |a| a.lcores == [(0, 0)]),
        (&["-l", "0-3", "--main-lcore", "2"], |a| {
            a.main_lcore == Some(2)
        }),
        (&["--main-lcore=5"], |a| {
            a.main_lcore == Some(5) && a.lcores.is_empty()
        }),
        (&["-m", "512"], |a| a.mem_mb == Some(512)),
        (&["-m1024"], |a| a.mem_mb == Some(1024)),
        (&["-n", "4"], |a| a.mem_channels == Some(4)),
        (&["--socket-mem", "512,512"], |a| {
            a.socket_mem == Some(vec![512, 512])
        }),
        (&["--socket-mem=0,256"], |a| {
            a.socket_mem == Some(vec![0, 256])
        }),
        (&["--huge-dir", "/mnt/huge"], |a| {
            a.huge_dir == Some(PathBuf::from("/mnt/huge"))
        }),
        (&["--no-huge", "-m", "64"], |a| {
            a.no_huge && a.mem_mb == Some(64)
        }),
        (&["--file-prefix", "fp_test-1"], |a| {
            a.file_prefix == "fp_test-1"
        }),
        (&["--file-prefix=x"], |a| a.file_prefix == "x"),
        (&["--proc-type", "secondary"], |a| {
            a.proc_type == ProcType::Secondary
        }),
        (&["--proc-type=auto"], |a| a.proc_type == ProcType::Auto),
        (&["--proc-type=primary"], |a| {
            a.proc_type == ProcType::Primary
        }),
        (&["-a", "0000:00:02.0"], |a| {
            a.allow == [pci("0000:00:02.0")] && a.allow_args.is_empty()
        }),
        (&["-a00:03.1"], |a| a.allow == [pci("0000:00:03.1")]),
        (
            &["--allow", "0000:01:00.0,rxq=4,txq=4", "--allow=02:00.0"],
            |a| {
                a.allow == [pci("0000:01:00.0"), pci("0000:02:00.0")]
                    && a.allow_args == [(pci("0000:01:00.0"), "rxq=4,txq=4".to_string())]
                    && a.device_args(&pci("01:00.0")) == Some("rxq=4,txq=4")
                    && a.device_args(&pci("02:00.0")).is_none()
            },
        ),
        (&["-b", "0000:00:04.0", "--block=00:05.0"], |a| {
            a.block == [pci("0000:00:04.0"), pci("0000:00:05.0")]
        }),
        (&["--vdev", "net_tap0,iface=tap0", "--vdev=net_null"], |a| {
            a.vdevs == ["net_tap0,iface=tap0", "net_null"]
        }),
        (&["--no-pci"], |a| a.no_pci && a.pci_filter().no_pci),
        (&["--iova-mode", "va"], |a| {
            a.iova_mode == Some(IovaMode::Va)
        }),
        (&["--iova-mode=pa"], |a| a.iova_mode == Some(IovaMode::Pa)),
        (&["--log-level", "8"], |a| a.log_level == Level::Debug),
        (&["--log-level=1"], |a| a.log_level == Level::Emergency),
        (&["--log-level", "warning"], |a| {
            a.log_level == Level::Warning
        }),
        (&["--log-level", "DEBUG"], |a| a.log_level == Level::Debug),
        (&["--log-level", "lib.eal:debug"], |a| {
            a.log_level == Level::Debug
        }),
        (&["--log-level=pmd.net.*:5"], |a| {
            a.log_level == Level::Warning
        }),
        (&["--log-level", "eal,4"], |a| a.log_level == Level::Error),
        (&["--log-level", "info", "--log-level", "eal:notice"], |a| {
            a.log_level == Level::Notice
        }),
        (&["--no-huge", "--no-huge"], |a| a.no_huge),
        // A value may start with a single '-' (it is then checked as a value).
        (&["--huge-dir", "-weird-dir"], |a| {
            a.huge_dir == Some(PathBuf::from("-weird-dir"))
        }),
        (&["--vdev", "net_ring0,nodeaction=r1:0:CREATE"], |a| {
            a.vdevs.len() == 1
        }),
    ];
    for (args, check) in rows {
        let a = ok(args);
        assert!(check(&a), "{args:?} parsed to {a:?}");
    }
}

#[test]
fn app_args_after_double_dash() {
    let (a, app) = parse(&["-l", "0-1", "--", "-p", "0x3", "--", "x"]).unwrap();
    assert_eq!(a.lcores, [(0, 0), (1, 1)]);
    assert_eq!(app, ["-p", "0x3", "--", "x"]);
    let (_, app) = parse(&["--"]).unwrap();
    assert!(app.is_empty());
    // Unknown options after "--" are the application's business.
    let (_, app) = parse(&["--", "--bogus", "é"]).unwrap();
    assert_eq!(app, ["--bogus", "é"]);
}

#[test]
fn help() {
    for h in [
        &["-h"][..],
        &["--help"],
        &["-l", "0", "-h"],
        &["-h", "--bogus"],
    ] {
        assert!(matches!(parse(h), Err(Error::HelpRequested)), "{h:?}");
    }
    let u = usage();
    for opt in [
        "-l",
        "-c",
        "--main-lcore",
        "-m",
        "--socket-mem",
        "--huge-dir",
        "--no-huge",
        "--file-prefix",
        "--proc-type",
        "--allow",
        "--block",
        "--vdev",
        "--no-pci",
        "--iova-mode",
        "--log-level",
        "--help",
    ] {
        assert!(u.contains(opt), "usage lacks {opt}");
    }
}

#[derive(Debug)]
enum Want {
    Unknown(&'static str),
    Missing(&'static str),
    Bad(&'static str),
}

fn check_err(args: &[&str], want: &Want) {
    let got = parse(args);
    match (want, &got) {
        (Want::Unknown(w), Err(Error::UnknownArg(a))) if a == w => {}
        (Want::Missing(w), Err(Error::MissingValue(a))) if a == w => {}
        (Want::Bad(w), Err(Error::BadArg { arg, .. })) if arg == w => {}
        _ => panic!("{args:?}: wanted {want:?}, got {got:?}"),
    }
    // Every refusal renders a message naming the argument.
    let msg = got.unwrap_err().to_string();
    let name = match want {
        Want::Unknown(w) | Want::Missing(w) | Want::Bad(w) => *w,
    };
    assert!(msg.contains(name), "message {msg:?} does not name {name}");
}

/// Bad values of one option: `[option, value]` is refused as a bad `option`.
const BAD_VALUES: &[(&str, &[&str])] = &[
    (
        "-l",
        &[
            "",
            "3-1",
            "0,0",
            "0-2,1",
            "128",
            "99999999999999999999999",
            "a",
            "1,",
            "-1",
            "(0-1)",
            "(0-1@1",
            "0@(1,2)",
            "0@",
            "@1",
            "0@1024",
            "0@1@2",
            "٣",
        ],
    ),
    (
        "-c",
        &[
            "",
            "0",
            "0x",
            "xyz",
            "0x1_0",
            "0x100000000000000000000000000000000",
        ],
    ),
    ("--main-lcore", &["x", "128", "-1"]),
    (
        "-m",
        &[
            "0",
            "-5",
            "1.5",
            "1G",
            "18446744073709551616",
            "1073741825",
            " 5",
        ],
    ),
    ("-n", &["0", "x"]),
    ("--socket-mem", &["", "512,", ",512", "0,0", "a,b"]),
    ("--huge-dir", &[""]),
    ("--file-prefix", &["", "../x", "a b", "préfixe", "a.b"]),
    ("--proc-type", &["Primary", "", "tertiary"]),
    ("-a", &["0000:00:02", "", ",x=1", "0000:00:02.0,"]),
    ("--allow", &["0000:00:20.0"]),
    ("-b", &["0000:00:02.0,x=1"]),
    ("--block", &["zz:00.0"]),
    ("--vdev", &["", ",iface=x", "net tap"]),
    ("--iova-mode", &["PA", "dc"]),
    ("--log-level", &["0", "9", "loud", ":debug", "eal:", ""]),
];

/// Bad inputs: each row is an argv and the error variant with the argument it names.
#[test]
fn bad_table() {
    use Want::*;
    let rows: &[(&[&str], Want)] = &[
        // unknown
        (&["--bogus"], Unknown("--bogus")),
        (&["--bogus=1"], Unknown("--bogus=1")),
        (&["-z"], Unknown("-z")),
        (&["-"], Unknown("-")),
        (&["stray"], Unknown("stray")),
        (&["-l", "0", "stray", "--"], Unknown("stray")),
        (&["-hx"], Unknown("-hx")),
        (&["--LCORES=0"], Unknown("--LCORES=0")),
        (&["--lcore=0"], Unknown("--lcore=0")),
        (&["---l"], Unknown("---l")),
        (&["-é"], Unknown("-é")),
        (&["--ñ"], Unknown("--ñ")),
        (&[""], Unknown("")),
        // missing values
        (&["-l"], Missing("-l")),
        (&["--lcores"], Missing("--lcores")),
        (&["-m"], Missing("-m")),
        (&["-m", "--no-huge"], Missing("-m")),
        (&["--file-prefix", "--"], Missing("--file-prefix")),
        (&["--socket-mem"], Missing("--socket-mem")),
        (&["-a"], Missing("-a")),
        (&["--log-level"], Missing("--log-level")),
        // bad values in other forms (plain `[option, value]` pairs are in `BAD_VALUES`)
        (&["-l="], Bad("-l")),
        (&["-l", "0", "-l", "1"], Bad("-l")),
        (&["-l", "0", "--lcores", "1"], Bad("--lcores")),
        (&["-l", "0", "-c", "1"], Bad("-c")),
        (&["-c", "1", "-l", "0"], Bad("-c")),
        (&["-l", "0-1", "--main-lcore", "2"], Bad("--main-lcore")),
        (&["--main-lcore", "3", "-c", "0x3"], Bad("--main-lcore")),
        (&["-m", "1", "-m", "2"], Bad("-m")),
        (
            &[
                "--socket-mem",
                "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1",
            ],
            Bad("--socket-mem"),
        ),
        (&["-m", "512", "--socket-mem", "512"], Bad("--socket-mem")),
        (&["--socket-mem", "512", "-m", "512"], Bad("--socket-mem")),
        (&["--no-huge", "--socket-mem", "512"], Bad("--socket-mem")),
        (&["--huge-dir=/mnt/h", "--no-huge"], Bad("--huge-dir")),
        (&["--no-huge", "--huge-dir", "/mnt/h"], Bad("--huge-dir")),
        (&["--no-huge=1"], Bad("--no-huge")),
        (&["--no-pci=yes"], Bad("--no-pci")),
        (&["--help=1"], Bad("--help")),
        (&["--file-prefix=a/b"], Bad("--file-prefix")),
        (
            &[
                "--file-prefix",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            ],
            Bad("--file-prefix"),
        ),
        (
            &["--file-prefix", "a", "--file-prefix", "b"],
            Bad("--file-prefix"),
        ),
        (&["-a", "0000:00:02.0", "-a", "00:02.0"], Bad("-a")),
        (&["-a", "0000:00:02.0", "-b", "0000:00:03.0"], Bad("-b")),
        (&["-b", "00:02.0", "-b", "00:02.0"], Bad("-b")),
        (&["--iova-mode=va", "--iova-mode=pa"], Bad("--iova-mode")),
        (
            &["--log-level", "99999999999999999999999"],
            Bad("--log-level"),
        ),
    ];
    for (args, want) in rows {
        check_err(args, want);
    }
    for &(opt, values) in BAD_VALUES {
        for &v in values {
            check_err(&[opt, v], &Want::Bad(opt));
        }
    }
}

/// Odd strings in every value position and as options: only errors (or, where the string
/// happens to be valid, a value), never a panic.
#[test]
fn odd_strings_never_panic() {
    let odd = [
        "",
        " ",
        "-",
        "--",
        "=",
        "==",
        ",",
        ",,",
        "@",
        "(",
        ")",
        "()",
        "(,)",
        "((",
        "0x",
        "0-",
        "-0",
        "0--1",
        "1-0",
        "4294967295",
        "4294967296",
        "18446744073709551615",
        "340282366920938463463374607431768211456",
        "0x0000000000000000000000000000000000000001",
        "é",
        "٣",
        "日本",
        "🦀",
        "\u{0}",
        "\t0",
        "0\n",
        "0:0:0.0",
        "ffffffff:ff:1f.7",
        "ffffffffff:00:00.0",
        "0000:00:02.0,",
        "0000:00:02.0,,",
        "a,b,c",
        "0@0@0",
        "(0-127)@1023",
        "(0-128)@0",
        "0-127",
        "debug:debug:debug",
        "*:*",
        &"9".repeat(500),
        &"(".repeat(100),
        &",".repeat(100),
    ];
    let opts = [
        "-l",
        "--lcores",
        "-c",
        "--main-lcore",
        "-m",
        "-n",
        "--socket-mem",
        "--huge-dir",
        "--file-prefix",
        "--proc-type",
        "-a",
        "--allow",
        "-b",
        "--block",
        "--vdev",
        "--iova-mode",
        "--log-level",
    ];
    let mut parsed = 0;
    let mut refused = 0;
    for o in opts {
        for v in odd {
            // Separate value, then `--opt=value` / glued `-ovalue`.
            let glued = if o.starts_with("--") {
                format!("{o}={v}")
            } else {
                format!("{o}{v}")
            };
            for r in [parse(&[o, v]), parse(&[glued.as_str()])] {
                match r {
                    Ok(_) => parsed += 1,
                    Err(e) => {
                        // The message renders.
                        assert!(!e.to_string().is_empty());
                        refused += 1;
                    }
                }
            }
        }
    }
    for v in odd {
        let r = parse(&[v]);
        // Only "--" (end of options) is acceptable as a bare word.
        assert_eq!(r.is_ok(), v == "--", "{v:?} gave {r:?}");
    }
    // Some odd strings are valid values ("0-127" for -l, "0:0:0.0" for -a); most are not.
    assert!(
        parsed > 0 && refused > parsed,
        "parsed {parsed}, refused {refused}"
    );
}

fn topo_2cpu_2node() -> CpuTopology {
    CpuTopology::from_cpus(vec![
        CpuInfo {
            cpu: 0,
            core_id: 0,
            package_id: 0,
            numa_node: 0,
        },
        CpuInfo {
            cpu: 1,
            core_id: 1,
            package_id: 0,
            numa_node: 0,
        },
        CpuInfo {
            cpu: 4,
            core_id: 0,
            package_id: 1,
            numa_node: 1,
        },
    ])
}

#[test]
fn validate_against_topology() {
    let t = topo_2cpu_2node();
    let v = |s: &[&str]| ok(s).validate(&t);
    assert!(v(&[]).is_ok());
    assert!(v(&["-l", "0-1,4"]).is_ok());
    assert!(v(&["-l", "(0-9)@4"]).is_ok());
    assert!(v(&["--socket-mem", "64,64"]).is_ok());
    assert!(v(&["--socket-mem", "64,64,0,0"]).is_ok());
    assert!(v(&["--main-lcore", "4"]).is_ok());
    for (args, name) in [
        (&["-l", "0-2"][..], "-l"),
        (&["-l", "0@3"], "-l"),
        (&["-c", "0x3f"], "-l"),
        (&["--main-lcore", "2"], "--main-lcore"),
        (&["--socket-mem", "0,0,64"], "--socket-mem"),
    ] {
        match v(args) {
            Err(Error::BadArg { arg, .. }) => assert_eq!(arg, name, "{args:?}"),
            other => panic!("{args:?}: {other:?}"),
        }
    }
}

#[test]
fn resolve_lcores_defaults() {
    let t = topo_2cpu_2node();
    let (l, m) = ok(&[]).resolve_lcores(&t).unwrap();
    assert_eq!(l, [(0, 0), (1, 1), (4, 4)]);
    assert_eq!(m, 0);
    let (l, m) = ok(&["-l", "(2-3)@1,0", "--main-lcore", "3"])
        .resolve_lcores(&t)
        .unwrap();
    assert_eq!(l, [(0, 0), (2, 1), (3, 1)]);
    assert_eq!(m, 3);
    let (_, m) = ok(&["--main-lcore", "4"]).resolve_lcores(&t).unwrap();
    assert_eq!(m, 4);
    assert!(ok(&["-l", "5"]).resolve_lcores(&t).is_err());
}

#[test]
fn real_machine_validates_default_and_this_cpu() {
    let t = CpuTopology::read(std::path::Path::new("/sys")).unwrap();
    let a = ok(&[]);
    a.validate(&t).unwrap();
    let cpu = t.online()[0];
    let l = format!("{cpu}");
    ok(&["-l", &l]).validate(&t).unwrap();
    // A cpu number far beyond this machine's.
    assert!(ok(&["-l", "0@1023"]).validate(&t).is_err());
}
