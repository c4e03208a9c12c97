//! The vhost-user-blk target through a real `ferroplane-tgt` and a front end of our own
//! (no guest): the RPC methods, feature and config negotiation, data written and read
//! back, discard and write-zeroes, and bad input from a front end (malformed messages,
//! descriptor chains that loop or point outside memory, sectors past the end) answered
//! as errors to that front end while the target keeps serving.

mod vhost_common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::json;
use vhost_common::*;

fn malloc(t: &Tgt, name: &str, mib: u64, bs: u64) {
    ok(
        &t.rpc,
        "bdev_malloc_create",
        json!({"name": name, "num_blocks": mib * 1024 * 1024 / bs, "block_size": bs}),
    );
}

fn ctrlr(t: &Tgt, name: &str, bdev: &str, readonly: bool) {
    ok(
        &t.rpc,
        "vhost_create_blk_controller",
        json!({"ctrlr": name, "dev_name": bdev, "readonly": readonly, "cpumask": "0x1"}),
    );
}

#[test]
fn controllers_config_and_data() {
    let dir = tmpdir("data");
    let t = start(&dir, "data");
    malloc(&t, "M0", 8, 4096);
    ctrlr(&t, "vb0", "M0", false);
    assert!(dir.join("vb0").exists(), "socket under -S");
    // RPC refusals.
    for (p, code) in [
        (json!({"ctrlr": "vb0", "dev_name": "M0"}), -17),
        (json!({"ctrlr": "x", "dev_name": "nope"}), -19),
        (json!({"ctrlr": "../x", "dev_name": "M0"}), -32602),
        (
            json!({"ctrlr": "y", "dev_name": "M0", "cpumask": "zz"}),
            -32602,
        ),
    ] {
        refused(&t.rpc, "vhost_create_blk_controller", p, code);
    }
    refused(
        &t.rpc,
        "vhost_delete_controller",
        json!({"ctrlr": "nope"}),
        -19,
    );

    let mut c = Client::connect(&dir.join("vb0"));
    let (cap, bs, seg_max, nq) = c.config();
    assert_eq!((cap, bs), (8 * 1024 * 1024 / 512, 4096));
    assert!(
        seg_max >= 1 && nq >= 2,
        "seg_max {seg_max}, num_queues {nq}"
    );
    c.start_queue();
    let list = ok(&t.rpc, "vhost_get_controllers", json!({}));
    assert_eq!(list[0]["ctrlr"], "vb0");
    assert_eq!(list[0]["backend_specific"]["block"]["bdev"], "M0");
    assert_eq!(list[0]["sessions"][0]["queues"], 1, "{list}");

    // Many sizes, each at its own place, read back equal.
    let sizes = [4096usize, 8192, 12288, 65536, 131072];
    let mut sector = 0u64;
    for (i, &n) in sizes.iter().enumerate() {
        let p = pattern(i as u64 + 1, n);
        assert_eq!(c.write(sector, &p), 0, "write {n} at {sector}");
        let (s, back) = c.read(sector, n);
        assert_eq!(s, 0);
        assert!(back == p, "read back {n} bytes at sector {sector}");
        sector += (n / 512) as u64 + 8;
    }
    // Flush, GET_ID.
    assert_eq!(c.request(4, 0, 0, false).0, 0);
    let (s, len) = c.request(8, 0, 20, false);
    assert_eq!((s, len), (0, 21));
    assert_eq!(&c.bytes(DATA, 2)[..], b"M0");
    // Discard and write-zeroes read back as zeroes.
    assert_eq!(c.ranges(11, 0, 8), 0);
    assert!(
        c.read(0, 4096).1.iter().all(|&b| b == 0),
        "discarded blocks"
    );
    assert_eq!(c.ranges(13, 16, 16), 0);
    assert!(c.read(16, 8192).1.iter().all(|&b| b == 0), "zeroed blocks");
    // Past the end, unaligned, unknown type: errors for the request only.
    assert_eq!(c.read(cap - 8, 8192).0, 1, "read past the end");
    assert_eq!(c.write(1, &[0u8; 4096]), 1, "unaligned sector");
    assert_eq!(c.request(99, 0, 0, false).0, 2, "unknown type");
    assert_eq!(c.read(sector - 8 - 256, 4096).0, 0, "still serving");

    // A read-only controller on the same bdev sees the bytes; refuses writes.
    drop(c);
    ctrlr(&t, "vb0ro", "M0", true);
    let mut r = Client::connect(&dir.join("vb0ro"));
    r.start_queue();
    let p = pattern(4, 65536);
    let first = sizes[..3].iter().map(|n| (n / 512) as u64 + 8).sum::<u64>();
    assert!(
        r.read_all(first, 65536) == p,
        "read-only view of the same bdev"
    );
    assert_eq!(
        r.write(0, &[1u8; 4096]),
        1,
        "write to a read-only controller"
    );
    drop(r);
    ok(&t.rpc, "vhost_delete_controller", json!({"ctrlr": "vb0ro"}));
    ok(&t.rpc, "vhost_delete_controller", json!({"ctrlr": "vb0"}));
    assert!(!dir.join("vb0").exists(), "socket removed");
    assert_eq!(ok(&t.rpc, "vhost_get_controllers", json!({})), json!([]));
    // The bdev is free again.
    ok(&t.rpc, "bdev_malloc_delete", json!({"name": "M0"}));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_is_an_error_to_that_front_end_only() {
    let dir = tmpdir("bad");
    let t = start(&dir, "bad");
    malloc(&t, "M1", 4, 512);
    malloc(&t, "M2", 4, 512);
    ctrlr(&t, "bad0", "M1", false);
    ctrlr(&t, "good0", "M2", false);
    // A bystander on another controller, with data in place.
    let mut good = Client::connect(&dir.join("good0"));
    good.start_queue();
    let p = pattern(9, 8192);
    assert_eq!(good.write(64, &p), 0);

    // 1. Garbage instead of a message: the connection is dropped.
    let mut s = UnixStream::connect(dir.join("bad0")).unwrap();
    s.write_all(&[0xffu8; 64]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut b = [0u8; 16];
    let n = std::io::Read::read(&mut s, &mut b).unwrap_or(0);
    assert_eq!(n, 0, "the target closes a connection that sent garbage");
    // 2. Half a header, then silence: dropped after the message timeout.
    let mut s = UnixStream::connect(dir.join("bad0")).unwrap();
    s.write_all(&[1u8, 0, 0]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let n = std::io::Read::read(&mut s, &mut b).unwrap_or(0);
    assert_eq!(n, 0, "the target closes a stalled connection");
    drop(s);

    // 3. Rings outside guest memory: the enable is refused with an error reply.
    let mut h = Client::connect(&dir.join("bad0"));
    let e = h.try_start_queue(0xdead_0000_0000);
    assert!(e.is_err(), "rings outside memory accepted");
    drop(h);

    // 4. Bad descriptor chains on a set-up queue.
    let mut h = Client::connect(&dir.join("bad0"));
    h.start_queue();
    let (hd, st) = h.hdr(1);
    h.put(hd, 0u32);
    h.put(hd + 8, 0u64);
    // A loop: 0 -> 1 -> 0.
    h.desc(0, hd, 16, F_NEXT, 1);
    h.desc(1, DATA, 512, F_NEXT | F_WRITE, 0);
    h.publish(0);
    assert_eq!(
        h.wait_used(20),
        Some((0, 0)),
        "looping chain: used with length 0"
    );
    // Data outside guest memory.
    h.put(st, 0xffu8);
    h.desc(0, hd, 16, F_NEXT, 1);
    h.desc(1, 0x7fff_0000_0000, 4096, F_NEXT | F_WRITE, 2);
    h.desc(2, st, 1, F_WRITE, 0);
    h.publish(0);
    assert_eq!(h.wait_used(20).map(|u| u.0), Some(0));
    // `next` outside the table.
    h.desc(0, hd, 16, F_NEXT, 1000);
    h.publish(0);
    assert_eq!(h.wait_used(20), Some((0, 0)), "next outside the table");
    // An indirect table of a length that is no whole number of descriptors, and one
    // nested in another.
    h.desc(0, 0x8000, 24, F_INDIRECT, 0);
    h.publish(0);
    assert_eq!(h.wait_used(20), Some((0, 0)), "bad indirect length");
    h.desc_at(0x8000, 0, 0x9000, 16, F_INDIRECT, 0);
    h.desc(0, 0x8000, 16, F_INDIRECT, 0);
    h.publish(0);
    assert_eq!(h.wait_used(20), Some((0, 0)), "nested indirect");
    // A head index outside the ring: consumed without an answer (there is no valid
    // id to answer with); the queue goes on with the next request.
    h.publish(5000);
    assert_eq!(
        h.read(0, 512).0,
        0,
        "a request after a head outside the ring"
    );
    // A good indirect request still works on the same queue.
    let p2 = pattern(3, 4096);
    h.bytes(DATA, 4096).copy_from_slice(&p2);
    h.put(hd, 1u32);
    h.put(hd + 8, 8u64);
    h.put(st, 0xffu8);
    h.desc_at(0x8000, 0, hd, 16, F_NEXT, 1);
    h.desc_at(0x8000, 1, DATA, 4096, F_NEXT, 2);
    h.desc_at(0x8000, 2, st, 1, F_WRITE, 0);
    h.desc(0, 0x8000, 48, F_INDIRECT, 0);
    h.publish(0);
    assert_eq!(h.wait_used(20), Some((0, 1)));
    assert_eq!(h.get::<u8>(st), 0, "indirect write");
    assert!(h.read(8, 4096).1 == p2, "indirect write read back");
    // Sector past the end.
    assert_eq!(h.read(8192 - 1, 1024).0, 1);
    let list = ok(&t.rpc, "vhost_get_controllers", json!({"name": "bad0"}));
    assert!(
        list[0]["sessions"][0]["bad_requests"].as_u64().unwrap() >= 6,
        "{list}"
    );
    drop(h);

    // The bystander was never disturbed; a new good front end is served on bad0 too.
    let (s, back) = good.read(64, 8192);
    assert!(s == 0 && back == p, "bystander's data");
    let mut again = Client::connect(&dir.join("bad0"));
    again.start_queue();
    assert_eq!(again.write(0, &p), 0);
    assert!(again.read(0, 8192).1 == p);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A null bdev grown by `bdev_null_resize` under a connected front end: the front end
/// gets BACKEND_CONFIG_CHANGE_MSG on the channel it handed over, the config space has
/// the new capacity, and sectors past the old end that failed before now succeed.
#[test]
fn resize_reaches_the_front_end() {
    grow_under_a_front_end("null");
}

/// The same for a malloc bdev grown by `bdev_malloc_resize` (ours), whose blocks must
/// also survive the move to the larger memory: data written before the resize reads
/// back after it, and the new blocks read as zeros.
#[test]
fn malloc_resize_reaches_the_front_end() {
    grow_under_a_front_end("malloc");
}

/// A uring bdev whose file grew, taken up by `bdev_uring_rescan`: the same, the data
/// being the file's.
#[test]
fn uring_rescan_reaches_the_front_end() {
    grow_under_a_front_end("uring");
}

/// Grow an 8 MiB bdev of module `kind` ("null", "malloc" or "uring") to 16 MiB under a
/// connected front end, through `bdev_<kind>_resize` (uring: the file grown, then
/// `bdev_uring_rescan`).
fn grow_under_a_front_end(kind: &str) {
    use std::io::Read;
    use vhost::vhost_user::message::VhostUserProtocolFeatures;
    use vhost::vhost_user::VhostUserFrontend;

    let tag = format!("resize-{kind}");
    let dir = tmpdir(&tag);
    let t = start(&dir, &tag);
    ok(
        &t.rpc,
        "bdev_null_create",
        json!({"name": "N0", "num_blocks": 2048, "block_size": 4096}),
    );
    malloc(&t, "M0", 8, 4096);
    let img = dir.join("u0.img");
    let file = std::fs::File::create(&img).unwrap();
    file.set_len(8 << 20).unwrap();
    ok(
        &t.rpc,
        "bdev_uring_create",
        json!({"name": "U0", "filename": img.to_str().unwrap(), "block_size": 4096}),
    );
    let (name, other) = match kind {
        "null" => ("N0", "M0"),
        "malloc" => ("M0", "N0"),
        _ => ("U0", "N0"),
    };
    let uring = kind == "uring";
    let method = if uring {
        "bdev_uring_rescan".to_string()
    } else {
        format!("bdev_{kind}_resize")
    };
    // The parameters that set the size to `mib` (uring: the file grown first).
    let grow = |mib: u64| {
        if uring {
            file.set_len(mib << 20).unwrap();
            json!({ "name": name })
        } else {
            json!({ "name": name, "new_size": mib })
        }
    };
    ctrlr(&t, "vr0", name, false);
    let mut c = Client::connect_proto(&dir.join("vr0"), VhostUserProtocolFeatures::BACKEND_REQ);
    let (mut mine, theirs) = UnixStream::pair().unwrap();
    c.fe.set_backend_request_fd(&theirs).unwrap();
    drop(theirs);
    mine.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    c.start_queue();
    let old_end = 8 * 1024 * 1024 / 512;
    assert_eq!(c.config().0, old_end);
    assert_eq!(c.read(old_end, 4096).0, 1, "past the end before the resize");
    let kept = pattern(11, 4096);
    assert_eq!(
        c.write(old_end - 8, &kept),
        0,
        "the last block before the resize"
    );
    // Refusals: unknown bdev, another module's bdev, bad parameters.
    let cases = if uring {
        vec![
            (json!({"name": "nope"}), -19),
            (json!({ "name": other }), -32602),
            (json!({}), -32602),
            (json!({"name": name, "new_size": 16}), -32602),
        ]
    } else {
        vec![
            (json!({"name": "nope", "new_size": 16}), -19),
            (json!({"name": other, "new_size": 16}), -32602),
            (json!({ "name": name }), -32602),
            (json!({"name": name, "new_size": -1}), -32602),
        ]
    };
    for (p, code) in cases {
        refused(&t.rpc, &method, p, code);
    }
    assert_eq!(c.config().0, old_end, "refusals changed nothing");
    assert_eq!(ok(&t.rpc, &method, grow(16)), true);
    let mut msg = [0u8; 12];
    mine.read_exact(&mut msg)
        .expect("BACKEND_CONFIG_CHANGE_MSG within 20 s");
    assert_eq!(
        msg,
        [2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
        "config change, version 1, no body"
    );
    assert_eq!(c.config().0, 2 * old_end, "capacity after the resize");
    let (st, grown) = c.read(old_end, 4096);
    assert_eq!(st, 0, "the new sectors take reads");
    if kind != "null" {
        assert!(grown.iter().all(|&b| b == 0), "new blocks read as zeros");
        assert!(c.read(old_end - 8, 4096).1 == kept, "the old blocks kept");
    }
    let last = pattern(12, 4096);
    assert_eq!(
        c.write(2 * old_end - 8, &last),
        0,
        "and writes at the new end"
    );
    if kind != "null" {
        assert!(
            c.read(2 * old_end - 8, 4096).1 == last,
            "the new end keeps data"
        );
    }
    assert_eq!(c.read(2 * old_end, 4096).0, 1, "past the new end");
    // Shrinking under an open descriptor is refused.
    refused(&t.rpc, &method, grow(4), -32602);
    assert_eq!(
        c.config().0,
        2 * old_end,
        "a refused shrink changed nothing"
    );
    let b = ok(&t.rpc, "bdev_get_bdevs", json!({"name": name}));
    assert_eq!(b[0]["num_blocks"], 4096, "{b}");
    if !uring {
        // (A uring bdev's size is its file's; its config has none.)
        let saved = ok(&t.rpc, "save_config", json!({})).to_string();
        assert!(
            saved.contains("\"num_blocks\":4096"),
            "save_config keeps the new size: {saved}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The inflight area across a target restart, written as a target that died at the two
/// worst moments would have left it: one request taken from the avail ring and not
/// completed (it must be submitted again), one whose used entry was written but whose
/// inflight record was not cleared (it must not be repeated).
#[test]
fn restart_resubmits_what_was_in_flight_and_nothing_else() {
    use vhost::vhost_user::message::VhostUserInflight;
    use vhost::vhost_user::VhostUserFrontend;

    let dir = tmpdir("inflight");
    let cfg = dir.join("config.json");
    std::fs::write(
        &cfg,
        json!({"subsystems": [
            {"subsystem": "bdev", "config": [{"method": "bdev_malloc_create",
                "params": {"name": "M3", "num_blocks": 8192, "block_size": 512}}]},
            {"subsystem": "vhost_blk", "config": [{"method": "vhost_create_blk_controller",
                "params": {"ctrlr": "r0", "dev_name": "M3"}}]}]})
        .to_string(),
    )
    .unwrap();
    let args = ["--json", cfg.to_str().unwrap()];
    let mut t = start_with(&dir, "inflight", &args);
    let sock = dir.join("r0");
    let mut c = Client::connect_opts(&sock, true);
    let (info, area) =
        c.fe.get_inflight_fd(&VhostUserInflight::new(0, 0, 1, QSIZE))
            .expect("GET_INFLIGHT_FD");
    assert!(
        info.mmap_size >= 16 + 16 * u64::from(QSIZE),
        "{}",
        info.mmap_size
    );
    c.fe.set_inflight_fd(&info, std::os::fd::AsRawFd::as_raw_fd(&area))
        .unwrap();
    c.start_queue();
    assert_eq!(c.write(0, &pattern(1, 4096)), 0);
    // SAFETY: a fresh shared mapping of the area's memfd, unmapped below.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            info.mmap_size as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&area),
            0,
        )
    };
    assert_ne!(map, libc::MAP_FAILED);
    let area_bytes =
        // SAFETY: the mapping just made, `mmap_size` long.
        unsafe { std::slice::from_raw_parts_mut(map.cast::<u8>(), info.mmap_size as usize) };
    let rd16 = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    // The completed write is recorded: used index 1, head 0 not in flight.
    assert_eq!(rd16(area_bytes, 14), 1, "used_idx in the area");
    assert_eq!(area_bytes[16], 0, "head 0 still marked in flight");
    // Kill the target.
    let _ = t.child.kill();
    let _ = t.child.wait();
    drop(t);

    // Request A (head 10, descriptors 10-12): write pattern 2 at sector 64, taken and
    // in flight. Request B (head 20, descriptors 20-22): write pattern 3 at sector 256,
    // its used entry written but its record not cleared.
    let req = |c: &mut Client, head: u16, slot: u16, sector: u64, data: u64, p: &[u8]| {
        let (h, st) = c.hdr(slot);
        c.put(h, 1u32);
        c.put(h + 4, 0u32);
        c.put(h + 8, sector);
        c.put(st, 0xffu8);
        c.bytes(data, p.len()).copy_from_slice(p);
        c.desc(head, h, 16, F_NEXT, head + 1);
        c.desc(head + 1, data, p.len() as u32, F_NEXT, head + 2);
        c.desc(head + 2, st, 1, F_WRITE, 0);
        c.make_avail(head);
        st
    };
    let pa = pattern(2, 4096);
    let pb = pattern(3, 4096);
    let st_a = req(&mut c, 10, 1, 64, DATA + SLOT, &pa);
    let st_b = req(&mut c, 20, 2, 256, DATA + 2 * SLOT, &pb);
    let desc = |h: u16| 16 + 16 * usize::from(h);
    area_bytes[desc(10)] = 1;
    area_bytes[desc(10) + 8..desc(10) + 16].copy_from_slice(&2u64.to_le_bytes());
    area_bytes[desc(20)] = 1;
    area_bytes[desc(20) + 8..desc(20) + 16].copy_from_slice(&3u64.to_le_bytes());
    area_bytes[12..14].copy_from_slice(&20u16.to_le_bytes()); // last_batch_head
    c.put(st_b, 0u8);
    c.fake_used(20, 1);
    assert_eq!(c.used_idx(), 2);

    // Restart; reconnect as QEMU does (the area handed back, base = used index).
    let t = start_with(&dir, "inflight2", &args);
    c.reconnect(&sock, &info, &area, 2);
    assert_eq!(
        c.wait_used(20),
        Some((10, 1)),
        "A resubmitted and completed"
    );
    assert_eq!(c.get::<u8>(st_a), 0, "A's status");
    assert_eq!(c.wait_used(2), None, "B answered again (repeated I/O)");
    // A's data reached the new bdev; B's write was not repeated (the new bdev is empty).
    assert!(c.read(64, 4096).1 == pa, "A's data");
    assert!(
        c.read(256, 4096).1.iter().all(|&b| b == 0),
        "B was executed again"
    );
    assert_eq!(area_bytes[desc(10)], 0, "A still marked in flight");
    assert_eq!(area_bytes[desc(20)], 0, "B still marked in flight");
    // SAFETY: our mapping, no longer used.
    unsafe { libc::munmap(map, info.mmap_size as usize) };
    drop(c);
    drop(t);
    let _ = std::fs::remove_dir_all(&dir);
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// A connected front end with a running queue does not keep the target busy: once
/// quiet, the queue turns guest notifications back on and the reactor sleeps; the next
/// kick wakes it and the request completes.
#[test]
fn quiet_queue_lets_the_reactor_sleep() {
    let dir = tmpdir("idle");
    let t = start(&dir, "idle");
    malloc(&t, "M4", 4, 512);
    ctrlr(&t, "i0", "M4", false);
    let mut c = Client::connect(&dir.join("i0"));
    c.start_queue();
    let p = pattern(5, 4096);
    assert_eq!(c.write(0, &p), 0);
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: sysconf takes no pointers.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let pid = t.child.id();
    let before = cpu_ticks(pid);
    let window = Duration::from_secs(3);
    std::thread::sleep(window);
    let used = cpu_ticks(pid) - before;
    // A polling reactor would burn ~3 s = 300 ticks at 100 Hz; allow 3% of one cpu.
    let limit = hz * window.as_secs() * 3 / 100;
    assert!(
        used <= limit,
        "quiet target used {used} ticks in {window:?} (limit {limit})"
    );
    assert!(c.read(0, 4096).1 == p, "a request after the quiet time");
    let r = ok(&t.rpc, "framework_get_reactors", json!({}));
    assert!(r["reactors"][0]["sleeps"].as_u64().unwrap() > 0, "{r}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A reactor that sleeps as soon as it is idle (`--idle-sleep-us 0`) and a front end
/// that, like a guest, kicks only when the used ring's flags ask for it: each request
/// after a pause is served at once (the queue keeps its reactor polling while kicks
/// are off; when it did not, each waited about 100 ms for an unrelated wake-up).
#[test]
fn short_reactor_idle_never_strands_a_request() {
    never_stranded("idle0", &["--idle-sleep-us", "0"]);
}

/// The same with a notify window (the queue polls 50 us with kicks off before it
/// lets the reactor sleep).
#[test]
fn notify_window_never_strands_a_request() {
    never_stranded(
        "window50",
        &["--idle-sleep-us", "0", "--vhost-notify-window-us", "50"],
    );
}

/// A notify window beyond a second is refused with a clear line.
#[test]
fn bad_notify_window_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferroplane-tgt"))
        .args(["--vhost-notify-window-us", "2000000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("--vhost-notify-window-us '2000000'"), "{e}");
}

/// Requests after pauses, kicked only when the used ring asks, through a target
/// started with `args`: each served at once.
fn never_stranded(tag: &str, args: &[&str]) {
    let dir = tmpdir(tag);
    let t = start_with(&dir, tag, args);
    malloc(&t, "M5", 4, 512);
    ctrlr(&t, "z0", "M5", false);
    let mut c = Client::connect(&dir.join("z0"));
    c.start_queue();
    c.honour_no_notify = true;
    let p = pattern(9, 4096);
    assert_eq!(c.write(0, &p), 0);
    let mut took = Vec::new();
    for _ in 0..9 {
        std::thread::sleep(Duration::from_millis(20));
        let t0 = std::time::Instant::now();
        assert!(c.read(0, 4096).1 == p);
        took.push(t0.elapsed());
    }
    took.sort();
    assert!(
        took[4] < Duration::from_millis(30),
        "median request time {:?} (all: {took:?})",
        took[4]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Interrupts to the guest: completions of one poll cost one call, and with EVENT_IDX
/// no call is sent until the used index passes the guest's used_event; the kicks and
/// calls counted in `vhost_get_controllers` match what the front end saw.
#[test]
fn calls_are_batched_and_honour_used_event() {
    use vhost::VhostBackend;
    const EVENT_IDX: u64 = 1 << 29;
    let dir = tmpdir("calls");
    let t = start(&dir, "calls");
    malloc(&t, "M6", 4, 512);
    ctrlr(&t, "k0", "M6", false);
    let mut c = Client::connect(&dir.join("k0"));
    // Eight reads in flight together, in slots 0..8 (descriptors 3s, 3s+1, 3s+2).
    let eight = |c: &mut Client| {
        let mut heads = Vec::new();
        for s in 0..8u16 {
            let (h, st) = c.hdr(s);
            c.put(h, 0u32);
            c.put(h + 4, 0u32);
            c.put(h + 8, u64::from(s) * 8);
            c.put(st, 0xffu8);
            let d = 3 * s;
            c.desc(d, h, 16, F_NEXT, d + 1);
            c.desc(
                d + 1,
                DATA + 4096 * u64::from(s),
                4096,
                F_NEXT | F_WRITE,
                d + 2,
            );
            c.desc(d + 2, st, 1, F_WRITE, 0);
            heads.push(d);
        }
        c.make_avail_all(&heads);
        c.kick();
        for _ in 0..8 {
            c.wait_used(20).expect("eight completions within 20 s");
        }
        // The call goes out on the queue's next poll after the completions.
        std::thread::sleep(Duration::from_millis(200));
        c.take_calls()
    };
    c.start_queue();
    assert_eq!(eight(&mut c), 1, "eight completions in one poll: one call");
    let counters = |t: &Tgt| {
        let l = ok(&t.rpc, "vhost_get_controllers", json!({"name": "k0"}));
        let q = &l[0]["sessions"][0]["queue_requests"][0];
        (q["kicks"].as_u64().unwrap(), q["calls"].as_u64().unwrap())
    };
    let (kicks, calls) = counters(&t);
    assert_eq!(kicks, 1, "one kick read");
    assert_eq!(calls, 1, "one call counted");
    drop(c);

    let mut c = Client::connect(&dir.join("k0"));
    c.fe.set_features(features_wanted() | EVENT_IDX).unwrap();
    c.start_queue();
    c.set_used_event(100);
    assert_eq!(
        eight(&mut c),
        0,
        "used_event 100 not passed by 8 completions"
    );
    c.set_used_event(11);
    assert_eq!(
        eight(&mut c),
        1,
        "used_event 11 passed once by completions 9-16"
    );
    let (_, calls) = counters(&t);
    assert_eq!(calls, 1, "the new connection's queue counted one call");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn socket_dir_must_exist() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferroplane-tgt"))
        .args(["-S", "/nonexistent/fp-vhost-dir"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("-S") && e.contains("not a directory"), "{e}");
}
