//! rpc.py's script mode: with no method on the command line and commands on
//! stdin, run one command per line (shell-style quoting, `#` comments) over
//! one connection, stopping at the first failure.

use std::io::BufRead;

use crate::{run_command, Conn, Fail, Global};

/// Splits a line like a POSIX shell would for words: whitespace separates,
/// '...' is literal, "..." allows backslash escapes of `"` `\` `$` and
/// backquote, and a backslash outside quotes escapes the next character.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

pub fn run(g: &Global, conn: &mut Conn<'_>) -> Result<(), Fail> {
    let stdin = std::io::stdin();
    for (n, line) in stdin.lock().lines().enumerate() {
        let line =
            line.map_err(|e| Fail::Call(format!("failed to read commands from stdin: {e}")))?;
        let words =
            split_words(&line).map_err(|e| Fail::Usage(format!("stdin line {}: {e}", n + 1)))?;
        if words.is_empty() || words[0].starts_with('#') {
            continue;
        }
        match run_command(g, conn, &words) {
            Ok(()) => {}
            Err(Fail::Call(msg)) => {
                return Err(Fail::Call(format!(
                    "stdin line {}: {}\n{msg}",
                    n + 1,
                    line.trim()
                )))
            }
            Err(Fail::Usage(msg)) => {
                return Err(Fail::Usage(format!("stdin line {}: {msg}", n + 1)))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_words;

    #[test]
    fn quoting() {
        assert_eq!(
            split_words(r#"call m '{"a": 1}'  x\ y "q\"z""#).unwrap(),
            ["call", "m", "{\"a\": 1}", "x y", "q\"z"]
        );
        assert!(split_words("a 'b").is_err());
        assert!(split_words("   ").unwrap().is_empty());
    }
}
