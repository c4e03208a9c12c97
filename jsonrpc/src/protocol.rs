//! JSON-RPC 2.0 wire format: finding where each JSON value ends in a byte
//! stream ([`Framer`]), checking request objects ([`parse_call`]) and writing
//! response objects ([`encode_response`]).
//!
//! The framer does not parse: it tracks bracket depth and string state across
//! reads, so a value split over many reads costs one pass over its bytes, and
//! serde_json parses each complete value once.

use serde::Serialize;
use serde_json::Value;

use crate::error::RpcError;

/// Finds complete top-level JSON values in a growing buffer.
#[derive(Debug, Default)]
pub struct Framer {
    /// Offset of the first byte not yet scanned.
    pos: usize,
    /// Offset where the current value starts (valid while `active`).
    start: usize,
    active: bool,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// The current value is a bare scalar (number, literal) ended by a delimiter.
    scalar: bool,
}

impl Framer {
    /// Scans `buf` from where the last call stopped. Returns the byte range of
    /// the next complete value, or `None` if more bytes are needed.
    pub fn next_frame(&mut self, buf: &[u8]) -> Option<(usize, usize)> {
        while self.pos < buf.len() {
            let b = buf[self.pos];
            self.pos += 1;
            if !self.active {
                if b.is_ascii_whitespace() {
                    continue;
                }
                self.active = true;
                self.start = self.pos - 1;
                self.depth = 0;
                self.in_string = false;
                self.escaped = false;
                self.scalar = false;
                match b {
                    b'{' | b'[' => self.depth = 1,
                    b'"' => self.in_string = true,
                    _ => self.scalar = true,
                }
                continue;
            }
            if self.scalar {
                if b.is_ascii_whitespace() || matches!(b, b'{' | b'[' | b'"' | b'}' | b']') {
                    // The delimiter belongs to what follows.
                    self.pos -= 1;
                    self.active = false;
                    return Some((self.start, self.pos));
                }
                continue;
            }
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                    if self.depth == 0 {
                        self.active = false;
                        return Some((self.start, self.pos));
                    }
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        self.active = false;
                        return Some((self.start, self.pos));
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// The caller dropped the first `n` bytes of its buffer.
    pub fn consumed(&mut self, n: usize) {
        self.pos -= n;
        if self.active {
            self.start -= n;
        }
    }

    /// Bytes at the start of the buffer that belong to no pending value
    /// (already-framed values and whitespace) and may be dropped.
    pub fn droppable(&self) -> usize {
        if self.active {
            self.start
        } else {
            self.pos
        }
    }
}

/// A checked request object.
#[derive(Debug)]
pub struct Call {
    pub method: String,
    pub params: Option<Value>,
    /// `None` for a notification (no `id` member): no response is sent.
    pub id: Option<Value>,
}

/// Checks one request object. On failure gives the error and the id to
/// answer it with (`None`: a notification, do not answer).
pub fn parse_call(v: Value) -> Result<Call, (RpcError, Option<Value>)> {
    let Value::Object(mut obj) = v else {
        return Err((
            RpcError::invalid_request("not an object"),
            Some(Value::Null),
        ));
    };
    // An id of any JSON type is echoed back; a missing id makes a notification.
    let id = obj.remove("id");
    let answer_id = Some(id.clone().unwrap_or(Value::Null));
    match obj.get("jsonrpc") {
        Some(Value::String(s)) if s == "2.0" => {}
        _ => {
            return Err((
                RpcError::invalid_request("\"jsonrpc\" must be \"2.0\""),
                answer_id,
            ));
        }
    }
    let method = match obj.remove("method") {
        Some(Value::String(s)) => s,
        _ => {
            return Err((
                RpcError::invalid_request("\"method\" must be a string"),
                answer_id,
            ))
        }
    };
    let params = match obj.remove("params") {
        None => None,
        Some(p @ (Value::Object(_) | Value::Array(_))) => Some(p),
        Some(_) => {
            return Err((
                RpcError::invalid_request("\"params\" must be an object or an array"),
                answer_id,
            ))
        }
    };
    Ok(Call { method, params, id })
}

#[derive(Serialize)]
struct Response<'a> {
    jsonrpc: &'static str,
    id: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a RpcError>,
}

impl<'a> Response<'a> {
    fn new(id: &'a Value, result: &'a Result<Value, RpcError>) -> Response<'a> {
        let (result, error) = match result {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e)),
        };
        Response {
            jsonrpc: "2.0",
            id,
            result,
            error,
        }
    }
}

/// The response object for `id`, as a JSON value (used inside batches).
pub fn response_value(id: &Value, result: &Result<Value, RpcError>) -> Value {
    let r = Response::new(id, result);
    serde_json::to_value(r).unwrap_or(Value::Null)
}

/// Appends the response object for `id` and a newline to `out`.
pub fn encode_response(out: &mut Vec<u8>, id: &Value, result: &Result<Value, RpcError>) {
    let r = Response::new(id, result);
    // Serialising a Value tree into a Vec cannot fail (no I/O, string keys).
    if serde_json::to_writer(&mut *out, &r).is_ok() {
        out.push(b'\n');
    }
}

/// Appends a batch's response array and a newline to `out`.
pub fn encode_batch(out: &mut Vec<u8>, responses: &[Value]) {
    if serde_json::to_writer(&mut *out, responses).is_ok() {
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(chunks: &[&[u8]]) -> Vec<String> {
        let mut f = Framer::default();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for c in chunks {
            buf.extend_from_slice(c);
            while let Some((s, e)) = f.next_frame(&buf) {
                out.push(String::from_utf8(buf[s..e].to_vec()).unwrap());
            }
            let d = f.droppable();
            buf.drain(..d);
            f.consumed(d);
        }
        out
    }

    #[test]
    fn split_and_joined_values() {
        let got = frames(&[
            b"{\"a\":\"}\\\"\"",
            b",\"b\":[1,{}]}  [1,2]",
            b"{}\n{\"x\"",
            b":1}",
        ]);
        assert_eq!(
            got,
            vec!["{\"a\":\"}\\\"\",\"b\":[1,{}]}", "[1,2]", "{}", "{\"x\":1}"]
        );
    }

    #[test]
    fn bare_scalars_end_at_delimiters() {
        assert_eq!(
            frames(&[b"12 true{}", b"\"s\" "]),
            vec!["12", "true", "{}", "\"s\""]
        );
        // An unterminated scalar stays pending.
        assert!(frames(&[b"123"]).is_empty());
    }

    #[test]
    fn call_checks() {
        let c = parse_call(serde_json::json!({"jsonrpc":"2.0","method":"m","id":[1]})).unwrap();
        assert_eq!(c.id, Some(serde_json::json!([1])));
        let (e, id) =
            parse_call(serde_json::json!({"jsonrpc":"2.0","method":1,"id":"x"})).unwrap_err();
        assert_eq!(e.code, RpcError::INVALID_REQUEST);
        assert_eq!(id, Some(serde_json::json!("x")));
        let (e, _) = parse_call(serde_json::json!({"method":"m"})).unwrap_err();
        assert_eq!(e.code, RpcError::INVALID_REQUEST);
        let (e, _) =
            parse_call(serde_json::json!({"jsonrpc":"2.0","method":"m","params":3})).unwrap_err();
        assert_eq!(e.code, RpcError::INVALID_REQUEST);
        let n = parse_call(serde_json::json!({"jsonrpc":"2.0","method":"m"})).unwrap();
        assert!(n.id.is_none());
    }
}
