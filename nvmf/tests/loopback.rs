//! The target and the initiator in one process on 127.0.0.1 (real reactors, real
//! sockets, one framework run, steps in order):
//!
//! 1. Our initiator (`bdev_nvme_attach_controller`'s TCP transport) attaches to our
//!    target with header and data digests on: bdev `Nvme0n1` has the malloc bdev's
//!    size; writes of 4 KiB (in-capsule) and 64 KiB (R2T) read back through it and
//!    equal the malloc bdev's bytes read directly; write zeroes and unmap read back
//!    as zeroes.
//! 2. A host NQN not on the allow list is refused at Connect (status 1/0x84).
//! 3. Bad input: an I/O command before Connect, a Connect for an I/O queue of a
//!    controller that does not exist, oversized and malformed PDU headers, a wrong
//!    header digest, H2CData for no R2T, a host vanishing after its R2T, and a fuzz
//!    of random PDU headers: each such connection is closed, the target keeps
//!    serving (a new connection completes ICReq/Connect, the initiator's I/O still
//!    works) and no command is left holding a buffer.
//! 4. Reconnect: the subsystem is deleted (its controllers and connections go) and
//!    made again; the initiator reconnects and I/O works again.
//! 5. Namespace notices: a namespace added to the subsystem completes a raw host's
//!    Asynchronous Event Request with Namespace Attribute Changed, the Changed
//!    Namespace List names it (kept with RAE, cleared without), a second change is
//!    not announced before the list is read; our initiator registers `Nvme0n2`, whose
//!    I/O reaches the new malloc bdev, and unregisters it when the namespace goes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bdev::modules::malloc::{self, MallocOpts};
use bdev::modules::nvme_attach::{AttachParams, NvmeTransport};
use bdev::{BdevIoChannel, Descriptor, IoStatus};
use framework::{Framework, ThreadHandle};
use nvme::spec::Sqe;
use nvmf::codec::encode;
use nvmf::host::setup::{connect, Endpoint, Queue};
use nvmf::host::TcpTransport;
use nvmf::spec::fabrics::{set_sqe_sgl, SGL_TRANSPORT};
use nvmf::spec::pdu::{CapsuleCmd, CommonHeader, H2cData, IcReq, PduType};
use nvmf::target::subsys::{Subsys, SubsysOpts};
use nvmf::target::{tgt, TransportOpts};

const NQN: &str = "nqn.2016-06.io.ferroplane:loop1";
const HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const BAD_HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000bad";
const BLOCKS: u64 = 8192;
const BS: usize = 512;

fn eal() -> Option<eal::Eal> {
    let argv: Vec<String> = [
        "nvmftest",
        "-l",
        "0-1",
        "--no-huge",
        "-m",
        "64",
        "--no-pci",
        "--file-prefix",
        &format!("nvmft{}", std::process::id()),
        "--log-level",
        "5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    match eal::Eal::init(&argv) {
        Ok((e, _)) => Some(e),
        Err(e) => {
            testkit::skip(
                "nvmf_loopback",
                testkit::Need::Kernel,
                format!("EAL init failed: {e}"),
            );
            None
        }
    }
}

/// Run `f` on the app thread and wait for what it sends back.
fn on<R: Send + 'static>(t: &ThreadHandle, f: impl FnOnce(mpsc::Sender<R>) + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    t.send_msg(move || f(tx)).expect("send to the app thread");
    rx.recv_timeout(Duration::from_secs(60))
        .expect("app thread answered")
}

type Io = Arc<Mutex<Option<(Descriptor, BdevIoChannel)>>>;

fn open(t: &ThreadHandle, name: &str) -> Io {
    let name = name.to_string();
    on(t, move |tx| {
        let d = bdev::open(&name, true, |_| {}).expect("open bdev");
        let c = d.get_io_channel().expect("channel");
        tx.send(Arc::new(Mutex::new(Some((d, c))))).unwrap();
    })
}

fn close(t: &ThreadHandle, io: &Io) {
    let io = io.clone();
    on(t, move |tx: mpsc::Sender<()>| {
        if let Some((d, c)) = io.lock().unwrap().take() {
            drop(c);
            drop(d);
        }
        tx.send(()).unwrap();
    })
}

fn write(t: &ThreadHandle, io: &Io, off: u64, data: Vec<u8>) -> IoStatus {
    let io = io.clone();
    on(t, move |tx| {
        let g = io.lock().unwrap();
        let (d, c) = g.as_ref().unwrap();
        let n = (data.len() / BS) as u64;
        let tx2 = tx.clone();
        if let Err(e) = d.write_buf(c, data, off, n, move |s, _| tx.send(s).unwrap()) {
            eprintln!("write not submitted: {e}");
            tx2.send(IoStatus::Failed).unwrap();
        }
    })
}

fn read(t: &ThreadHandle, io: &Io, off: u64, n: u64) -> (IoStatus, Vec<u8>) {
    let io = io.clone();
    on(t, move |tx| {
        let g = io.lock().unwrap();
        let (d, c) = g.as_ref().unwrap();
        let tx2 = tx.clone();
        if let Err(e) = d.read_buf(c, vec![0xee; n as usize * BS], off, n, move |s, b| {
            tx.send((s, b)).unwrap()
        }) {
            eprintln!("read not submitted: {e}");
            tx2.send((IoStatus::Failed, Vec::new())).unwrap();
        }
    })
}

fn zeroes(t: &ThreadHandle, io: &Io, off: u64, n: u64, unmap: bool) -> IoStatus {
    let io = io.clone();
    on(t, move |tx| {
        let g = io.lock().unwrap();
        let (d, c) = g.as_ref().unwrap();
        let cb = move |s| tx.send(s).unwrap();
        let r = if unmap {
            d.unmap(c, off, n, cb)
        } else {
            d.write_zeroes(c, off, n, cb)
        };
        r.expect("submit");
    })
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

fn attach(t: &ThreadHandle, port: u16, digests: bool) -> Result<Vec<String>, String> {
    let p = AttachParams {
        name: "Nvme0".into(),
        trtype: "TCP".into(),
        traddr: "127.0.0.1".into(),
        adrfam: Some("IPv4".into()),
        trsvcid: Some(port.to_string()),
        subnqn: Some(NQN.into()),
        hostnqn: Some(HOST.into()),
        hostaddr: None,
        hostsvcid: None,
        hdgst: digests,
        ddgst: digests,
        num_io_queues: 2,
        ctrlr_loss_timeout_sec: -1,
        reconnect_delay_sec: 1,
        fast_io_fail_timeout_sec: 0,
        multipath: None,
    };
    on(t, move |tx| {
        TcpTransport.attach(
            p,
            Box::new(move |r| tx.send(r.map_err(|e| format!("{e:?}"))).unwrap()),
        )
    })
}

fn setup_subsystem(t: &ThreadHandle, addr: SocketAddr) {
    on(t, move |tx: mpsc::Sender<()>| {
        let s = Subsys::new(SubsysOpts {
            nqn: NQN.into(),
            serial_number: "LOOP0001".into(),
            model_number: "loopback".into(),
            allow_any_host: false,
            max_namespaces: 4,
        })
        .unwrap();
        let s = tgt().add_subsystem(s).unwrap();
        s.add_host(HOST).unwrap();
        s.add_ns("Malloc0", 1, None).unwrap();
        nvmf::target::listen(&s, addr).unwrap();
        tx.send(()).unwrap();
    })
}

fn ep(port: u16, host: &str) -> Endpoint {
    Endpoint {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        subnqn: NQN.into(),
        hostnqn: host.into(),
        hostid: [7; 16],
        hdgst: false,
        ddgst: false,
    }
}

/// Connect queue `qid` of controller `cntlid` (0xffff: a new one) as `host`.
fn queue(port: u16, host: &str, qid: u16, cntlid: u16) -> nvmf::Result<Queue> {
    let icd = if qid == 0 { 8192 } else { 4096 };
    connect(
        &ep(port, host),
        qid,
        cntlid,
        31,
        0,
        icd,
        Duration::from_secs(10),
    )
}

/// Whether the target closes `s` (EOF or reset, after an optional TermReq) in time.
fn closed_by_target(mut s: TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 4096];
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
    false
}

fn raw(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn icreq_bytes(dgst: u8) -> Vec<u8> {
    let ic = IcReq {
        ch: CommonHeader::new(PduType::IcReq),
        pfv: 0,
        hpda: 0,
        dgst,
        maxr2t: 0,
        rsvd: [0; 112],
    };
    let mut b = Vec::new();
    encode(&mut b, &ic, &[], false, false);
    b
}

/// A raw connection past ICReq/ICResp.
fn raw_ready(port: u16, dgst: u8) -> TcpStream {
    let mut s = raw(port);
    s.write_all(&icreq_bytes(dgst)).unwrap();
    let mut r = [0u8; 128];
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.read_exact(&mut r).unwrap();
    assert_eq!(r[0], PduType::IcResp as u8);
    s
}

fn target_serves(port: u16) {
    let q = queue(port, HOST, 0, 0xffff);
    assert!(q.is_ok(), "target stopped serving: {:?}", q.err());
}

fn wait_live_zero() -> u64 {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let n = tgt().stats().live_cmds;
        if n == 0 || Instant::now() > end {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn scenario(fw: Framework, port: u16) {
    let t = fw.app_thread();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    on(&t, move |tx: mpsc::Sender<()>| {
        malloc::create(MallocOpts {
            name: "Malloc0".into(),
            num_blocks: BLOCKS,
            block_size: BS as u32,
            ..Default::default()
        })
        .unwrap();
        tgt().create_transport(TransportOpts::default()).unwrap();
        nvmf::subsystem::start_poll_groups(move |r| {
            r.unwrap();
            tx.send(()).unwrap()
        });
    });
    setup_subsystem(&t, addr);

    // 1. Our initiator with digests.
    let names = attach(&t, port, true).expect("attach");
    assert_eq!(names, vec!["Nvme0n1".to_string()]);
    let b = bdev::bdev::get("Nvme0n1").unwrap();
    assert_eq!(
        (b.info().num_blocks, b.info().block_size),
        (BLOCKS, BS as u32)
    );
    let nv = open(&t, "Nvme0n1");
    let small = pattern(1, 4096);
    let big = pattern(2, 65536);
    assert_eq!(write(&t, &nv, 8, small.clone()), IoStatus::Success);
    assert_eq!(write(&t, &nv, 1024, big.clone()), IoStatus::Success);
    assert_eq!(read(&t, &nv, 8, 8), (IoStatus::Success, small.clone()));
    assert_eq!(read(&t, &nv, 1024, 128), (IoStatus::Success, big.clone()));
    let m = open(&t, "Malloc0");
    assert_eq!(
        read(&t, &m, 8, 8).1,
        small,
        "the malloc bdev holds the initiator's bytes"
    );
    assert_eq!(read(&t, &m, 1024, 128).1, big);
    assert_eq!(zeroes(&t, &nv, 8, 4, false), IoStatus::Success);
    assert_eq!(zeroes(&t, &nv, 1024, 16, true), IoStatus::Success);
    assert_eq!(read(&t, &m, 8, 4).1, vec![0u8; 4 * BS], "write zeroes");
    assert_eq!(read(&t, &m, 1024, 16).1, vec![0u8; 16 * BS], "unmap");
    assert_eq!(
        read(&t, &nv, 12, 4).1,
        small[4 * BS..8 * BS].to_vec(),
        "blocks past the zeroed range"
    );

    // 2. Allow list.
    let r = queue(port, BAD_HOST, 0, 0xffff);
    let e = r
        .err()
        .expect("a host off the allow list connected")
        .to_string();
    assert!(e.contains("host not allowed"), "{e}");

    // 3. Bad input.
    let accepted0 = tgt().stats().closed;
    // An I/O command before Connect.
    let mut s = raw_ready(port, 0);
    let mut b = Vec::new();
    let cap = CapsuleCmd {
        ch: CommonHeader::new(PduType::CapsuleCmd),
        sqe: Sqe::new(0x02, 1, 1),
    };
    encode(&mut b, &cap, &[], false, false);
    s.write_all(&b).unwrap();
    assert!(closed_by_target(s), "command before Connect");
    // Connect for an I/O queue of a controller that does not exist.
    let r = queue(port, HOST, 3, 0x1234);
    assert!(r.is_err(), "I/O queue of a missing controller connected");
    // A capsule for an I/O queue beyond those granted.
    let aq = queue(port, HOST, 0, 0xffff).unwrap();
    let r = queue(port, HOST, 200, aq.cntlid);
    assert!(r.is_err(), "I/O queue 200 connected");
    // Oversized PDU, bad header length, unknown type, ICReq twice.
    for (off, val) in [(4usize, 0xff_u8), (2, 0x50), (0, 0x08)] {
        let mut s = raw(port);
        let mut b = icreq_bytes(0);
        b[off] = val;
        if off == 4 {
            b[4..8].copy_from_slice(&(64u32 << 20).to_le_bytes());
        }
        s.write_all(&b).unwrap();
        assert!(closed_by_target(s), "malformed ICReq byte {off}={val:#x}");
    }
    let mut s = raw_ready(port, 0);
    s.write_all(&icreq_bytes(0)).unwrap();
    assert!(closed_by_target(s), "second ICReq");
    // Wrong header digest.
    let mut s = raw_ready(port, 1);
    let mut b = Vec::new();
    encode(&mut b, &cap, &[], true, false);
    b[20] ^= 0x40;
    s.write_all(&b).unwrap();
    assert!(closed_by_target(s), "wrong header digest");
    // H2CData for no R2T.
    let mut s = raw_ready(port, 0);
    let h = H2cData {
        ch: CommonHeader::new(PduType::H2cData),
        cccid: 9,
        ttag: 1,
        datao: 0,
        datal: 512,
        rsvd: 0,
    };
    let mut b = Vec::new();
    encode(&mut b, &h, &[0u8; 512], false, false);
    s.write_all(&b).unwrap();
    assert!(closed_by_target(s), "H2CData without R2T");
    // A host that vanishes after the R2T of a 64 KiB write.
    let mut iq = queue(port, HOST, 1, aq.cntlid).unwrap();
    let mut w = Sqe::new(0x01, 5, 1);
    w.set_lba_range(2048, 128);
    set_sqe_sgl(&mut w, SGL_TRANSPORT, 0, 65536);
    let mut b = Vec::new();
    encode(
        &mut b,
        &CapsuleCmd {
            ch: CommonHeader::new(PduType::CapsuleCmd),
            sqe: w,
        },
        &[],
        false,
        false,
    );
    iq.sock.write_all(&b).unwrap();
    let p = iq.recv().unwrap();
    assert_eq!(p.ty, PduType::R2t);
    assert!(
        tgt().stats().live_cmds >= 1,
        "the write waits for data with its buffer"
    );
    drop(iq);
    drop(aq);
    // Fuzz: random bytes over a valid common header's fields, before and after ICReq.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..200 {
        let mut s = if i % 2 == 0 {
            raw(port)
        } else {
            raw_ready(port, (i % 4) as u8)
        };
        let mut hdr = vec![0u8; 8 + (rnd() % 160) as usize];
        for x in hdr.iter_mut() {
            *x = rnd() as u8;
        }
        hdr[0] = [0u8, 2, 4, 6, 9, 1, 3, 5, 7, 8][(rnd() % 10) as usize];
        if rnd() % 2 == 0 {
            let plen = hdr.len() as u32;
            hdr[4..8].copy_from_slice(&plen.to_le_bytes());
        }
        let _ = s.write_all(&hdr);
        let _ = s.shutdown(std::net::Shutdown::Write);
        assert!(
            closed_by_target(s),
            "fuzz case {i} left the connection open"
        );
    }
    target_serves(port);
    assert_eq!(wait_live_zero(), 0, "commands left holding buffers");
    assert!(
        tgt().stats().closed >= accepted0 + 200,
        "{:?}",
        tgt().stats()
    );
    // Our initiator's queue still works.
    assert_eq!(
        read(&t, &nv, 1040, 8),
        (IoStatus::Success, big[16 * BS..24 * BS].to_vec())
    );

    // 4. Reconnect: the subsystem goes and comes back.
    let n0 = nvmf::host::reconnects("Nvme0").unwrap();
    on(&t, |tx: mpsc::Sender<()>| {
        tgt().delete_subsystem(NQN).unwrap();
        tx.send(()).unwrap()
    });
    std::thread::sleep(Duration::from_millis(500));
    setup_subsystem(&t, addr);
    let end = Instant::now() + Duration::from_secs(40);
    let mut ok = false;
    while Instant::now() < end {
        if nvmf::host::reconnects("Nvme0").unwrap() > n0 {
            let (st, _) = read(&t, &nv, 0, 8);
            if st == IoStatus::Success {
                ok = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(ok, "the initiator did not reconnect");
    assert_eq!(write(&t, &nv, 64, small.clone()), IoStatus::Success);
    assert_eq!(read(&t, &m, 64, 8).1, small);
    close(&t, &nv);
    close(&t, &m);

    namespace_notices(&t, port);
}

/// The NSIDs of the Changed Namespace List (`retain`: RAE set).
fn changed_ns(q: &mut Queue, retain: bool) -> Vec<u32> {
    let mut s = Sqe::new(0x02, 0, u32::MAX);
    s.cdw10 = 0x04 | 1023 << 16 | if retain { 1 << 15 } else { 0 };
    let (_, d) = q.command_ok("get log page 04h", s, &[], 4096).unwrap();
    d.chunks(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .take_while(|&n| n != 0)
        .collect()
}

/// Whether `f` holds within `secs` seconds (asked every 20 ms).
fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The first event within 10 s.
fn next_event(q: &mut Queue) -> Option<u32> {
    let mut ev = None;
    wait_until(10, || {
        ev = q.poll_event().unwrap();
        ev.is_some()
    });
    ev
}

fn on_subsys(t: &ThreadHandle, f: impl FnOnce(&Arc<Subsys>) + Send + 'static) {
    on(t, move |tx: mpsc::Sender<()>| {
        f(&tgt().subsystem(NQN).unwrap());
        tx.send(()).unwrap()
    })
}

fn namespace_notices(t: &ThreadHandle, port: u16) {
    let mut q = queue(port, HOST, 0, 0xffff).unwrap();
    // Identify Controller: OAES bit 8; then enable the notice and hold an AER.
    let mut s = Sqe::new(0x06, 0, 0);
    s.cdw10 = 1;
    let (_, id) = q.command_ok("identify", s, &[], 4096).unwrap();
    assert_eq!(id[93] & 1, 1, "OAES announces namespace notices");
    let mut s = Sqe::new(0x09, 0, 0);
    s.cdw10 = 0x0b;
    s.cdw11 = 1 << 8;
    q.command_ok("set features 0Bh", s, &[], 0).unwrap();
    q.submit_aer().unwrap();
    assert_eq!(q.poll_event().unwrap(), None, "no event before a change");

    on_subsys(t, |s| {
        malloc::create(MallocOpts {
            name: "Malloc1".into(),
            num_blocks: BLOCKS / 2,
            block_size: BS as u32,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.add_ns("Malloc1", 2, None).unwrap(), 2);
    });
    assert_eq!(next_event(&mut q), Some(0x0004_0002), "namespace notice");
    assert_eq!(changed_ns(&mut q, true), vec![2], "RAE keeps the list");
    // Masked until the log is read without RAE: a second change stays quiet.
    q.submit_aer().unwrap();
    on_subsys(t, |s| {
        malloc::create(MallocOpts {
            name: "Malloc2".into(),
            num_blocks: BLOCKS / 2,
            block_size: BS as u32,
            ..Default::default()
        })
        .unwrap();
        s.add_ns("Malloc2", 3, None).unwrap();
    });
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        q.poll_event().unwrap(),
        None,
        "masked until the log is read"
    );
    assert_eq!(changed_ns(&mut q, false), vec![2, 3]);
    assert_eq!(changed_ns(&mut q, false), Vec::<u32>::new(), "read clears");

    // Our initiator found both new namespaces.
    assert!(
        wait_until(15, || bdev::bdev::get("Nvme0n2").is_some()
            && bdev::bdev::get("Nvme0n3").is_some()),
        "the initiator did not register the new namespaces: {:?}",
        bdev::bdev::list()
            .iter()
            .map(|b| b.info().name.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        bdev::bdev::get("Nvme0n2").unwrap().info().num_blocks,
        BLOCKS / 2
    );
    let n2 = open(t, "Nvme0n2");
    let m1 = open(t, "Malloc1");
    let d = pattern(9, 8192);
    assert_eq!(write(t, &n2, 16, d.clone()), IoStatus::Success);
    assert_eq!(read(t, &m1, 16, 16).1, d, "Nvme0n2 is Malloc1");
    close(t, &n2);
    close(t, &m1);

    // Removal: announced again (the list was read), the bdev goes.
    on_subsys(t, |s| assert!(s.remove_ns(2)));
    assert_eq!(next_event(&mut q), Some(0x0004_0002), "removal notice");
    assert_eq!(changed_ns(&mut q, false), vec![2]);
    assert!(
        wait_until(15, || bdev::bdev::get("Nvme0n2").is_none()),
        "Nvme0n2 stayed after its namespace went"
    );
    assert!(bdev::bdev::get("Nvme0n3").is_some());
    assert!(bdev::bdev::get("Nvme0n1").is_some());
}

#[test]
fn initiator_and_target_on_loopback() {
    let Some(e) = eal() else { return };
    let port = 20000 + (std::process::id() % 20000) as u16;
    let result: Arc<Mutex<Option<std::thread::Result<()>>>> = Arc::new(Mutex::new(None));
    let r2 = result.clone();
    let rc = Framework::run(
        &e,
        framework::FrameworkOpts {
            exit_timeout_ms: 2000,
            ..Default::default()
        },
        move |fw| {
            std::thread::spawn(move || {
                let f2 = fw.clone();
                let r =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(f2, port)));
                let t = fw.app_thread();
                let (tx, rx) = mpsc::channel();
                let _ = t.send_msg(move || nvmf::subsystem::stop(move || tx.send(()).unwrap()));
                let _ = rx.recv_timeout(Duration::from_secs(20));
                *r2.lock().unwrap() = Some(r);
                fw.shutdown(0);
            });
        },
    )
    .expect("framework run");
    assert_eq!(rc, 0);
    let r = result.lock().unwrap().take();
    if let Some(Err(p)) = r {
        std::panic::resume_unwind(p);
    }
}
