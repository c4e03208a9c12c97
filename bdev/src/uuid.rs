//! A 16-byte UUID in the 8-4-4-4-12 text form SPDK prints (no crate in the workspace
//! does this yet, and the bdev layer needs only parse, print and a random v4).

use std::fmt;
use std::io::Read;

/// A UUID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// A random (version 4, RFC 4122 variant) UUID from the kernel's generator.
    pub fn random() -> Uuid {
        let mut b = [0u8; 16];
        let filled = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut b))
            .is_ok();
        if !filled {
            // No /dev/urandom (a sandbox): mix the clock and a counter instead; the
            // UUID only has to differ between bdevs of this process.
            use std::sync::atomic::{AtomicU64, Ordering};
            static N: AtomicU64 = AtomicU64::new(0);
            let t = eal::timer::rdtsc() ^ (u64::from(std::process::id()) << 32);
            b[..8].copy_from_slice(&t.to_le_bytes());
            b[8..].copy_from_slice(&N.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        }
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Uuid(b)
    }

    /// Parse the 36-character hyphenated form (either case).
    pub fn parse(s: &str) -> Option<Uuid> {
        let bytes = s.as_bytes();
        if bytes.len() != 36 {
            return None;
        }
        let mut out = [0u8; 16];
        let mut nib = 0usize;
        for (i, &c) in bytes.iter().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if c != b'-' {
                    return None;
                }
                continue;
            }
            let v = (c as char).to_digit(16)? as u8;
            out[nib / 2] |= if nib.is_multiple_of(2) { v << 4 } else { v };
            nib += 1;
        }
        Some(Uuid(out))
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let u = Uuid::random();
        let s = u.to_string();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4", "version nibble");
        assert_eq!(Uuid::parse(&s), Some(u));
        assert_eq!(Uuid::parse(&s.to_uppercase()), Some(u));
        assert_eq!(Uuid::parse("not-a-uuid"), None);
        assert_eq!(Uuid::parse(&s.replace('-', "x")), None);
        assert_ne!(Uuid::random(), u);
    }
}
