//! Our `blobcli` on a malloc bdev from a JSON configuration: SPDK's own blobcli test
//! script (test/blobstore/test.bs: init, list, create, super blob, import, export,
//! xattrs) in script mode, plus refused arguments.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fp-blobcli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cfg(d: &Path) -> PathBuf {
    let p = d.join("cfg.json");
    std::fs::write(
        &p,
        r#"{"subsystems":[{"subsystem":"bdev","config":[{"method":"bdev_malloc_create","params":{"name":"Malloc0","num_blocks":65536,"block_size":512}}]}]}"#,
    )
    .unwrap();
    p
}

fn blobcli(d: &Path, args: &[&str], stdin: &str) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_blobcli"));
    c.current_dir(d)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut ch = c.spawn().unwrap();
    use std::io::Write;
    let _ = ch.stdin.take().unwrap().write_all(stdin.as_bytes());
    ch.wait_with_output().unwrap()
}

#[test]
fn spdk_test_script_runs() {
    let d = dir("script");
    let c = cfg(&d);
    let pattern: Vec<u8> = (0..1_500_000u32)
        .map(|i| (i * 7 + i / 4096) as u8)
        .collect();
    std::fs::write(d.join("test.pattern"), &pattern).unwrap();
    std::fs::write(
        d.join("test.bs"),
        "# SPDK's test/blobstore/test.bs\n-i\n-l bdevs\n-n 1\n-p $B0\n-n 2\n-m $B1 test.pattern\n\
         -d $B1 test.pattern.blob\n-x $B1 key val\n-s bs\n-s $B1\n-r $B1 key\n-s $B1\n-l blobs\n-w $B0\n-l blobs\n",
    )
    .unwrap();
    let out = blobcli(
        &d,
        &["-j", c.to_str().unwrap(), "-b", "Malloc0", "-T", "test.bs"],
        "",
    );
    let so = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{so}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(so.contains("bdev Name: Malloc0"), "{so}");
    assert_eq!(so.matches("New blob id 0x").count(), 2);
    assert!(so.contains("super blob ID: 0x100000000"), "{so}");
    assert!(so.contains("cluster size: 1048576"), "{so}");
    let ids: Vec<&str> = so
        .lines()
        .filter_map(|l| l.strip_prefix("New blob id "))
        .collect();
    let second = ids[1];
    let first_show = &so[so.find(&format!("blob ID: {second}")).unwrap()..];
    assert!(first_show.contains("# of clusters: 2"));
    assert!(first_show.contains("Name:key"), "{first_show}");
    let exported = std::fs::read(d.join("test.pattern.blob")).unwrap();
    assert_eq!(exported.len(), 2 << 20);
    assert!(exported[..pattern.len()] == pattern[..]);
    assert!(exported[pattern.len()..].iter().all(|&b| b == 0));
    let last = &so[so.rfind("List BLOBS:").unwrap()..];
    let listed: Vec<&str> = last
        .lines()
        .filter_map(|l| l.strip_prefix("Found blob with ID# "))
        .collect();
    assert_eq!(listed, vec![second], "after deleting the first blob");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn refused_arguments_name_the_problem() {
    let d = dir("args");
    let c = cfg(&d);
    let cs = c.to_str().unwrap();
    let out = blobcli(&d, &["-j", cs, "-l", "blobs"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-b BDEV is required"));
    let out = blobcli(&d, &["-j", cs, "-b", "Malloc0", "-n", "0"], "");
    assert_eq!(out.status.code(), Some(2));
    let out = blobcli(
        &d,
        &["-j", cs, "-b", "Malloc0", "-n", "1", "-l", "blobs"],
        "",
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("only one command"));
    let out = blobcli(&d, &["-j", cs, "-b", "Nope0", "-l", "blobs"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not open bdev 'Nope0'"));
    // A fresh malloc bdev holds no store: a clear load error, exit 1.
    let out = blobcli(&d, &["-j", cs, "-b", "Malloc0", "-s", "bs"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no blobstore on this device"));
    // -i asks first; anything but y leaves it alone.
    let out = blobcli(&d, &["-j", cs, "-b", "Malloc0", "-i"], "n\n");
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("init'd"));
    let out = blobcli(&d, &["-j", cs, "-b", "Malloc0", "-i"], "y\n");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("blobstore init'd"));
    let _ = std::fs::remove_dir_all(&d);
}
