//! Minimal leveled logging to stderr.
//!
//! Levels follow DPDK's numbering (`Emergency = 1` … `Debug = 8`, see DPDK's
//! `rte_log.h`): a message is printed when its level is less than or equal to the global
//! level, i.e. at least as severe. The global level is one process-wide atomic, so
//! [`set_level`] / [`level`] and the macros may be called from any thread, any lcore,
//! at any time; changing the level while other threads log is fine (they see the old or
//! new level, never anything else).
//!
//! Each message is written with one `write_all` on a locked stderr, so lines from
//! different threads do not interleave. Logging never panics: a failed write to stderr is
//! ignored (there is nowhere better to report it).
//!
//! ```
//! eal::log::set_level(eal::log::Level::Debug);
//! eal::log_info!("probed {} devices", 3);
//! eal::log!(eal::log::Level::Notice, "explicit level");
//! ```

use std::fmt;
use std::io::Write;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::Error;

/// Severity of a log message; smaller is more severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u32)]
pub enum Level {
    /// System is unusable.
    Emergency = 1,
    /// Action must be taken immediately.
    Alert = 2,
    /// Critical conditions.
    Critical = 3,
    /// Error conditions.
    Error = 4,
    /// Warning conditions.
    Warning = 5,
    /// Normal but significant condition.
    Notice = 6,
    /// Informational. The default level.
    #[default]
    Info = 7,
    /// Debug-level messages.
    Debug = 8,
}

impl Level {
    /// All levels, most severe first.
    pub const ALL: [Level; 8] = [
        Level::Emergency,
        Level::Alert,
        Level::Critical,
        Level::Error,
        Level::Warning,
        Level::Notice,
        Level::Info,
        Level::Debug,
    ];

    /// The level with DPDK number `n` (1..=8).
    pub fn from_u32(n: u32) -> Option<Level> {
        Level::ALL.get((n as usize).checked_sub(1)?).copied()
    }

    /// Lower-case name, as accepted by `--log-level`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Emergency => "emergency",
            Level::Alert => "alert",
            Level::Critical => "critical",
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }

    /// Short upper-case tag printed in front of each message.
    pub fn tag(self) -> &'static str {
        match self {
            Level::Emergency => "EMERG",
            Level::Alert => "ALERT",
            Level::Critical => "CRIT",
            Level::Error => "ERR",
            Level::Warning => "WARN",
            Level::Notice => "NOTICE",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Level {
    type Err = Error;

    /// Accepts `1`..`8`, the names from [`Level::name`] in any case, and the common short
    /// forms `emerg`, `crit`, `err`, `warn`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            return t
                .parse::<u32>()
                .ok()
                .and_then(Level::from_u32)
                .ok_or_else(|| Error::Parse {
                    what: "a log level",
                    input: s.to_string(),
                    why: "use 1..8 or emergency, alert, critical, error, warning, notice, info, debug",
                });
        }
        let lower = t.to_ascii_lowercase();
        let level = match lower.as_str() {
            "emergency" | "emerg" => Level::Emergency,
            "alert" => Level::Alert,
            "critical" | "crit" => Level::Critical,
            "error" | "err" => Level::Error,
            "warning" | "warn" => Level::Warning,
            "notice" => Level::Notice,
            "info" => Level::Info,
            "debug" => Level::Debug,
            _ => return Err(Error::Parse {
                what: "a log level",
                input: s.to_string(),
                why: "use 1..8 or emergency, alert, critical, error, warning, notice, info, debug",
            }),
        };
        Ok(level)
    }
}

/// The global level. Relaxed is enough: it orders no other memory, and a logger that sees
/// a change a little late is harmless.
static LEVEL: AtomicU32 = AtomicU32::new(Level::Info as u32);

/// Set the global level: messages at `level` or more severe are printed.
pub fn set_level(level: Level) {
    LEVEL.store(level as u32, Ordering::Relaxed);
}

/// The global level.
pub fn level() -> Level {
    Level::from_u32(LEVEL.load(Ordering::Relaxed)).unwrap_or_default()
}

/// Whether a message at `level` would be printed now.
pub fn enabled(level: Level) -> bool {
    (level as u32) <= LEVEL.load(Ordering::Relaxed)
}

/// The line printed for a message (with its trailing newline). Public for tests and for
/// callers that route EAL-style lines elsewhere.
pub fn format_line(level: Level, args: fmt::Arguments<'_>) -> String {
    let mut line = match crate::lcore_id::lcore_id() {
        Some(id) => format!("{} [lcore {id}]: {args}", level.tag()),
        None => format!("{}: {args}", level.tag()),
    };
    line.push('\n');
    line
}

/// Print one message if `level` is enabled. Prefer the macros.
pub fn write(level: Level, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let line = format_line(level, args);
    // Ignored on purpose: stderr is the last resort; there is nowhere to report its failure.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `log!(Level::X, "fmt", args...)`: print at an explicit level.
#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)+) => {
        $crate::log::write($level, ::std::format_args!($($arg)+))
    };
}

/// Print at [`Level::Error`](crate::log::Level::Error).
#[macro_export]
macro_rules! log_err {
    ($($arg:tt)+) => { $crate::log!($crate::log::Level::Error, $($arg)+) };
}

/// Print at [`Level::Warning`](crate::log::Level::Warning).
#[macro_export]
macro_rules! log_warn {
    ($($arg:tt)+) => { $crate::log!($crate::log::Level::Warning, $($arg)+) };
}

/// Print at [`Level::Notice`](crate::log::Level::Notice).
#[macro_export]
macro_rules! log_notice {
    ($($arg:tt)+) => { $crate::log!($crate::log::Level::Notice, $($arg)+) };
}

/// Print at [`Level::Info`](crate::log::Level::Info).
#[macro_export]
macro_rules! log_info {
    ($($arg:tt)+) => { $crate::log!($crate::log::Level::Info, $($arg)+) };
}

/// Print at [`Level::Debug`](crate::log::Level::Debug).
#[macro_export]
macro_rules! log_debug {
    ($($arg:tt)+) => { $crate::log!($crate::log::Level::Debug, $($arg)+) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_round_trip() {
        for (i, l) in Level::ALL.iter().enumerate() {
            assert_eq!(*l as u32, i as u32 + 1);
            assert_eq!(Level::from_u32(i as u32 + 1), Some(*l));
            assert_eq!(l.name().parse::<Level>().unwrap(), *l);
            assert_eq!(l.name().to_uppercase().parse::<Level>().unwrap(), *l);
            assert_eq!((i + 1).to_string().parse::<Level>().unwrap(), *l);
        }
        assert_eq!("warn".parse::<Level>().unwrap(), Level::Warning);
        assert_eq!("err".parse::<Level>().unwrap(), Level::Error);
    }

    #[test]
    fn bad_levels_refused() {
        for s in [
            "",
            "0",
            "9",
            "-1",
            "99999999999999999999",
            "verbose",
            "dé",
            " ",
            "7x",
        ] {
            assert!(s.parse::<Level>().is_err(), "{s:?} accepted");
            assert!(Level::from_u32(0).is_none());
        }
        let e = "nope".parse::<Level>().unwrap_err();
        assert!(e.to_string().contains("'nope'"));
    }

    #[test]
    fn ordering_is_severity() {
        assert!(Level::Emergency < Level::Debug);
        assert!(Level::Error < Level::Warning);
    }

    #[test]
    fn format_has_tag_and_newline() {
        let l = format_line(Level::Warning, format_args!("x={}", 5));
        assert_eq!(l, "WARN: x=5\n");
    }

    // The one test that touches the global level (tests run in parallel threads).
    #[test]
    fn set_and_get_level() {
        let old = level();
        set_level(Level::Error);
        assert_eq!(level(), Level::Error);
        assert!(enabled(Level::Critical));
        assert!(enabled(Level::Error));
        assert!(!enabled(Level::Warning));
        crate::log_debug!("not printed {}", 1);
        crate::log_err!("printed by the log test (expected)");
        set_level(old);
        assert_eq!(level(), old);
    }
}
