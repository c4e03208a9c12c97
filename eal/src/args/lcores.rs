//! The lcore syntaxes of `-l`, `--lcores` and `-c`: which lcore ids run on which cpus.

use std::collections::BTreeSet;

use crate::lcore::{parse_id_list, MAX_LCORE};

/// Highest cpu number + 1 accepted on the command line (glibc `CPU_SETSIZE`).
pub const MAX_CPU: u32 = 1024;

/// Split at top-level commas (commas inside parentheses stay).
fn split_top(s: &str) -> std::result::Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, ch) in s.char_indices() {
        match ch {
            '(' => {
                depth += 1;
                if depth > 1 {
                    return Err("nested parentheses".into());
                }
            }
            ')' => depth = depth.checked_sub(1).ok_or("')' without '('")?,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("'(' without ')'".into());
    }
    parts.push(&s[start..]);
    Ok(parts)
}

/// `N`, `N-M` or `(list)`.
fn parse_group(s: &str, limit: u32, what: &str) -> std::result::Result<Vec<u32>, String> {
    let inner = match s.strip_prefix('(') {
        Some(rest) => rest
            .strip_suffix(')')
            .ok_or_else(|| format!("unbalanced parentheses in '{s}'"))?,
        None => s,
    };
    let ids = parse_id_list(inner, limit).map_err(|e| format!("{what}: {e}"))?;
    if ids.is_empty() {
        return Err(format!("empty {what} group"));
    }
    Ok(ids)
}

/// Parse an `-l` / `--lcores` value into sorted `(lcore, cpu)` pairs.
pub fn parse_lcores(s: &str) -> std::result::Result<Vec<(u32, u32)>, String> {
    if s.is_empty() {
        return Err("empty lcore list".into());
    }
    let mut out: Vec<(u32, u32)> = Vec::new();
    let mut seen = BTreeSet::new();
    for elem in split_top(s)? {
        if elem.is_empty() {
            return Err("empty element".into());
        }
        let pairs: Vec<(u32, u32)> = match elem.split_once('@') {
            Some((l, c)) => {
                let lcores = parse_group(l, MAX_LCORE as u32, "lcore")?;
                let cpus: BTreeSet<u32> = parse_group(c, MAX_CPU, "cpu")?.into_iter().collect();
                if cpus.len() != 1 {
                    return Err(format!(
                        "'{elem}': an lcore maps to exactly one cpu (cpu sets are not supported)"
                    ));
                }
                let cpu = *cpus.iter().next().unwrap_or(&0);
                lcores.into_iter().map(|l| (l, cpu)).collect()
            }
            None if elem.starts_with('(') => {
                return Err(format!(
                    "'{elem}': a parenthesized lcore group needs '@CPU'"
                ));
            }
            None => parse_group(elem, MAX_LCORE as u32, "lcore")?
                .into_iter()
                .map(|l| (l, l))
                .collect(),
        };
        for (l, c) in pairs {
            if !seen.insert(l) {
                return Err(format!("lcore {l} given twice"));
            }
            out.push((l, c));
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Parse a `-c` hex mask into `(lcore, lcore)` pairs.
pub fn parse_coremask(s: &str) -> std::result::Result<Vec<(u32, u32)>, String> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("not a hex mask".into());
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > MAX_LCORE / 4 {
        return Err(format!("mask has bits beyond lcore {}", MAX_LCORE - 1));
    }
    let mask = if significant.is_empty() {
        0
    } else {
        u128::from_str_radix(significant, 16).map_err(|e| e.to_string())?
    };
    if mask == 0 {
        return Err("mask selects no lcore".into());
    }
    Ok((0..MAX_LCORE as u32)
        .filter(|i| mask & (1u128 << i) != 0)
        .map(|i| (i, i))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_top_respects_parens() {
        assert_eq!(split_top("1,(2,3)@4,5").unwrap(), vec!["1", "(2,3)@4", "5"]);
        assert!(split_top("(1").is_err());
        assert!(split_top("1)").is_err());
        assert!(split_top("((1))@2").is_err());
    }

    #[test]
    fn coremask_edges() {
        assert_eq!(parse_coremask("0x5").unwrap(), vec![(0, 0), (2, 2)]);
        assert_eq!(
            parse_coremask("00000000000000000000000000000000000000001").unwrap(),
            vec![(0, 0)]
        );
        assert_eq!(
            parse_coremask(&format!("0x8{}", "0".repeat(31))).unwrap(),
            vec![(127, 127)]
        );
        assert!(parse_coremask(&format!("0x1{}", "0".repeat(32))).is_err());
        assert!(parse_coremask("0x").is_err());
        assert!(parse_coremask("0").is_err());
    }
}
