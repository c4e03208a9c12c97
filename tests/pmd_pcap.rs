//! net_pcap: files written are read back by tcpdump/tshark with the same bytes; files
//! made by text2pcap (Wireshark) replay with the same bytes; malformed or truncated files
//! are refused at probe with a clear error; infinite_rx; no mbuf leaks.

mod pmd_common;
use pmd_common::*;

use std::process::Command;

fn tmp(name: &str) -> String {
    format!(
        "{}/fp-pmd-{}-{name}",
        std::env::temp_dir().display(),
        std::process::id()
    )
}

/// Frames of `tcpdump -r F -xx` (full frames in hex); `None`, after reporting the skip
/// of `test`'s tcpdump part, if tcpdump is not installed.
fn tcpdump_frames(test: &str, path: &str) -> Option<Vec<Vec<u8>>> {
    if !testkit::need_tool(&format!("{test}[tcpdump]"), "tcpdump") {
        return None;
    }
    let o = run_ok("tcpdump", &["-nn", "-r", path, "-xx"]);
    let mut frames = Vec::new();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("0x") {
            let (off, hex) = rest.split_once(':').expect("offset");
            if off == "0000" {
                frames.push(Vec::new());
            }
            let f = frames.last_mut().expect("frame");
            for w in hex.split_whitespace() {
                for i in (0..w.len()).step_by(2) {
                    f.push(u8::from_str_radix(&w[i..i + 2], 16).expect("hex"));
                }
            }
        }
    }
    Some(frames)
}

#[test]
fn tx_pcap_is_read_back_by_tcpdump_and_tshark() {
    let e = eal("pcaptx");
    let p = pool(&e, "pcaptxp", 255);
    let path = tmp("tx.pcap");
    let port = pmd::vdev_create(&e, &format!("net_pcap_tx,tx_pcap={path}")).unwrap();
    setup(port, &p, 0, 1);
    let frames: Vec<Vec<u8>> = (0..12)
        .map(|i| frame(0x88b5, 4, i as u8, 46 + 37 * i))
        .collect();
    let mut v: Vec<mbuf::Mbuf> = frames.iter().map(|f| mbuf_of(&p, f)).collect();
    // one chained packet too
    let mut chained = mbuf_of(&p, &frames[0][..20]);
    chained.chain(mbuf_of(&p, &frames[0][20..])).unwrap();
    v.push(chained);
    assert_eq!(pmd::tx_burst(port, 0, &mut v), 13);
    assert_eq!(pmd::stats_get(port).unwrap().opackets, 13);
    pmd::close(port).unwrap();
    assert_eq!(p.avail_count(), 255);

    let mut want = frames.clone();
    want.push(frames[0].clone());
    let c = pmd::pcapfile::parse(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        c.records.iter().map(|r| r.data.clone()).collect::<Vec<_>>(),
        want
    );
    let test = "tx_pcap_is_read_back_by_tcpdump_and_tshark";
    if let Some(f) = tcpdump_frames(test, &path) {
        assert_eq!(f, want, "tcpdump -xx shows other bytes");
    }
    if testkit::need_tool(&format!("{test}[tshark]"), "tshark") {
        let o = run_ok(
            "tshark",
            &[
                "-r",
                &path,
                "-T",
                "fields",
                "-e",
                "frame.len",
                "-e",
                "eth.type",
            ],
        );
        let lines: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        let expect: Vec<String> = want
            .iter()
            .map(|f| format!("{}\t0x88b5", f.len()))
            .collect();
        assert_eq!(lines, expect);
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn text2pcap_file_replays_with_same_bytes() {
    if !testkit::need_tool("text2pcap_file_replays_with_same_bytes", "text2pcap") {
        return;
    }
    let frames: Vec<Vec<u8>> = (0..5)
        .map(|i| frame(0x0800, 7, i as u8, 30 + 100 * i))
        .collect();
    let mut txt = String::new();
    for f in &frames {
        for (i, chunk) in f.chunks(16).enumerate() {
            txt.push_str(&format!("{:06x} ", i * 16));
            for b in chunk {
                txt.push_str(&format!(" {b:02x}"));
            }
            txt.push('\n');
        }
        txt.push('\n');
    }
    let (tpath, ppath) = (tmp("t2p.txt"), tmp("t2p.pcap"));
    std::fs::write(&tpath, txt).unwrap();
    let mut o = Command::new("text2pcap")
        .args(["-F", "pcap", &tpath, &ppath])
        .output()
        .unwrap();
    if !o.status.success() {
        o = Command::new("text2pcap")
            .args([&tpath, &ppath])
            .output()
            .unwrap();
    }
    assert!(
        o.status.success(),
        "text2pcap: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    let e = eal("pcaprx");
    let p = pool(&e, "pcaprxp", 63);
    let port = pmd::vdev_create(&e, &format!("net_pcap_rx,rx_pcap={ppath}")).unwrap();
    setup(port, &p, 1, 0);
    let mut v = Vec::new();
    assert_eq!(pmd::rx_burst(port, 0, &mut v, 32), 5);
    assert_eq!(
        pmd::rx_burst(port, 0, &mut v, 32),
        0,
        "no infinite_rx: the file ends"
    );
    let got: Vec<Vec<u8>> = v.iter().map(bytes_of).collect();
    assert_eq!(got, frames);
    drop(v);
    pmd::close(port).unwrap();

    // infinite_rx wraps around
    let port =
        pmd::vdev_create(&e, &format!("net_pcap_inf,rx_pcap={ppath},infinite_rx=1")).unwrap();
    setup(port, &p, 1, 0);
    let mut v = Vec::new();
    assert_eq!(pmd::rx_burst(port, 0, &mut v, 12), 12);
    assert_eq!(bytes_of(&v[11]), frames[1]);
    drop(v);
    pmd::close(port).unwrap();
    assert_eq!(p.avail_count(), 63);
    let _ = std::fs::remove_file(&tpath);
    let _ = std::fs::remove_file(&ppath);
}

#[test]
fn malformed_pcaps_are_refused_at_probe() {
    let e = eal("pcapbad");
    // make a good file with our writer, then damage it
    let mut w = pmd::pcapfile::Writer::new(Vec::new()).unwrap();
    w.write_parts(1, 2, &[&frame(0x88b5, 1, 1, 100)]).unwrap();
    w.write_parts(1, 3, &[&frame(0x88b5, 1, 2, 100)]).unwrap();
    let mut good = Vec::new();
    {
        let path = tmp("good.pcap");
        let mut ww = pmd::pcapfile::Writer::new(std::fs::File::create(&path).unwrap()).unwrap();
        ww.write_parts(1, 2, &[&frame(0x88b5, 1, 1, 100)]).unwrap();
        ww.write_parts(1, 3, &[&frame(0x88b5, 1, 2, 100)]).unwrap();
        ww.flush().unwrap();
        good.extend(std::fs::read(&path).unwrap());
        let _ = std::fs::remove_file(&path);
    }
    drop(w);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "trunc",
            good[..good.len() - 10].to_vec(),
            "truncated record",
        ),
        (
            "trunchdr",
            good[..24 + 130 + 5].to_vec(),
            "truncated record header",
        ),
        ("short", good[..10].to_vec(), "shorter than the 24-byte"),
        (
            "garbage",
            b"this is not a capture file at all".to_vec(),
            "bad magic",
        ),
    ];
    for (tag, bytes, want) in cases {
        let path = tmp(&format!("{tag}.pcap"));
        std::fs::write(&path, bytes).unwrap();
        let err = vdev_err(&e, &format!("net_pcap_{tag},rx_pcap={path}"));
        assert!(err.contains(want) && err.contains(&path), "{tag}: {err}");
        let _ = std::fs::remove_file(&path);
    }
    let err = vdev_err(&e, "net_pcap_nofile,rx_pcap=/nonexistent/x.pcap");
    assert!(err.contains("/nonexistent/x.pcap"), "{err}");
    let err = vdev_err(&e, "net_pcap_none");
    assert!(err.contains("rx_pcap"), "{err}");
    assert!(pmd::ports()
        .iter()
        .all(|&p| !pmd::port_name(p).unwrap().starts_with("net_pcap_")));
}
