//! The interactive command line: `testpmd> ` with line editing and history (rustyline)
//! on a terminal; one command per line from a pipe or file otherwise (each echoed after
//! the prompt, so a log reads like a session). Input is read on its own thread and
//! handed over a channel, so the main thread also notices SIGINT/SIGTERM while waiting.
//!
//! Unknown first words print "Command not found"; known commands with wrong arguments
//! print "Bad arguments" and a hint. Neither ends the program.

use std::io::{BufRead, Write};
use std::sync::mpsc;
use std::time::Duration;

use crate::app::{App, PState};
use crate::args;
use crate::fwd::Mode;
use crate::sig;
use crate::stats;

pub enum Flow {
    Continue,
    Quit,
}

enum Input {
    Line(String),
    Eof,
    Interrupted,
}

const HELP: &str = "\
Commands (testpmd's names):
  start                         start forwarding
  start tx_first                send one burst on every stream, then forward
  stop                          stop forwarding and show the forward statistics
  show port info all|N          port information
  show port stats all|N         NIC statistics and throughput since the last show
  clear port stats all|N        reset the NIC statistics
  show fwd stats all            forward statistics (per stream, port, accumulated)
  show config fwd               the forwarding configuration (streams per lcore)
  set fwd MODE                  io|mac|macswap|rxonly|txonly|csum|flowgen
  set burst N                   packets per burst (1..=512)
  set txpkts L[,L...]           segment lengths of generated packets
  set nbcore N                  forwarding lcores
  port stop|start|close all|N   port control (forwarding must be stopped)
  help                          this text
  quit                          stop everything and exit
Lines starting with '#' are ignored.
";

/// Run the command loop until `quit`, end of input or a signal.
pub fn run(app: &mut App) {
    let tty = sig::isatty(0);
    let (tx, rx) = mpsc::channel::<Input>();
    let (ack_tx, ack_rx) = mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("testpmd-cli".into())
        .spawn(move || {
            if tty {
                read_tty(tx, ack_rx)
            } else {
                read_pipe(tx, ack_rx)
            }
        });
    if let Err(e) = spawned {
        eprintln!("testpmd: failed to start the command reader: {e}");
        return;
    }
    loop {
        if sig::quit_requested() {
            println!(
                "\nSignal {} received, preparing to exit...",
                sig::last_signal()
            );
            break;
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Input::Line(l)) => {
                if !tty {
                    println!("testpmd> {l}");
                }
                let f = exec(app, &l);
                let _ = std::io::stdout().flush();
                if let Flow::Quit = f {
                    break; // no ack: the reader must not prompt again
                }
                let _ = ack_tx.send(());
            }
            Ok(Input::Eof) => {
                println!();
                break;
            }
            Ok(Input::Interrupted) => {
                println!("\nInterrupted, preparing to exit...");
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
}

fn read_pipe(tx: mpsc::Sender<Input>, ack: mpsc::Receiver<()>) {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock();
    let mut l = String::new();
    loop {
        l.clear();
        match lines.read_line(&mut l) {
            Ok(0) | Err(_) => {
                let _ = tx.send(Input::Eof);
                return;
            }
            Ok(_) => {
                if tx
                    .send(Input::Line(l.trim_end_matches(['\n', '\r']).to_string()))
                    .is_err()
                    || ack.recv().is_err()
                {
                    return;
                }
            }
        }
    }
}

fn read_tty(tx: mpsc::Sender<Input>, ack: mpsc::Receiver<()>) {
    use rustyline::error::ReadlineError;
    let mut ed = match rustyline::DefaultEditor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("testpmd: line editor unavailable ({e}); reading plain lines");
            return read_pipe(tx, ack);
        }
    };
    loop {
        match ed.readline("testpmd> ") {
            Ok(l) => {
                if !l.trim().is_empty() {
                    let _ = ed.add_history_entry(l.as_str());
                }
                if tx.send(Input::Line(l)).is_err() || ack.recv().is_err() {
                    return;
                }
            }
            Err(ReadlineError::Interrupted) => {
                let _ = tx.send(Input::Interrupted);
                return;
            }
            Err(_) => {
                let _ = tx.send(Input::Eof);
                return;
            }
        }
    }
}

/// `all` or a port id that exists (closed ones included when `closed_ok`).
fn port_sel(app: &App, w: Option<&&str>, closed_ok: bool) -> Option<Vec<u16>> {
    match w.copied() {
        Some("all") => Some(if closed_ok {
            app.ports.iter().map(|p| p.id).collect()
        } else {
            app.open_ports()
        }),
        Some(n) => {
            let id: u16 = n.parse().ok()?;
            app.ports
                .iter()
                .find(|p| p.id == id && (closed_ok || p.state != PState::Closed))
                .map(|p| vec![p.id])
        }
        None => None,
    }
}

fn bad(hint: &str) -> Flow {
    println!("Bad arguments");
    if !hint.is_empty() {
        println!("usage: {hint}");
    }
    Flow::Continue
}

fn report(r: Result<(), String>) {
    if let Err(e) = r {
        println!("{e}");
    }
}

/// Execute one command line.
pub fn exec(app: &mut App, line: &str) -> Flow {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Flow::Continue;
    }
    let w: Vec<&str> = line.split_whitespace().collect();
    match w[0] {
        "quit" | "exit" if w.len() == 1 => return Flow::Quit,
        "help" => print!("{HELP}"),
        "start" => match w.get(1..) {
            Some([]) => report(app.start_fwd(false)),
            Some(["tx_first"]) => report(app.start_fwd(true)),
            _ => return bad("start [tx_first]"),
        },
        "stop" if w.len() == 1 => report(app.stop_fwd()),
        "show" => return show(app, &w[1..]),
        "clear" => return clear(app, &w[1..]),
        "set" => return set(app, &w[1..]),
        "port" => return port(app, &w[1..]),
        "quit" | "exit" | "stop" => return bad(w[0]),
        _ => println!("Command not found"),
    }
    Flow::Continue
}

fn show(app: &mut App, w: &[&str]) -> Flow {
    match w {
        ["port", "stats", sel] => {
            let Some(ps) = port_sel(app, Some(sel), false) else {
                return bad("show port stats all|PORT");
            };
            for p in ps {
                match app.tput.port_stats_block(p) {
                    Ok(s) => print!("{s}"),
                    Err(e) => println!("{e}"),
                }
            }
        }
        ["port", "info", sel] => {
            let Some(ps) = port_sel(app, Some(sel), false) else {
                return bad("show port info all|PORT");
            };
            for p in ps {
                let st = app
                    .ports
                    .iter()
                    .find(|e| e.id == p)
                    .map(|e| e.state.name())
                    .unwrap_or("?");
                match stats::port_info_block(p, st) {
                    Ok(s) => print!("{s}"),
                    Err(e) => println!("{e}"),
                }
            }
        }
        ["fwd", "stats", "all"] => match app.fwd_stats() {
            Some(s) => print!("{s}"),
            None => println!("No forwarding statistics yet (start forwarding first)"),
        },
        ["config", "fwd"] => match app.plan() {
            Ok(plan) => {
                let n: usize = plan.lcores.iter().map(|(_, d)| d.len()).sum();
                println!(
                    "{} packet forwarding - ports={} - cores={} - streams={} - burst={} - txpkts={}",
                    app.opts.mode.name(),
                    plan.ports.len(),
                    plan.lcores.len(),
                    n,
                    app.opts.burst,
                    app.opts.txpkts.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(",")
                );
                for (lc, defs) in &plan.lcores {
                    match lc {
                        Some(l) => println!(
                            "Logical Core {l} (socket {}) forwards packets on {} streams:",
                            app.eal.lcores().socket_of(*l).unwrap_or(0),
                            defs.len()
                        ),
                        None => println!(
                            "Main thread (no worker lcore) forwards packets on {} streams:",
                            defs.len()
                        ),
                    }
                    for d in defs {
                        println!(
                            "  RX P={}/Q={} -> TX P={}/Q={} peer={}",
                            d.rx_port,
                            d.rx_queue,
                            d.tx_port,
                            d.tx_queue,
                            pmd::fmt_mac(&d.peer_mac).to_uppercase()
                        );
                    }
                }
            }
            Err(e) => println!("{e}"),
        },
        _ => return bad("show port info|stats all|PORT; show fwd stats all; show config fwd"),
    }
    Flow::Continue
}

fn clear(app: &mut App, w: &[&str]) -> Flow {
    match w {
        ["port", "stats", sel] => {
            let Some(ps) = port_sel(app, Some(sel), false) else {
                return bad("clear port stats all|PORT");
            };
            for p in ps {
                match pmd::stats_reset(p) {
                    Ok(()) => {
                        app.tput.forget(p);
                        println!("\n  NIC statistics for port {p} cleared");
                    }
                    Err(e) => println!("{e}"),
                }
            }
        }
        _ => return bad("clear port stats all|PORT"),
    }
    Flow::Continue
}

fn set(app: &mut App, w: &[&str]) -> Flow {
    let running = app.session.is_some();
    let need_stop = || println!("Please stop forwarding first");
    match w {
        ["fwd", m] => match Mode::parse(m) {
            Some(_) if running => need_stop(),
            Some(mode) => {
                app.opts.mode = mode;
                println!("Set {} packet forwarding mode", mode.name());
            }
            None => return bad(&format!("set fwd {}", Mode::names())),
        },
        ["burst", n] => match n.parse::<u16>() {
            Ok(b) if (1..=args::MAX_BURST).contains(&b) => {
                if running {
                    need_stop()
                } else {
                    app.opts.burst = b;
                    println!("Number of packets per burst set to {b}");
                }
            }
            _ => return bad("set burst 1..=512"),
        },
        ["txpkts", l] => match args::parse_txpkts(l) {
            Ok(v) if running => {
                let _ = v;
                need_stop()
            }
            Ok(v) => {
                let total: u32 = v.iter().map(|&x| u32::from(x)).sum();
                app.opts.txpkts = v;
                println!(
                    "Generated packets: {} segments, {} bytes",
                    app.opts.txpkts.len(),
                    total
                );
            }
            Err(e) => {
                println!("Bad arguments");
                println!("{e}");
            }
        },
        ["nbcore", n] => {
            let max = app.workers.len().max(1);
            match n.parse::<usize>() {
                Ok(k) if k >= 1 && k <= max => {
                    if running {
                        need_stop()
                    } else {
                        app.opts.nb_cores = k as u16;
                        println!("Number of forwarding cores set to {k}");
                    }
                }
                _ => {
                    return bad(&format!(
                        "set nbcore 1..={max} (forwarding lcores available)"
                    ))
                }
            }
        }
        _ => return bad("set fwd MODE | set burst N | set txpkts L[,L...] | set nbcore N"),
    }
    Flow::Continue
}

fn port(app: &mut App, w: &[&str]) -> Flow {
    let (op, sel) = match w {
        [op @ ("stop" | "start" | "close"), sel] => (*op, *sel),
        _ => return bad("port stop|start|close all|PORT"),
    };
    let Some(ps) = port_sel(app, Some(&sel), op == "start") else {
        return bad("port stop|start|close all|PORT");
    };
    if app.session.is_some() {
        println!("Please stop forwarding first");
        return Flow::Continue;
    }
    for p in ps {
        let st = app.entry(p).map(|e| e.state);
        let r = match (op, st) {
            ("start", Some(PState::Closed)) => {
                if sel != "all" {
                    println!("Port {p} is closed: it cannot be started again");
                }
                continue;
            }
            ("start", _) => pmd::start(p).map(|()| {
                let _ = pmd::promiscuous_set(p, true);
                PState::Started
            }),
            ("stop", _) => pmd::stop(p).map(|()| PState::Stopped),
            _ => pmd::stop(p)
                .and_then(|()| pmd::close(p))
                .map(|()| PState::Closed),
        };
        match r {
            Ok(s) => {
                if let Some(e) = app.entry(p) {
                    e.state = s;
                }
                if s == PState::Closed {
                    app.tput.forget(p);
                }
                println!("Port {p}: {}", s.name());
            }
            Err(e) => println!("{e}"),
        }
    }
    Flow::Continue
}
