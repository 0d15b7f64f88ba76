//! AMF0, the encoding of RTMP commands: the value types RTMP clients send
//! (number, boolean, string, object, null, undefined, ECMA array, strict array, date,
//! long string). Decoding is bounded: nesting depth and item counts are limited.

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Number(f64),
    Bool(bool),
    Str(String),
    Object(Vec<(String, Value)>),
    Null,
    Undefined,
    Array(Vec<Value>),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// A field of an object or ECMA array.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(o) => o.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

const MAX_DEPTH: usize = 16;
const MAX_ITEMS: usize = 1024;

/// Decodes every value of a command message body.
pub fn decode_all(mut b: &[u8]) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    while !b.is_empty() && out.len() < MAX_ITEMS {
        out.push(decode(&mut b, 0)?);
    }
    Ok(out)
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if b.len() < n {
        return Err("AMF0: short buffer".into());
    }
    let (h, t) = b.split_at(n);
    *b = t;
    Ok(h)
}

fn short_string(b: &mut &[u8]) -> Result<String, String> {
    let l = take(b, 2)?;
    let n = u16::from_be_bytes([l[0], l[1]]) as usize;
    Ok(String::from_utf8_lossy(take(b, n)?).into_owned())
}

fn u32_of(b: &mut &[u8]) -> Result<u32, String> {
    let l = take(b, 4)?;
    Ok(u32::from_be_bytes([l[0], l[1], l[2], l[3]]))
}

fn properties(b: &mut &[u8], depth: usize) -> Result<Vec<(String, Value)>, String> {
    let mut o = Vec::new();
    loop {
        if o.len() > MAX_ITEMS {
            return Err("AMF0: too many properties".into());
        }
        let k = short_string(b)?;
        if k.is_empty() && b.first() == Some(&0x09) {
            *b = &b[1..];
            return Ok(o);
        }
        let v = decode(b, depth + 1)?;
        o.push((k, v));
    }
}

fn decode(b: &mut &[u8], depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("AMF0: too deep".into());
    }
    let marker = take(b, 1)?[0];
    Ok(match marker {
        0x00 => {
            let x = take(b, 8)?;
            Value::Number(f64::from_be_bytes(x.try_into().unwrap_or([0; 8])))
        }
        0x01 => Value::Bool(take(b, 1)?[0] != 0),
        0x02 => Value::Str(short_string(b)?),
        0x03 => Value::Object(properties(b, depth)?),
        0x05 => Value::Null,
        0x06 => Value::Undefined,
        0x08 => {
            u32_of(b)?; // count hint, the list ends with the object end marker
            Value::Object(properties(b, depth)?)
        }
        0x0a => {
            let n = u32_of(b)? as usize;
            if n > MAX_ITEMS {
                return Err("AMF0: array too long".into());
            }
            let mut a = Vec::with_capacity(n);
            for _ in 0..n {
                a.push(decode(b, depth + 1)?);
            }
            Value::Array(a)
        }
        0x0b => {
            take(b, 10)?;
            Value::Undefined
        }
        0x0c => {
            let n = u32_of(b)? as usize;
            Value::Str(String::from_utf8_lossy(take(b, n)?).into_owned())
        }
        m => return Err(format!("AMF0: unsupported marker {:#x}", m)),
    })
}

pub fn encode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Number(n) => {
            out.push(0x00);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::Bool(x) => out.extend_from_slice(&[0x01, *x as u8]),
        Value::Str(s) => {
            out.push(0x02);
            put_short_string(s, out);
        }
        Value::Object(o) => {
            out.push(0x03);
            for (k, v) in o {
                put_short_string(k, out);
                encode(v, out);
            }
            out.extend_from_slice(&[0, 0, 0x09]);
        }
        Value::Null => out.push(0x05),
        Value::Undefined => out.push(0x06),
        Value::Array(a) => {
            out.push(0x0a);
            out.extend_from_slice(&(a.len() as u32).to_be_bytes());
            for v in a {
                encode(v, out);
            }
        }
    }
}

fn put_short_string(s: &str, out: &mut Vec<u8>) {
    let b = &s.as_bytes()[..s.len().min(0xffff)];
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

/// An object from string/number pairs (status objects of onStatus/_result).
pub fn obj(items: &[(&str, Value)]) -> Value {
    Value::Object(items.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
}

pub fn s(x: &str) -> Value {
    Value::Str(x.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v = vec![
            s("connect"),
            Value::Number(1.0),
            obj(&[("app", s("live")), ("n", Value::Null), ("b", Value::Bool(true))]),
            Value::Array(vec![Value::Undefined]),
        ];
        let mut b = Vec::new();
        for x in &v {
            encode(x, &mut b);
        }
        assert_eq!(decode_all(&b).unwrap(), v);
    }

    #[test]
    fn hostile_input_is_an_error() {
        assert!(decode_all(&[0x03, 0x00]).is_err());
        assert!(decode_all(&[0x0a, 0xff, 0xff, 0xff, 0xff]).is_err());
        let deep = [0x0a, 0, 0, 0, 1].repeat(100);
        assert!(decode_all(&deep).is_err());
        assert!(decode_all(&[0x02, 0x00, 0x10, b'a']).is_err());
    }
}
