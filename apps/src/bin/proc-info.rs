//! `proc-info`: attach to a running primary as a secondary process and print what it
//! shares, like DPDK's `dpdk-proc-info`: the processes of the group, memzones, rings,
//! mempools and the ethdev ports' statistics and link (read from the ports' shared
//! memzones `ETH_P<id>`, see `pmd::shared`).
//!
//! ```text
//! proc-info [EAL options] -- [--processes] [--memzones] [--rings] [--mempools] [--stats]
//! ```
//!
//! With no selection everything is printed. `--proc-type secondary` is implied (as in
//! DPDK); without `-l`/`--lcores` proc-info runs on lcore 127 only, so it never shares an
//! lcore id with the application. Output is one line per object, `key=value` fields:
//!
//! ```text
//! process pid=4242 role=primary main_lcore=0 lcores=0,1
//! memzone name=RG_PRI_2_SEC addr=0x100000000 iova=0x100000000 len=1408 socket=0 page_size=4K
//! ring name=PRI_2_SEC size=64 capacity=63 used=0 free=63 elem_size=8 prod=Multi cons=Multi
//! mempool name=MSG_POOL size=1023 elt_size=128 cache_size=0 avail=1023 in_use=0 ops=ring_mp_mc
//! port id=0 name=net_null0 driver=net_null mac=02:00:00:00:00:00 link=up speed=10000 mtu=1500
//!   ipackets=123 opackets=123 ibytes=7872 obytes=7872 imissed=0 ierrors=0 oerrors=0 rx_nombuf=0
//! ```
//!
//! Rings are the memzones named `RG_<name>`, mempools those named `MP_<name>` whose
//! header checks out (chunk memzones `MP_<name>_<k>` do not). Ring element sizes of
//! 1..=16 and multiples of 8 up to 128 bytes are inspected; others print `elem_size=?`.
//! Exit status: 0, or 2 if the EAL could not attach (no primary: the message says so).

use std::process::ExitCode;

use ferroplane_apps::mp;

use eal::{Eal, Memzone};
use mempool::Mempool;
use ring::Ring;

struct Sel {
    procs: bool,
    memzones: bool,
    rings: bool,
    mempools: bool,
    stats: bool,
}

fn usage() -> String {
    mp::usage(
        "proc-info [EAL options] -- [--processes] [--memzones] [--rings] [--mempools] [--stats]",
    )
}

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args().collect();
    let eal_part = argv.iter().position(|a| a == "--").unwrap_or(argv.len());
    if argv[eal_part..].iter().any(|a| a == "-h" || a == "--help") {
        println!("{}", usage());
        return ExitCode::SUCCESS;
    }
    if !mp::eal_arg_given(&argv, &["-l", "--lcores", "-c"]) {
        let cpu = eal::lcore::CpuTopology::read(std::path::Path::new("/sys"))
            .ok()
            .and_then(|t| t.online().first().copied())
            .unwrap_or(0);
        argv.splice(1..1, ["--lcores".to_string(), format!("127@{cpu}")]);
    }
    mp::secondary_by_default(&mut argv);
    let (eal, rest) = match mp::init_eal("proc-info", &argv, usage) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut sel = Sel {
        procs: false,
        memzones: false,
        rings: false,
        mempools: false,
        stats: false,
    };
    for a in &rest {
        match a.as_str() {
            "--processes" => sel.procs = true,
            "--memzones" => sel.memzones = true,
            "--rings" => sel.rings = true,
            "--mempools" => sel.mempools = true,
            "--stats" => sel.stats = true,
            other => {
                eprintln!("proc-info: unknown argument '{other}' (see -h)");
                return ExitCode::from(2);
            }
        }
    }
    if !(sel.procs || sel.memzones || sel.rings || sel.mempools || sel.stats) {
        sel = Sel {
            procs: true,
            memzones: true,
            rings: true,
            mempools: true,
            stats: true,
        };
    }
    let zones = eal.memzones().walk();
    if sel.procs {
        let procs = eal.processes();
        println!("== processes ({}) ==", procs.len());
        for p in procs {
            let ids: Vec<String> = p.lcores.iter().map(u32::to_string).collect();
            println!(
                "process pid={} role={} main_lcore={} lcores={}",
                p.pid,
                if p.role == eal::args::ProcType::Primary {
                    "primary"
                } else {
                    "secondary"
                },
                p.main_lcore,
                ids.join(",")
            );
        }
    }
    if sel.memzones {
        println!("== memzones ({}) ==", zones.len());
        for z in &zones {
            println!(
                "memzone name={} addr={} iova={} len={} socket={} page_size={}",
                z.name(),
                z.addr(),
                z.iova(),
                z.len(),
                z.socket(),
                eal::hugepage::format_size(z.page_size())
            );
        }
    }
    if sel.rings {
        let rings: Vec<String> = zones
            .iter()
            .filter_map(|z| z.name().strip_prefix(ring::MZ_PREFIX))
            .map(|n| ring_info(&eal, n))
            .collect();
        println!("== rings ({}) ==", rings.len());
        for r in rings {
            println!("{r}");
        }
    }
    if sel.mempools {
        let pools: Vec<String> = zones.iter().filter_map(|z| mempool_info(&eal, z)).collect();
        println!("== mempools ({}) ==", pools.len());
        for p in pools {
            println!("{p}");
        }
    }
    if sel.stats {
        let ports: Vec<u16> = zones
            .iter()
            .filter_map(|z| z.name().strip_prefix("ETH_P")?.parse().ok())
            .collect();
        println!("== ports ({}) ==", ports.len());
        for port in ports {
            match pmd::shared::read_port_stats(&eal, port) {
                Ok(p) => print_port(&p),
                Err(e) => println!("port id={port} error=\"{e}\""),
            }
        }
    }
    ExitCode::SUCCESS
}

fn print_port(p: &pmd::shared::SharedPortInfo) {
    let s = &p.stats;
    println!(
        "port id={} name={} driver={} mac={} link={} speed={} mtu={}",
        p.port_id,
        p.name,
        p.driver,
        pmd::fmt_mac(&p.mac),
        if p.link.up { "up" } else { "down" },
        p.link.speed_mbps,
        p.mtu
    );
    println!(
        "  ipackets={} opackets={} ibytes={} obytes={} imissed={} ierrors={} oerrors={} rx_nombuf={}",
        s.ipackets, s.opackets, s.ibytes, s.obytes, s.imissed, s.ierrors, s.oerrors, s.rx_nombuf
    );
    for (q, n) in s.q_ipackets.iter().enumerate() {
        println!(
            "  rxq={q} packets={n} bytes={}",
            s.q_ibytes.get(q).copied().unwrap_or(0)
        );
    }
    for (q, n) in s.q_opackets.iter().enumerate() {
        println!(
            "  txq={q} packets={n} bytes={}",
            s.q_obytes.get(q).copied().unwrap_or(0)
        );
    }
}

fn ring_line<T: Copy>(eal: &Eal, name: &str) -> Result<String, ring::Error> {
    // SAFETY: proc-info only reads the ring's geometry and counters; it never enqueues
    // or dequeues, so neither the element type nor a single-side contract is exercised
    // (T only has the right size, which `lookup` checks).
    let r = unsafe { Ring::<T>::lookup(eal, name) }?;
    Ok(format!(
        "ring name={} size={} capacity={} used={} free={} elem_size={} prod={:?} cons={:?}",
        r.name(),
        r.size(),
        r.capacity(),
        r.count(),
        r.free_count(),
        std::mem::size_of::<T>(),
        r.prod_sync(),
        r.cons_sync()
    ))
}

fn ring_info(eal: &Eal, name: &str) -> String {
    let r = match ring_line::<u64>(eal, name) {
        Err(ring::Error::ElemSizeMismatch { found, .. }) => by_size(eal, name, found),
        r => r,
    };
    match r {
        Ok(s) => s,
        Err(ring::Error::ElemSizeMismatch { found, .. }) => {
            format!("ring name={name} elem_size={found} (size not inspectable)")
        }
        Err(e) => format!("ring name={name} error=\"{e}\""),
    }
}

fn by_size(eal: &Eal, name: &str, size: u32) -> Result<String, ring::Error> {
    match size {
        1 => ring_line::<[u8; 1]>(eal, name),
        2 => ring_line::<[u8; 2]>(eal, name),
        3 => ring_line::<[u8; 3]>(eal, name),
        4 => ring_line::<[u8; 4]>(eal, name),
        5 => ring_line::<[u8; 5]>(eal, name),
        6 => ring_line::<[u8; 6]>(eal, name),
        7 => ring_line::<[u8; 7]>(eal, name),
        8 => ring_line::<[u8; 8]>(eal, name),
        9 => ring_line::<[u8; 9]>(eal, name),
        10 => ring_line::<[u8; 10]>(eal, name),
        11 => ring_line::<[u8; 11]>(eal, name),
        12 => ring_line::<[u8; 12]>(eal, name),
        13 => ring_line::<[u8; 13]>(eal, name),
        14 => ring_line::<[u8; 14]>(eal, name),
        15 => ring_line::<[u8; 15]>(eal, name),
        16 => ring_line::<[u8; 16]>(eal, name),
        24 => ring_line::<[u8; 24]>(eal, name),
        32 => ring_line::<[u8; 32]>(eal, name),
        40 => ring_line::<[u8; 40]>(eal, name),
        48 => ring_line::<[u8; 48]>(eal, name),
        56 => ring_line::<[u8; 56]>(eal, name),
        64 => ring_line::<[u8; 64]>(eal, name),
        72 => ring_line::<[u8; 72]>(eal, name),
        80 => ring_line::<[u8; 80]>(eal, name),
        88 => ring_line::<[u8; 88]>(eal, name),
        96 => ring_line::<[u8; 96]>(eal, name),
        104 => ring_line::<[u8; 104]>(eal, name),
        112 => ring_line::<[u8; 112]>(eal, name),
        120 => ring_line::<[u8; 120]>(eal, name),
        128 => ring_line::<[u8; 128]>(eal, name),
        _ => ring_line::<u64>(eal, name),
    }
}

fn mempool_info(eal: &Eal, z: &Memzone) -> Option<String> {
    let name = z.name().strip_prefix("MP_")?;
    if mempool::header_mz_name(name) != z.name() {
        return None;
    }
    // SAFETY: proc-info never gets or puts objects, so the single-thread backend
    // contract of `lookup_unchecked` is not exercised; it only reads counters.
    let p = unsafe { Mempool::lookup_unchecked(eal, name) }.ok()?;
    Some(format!(
        "mempool name={} size={} elt_size={} cache_size={} avail={} in_use={} ops={}",
        p.name(),
        p.size(),
        p.elt_size(),
        p.cache_size(),
        p.avail_count(),
        p.in_use_count(),
        p.ops_name()
    ))
}
