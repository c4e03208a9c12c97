//! `blobcli`: SPDK's blobstore command-line tool (examples/blob/cli/blobcli.c), on
//! Ferroplane's blobstore and bdev layer. One command per run:
//!
//! ```text
//! blobcli -j CONFIG.json -b BDEV COMMAND
//!   -i               initialise a blobstore (asks for confirmation on stdin)
//!   -l bdevs|blobs   list bdevs or blobs
//!   -n N             create a blob of N clusters
//!   -s bs|BLOBID     show the super block or a blob's metadata
//!   -m BLOBID FILE   import FILE into the blob
//!   -d BLOBID FILE   export the blob into FILE
//!   -f BLOBID VALUE  fill the blob with a byte
//!   -x BLOBID NAME VALUE   set an xattr (VALUE stored with its terminating zero, as SPDK's)
//!   -r|-k BLOBID NAME      remove an xattr
//!   -p BLOBID        set the super blob
//!   -w BLOBID        delete a blob
//!   -T SCRIPT [ignore]  run the commands of SCRIPT (one per line, `-b` may be given
//!                    there or on the command line; `$Bn` is the n-th blob created)
//! ```
//!
//! The bdevs come from the JSON configuration (`-j` / `--json`), replayed by the
//! framework app as SPDK's does. The store is unloaded cleanly before exit.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use blob::bdev_dev::BdevDev;
use blob::{BlobOpts, Blobstore, InitOpts, LoadOpts};
use framework::app::{App, AppOpts};

#[derive(Debug, Clone, PartialEq)]
enum Cmd {
    Init,
    ListBdevs,
    ListBlobs,
    Create(u64),
    ShowBs,
    ShowBlob(u64),
    Import(u64, PathBuf),
    Export(u64, PathBuf),
    Fill(u64, u8),
    SetXattr(u64, String, String),
    RemoveXattr(u64, String),
    SetSuper(u64),
    Delete(u64),
    Script(PathBuf, bool),
}

struct Args {
    bdev: String,
    json: Option<PathBuf>,
    cmd: Cmd,
}

const USAGE: &str = "usage: blobcli [-j CONFIG.json] -b BDEV COMMAND\n  \
-i | -l bdevs|blobs | -n CLUSTERS | -s bs|BLOBID | -m BLOBID FILE | -d BLOBID FILE |\n  \
-f BLOBID VALUE | -x BLOBID NAME VALUE | -r|-k BLOBID NAME | -p BLOBID | -w BLOBID |\n  \
-T SCRIPT [ignore]   (one command per line, '#' comments, $Bn = the n-th blob created)";

fn parse_id(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("bad blob id '{s}'"))
}

fn parse(argv: &[String]) -> Result<Args, String> {
    let mut bdev = None;
    let mut json = None;
    let mut cmds = Vec::new();
    let mut i = 1;
    let next = |i: &mut usize, what: &str| -> Result<String, String> {
        let v = argv
            .get(*i)
            .cloned()
            .ok_or(format!("{what} needs a value"))?;
        *i += 1;
        Ok(v)
    };
    while i < argv.len() {
        let a = argv[i].clone();
        i += 1;
        match a.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "-b" => {
                if bdev.is_some() {
                    return Err("-b given twice".into());
                }
                bdev = Some(next(&mut i, "-b")?);
            }
            "-j" | "--json" => json = Some(PathBuf::from(next(&mut i, &a)?)),
            "-i" => cmds.push(Cmd::Init),
            "-l" => match next(&mut i, "-l")?.as_str() {
                "bdevs" => cmds.push(Cmd::ListBdevs),
                "blobs" => cmds.push(Cmd::ListBlobs),
                o => return Err(format!("-l takes bdevs or blobs, not '{o}'")),
            },
            "-n" => {
                let v = next(&mut i, "-n")?;
                let n: u64 = v
                    .parse()
                    .map_err(|_| format!("-n: bad cluster count '{v}'"))?;
                if n == 0 {
                    return Err("-n: the cluster count must be > 0".into());
                }
                cmds.push(Cmd::Create(n));
            }
            "-s" => {
                let v = next(&mut i, "-s")?;
                cmds.push(if v == "bs" {
                    Cmd::ShowBs
                } else {
                    Cmd::ShowBlob(parse_id(&v)?)
                });
            }
            "-m" | "-d" => {
                let id = parse_id(&next(&mut i, &a)?)?;
                let f = PathBuf::from(next(&mut i, &a)?);
                cmds.push(if a == "-m" {
                    Cmd::Import(id, f)
                } else {
                    Cmd::Export(id, f)
                });
            }
            "-f" => {
                let id = parse_id(&next(&mut i, "-f")?)?;
                let v = next(&mut i, "-f")?;
                let b = parse_id(&v).ok().and_then(|x| u8::try_from(x).ok());
                cmds.push(Cmd::Fill(id, b.ok_or(format!("-f: bad byte value '{v}'"))?));
            }
            "-x" => {
                let id = parse_id(&next(&mut i, "-x")?)?;
                let n = next(&mut i, "-x")?;
                let v = next(&mut i, "-x")?;
                cmds.push(Cmd::SetXattr(id, n, v));
            }
            "-r" | "-k" => {
                let id = parse_id(&next(&mut i, &a)?)?;
                cmds.push(Cmd::RemoveXattr(id, next(&mut i, &a)?));
            }
            "-p" => cmds.push(Cmd::SetSuper(parse_id(&next(&mut i, "-p")?)?)),
            "-w" => cmds.push(Cmd::Delete(parse_id(&next(&mut i, "-w")?)?)),
            "-T" => {
                let f = PathBuf::from(next(&mut i, "-T")?);
                let ignore = argv.get(i).is_some_and(|a| a == "ignore");
                if ignore {
                    i += 1;
                }
                cmds.push(Cmd::Script(f, ignore));
            }
            "-X" => {}
            o => return Err(format!("unknown option '{o}'")),
        }
    }
    if cmds.len() != 1 {
        return Err(if cmds.is_empty() {
            "choose a command".into()
        } else {
            "choose only one command".into()
        });
    }
    let bdev = match (bdev, &cmds[0]) {
        (Some(b), _) => b,
        (None, Cmd::Script(..)) => String::new(),
        (None, _) => return Err("-b BDEV is required".into()),
    };
    Ok(Args {
        bdev,
        json,
        cmd: cmds.remove(0),
    })
}

fn dump(prefix: &str, v: &[u8]) {
    for (i, c) in v.chunks(16).enumerate() {
        let hex: Vec<String> = c.iter().map(|b| format!("{b:02x}")).collect();
        let txt: String = c
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        println!("{prefix}{:08x}  {:<48}  {txt}", i * 16, hex.join(" "));
    }
}

/// Run the command against the store; returns the exit code.
fn run_cmd(bs: &mut Blobstore, cmd: &Cmd, bdev: &str, created: &mut Vec<u64>) -> blob::Result<()> {
    let unit = bs.io_unit_size() as usize;
    match cmd {
        Cmd::Init | Cmd::ListBdevs | Cmd::Script(..) => {}
        Cmd::ListBlobs => {
            println!("\nList BLOBS:");
            for id in bs.blob_ids() {
                println!("Found blob with ID# {id:#x}");
            }
        }
        Cmd::Create(n) => {
            let id = bs.create_blob(&BlobOpts {
                num_clusters: *n,
                ..Default::default()
            })?;
            println!("New blob id {id:#x}");
            created.push(id);
            println!("blob now has USED clusters of {n}");
        }
        Cmd::ShowBs => {
            let i = bs.info();
            println!("Blobstore Public Info:");
            println!("\tUsing bdev: {bdev}");
            println!("\tAPI Version: {}", blob::format::VERSION);
            match i.super_blob {
                Some(s) => println!("\tsuper blob ID: {s:#x}"),
                None => println!("\tsuper blob ID: none assigned"),
            }
            println!("\tmd page size: {}", i.md_page_size);
            println!("\tio unit size: {}", i.io_unit_size);
            println!("\tcluster size: {}", i.cluster_size);
            println!("\t# free clusters: {}", i.free_clusters);
            println!("\tblobstore type: {}", i.bstype);
            println!("\nBlobstore Private Info:");
            println!("\tMetadata start (pages): {}", i.md_start);
            println!("\tMetadata length (pages): {}", i.md_len);
        }
        Cmd::ShowBlob(id) => {
            let i = bs.blob_info(*id)?;
            println!("Blob Public Info:");
            println!("blob ID: {id:#x}");
            println!("# of clusters: {}", i.num_clusters);
            println!(
                "# of bytes: {}",
                i.num_clusters * u64::from(bs.info().cluster_size)
            );
            println!(
                "# of io units: {}",
                i.num_clusters * bs.io_units_per_cluster()
            );
            println!("# of xattrs: {}", i.xattr_names.len());
            println!("xattrs:");
            for (k, n) in i.xattr_names.iter().enumerate() {
                let v = bs.get_xattr(*id, n)?.unwrap_or_default();
                println!("\n({k}) Name:{n}");
                println!("({k}) Value:\n");
                dump("", v.strip_suffix(&[0]).unwrap_or(&v));
            }
            println!("\nBlob Private Info:");
            println!("thin provisioned: {}", i.thin);
            println!("read only: {}", i.read_only);
            match i.parent {
                Some(p) => println!("parent: {p:#x}"),
                None => println!("parent: none"),
            }
            println!("allocated clusters: {}", i.allocated_clusters);
        }
        Cmd::Import(id, f) => {
            let data = std::fs::read(f).map_err(|e| blob::Error::Io {
                what: format!("read {}", f.display()),
                why: e.to_string(),
            })?;
            let b = bs.open_blob(*id)?;
            let size =
                (bs.blob_info(*id)?.num_clusters * bs.io_units_per_cluster()) as usize * unit;
            let mut buf = data[..data.len().min(size)].to_vec();
            buf.resize(buf.len().div_ceil(unit) * unit, 0);
            let r = bs.write(&b, 0, &buf);
            bs.close_blob(b)?;
            r?;
            println!("Blob import complete (from {}).", f.display());
        }
        Cmd::Export(id, f) => {
            let b = bs.open_blob(*id)?;
            let size =
                (bs.blob_info(*id)?.num_clusters * bs.io_units_per_cluster()) as usize * unit;
            let mut buf = vec![0u8; size];
            let r = bs.read(&b, 0, &mut buf);
            bs.close_blob(b)?;
            r?;
            std::fs::write(f, &buf).map_err(|e| blob::Error::Io {
                what: format!("write {}", f.display()),
                why: e.to_string(),
            })?;
            println!("File write complete (to {}).", f.display());
        }
        Cmd::Fill(id, v) => {
            let b = bs.open_blob(*id)?;
            let units = bs.blob_info(*id)?.num_clusters * bs.io_units_per_cluster();
            let per = bs.io_units_per_cluster();
            let chunk = vec![*v; per as usize * unit];
            let mut r = Ok(());
            let mut u = 0;
            while u < units && r.is_ok() {
                r = bs.write(&b, u, &chunk);
                u += per;
            }
            bs.close_blob(b)?;
            r?;
            println!("Blob fill complete.");
        }
        Cmd::SetXattr(id, n, v) => {
            let b = bs.open_blob(*id)?;
            let mut val = v.as_bytes().to_vec();
            val.push(0);
            let r = bs.set_xattr(&b, n, &val);
            bs.close_blob(b)?;
            r?;
            println!("Xattr has been set.");
        }
        Cmd::RemoveXattr(id, n) => {
            let b = bs.open_blob(*id)?;
            let r = bs.remove_xattr(&b, n);
            bs.close_blob(b)?;
            r?;
            println!("Xattr has been removed.");
        }
        Cmd::SetSuper(id) => {
            bs.set_super_blob(Some(*id))?;
            println!("Super Blob ID has been set.");
        }
        Cmd::Delete(id) => {
            bs.delete_blob(*id)?;
            println!("Blob {id:#x} has been deleted.");
        }
    }
    Ok(())
}

fn list_bdevs() {
    println!("\nList bdevs:");
    for b in bdev::bdev::list() {
        println!("\tbdev Name: {}", b.name());
        println!("\tbdev Product Name: {}", b.info().product_name);
    }
}

/// Commands of a script: each line parsed as a command line, `$Bn` replaced.
fn script_lines(path: &std::path::Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect())
}

fn expand(line: &str, created: &[u64]) -> Result<Vec<String>, String> {
    let mut v = vec!["blobcli".to_string()];
    for tok in line.split_whitespace() {
        match tok.strip_prefix("$B") {
            Some(n) => {
                let i: usize = n.parse().map_err(|_| format!("bad token '{tok}'"))?;
                let id = created
                    .get(i)
                    .ok_or(format!("there is no blob for {tok}"))?;
                v.push(format!("{id:#x}"));
            }
            None => v.push(tok.to_string()),
        }
    }
    Ok(v)
}

/// A store on the bdev, loaded or initialised on first use; unloaded at the end.
struct Cli {
    th: framework::ThreadHandle,
    bdev: String,
    bs: Option<Blobstore>,
}

impl Cli {
    fn store(&mut self, init: bool) -> Result<&mut Blobstore, String> {
        if init {
            let dev: Box<dyn blob::BlockDevice> = match self.bs.take() {
                Some(bs) => bs.unload().map_err(|e| e.to_string())?,
                None => Box::new(
                    BdevDev::open(&self.th, &self.bdev)
                        .map_err(|e| format!("could not open bdev '{}': {e}", self.bdev))?,
                ),
            };
            println!("Init blobstore using bdev: {}", self.bdev);
            self.bs = Some(Blobstore::init(dev, &InitOpts::default()).map_err(|e| e.to_string())?);
            println!("blobstore init'd");
        } else if self.bs.is_none() {
            let dev = BdevDev::open(&self.th, &self.bdev)
                .map_err(|e| format!("could not open bdev '{}': {e}", self.bdev))?;
            let (bs, _) =
                Blobstore::load(Box::new(dev), &LoadOpts::default()).map_err(|e| e.to_string())?;
            self.bs = Some(bs);
        }
        self.bs.as_mut().ok_or_else(|| "no blobstore".to_string())
    }

    fn run(&mut self, cmd: &Cmd, created: &mut Vec<u64>) -> Result<(), String> {
        if *cmd == Cmd::ListBdevs {
            list_bdevs();
            return Ok(());
        }
        let bdev = self.bdev.clone();
        let bs = self.store(*cmd == Cmd::Init)?;
        run_cmd(bs, cmd, &bdev, created).map_err(|e| e.to_string())
    }

    fn finish(self) -> Result<(), String> {
        match self.bs {
            Some(bs) => bs
                .unload()
                .map(drop)
                .map_err(|e| format!("unloading the blobstore failed: {e}")),
            None => Ok(()),
        }
    }
}

fn work(th: framework::ThreadHandle, a: &Args) -> i32 {
    let mut created = Vec::new();
    let mut rc = 0;
    let mut sess = Cli {
        th,
        bdev: a.bdev.clone(),
        bs: None,
    };
    match &a.cmd {
        Cmd::Script(path, ignore) => match script_lines(path) {
            Ok(lines) => {
                for l in lines {
                    println!("\nSCRIPT NOW PROCESSING: {l}");
                    let r = expand(&l, &created).and_then(|argv| {
                        let mut argv = argv;
                        if !argv.iter().any(|x| x == "-b") {
                            argv.extend(["-b".to_string(), a.bdev.clone()]);
                        }
                        let p = parse(&argv)?;
                        if sess.bdev.is_empty() {
                            sess.bdev = p.bdev.clone();
                        }
                        sess.run(&p.cmd, &mut created)
                    });
                    if let Err(e) = r {
                        eprintln!("blobcli: script line '{l}': {e}");
                        rc = 1;
                        if !ignore {
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                eprintln!("blobcli: {e}");
                rc = 1;
            }
        },
        cmd => {
            if let Err(e) = sess.run(cmd, &mut created) {
                eprintln!("blobcli: {e}");
                rc = 1;
            }
        }
    }
    if let Err(e) = sess.finish() {
        eprintln!("blobcli: {e}");
        rc = 1;
    }
    rc
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let a = match parse(&argv) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("blobcli: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(if e.is_empty() { 0 } else { 2 });
        }
    };
    if a.cmd == Cmd::Init {
        print!("Your entire blobstore will be destroyed. Are you sure? (y/n) ");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        if !matches!(line.trim(), "y" | "Y") {
            println!();
            return;
        }
    }
    let pid = std::process::id();
    let opts = AppOpts {
        program: "blobcli".into(),
        eal_argv: [
            "blobcli",
            "-l",
            "0",
            "--no-huge",
            "-m",
            "64",
            "--no-pci",
            "--file-prefix",
            &format!("blobcli{pid}"),
            "--log-level",
            "3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        rpc_addr: std::env::temp_dir().join(format!("blobcli.{pid}.sock")),
        json_config: a.json.clone(),
        wait_for_rpc: false,
        interrupt_mode: true,
        exit_timeout_ms: 2000,
    };
    let mut app = App::new(opts);
    if let Err(e) = app.add_subsystem(bdev::BdevSubsystem) {
        eprintln!("blobcli: {e}");
        std::process::exit(1);
    }
    let rc = Arc::new(Mutex::new(1));
    let rc2 = rc.clone();
    let args = Arc::new(a);
    let r = app.run(move |ctx| {
        let Some(th) = framework::thread::current() else {
            ctx.stop(1);
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("blobcli".into())
            .spawn(move || {
                let code = work(th, &args);
                *rc2.lock().unwrap_or_else(|e| e.into_inner()) = code;
                ctx.stop(code);
            });
        if let Err(e) = spawned {
            eprintln!("blobcli: cannot start the worker: {e}");
        }
    });
    match r {
        Ok(code) => {
            let mine = *rc.lock().unwrap_or_else(|e| e.into_inner());
            std::process::exit(if code != 0 { code } else { mine });
        }
        Err(e) => {
            eprintln!("blobcli: {e}");
            std::process::exit(1);
        }
    }
}
