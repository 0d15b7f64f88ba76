//! JSON-RPC 2.0 envelope: frame parsing, request validation, responses, typed params.
//! Pure functions (no I/O), so the fuzz target drives them directly.

use super::error::RpcError;
use serde_json::{Map, Value};

/// One text frame: a single message or a batch.
#[derive(Debug)]
pub enum Frame {
    Single(Value),
    Batch(Vec<Value>),
}

/// Parses a frame. Invalid JSON → -32700; an empty batch → -32600 (answered as one error).
pub fn parse_frame(text: &str) -> Result<Frame, RpcError> {
    parse_frame_bounded(text, usize::MAX)
}

/// `parse_frame` with at most `max_batch` batch entries: a longer batch → one -32600
/// `batch_too_large` (with `data.max_batch`). The entries are counted while parsing, so a
/// frame of a million entries costs no more memory than `max_batch + 1` of them.
pub fn parse_frame_bounded(text: &str, max_batch: usize) -> Result<Frame, RpcError> {
    let parse_error = |e: serde_json::Error| {
        RpcError::parse_error(format!("invalid JSON at line {} column {}", e.line(), e.column()))
    };
    if !text.trim_start().starts_with('[') {
        let value: Value = serde_json::from_str(text).map_err(parse_error)?;
        return Ok(Frame::Single(value));
    }
    let over = std::cell::Cell::new(false);
    let mut de = serde_json::Deserializer::from_str(text);
    let items = serde::de::DeserializeSeed::deserialize(
        BoundedSeq {
            max: max_batch,
            over: &over,
        },
        &mut de,
    )
    .and_then(|items| de.end().map(|()| items));
    match items {
        Err(_) if over.get() => Err(RpcError::invalid_request(
            "batch_too_large",
            format!("a batch holds at most {max_batch} entries"),
        )
        .with("max_batch", max_batch as u64)),
        Err(e) => Err(parse_error(e)),
        Ok(items) if items.is_empty() => Err(RpcError::invalid_request(
            "empty_batch",
            "a batch must contain at least one request",
        )),
        Ok(items) => Ok(Frame::Batch(items)),
    }
}

/// A JSON array of at most `max` values; the parse stops at the first value beyond.
struct BoundedSeq<'a> {
    max: usize,
    over: &'a std::cell::Cell<bool>,
}

impl<'de> serde::de::DeserializeSeed<'de> for BoundedSeq<'_> {
    type Value = Vec<Value>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Vec<Value>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for BoundedSeq<'_> {
    type Value = Vec<Value>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Value>, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element::<Value>()? {
            if items.len() == self.max {
                self.over.set(true);
                return Err(serde::de::Error::custom("batch too large"));
            }
            items.push(v);
        }
        Ok(items)
    }
}

/// A validated request. `id == None` means a notification (no reply).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: Option<Value>,
    pub method: String,
    /// `Ok(map)` for an object or omitted/null params; `Err(())` for positional (array)
    /// params, which no method accepts: reported as -32602 after the auth checks.
    pub params: Result<Map<String, Value>, ()>,
}

/// Validates the envelope. On failure returns the id to answer with (null when the id is
/// itself unusable) and a -32600 error.
pub fn parse_request(value: Value) -> Result<Request, (Value, RpcError)> {
    let Value::Object(mut obj) = value else {
        return Err((
            Value::Null,
            RpcError::invalid_request("not_an_object", "a request must be a JSON object"),
        ));
    };
    let id = match obj.remove("id") {
        None => None,
        Some(v @ (Value::Null | Value::String(_))) => Some(v),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(Value::Number(n)),
        Some(_) => {
            return Err((
                Value::Null,
                RpcError::invalid_request("invalid_id", "id must be a string, an integer or null"),
            ))
        }
    };
    let answer_id = id.clone().unwrap_or(Value::Null);
    match obj.get("jsonrpc") {
        Some(Value::String(v)) if v == "2.0" => {}
        _ => {
            return Err((
                answer_id,
                RpcError::invalid_request("invalid_jsonrpc_version", "jsonrpc must be exactly \"2.0\""),
            ))
        }
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) if !m.is_empty() => m,
        Some(_) => {
            return Err((
                answer_id,
                RpcError::invalid_request("invalid_method", "method must be a non-empty string"),
            ))
        }
        None => {
            return Err((
                answer_id,
                RpcError::invalid_request("missing_method", "method is required"),
            ))
        }
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(Value::Array(_)) => Err(()),
        Some(_) => {
            return Err((
                answer_id,
                RpcError::invalid_request("invalid_params_type", "params must be an object (or omitted)"),
            ))
        }
    };
    // Other members are ignored (documented in docs/api.md), like most JSON-RPC servers do.
    Ok(Request { id, method, params })
}

pub fn success(id: Value, result: Value) -> Value {
    serde_json::json!({"jsonrpc": "2.0", "result": result, "id": id})
}

pub fn failure(id: Value, error: &RpcError) -> Value {
    serde_json::json!({"jsonrpc": "2.0", "error": error.to_json(), "id": id})
}

/// Typed access to a params object. Each getter knows the param's name, so every -32602
/// carries `data.param`; `finish` rejects members the method does not define (typos).
pub struct Params {
    map: Map<String, Value>,
    known: Vec<&'static str>,
}

impl Params {
    pub fn new(map: Map<String, Value>) -> Params {
        Params { map, known: Vec::new() }
    }

    fn take(&mut self, name: &'static str) -> Option<Value> {
        self.known.push(name);
        match self.map.get(name) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.clone()),
        }
    }

    pub fn opt_str(&mut self, name: &'static str) -> Result<Option<String>, RpcError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(RpcError::invalid_params(name, format!("{name} must be a string"))),
        }
    }

    pub fn str(&mut self, name: &'static str) -> Result<String, RpcError> {
        self.opt_str(name)?
            .ok_or_else(|| RpcError::invalid_params(name, format!("{name} is required")))
    }

    pub fn opt_bool(&mut self, name: &'static str) -> Result<Option<bool>, RpcError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(RpcError::invalid_params(name, format!("{name} must be true or false"))),
        }
    }

    /// An integer within `min..=max`.
    pub fn opt_int(&mut self, name: &'static str, min: i64, max: i64) -> Result<Option<i64>, RpcError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
                _ => Err(RpcError::invalid_params(
                    name,
                    format!("{name} must be an integer from {min} to {max}"),
                )),
            },
            Some(_) => Err(RpcError::invalid_params(
                name,
                format!("{name} must be an integer from {min} to {max}"),
            )),
        }
    }

    pub fn opt_number(&mut self, name: &'static str, min_exclusive: f64, max: f64) -> Result<Option<f64>, RpcError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(v) if v > min_exclusive && v <= max => Ok(Some(v)),
                _ => Err(RpcError::invalid_params(
                    name,
                    format!("{name} must be a number greater than {min_exclusive} and at most {max}"),
                )),
            },
            Some(_) => Err(RpcError::invalid_params(name, format!("{name} must be a number"))),
        }
    }

    pub fn opt_str_list(&mut self, name: &'static str) -> Result<Option<Vec<String>>, RpcError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(RpcError::invalid_params(
                        name,
                        format!("{name} must be an array of strings"),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(RpcError::invalid_params(
                name,
                format!("{name} must be an array of strings"),
            )),
        }
    }

    pub fn opt_object(&mut self, name: &'static str) -> Result<Option<Map<String, Value>>, RpcError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(RpcError::invalid_params(name, format!("{name} must be an object"))),
        }
    }

    /// The `device` param: `^camera[0-9]+$`.
    pub fn device(&mut self) -> Result<String, RpcError> {
        let d = self.str("device")?;
        if crate::ids::parse_camera_id(&d).is_none() {
            return Err(RpcError::invalid_params(
                "device",
                "device must look like cameraN (^camera[0-9]+$)",
            ));
        }
        Ok(d)
    }

    /// Fails on members no getter asked for.
    pub fn finish(self) -> Result<(), RpcError> {
        match self.map.keys().find(|k| !self.known.contains(&k.as_str())) {
            Some(k) => Err(RpcError::invalid_params(k, format!("unknown parameter {k:?}"))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(v: Value) -> Result<Request, (Value, RpcError)> {
        parse_request(v)
    }

    #[test]
    fn parse_errors_and_batches() {
        assert_eq!(parse_frame("{").unwrap_err().code, -32700);
        assert_eq!(parse_frame("[]").unwrap_err().code, -32600);
        assert!(matches!(parse_frame("[1,2]").unwrap(), Frame::Batch(v) if v.len() == 2));
        assert!(matches!(parse_frame_bounded(" [1,2] ", 2).unwrap(), Frame::Batch(v) if v.len() == 2));
        let e = parse_frame_bounded("[1,2,3", 2).unwrap_err();
        assert_eq!(
            (e.code, e.reason, e.extra["max_batch"].as_u64()),
            (-32600, "batch_too_large", Some(2))
        );
        assert_eq!(parse_frame_bounded("[1,2", 2).unwrap_err().code, -32700);
        assert_eq!(parse_frame_bounded("[1] x", 2).unwrap_err().code, -32700);
    }

    #[test]
    fn envelope_rules() {
        let r = req(json!({"jsonrpc":"2.0","method":"ping","id":1})).unwrap();
        assert_eq!(r.id, Some(json!(1)));
        assert_eq!(r.params, Ok(Map::new()));
        let n = req(json!({"jsonrpc":"2.0","method":"ping"})).unwrap();
        assert_eq!(n.id, None);
        let null_params = req(json!({"jsonrpc":"2.0","method":"ping","params":null,"id":"a"})).unwrap();
        assert_eq!(null_params.params, Ok(Map::new()));
        assert_eq!(
            req(json!({"jsonrpc":"2.0","method":"x","params":[1],"id":1}))
                .unwrap()
                .params,
            Err(())
        );
        let (id, e) = req(json!({"jsonrpc":"1.0","method":"ping","id":7})).unwrap_err();
        assert_eq!((id, e.code), (json!(7), -32600));
        let (_, e) = req(json!({"jsonrpc":"2.0","id":7})).unwrap_err();
        assert_eq!(e.reason, "missing_method");
        let (id, e) = req(json!({"jsonrpc":"2.0","method":"ping","id":{"a":1}})).unwrap_err();
        assert_eq!((id, e.code), (Value::Null, -32600));
        let (_, e) = req(json!(5)).unwrap_err();
        assert_eq!(e.code, -32600);
        let (_, e) = req(json!({"jsonrpc":"2.0","method":"ping","params":3,"id":1})).unwrap_err();
        assert_eq!(e.code, -32600);
    }

    #[test]
    fn params_helper_names_the_param() {
        let mut p = Params::new(json!({"device":"cam1","limit":5000,"x":1}).as_object().unwrap().clone());
        assert_eq!(p.device().unwrap_err().extra["param"], "device");
        assert_eq!(p.opt_int("limit", 1, 1000).unwrap_err().extra["param"], "limit");
        assert_eq!(p.finish().unwrap_err().extra["param"], "x");
    }

    #[test]
    fn error_object_shape() {
        let v = failure(json!(1), &RpcError::invalid_params("device", "bad"));
        assert_eq!(v["error"]["code"], -32602);
        assert_eq!(v["error"]["message"], "Invalid params");
        assert_eq!(v["error"]["data"]["reason"], "invalid_params");
        assert_eq!(v["error"]["data"]["param"], "device");
    }
}
