//! [`Watched`]: a child process whose stdout lines and stderr are collected by reader
//! threads, so a test can wait for a line, feed stdin, and wait for the exit, each bounded
//! by a hang guard (a failure names what the child printed). The child is killed if the
//! test drops it while it runs.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// A running child process with its output collected (see the module doc).
pub struct Watched {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    guard: Duration,
}

impl Watched {
    /// Start `cmd` with piped stdin, stdout and stderr. `name` appears in failure
    /// messages; `guard` bounds every wait (a hang guard, not a timing assertion).
    pub fn spawn(mut cmd: Command, name: &str, guard: Duration) -> Watched {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({cmd:?}): {e}"));
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        let mut err = child.stderr.take().expect("piped stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let e2 = stderr.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            e2.lock().unwrap_or_else(|p| p.into_inner()).push_str(&s);
        });
        Watched {
            name: name.to_string(),
            child,
            lines: rx,
            seen: Vec::new(),
            stderr,
            guard,
        }
    }

    fn fail(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!(
            "{} {what}; stdout {:?}; stderr {}",
            self.name,
            self.seen,
            self.stderr()
        );
    }

    /// Wait for a stdout line containing `tag`; returns the trimmed text after it.
    pub fn expect(&mut self, tag: &str) -> String {
        let until = Instant::now() + self.guard;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if let Some(i) = l.find(tag) {
                        return l[i + tag.len()..].trim().to_string();
                    }
                }
                Err(_) => self.fail(&format!("never printed {tag:?}")),
            }
        }
    }

    /// Write one line to the child's stdin.
    pub fn send_line(&mut self, l: &str) {
        let s = self.child.stdin.as_mut().expect("stdin still open");
        if let Err(e) = writeln!(s, "{l}").and_then(|_| s.flush()) {
            self.fail(&format!("did not take the line {l:?}: {e}"));
        }
    }

    /// Close the child's stdin (end of input).
    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Wait for the child to exit and collect the rest of its stdout.
    pub fn wait(&mut self) -> ExitStatus {
        let until = Instant::now() + self.guard;
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) => {
                    // Let the reader thread drain.
                    std::thread::sleep(Duration::from_millis(50));
                    while let Ok(l) = self.lines.try_recv() {
                        self.seen.push(l);
                    }
                    return s;
                }
                Ok(None) if Instant::now() <= until => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => self.fail("did not exit"),
                Err(e) => self.fail(&format!("could not be waited for: {e}")),
            }
        }
    }

    /// SIGKILL the child and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The child's pid.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Stdout lines seen so far, joined with newlines.
    pub fn stdout(&self) -> String {
        self.seen.join("\n")
    }

    /// Stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A command that runs the ignored test `name` of the current test binary, alone and
/// with its output shown: the usual way for a test to start a helper process from its
/// own binary (the helper test reads what to do from the environment).
pub fn rerun_test(name: &str) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("find the test binary: {e}"));
    let mut c = Command::new(exe);
    c.args([
        "--exact",
        name,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    c
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_stdin_and_exit() {
        let mut c = Command::new("sh");
        c.args([
            "-c",
            "echo READY go; read x; echo GOT $x; echo oops >&2; exit 3",
        ]);
        let mut w = Watched::spawn(c, "sh", Duration::from_secs(30));
        assert_eq!(w.expect("READY"), "go");
        w.send_line("abc");
        assert_eq!(w.expect("GOT"), "abc");
        assert_eq!(w.wait().code(), Some(3));
        assert!(w.stdout().contains("GOT abc"));
        assert_eq!(w.stderr().trim(), "oops");
    }
}
