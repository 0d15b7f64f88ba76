//! Strict decoding / validation of configuration bodies, like MediaMTX's jsonwrapper + Validate().

pub use crate::conf_fields::*;
use serde_json::{json, Map, Value};

/// Parses a MediaMTX duration (conf.Duration): an optional leading `<N>d` (days, may be
/// negative), then a Go duration; the empty string is zero. Returns nanoseconds.
pub fn parse_duration(s: &str) -> Result<i128, String> {
    let mut rest = s;
    let mut days: i128 = 0;
    let mut negative = false;
    let b = s.as_bytes();
    let digits_from = usize::from(b.first() == Some(&b'-'));
    let n = b[digits_from..].iter().take_while(|c| c.is_ascii_digit()).count();
    if n > 0 && b.get(digits_from + n) == Some(&b'd') {
        days = s[digits_from..digits_from + n].parse::<i128>().unwrap_or(0);
        negative = digits_from == 1 && days != 0;
        rest = &s[digits_from + n + 1..];
    }
    let mut total = if rest.is_empty() { 0 } else { go_parse_duration(rest)? };
    total += days * 86_400 * 1_000_000_000;
    Ok(if negative { -total } else { total })
}

/// Go's time.ParseDuration (error texts included).
pub(crate) fn go_parse_duration(orig: &str) -> Result<i128, String> {
    let err = || format!("time: invalid duration \"{}\"", orig);
    let mut rest = orig;
    let mut neg = false;
    if let Some(r) = rest.strip_prefix('-') {
        neg = true;
        rest = r;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(err());
    }
    let b = rest.as_bytes();
    let mut i = 0;
    let mut sum: i128 = 0;
    while i < b.len() {
        if !(b[i] == b'.' || b[i].is_ascii_digit()) {
            return Err(err());
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let int_part = &rest[start..i];
        let mut frac_part = "";
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let fs = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            frac_part = &rest[fs..i];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(err());
        }
        let us = i;
        while i < b.len() && !b[i].is_ascii_digit() && b[i] != b'.' {
            i += 1;
        }
        let unit = &rest[us..i];
        let mult: i128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("time: missing unit in duration \"{}\"", orig)),
            _ => return Err(format!("time: unknown unit \"{}\" in duration \"{}\"", unit, orig)),
        };
        let iv: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| err())?
        };
        let mut v = iv * mult;
        if !frac_part.is_empty() {
            let mut scale = mult;
            for c in frac_part.bytes() {
                scale /= 10;
                if scale == 0 {
                    break;
                }
                v += (c - b'0') as i128 * scale;
            }
        }
        sum += v;
        if sum > i64::MAX as i128 {
            return Err(err());
        }
    }
    Ok(if neg { -sum } else { sum })
}

/// Renders a duration like conf.Duration.MarshalJSON: whole days as `<N>d`, the rest in
/// Go's time.Duration form; zero is the empty string.
pub fn format_duration(ns: i128) -> String {
    let neg = ns < 0;
    let d = ns.abs();
    let day: i128 = 86_400 * 1_000_000_000;
    let (days, rest) = (d / day, d % day);
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if days > 0 {
        out.push_str(&format!("{}d", days));
    }
    if rest != 0 {
        out.push_str(&go_format_duration(rest));
    }
    out
}

fn fmt_frac(buf: &mut Vec<u8>, mut v: u128, prec: usize) -> u128 {
    // Writes (reversed) the fraction, omitting trailing zeros.
    let mut print = false;
    for _ in 0..prec {
        let digit = v % 10;
        print = print || digit != 0;
        if print {
            buf.push(b'0' + digit as u8);
        }
        v /= 10;
    }
    if print {
        buf.push(b'.');
    }
    v
}

fn fmt_int(buf: &mut Vec<u8>, mut v: u128) {
    if v == 0 {
        buf.push(b'0');
    }
    while v > 0 {
        buf.push(b'0' + (v % 10) as u8);
        v /= 10;
    }
}

/// Formats nanoseconds like Go's time.Duration.String().
pub fn go_format_duration(ns: i128) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let mut u = ns.unsigned_abs();
    let mut buf: Vec<u8> = Vec::new(); // reversed
    if u < 1_000_000_000 {
        let prec;
        buf.push(b's');
        if u < 1_000 {
            prec = 0;
            buf.push(b'n');
        } else if u < 1_000_000 {
            prec = 3;
            // "µ" reversed bytes
            let mu = "µ".as_bytes();
            buf.push(mu[1]);
            buf.push(mu[0]);
        } else {
            prec = 6;
            buf.push(b'm');
        }
        u = fmt_frac(&mut buf, u, prec);
        fmt_int(&mut buf, u);
    } else {
        buf.push(b's');
        u = fmt_frac(&mut buf, u, 9);
        fmt_int(&mut buf, u % 60);
        u /= 60;
        if u > 0 {
            buf.push(b'm');
            fmt_int(&mut buf, u % 60);
            u /= 60;
            if u > 0 {
                buf.push(b'h');
                fmt_int(&mut buf, u);
            }
        }
    }
    if neg {
        buf.push(b'-');
    }
    buf.reverse();
    String::from_utf8(buf).unwrap_or_default()
}

pub fn duration_of(m: &Map<String, Value>, key: &str) -> std::time::Duration {
    let ns = m
        .get(key)
        .and_then(|v| v.as_str())
        .and_then(|s| parse_duration(s).ok())
        .unwrap_or(0);
    std::time::Duration::from_nanos(ns.max(0) as u64)
}

fn json_type_name(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(n) => format!("number {}", n),
        Value::String(_) => "string".into(),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
    }
}

/// encoding/json's UnmarshalTypeError as jsonwrapper reports it (no struct context:
/// every field is decoded on its own).
fn type_error(v: &Value, go_type: &str) -> String {
    let what = match v {
        // a number of the wrong kind (1.5 into int) carries its literal; other types don't
        Value::Number(_) if go_type.starts_with("int") || go_type.starts_with("uint") => json_type_name(v),
        Value::Number(_) => "number".into(),
        _ => json_type_name(v),
    };
    format!("json: cannot unmarshal {} into Go value of type {}", what, go_type)
}

/// Go type a field's JSON value is finally unmarshaled into (what its error names).
fn go_type(f: &Field) -> &'static str {
    match f.kind {
        Kind::Bool => "bool",
        Kind::Str | Kind::Dur | Kind::Size => "string",
        Kind::Enum(_) => match f.name {
            // types whose UnmarshalJSON decodes into a local `alias` type
            "recordFormat" | "authMethod" | "encryption" | "rtspEncryption" | "rtmpEncryption" | "rtspRangeType"
            | "moqTransport" => "conf.alias",
            _ => "string",
        },
        Kind::Int => "int",
        Kind::Uint => "uint",
        Kind::Float => "float64",
        Kind::EnumArray(_) | Kind::StrArray => "[]string",
        Kind::ObjArray => "[]json.RawMessage",
        Kind::IntArray => "[]uint",
        Kind::FloatArray => "[]float64",
        Kind::Any => "interface {}",
    }
}

/// MediaMTX's error text for a value outside an enum.
fn enum_error(field: &str, v: &str) -> String {
    match field {
        "logLevel" => format!("invalid log level: '{}'", v),
        "recordFormat" => format!("invalid record format '{}'", v),
        "rtspTransport" | "sourceProtocol" => format!("invalid transport '{}'", v),
        "rtspTransports" | "protocols" => format!("invalid transport: {}", v),
        "authMethod" => format!("invalid authMethod: '{}'", v),
        "encryption" | "rtspEncryption" | "rtmpEncryption" => format!("invalid encryption: '{}'", v),
        "rtspRangeType" => format!("invalid rtsp range type: '{}'", v),
        "hlsVariant" => format!("invalid HLS variant: '{}'", v),
        "logDestinations" => format!("invalid log destination: {}", v),
        "rtspAuthMethods" | "authMethods" => format!("invalid authentication method: '{}'", v),
        "moqTransport" => format!("invalid MoQ transport '{}'", v),
        _ => format!("invalid {}: '{}'", field, v),
    }
}

fn is_int(v: &Value) -> bool {
    v.as_i64().is_some()
}

fn is_uint(v: &Value) -> bool {
    v.as_u64().is_some()
}

/// Type-checks and normalizes one (non-null) field value. Returns the value to store.
fn check_value(f: &Field, v: &Value) -> Result<Value, String> {
    let mismatch = || type_error(v, go_type(f));
    match f.kind {
        Kind::Bool => v.as_bool().map(Value::Bool).ok_or_else(mismatch),
        Kind::Str => {
            let s = v.as_str().ok_or_else(mismatch)?;
            if CREDENTIAL_FIELDS.contains(&f.name) {
                check_credential(s)?;
            }
            Ok(Value::String(s.into()))
        }
        Kind::Dur => {
            let s = v.as_str().ok_or_else(mismatch)?;
            let ns = parse_duration(s)?;
            Ok(Value::String(format_duration(ns)))
        }
        Kind::Size => {
            let s = v.as_str().ok_or_else(mismatch)?;
            parse_size(s)?;
            Ok(Value::String(s.into()))
        }
        Kind::Int => {
            if is_int(v) {
                Ok(v.clone())
            } else {
                Err(mismatch())
            }
        }
        Kind::Uint => {
            if is_uint(v) {
                Ok(v.clone())
            } else {
                Err(mismatch())
            }
        }
        Kind::Float => {
            if v.is_number() {
                Ok(v.clone())
            } else {
                Err(mismatch())
            }
        }
        Kind::Enum(list) => {
            let s = v.as_str().ok_or_else(mismatch)?;
            if list.contains(&s) {
                Ok(v.clone())
            } else {
                Err(enum_error(f.name, s))
            }
        }
        Kind::EnumArray(list) => {
            let a = v.as_array().ok_or_else(mismatch)?;
            let mut out: Vec<String> = Vec::new();
            for it in a {
                let s = it.as_str().ok_or_else(|| type_error(it, "string"))?;
                if !list.contains(&s) {
                    return Err(enum_error(f.name, s));
                }
                if !out.iter().any(|x| x == s) {
                    out.push(s.to_string());
                }
            }
            // RTSPTransports is a set, rendered sorted
            if f.name == "rtspTransports" || f.name == "protocols" {
                out.sort();
            }
            Ok(Value::Array(out.into_iter().map(Value::String).collect()))
        }
        Kind::StrArray => {
            let a = v.as_array().ok_or_else(mismatch)?;
            for x in a {
                if !x.is_string() {
                    return Err(type_error(x, "string"));
                }
            }
            // conf.IPNetworks
            if f.name.ends_with("TrustedProxies") || f.name == "publishIPs" || f.name == "readIPs" {
                return normalize_ips(a);
            }
            Ok(v.clone())
        }
        Kind::IntArray => {
            let a = v.as_array().ok_or_else(mismatch)?;
            for x in a {
                if !is_uint(x) {
                    return Err(type_error(x, "uint"));
                }
            }
            Ok(v.clone())
        }
        Kind::FloatArray => {
            let a = v.as_array().ok_or_else(mismatch)?;
            for x in a {
                if !x.is_number() {
                    return Err(type_error(x, "float64"));
                }
            }
            Ok(v.clone())
        }
        Kind::ObjArray => {
            let a = v.as_array().ok_or_else(mismatch)?;
            let mut out = Vec::new();
            for (i, x) in a.iter().enumerate() {
                out.push(check_object(f.name, i, x)?);
            }
            Ok(Value::Array(out))
        }
        Kind::Any => Ok(v.clone()),
    }
}

/// Fields holding a conf.Credential (checked for allowed characters when decoded).
const CREDENTIAL_FIELDS: &[&str] = &["publishUser", "publishPass", "readUser", "readPass"];

/// conf.Credential.validate().
fn check_credential(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Ok(());
    }
    if let Some(h) = s.strip_prefix("sha256:") {
        if h.is_empty() || !h.bytes().all(|c| c.is_ascii_alphanumeric() || b"+/=".contains(&c)) {
            return Err("credential contains unsupported characters, sha256 hash must be base64 encoded".into());
        }
        return Ok(());
    }
    if let Some(h) = s.strip_prefix("argon2:") {
        return crate::argon2_cred::decode(h)
            .map(|_| ())
            .map_err(|e| format!("invalid argon2 hash: {}", e));
    }
    if !s
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"!$()*+.;<=>[]^_-{}@#&".contains(&c))
    {
        return Err(
            "credential contains unsupported characters. Supported are: A-Z,0-9,!,$,(,),*,+,.,;,<,=,>,[,],^,_,-,\",\",@,#,&"
                .into(),
        );
    }
    Ok(())
}

/// conf.IPNetwork: an IP or a CIDR, rendered like Go's net.IPNet (address masked,
/// a single address as /32 or /128).
pub fn normalize_ip_network(s: &str) -> Result<String, String> {
    use std::net::IpAddr;
    let bad = || format!("unable to parse IP/CIDR '{}'", s);
    let (ip, bits): (IpAddr, Option<u32>) = match s.split_once('/') {
        Some((ip, bits)) => {
            let ip: IpAddr = ip.parse().map_err(|_| bad())?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            if bits.is_empty() || bits.len() > 3 || !bits.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            let b: u32 = bits.parse().map_err(|_| bad())?;
            if b > max {
                return Err(bad());
            }
            (ip, Some(b))
        }
        None => (s.parse().map_err(|_| bad())?, None),
    };
    Ok(match ip {
        IpAddr::V4(v4) => {
            let b = bits.unwrap_or(32);
            let m = if b == 0 { 0 } else { u32::MAX << (32 - b) };
            format!("{}/{}", std::net::Ipv4Addr::from(u32::from(v4) & m), b)
        }
        IpAddr::V6(v6) => match (v6.to_ipv4_mapped(), bits) {
            // net.ParseIP of a mapped address yields an IPv4 address
            (Some(v4), None) => format!("{}/32", v4),
            _ => {
                let b = bits.unwrap_or(128);
                let m = if b == 0 { 0 } else { u128::MAX << (128 - b) };
                format!("{}/{}", std::net::Ipv6Addr::from(u128::from(v6) & m), b)
            }
        },
    })
}

fn normalize_ips(a: &[Value]) -> Result<Value, String> {
    let mut out = Vec::new();
    for x in a {
        let s = x.as_str().ok_or_else(|| type_error(x, "string"))?;
        out.push(Value::String(normalize_ip_network(s)?));
    }
    Ok(Value::Array(out))
}

/// Member kinds of the objects inside array fields: (name, kind).
fn object_members(field: &str) -> Option<&'static [(&'static str, &'static str)]> {
    Some(match field {
        "forward" => &[
            ("dest", "string"),
            ("destFingerprint", "string"),
            ("whipBearerToken", "string"),
        ],
        "alwaysAvailableTracks" => &[
            ("codec", "string"),
            ("sampleRate", "int"),
            ("channelCount", "int"),
            ("muLaw", "bool"),
        ],
        "authInternalUsers" => &[
            ("user", "credential"),
            ("pass", "credential"),
            ("ips", "ips"),
            ("permissions", "permissions"),
        ],
        "authHTTPExclude" | "authJWTExclude" | "permissions" => &[("action", "action"), ("path", "string")],
        "webrtcICEServers2" => &[
            ("url", "string"),
            ("username", "string"),
            ("password", "string"),
            ("clientOnly", "bool"),
        ],
        _ => return None,
    })
}

/// Decodes one element of an object array like jsonwrapper: unknown members are refused
/// (named with their path where jsonwrapper tracks one), members type-checked, missing
/// members get their zero value. Returns the normalized object.
fn check_object(field: &str, index: usize, v: &Value) -> Result<Value, String> {
    let Some(members) = object_members(field) else {
        return Ok(v.clone());
    };
    let Some(obj) = v.as_object() else {
        return Err(type_error(v, "map[string]json.RawMessage"));
    };
    // alwaysAvailableTracks elements decode themselves (path restarts at the element)
    let prefix = match field {
        "alwaysAvailableTracks" => String::new(),
        _ => format!("{}[{}].", field, index),
    };
    for k in obj.keys() {
        if !members.iter().any(|(n, _)| n == k) {
            return Err(format!("json: unknown field \"{}{}\"", prefix, k));
        }
    }
    let mut out = Map::new();
    for (name, kind) in members {
        // an absent member keeps its zero value; an explicit null on a slice is refused
        let val = match (obj.get(*name), *kind) {
            (None, "ips" | "permissions") => json!([]),
            (Some(Value::Null), "ips" | "permissions") => {
                return Err(format!("cannot set slice \"{}{}\" to nil", prefix, name));
            }
            (v, _) => v.cloned().unwrap_or(Value::Null),
        };
        let nv = match *kind {
            "string" | "credential" | "action" => {
                let s = match &val {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    other => return Err(type_error(other, "string")),
                };
                if *kind == "credential" {
                    check_credential(&s)?;
                }
                if *kind == "action"
                    && !val.is_null()
                    && !["publish", "read", "playback", "api", "metrics", "pprof"].contains(&s.as_str())
                {
                    return Err(format!("invalid auth action: '{}'", s));
                }
                Value::String(s)
            }
            "int" => match &val {
                Value::Null => json!(0),
                v if is_int(v) => v.clone(),
                other => return Err(type_error(other, "int")),
            },
            "bool" => match &val {
                Value::Null => json!(false),
                Value::Bool(b) => json!(b),
                other => return Err(type_error(other, "bool")),
            },
            "ips" => match &val {
                Value::Array(a) => normalize_ips(a)?,
                other => return Err(type_error(other, "[]json.RawMessage")),
            },
            "permissions" => match &val {
                Value::Array(a) => {
                    let mut o = Vec::new();
                    for (i, x) in a.iter().enumerate() {
                        o.push(
                            check_object("permissions", i, x)
                                .map_err(|e| e.replace("\"permissions[", &format!("\"{}permissions[", prefix)))?,
                        );
                    }
                    Value::Array(o)
                }
                other => return Err(type_error(other, "[]json.RawMessage")),
            },
            _ => val.clone(),
        };
        out.insert(name.to_string(), nv);
    }
    if field == "alwaysAvailableTracks" {
        check_always_available_track(&out)?;
    }
    Ok(Value::Object(out))
}

/// AlwaysAvailableTrack.UnmarshalJSON rules.
fn check_always_available_track(t: &Map<String, Value>) -> Result<(), String> {
    let codec = t.get("codec").and_then(|v| v.as_str()).unwrap_or("");
    let rate = t.get("sampleRate").and_then(|v| v.as_i64()).unwrap_or(0);
    let ch = t.get("channelCount").and_then(|v| v.as_i64()).unwrap_or(0);
    match codec {
        "AV1" | "VP9" | "H265" | "H264" | "Opus" => {
            if rate != 0 {
                return Err(format!("sampleRate must not be specified for codec '{}'", codec));
            }
            if ch != 0 {
                return Err(format!("channelCount must not be specified for codec '{}'", codec));
            }
        }
        "MPEG4Audio" | "G711" | "LPCM" => {
            let min = if codec == "MPEG4Audio" { 22050 } else { 8000 };
            if rate == 0 {
                return Err(format!("sampleRate is mandatory for codec '{}'", codec));
            }
            if rate < min {
                return Err(format!(
                    "sampleRate must be greater than or equal to {} for codec '{}'",
                    min, codec
                ));
            }
            if ch == 0 {
                return Err(format!("channelCount is mandatory for codec '{}'", codec));
            }
        }
        _ => return Err(format!("unsupported codec '{}'", codec)),
    }
    Ok(())
}

pub fn parse_size(s: &str) -> Result<u64, String> {
    // code.cloudfoundry.org/bytefmt ToBytes
    let err = || {
        "byte quantity must be a positive integer with a unit of measurement like M, MB, MiB, G, GiB, or GB".to_string()
    };
    let t = s.trim().to_uppercase();
    let i = t.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(err)?;
    let (num, unit) = t.split_at(i);
    let f: f64 = num.trim().parse().map_err(|_| err())?;
    if f < 0.0 {
        return Err(err());
    }
    let mult: f64 = match unit {
        "E" | "EB" | "EIB" => 1024f64.powi(6),
        "P" | "PB" | "PIB" => 1024f64.powi(5),
        "T" | "TB" | "TIB" => 1024f64.powi(4),
        "G" | "GB" | "GIB" => 1024f64.powi(3),
        "M" | "MB" | "MIB" => 1024f64.powi(2),
        "K" | "KB" | "KIB" => 1024.0,
        "B" => 1.0,
        _ => return Err(err()),
    };
    Ok((f * mult) as u64)
}

/// Go's encoding/json syntax error text for a serde_json parse error (approximate for
/// anything but a truncated document).
fn syntax_error(body: &[u8], e: &serde_json::Error) -> String {
    if e.is_eof() {
        return "unexpected end of JSON input".into();
    }
    // byte offset of the error position
    let mut line = 1;
    let mut col = 0;
    let mut off = body.len();
    for (i, &c) in body.iter().enumerate() {
        if line == e.line() && col + 1 == e.column() {
            off = i;
            break;
        }
        if c == b'\n' {
            line += 1;
            col = 0;
        } else {
            col += 1;
        }
    }
    let c = body.get(off.min(body.len().saturating_sub(1))).copied().unwrap_or(b' ');
    let shown = if c == b'\'' {
        "'\\''".to_string()
    } else {
        format!("'{}'", c as char)
    };
    format!("invalid character {} looking for beginning of value", shown)
}

/// Strict decode of a request body against a field table, like jsonwrapper.Decode into an
/// Optional* struct: unknown fields refused, `null` = not sent. Returns the sent fields,
/// normalized.
pub fn decode_body(body: &[u8], fields: &[Field]) -> Result<Map<String, Value>, String> {
    // json.Unmarshal checks the syntax first, with the scanner's texts
    crate::gojson::check_valid(body)?;
    let v: Value = serde_json::from_slice(body).map_err(|e| syntax_error(body, &e))?;
    let obj = match v {
        Value::Object(o) => o,
        Value::Null => Map::new(),
        other => return Err(type_error(&other, "map[string]json.RawMessage")),
    };
    for k in obj.keys() {
        if !fields.iter().any(|f| f.name == k) {
            return Err(format!("json: unknown field \"{}\"", k));
        }
    }
    let mut out = Map::new();
    for (k, val) in obj.iter() {
        let f = fields.iter().find(|f| f.name == k).expect("checked above");
        if f.name == "name" || val.is_null() {
            // `name` is filled by Validate(); null leaves an Optional field unset
            continue;
        }
        let nv = check_value(f, val)?;
        out.insert(k.clone(), nv);
    }
    Ok(out)
}

/// Defaults of a table as a map (non-deprecated fields only), durations MediaMTX-formatted.
pub fn defaults(fields: &[Field]) -> Map<String, Value> {
    let mut m = Map::new();
    for f in fields {
        if f.deprecated || f.name == "name" {
            continue;
        }
        let mut v: Value = serde_json::from_str(f.default).expect("default json");
        if f.kind == Kind::Dur {
            if let Some(s) = v.as_str() {
                v = Value::String(format_duration(parse_duration(s).unwrap_or(0)));
            }
        }
        if f.name == "rtspTransports" {
            if let Some(a) = v.as_array_mut() {
                a.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
            }
        }
        m.insert(f.name.to_string(), v);
    }
    m
}

/// Merges sent fields into a map (copyStructFields: set fields overwrite, deprecated ones
/// included: they are pointers and show up once set).
pub fn merge(base: &mut Map<String, Value>, sent: &Map<String, Value>, _fields: &[Field]) {
    for (k, v) in sent {
        base.insert(k.clone(), v.clone());
    }
}

/// conf.IsValidPathName (MediaMTX v1.20.1).
pub fn check_path_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("cannot be empty".into());
    }
    if name.starts_with('/') {
        return Err("can't begin with a slash".into());
    }
    if name.ends_with('/') {
        return Err("can't end with a slash".into());
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-/.".contains(&b)) {
        return Err("can contain only alphanumeric characters, underscore, dot, minus, slash".into());
    }
    if name.split('/').any(|seg| seg == "." || seg == "..") {
        return Err("can't contain dot path segments".into());
    }
    Ok(())
}

/// Whether a configured path name is a regular-expression path.
pub fn is_regex_conf(name: &str) -> bool {
    name.starts_with('~') || name == "all" || name == "all_others"
}

/// The compiled expression of a regexp path configuration (`all`/`all_others` = `^.*$`).
pub fn conf_regex(conf_name: &str) -> Result<regex::Regex, String> {
    let pat = match conf_name {
        "all" | "all_others" => "^.*$",
        n => n.strip_prefix('~').unwrap_or(n),
    };
    go_regex(pat).map_err(|_| format!("invalid regular expression: {}", pat))
}

/// Go's regexp.Compile (RE2 syntax, Go's meaning) on the regex crate.
pub fn go_regex(pat: &str) -> Result<regex::Regex, String> {
    crate::re2::compile(pat).ok_or_else(|| format!("invalid regular expression: {}", pat))
}

/// Whether `name` is matched by a regexp path configuration (Go FindStringSubmatch: unanchored).
pub fn regex_matches(conf_name: &str, name: &str) -> bool {
    conf_regex(conf_name).map(|r| r.is_match(name)).unwrap_or(false)
}

/// Whether the double pulls `source` (with an ffmpeg child, procs.rs).
pub fn is_url_source(source: &str) -> bool {
    url_source_type(source).is_some()
}

/// `source.type` of the static sources that the double pulls (MediaMTX
/// staticsources/handler.go picks the source by these URL prefixes; RTSP tunnelled in HTTP
/// or WebSocket is an rtspSource too). The WebRTC (WHEP) and MoQ sources are not pulled:
/// the double has no stack for them.
pub fn url_source_type(source: &str) -> Option<&'static str> {
    const TYPES: &[(&[&str], &str)] = &[
        (
            &[
                "rtsp://",
                "rtsps://",
                "rtsp+http://",
                "rtsps+http://",
                "rtsp+ws://",
                "rtsps+ws://",
            ],
            "rtspSource",
        ),
        (&["rtmp://", "rtmps://"], "rtmpSource"),
        (&["http://", "https://"], "hlsSource"),
        (&["udp://", "udp+mpegts://", "unix+mpegts://"], "mpegtsSource"),
        (&["srt://"], "srtSource"),
        (&["udp+rtp://", "unix+rtp://"], "rtpSource"),
    ];
    TYPES
        .iter()
        .find(|(prefixes, _)| prefixes.iter().any(|p| source.starts_with(p)))
        .map(|(_, t)| *t)
}

/// The parts of a URL that MediaMTX's checks look at (net/url.Parse, simplified).
struct Url {
    scheme: String,
    user: Option<(String, Option<String>)>,
    host: String,
}

fn parse_url(s: &str) -> Option<Url> {
    if s.bytes().any(|c| c < 0x20 || c == 0x7f || c == b' ') {
        return None;
    }
    let (scheme, rest) = s.split_once("://")?;
    if scheme.is_empty()
        || !scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        || !scheme.bytes().all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
    {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let (user, host) = match authority.rfind('@') {
        Some(i) => {
            let ui = &authority[..i];
            let u = match ui.split_once(':') {
                Some((u, p)) => (u.to_string(), Some(p.to_string())),
                None => (ui.to_string(), None),
            };
            (Some(u), &authority[i + 1..])
        }
        None => (None, authority),
    };
    // a port, if any, must be numeric
    let port = if let Some(h) = host.strip_prefix('[') {
        let close = h.find(']')?;
        h[close + 1..].strip_prefix(':')
    } else {
        host.rsplit_once(':').map(|(_, p)| p)
    };
    if let Some(p) = port {
        if !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
    }
    Some(Url {
        scheme: scheme.to_ascii_lowercase(),
        user,
        host: host.to_string(),
    })
}

/// conf validateURL (placeholders `$G1` replaced as MediaMTX does).
fn validate_url(source: &str) -> Result<Url, String> {
    let mut s = source.to_string();
    // ":$G1" -> ":1935", "$G1" -> "abc"
    let re_port = regex::Regex::new(r":\$G[0-9]+").expect("static regex");
    s = re_port.replace_all(&s, ":1935").into_owned();
    let re = regex::Regex::new(r"\$G[0-9]+").expect("static regex");
    s = re.replace_all(&s, "abc").into_owned();
    let u = parse_url(&s).ok_or_else(|| format!("'{}' is not a valid URL", source))?;
    if u.scheme.is_empty() || u.host.is_empty() {
        return Err(format!("'{}' is not a valid URL", source));
    }
    if let Some((user, pass)) = &u.user {
        let pass = pass.clone().unwrap_or_default();
        if (!user.is_empty() && pass.is_empty()) || (user.is_empty() && !pass.is_empty()) {
            return Err("username and password must be both provided".into());
        }
    }
    Ok(u)
}

fn check_redirect(v: &str) -> Result<(), String> {
    if let Some(p) = v.strip_prefix('/') {
        check_path_name(p).map_err(|e| format!("'{}': {}", v, e))
    } else {
        match parse_url(v) {
            Some(u) if u.scheme == "rtsp" || u.scheme == "rtsps" => Ok(()),
            _ => Err(format!("'{}' is not a valid RTSP URL", v)),
        }
    }
}

fn check_srt_passphrase(p: &str) -> Result<(), String> {
    if p.len() < 10 || p.len() > 79 {
        return Err("must be between 10 and 79 characters".into());
    }
    Ok(())
}

fn has_port(u: &Url) -> bool {
    if let Some(h) = u.host.strip_prefix('[') {
        h.split_once(']').map(|(_, r)| r.starts_with(':')).unwrap_or(false)
    } else {
        u.host.contains(':')
    }
}

/// ForwardDest.Validate().
fn validate_forward(v: &Value) -> Result<(), String> {
    let Some(a) = v.as_array() else { return Ok(()) };
    for (i, e) in a.iter().enumerate() {
        let dest = e.get("dest").and_then(|d| d.as_str()).unwrap_or("");
        let r = (|| {
            if dest.is_empty() {
                return Err("destination is empty".to_string());
            }
            let u = validate_url(&dest.replace("$MTX_PATH", "path"))?;
            match u.scheme.as_str() {
                "rtmp" | "rtmps" | "rtsp" | "rtsps" | "srt" | "whip" | "whips" => Ok(()),
                other => Err(format!(
                    "unsupported scheme '{}', supported ones are rtmp, rtmps, rtsp, rtsps, srt, whip and whips",
                    other
                )),
            }
        })();
        r.map_err(|e| format!("invalid 'forward': entry {}: {}", i, e))?;
    }
    Ok(())
}

fn check_always_available_file(p: &str) -> Result<(), String> {
    use std::io::Read;
    let mut f = std::fs::File::open(p).map_err(|e| format!("open {}: {}", p, go_io_error(&e)))?;
    let mut head = [0u8; 8];
    f.read_exact(&mut head).map_err(|_| "unexpected EOF".to_string())?;
    if &head[4..8] != b"ftyp" {
        return Err(format!(
            "file is not MP4, magic bytes are [{} {} {} {}]",
            head[4], head[5], head[6], head[7]
        ));
    }
    Ok(())
}

/// The port of a listen address (`host:port`, `:port`, `[v6]:port`), as the double
/// binds every listener on loopback at that port.
pub fn port_of(address: &str) -> Option<u16> {
    address.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

/// Go's text for common os errors.
pub fn go_io_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// conf.Path.validate() (MediaMTX v1.20.1) on an effective path configuration, in its
/// order and with its texts. RPI camera and auth-related deprecated rules are not covered.
/// The `source: rpiCamera` rules of conf.Path.validate, in MediaMTX's order; `all` = every
/// path configuration (name, effective values) for the camera ID rules.
fn validate_rpi_camera(
    name: &str,
    eff: &Map<String, Value>,
    all: &[(String, Map<String, Value>)],
) -> Result<(), String> {
    let u = |k: &str| eff.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    let st = |k: &str| eff.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let set = |k: &str| eff.get(k).and_then(|v| v.as_str()).map(String::from);
    let secondary = eff.get("rpiCameraSecondary").and_then(|v| v.as_bool()).unwrap_or(false);
    let (w, h) = (u("rpiCameraWidth"), u("rpiCameraHeight"));
    if w == 0 {
        return Err("invalid 'rpiCameraWidth' value".into());
    }
    if h == 0 {
        return Err("invalid 'rpiCameraHeight' value".into());
    }
    let codec = st("rpiCameraCodec");
    if codec == "mjpeg" || (secondary && codec == "auto") {
        if w >= 2048 || w % 8 != 0 {
            return Err("'rpiCameraWidth' must be a multiple of 8 and less than 2048 when using MJPEG".into());
        }
        if h >= 2048 || h % 8 != 0 {
            return Err("'rpiCameraHeight' must be a multiple of 8 and less than 2048 when using MJPEG".into());
        }
    }
    let one_of = |k: &str, list: &[&str]| -> Result<(), String> {
        if list.contains(&st(k).as_str()) {
            Ok(())
        } else {
            Err(format!("invalid '{}' value", k))
        }
    };
    one_of("rpiCameraExposure", &["normal", "short", "long", "custom"])?;
    one_of(
        "rpiCameraAWB",
        &[
            "auto",
            "incandescent",
            "tungsten",
            "fluorescent",
            "indoor",
            "daylight",
            "cloudy",
            "custom",
        ],
    )?;
    if eff.get("rpiCameraAWBGains").and_then(|v| v.as_array()).map(|a| a.len()) != Some(2) {
        return Err("invalid 'rpiCameraAWBGains' value".into());
    }
    one_of("rpiCameraDenoise", &["off", "cdn_off", "cdn_fast", "cdn_hq"])?;
    one_of("rpiCameraMetering", &["centre", "spot", "matrix", "custom"])?;
    one_of("rpiCameraAfMode", &["auto", "manual", "continuous"])?;
    one_of("rpiCameraAfRange", &["normal", "macro", "full"])?;
    one_of("rpiCameraAfSpeed", &["normal", "fast"])?;
    // deprecated profile/level fields (rpiCameraProfile/Level already mapped)
    for (k, list) in [
        ("rpiCameraHardwareH264Profile", &["baseline", "main", "high"][..]),
        ("rpiCameraHardwareH264Level", &["4.0", "4.1", "4.2"][..]),
        ("rpiCameraSoftwareH264Profile", &["baseline", "main", "high"][..]),
        ("rpiCameraSoftwareH264Level", &["4.0", "4.1", "4.2"][..]),
    ] {
        if let Some(v) = set(k) {
            if !list.contains(&v.as_str()) {
                return Err(format!("invalid '{}' value", k));
            }
        }
    }
    one_of("rpiCameraH264Profile", &["auto", "baseline", "main", "high"])?;
    one_of("rpiCameraH264Level", &["4.0", "4.1", "4.2"])?;
    if !["auto", "hardwareH264", "softwareH264", "mjpeg"].contains(&codec.as_str()) {
        return Err("supported codecs for a RPI Camera stream are auto, hardwareH264, softwareH264, mjpeg".into());
    }
    let cam = u("rpiCameraCamID");
    let primaries: Vec<&String> = all
        .iter()
        .filter(|(n, o)| {
            n != name
                && o.get("source").and_then(|v| v.as_str()) == Some("rpiCamera")
                && o.get("rpiCameraCamID").and_then(|v| v.as_u64()).unwrap_or(0) == cam
                && !o.get("rpiCameraSecondary").and_then(|v| v.as_bool()).unwrap_or(false)
        })
        .map(|(n, _)| n)
        .collect();
    if !secondary {
        if let Some(other) = primaries.first() {
            return Err(format!(
                "'rpiCamera' with same camera ID {} is used as source in two paths, '{}' and '{}'",
                cam, name, other
            ));
        }
    } else {
        let Some(primary) = primaries.first() else {
            return Err("cannot find a primary RPI Camera stream to associate with the secondary stream".into());
        };
        // the primary takes one secondary: the first one validated (sorted by name)
        let earlier = all.iter().any(|(n, o)| {
            n.as_str() < name
                && o.get("source").and_then(|v| v.as_str()) == Some("rpiCamera")
                && o.get("rpiCameraCamID").and_then(|v| v.as_u64()).unwrap_or(0) == cam
                && o.get("rpiCameraSecondary").and_then(|v| v.as_bool()).unwrap_or(false)
        });
        if earlier {
            let _ = primary;
            return Err("a primary RPI Camera stream is associated with multiple secondary streams".into());
        }
    }
    Ok(())
}

/// conf.Path.validate; `playback` = the global `playback` switch; `all` = every path
/// configuration (name, effective values).
pub fn validate_path(
    name: &str,
    eff: &Map<String, Value>,
    playback: bool,
    all: &[(String, Map<String, Value>)],
) -> Result<(), String> {
    let regexp = if name == "all" || name == "all_others" {
        true
    } else if name.is_empty() || !name.starts_with('~') {
        check_path_name(name).map_err(|e| format!("invalid path name '{}': {}", name, e))?;
        false
    } else {
        conf_regex(name)?;
        true
    };
    let gs = |k: &str| eff.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let gb = |k: &str| eff.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
    let source = gs("source");

    if !gs("srtPublishPassphrase").is_empty() && source != "publisher" {
        return Err("'srtPublishPassphase' can only be used when source is 'publisher'".into());
    }
    if source != "redirect" && !gs("sourceRedirect").is_empty() {
        return Err("'sourceRedirect' is useless when source is not 'redirect'".into());
    }

    let pre = |p: &[&str]| p.iter().any(|x| source.starts_with(x));
    if source == "publisher" {
        let pp = gs("srtPublishPassphrase");
        if !pp.is_empty() {
            check_srt_passphrase(&pp).map_err(|e| format!("invalid 'srtPublishPassphrase': {}", e))?;
        }
    } else if pre(&[
        "rtsp://",
        "rtsps://",
        "rtsp+http://",
        "rtsps+http://",
        "rtsp+ws://",
        "rtsps+ws://",
        "rtmp://",
        "rtmps://",
        "http://",
        "https://",
        "srt://",
        "moqt://",
        "whep://",
        "wheps://",
    ]) {
        validate_url(&source)?;
    } else if pre(&["udp://", "udp+mpegts://", "udp+rtp://"]) {
        let u = validate_url(&source)?;
        if !has_port(&u) {
            return Err(format!("'{}' is missing the port", source));
        }
        if source.starts_with("udp+rtp://") && gs("rtpSDP").is_empty() {
            return Err("`rtpSDP` was not provided".into());
        }
    } else if source.starts_with("unix+mpegts://") {
    } else if source.starts_with("unix+rtp://") {
        if gs("rtpSDP").is_empty() {
            return Err("`rtpSDP` was not provided".into());
        }
    } else if source == "redirect" {
        let r = gs("sourceRedirect");
        if r.is_empty() {
            return Err("source redirect must be filled".into());
        }
        check_redirect(&r)?;
    } else if source == "rpiCamera" {
        validate_rpi_camera(name, eff, all)?;
    } else {
        return Err(format!("invalid source: '{}'", source));
    }

    if gb("sourceOnDemand") {
        if source == "publisher" {
            return Err("'sourceOnDemand' is useless when source is 'publisher'".into());
        }
    } else if source != "publisher" && source != "redirect" && regexp {
        return Err(
            "a path with a regular expression (or path 'all_others') and a static source must have 'sourceOnDemand' set to true"
                .into(),
        );
    }

    let rp = gs("srtReadPassphrase");
    if !rp.is_empty() {
        check_srt_passphrase(&rp).map_err(|e| format!("invalid 'readRTPassphrase': {}", e))?;
    }

    if let Some(f) = eff.get("forward") {
        validate_forward(f)?;
    }

    if let Some(fb) = eff.get("fallback").and_then(|v| v.as_str()) {
        check_redirect(fb)?;
    }

    if gb("alwaysAvailable") {
        if regexp {
            return Err(
                "'alwaysAvailable' cannot be used in a path with a regular expression (or path 'all_others')".into(),
            );
        }
        if gb("sourceOnDemand") {
            return Err("'sourceOnDemand' is not compatible with 'alwaysAvailable'".into());
        }
        if !gs("runOnDemand").is_empty() || !gs("runOnUnDemand").is_empty() {
            return Err("'runOnDemand' and 'runOnUnDemand' cannot be used with 'alwaysAvailable'".into());
        }
        let tracks = eff
            .get("alwaysAvailableTracks")
            .and_then(|v| v.as_array())
            .map(|a| a.len())
            .unwrap_or(0);
        let file = gs("alwaysAvailableFile");
        if !file.is_empty() {
            if tracks != 0 {
                return Err("'alwaysAvailableFile' and 'alwaysAvailableTracks' cannot be used together".into());
            }
            check_always_available_file(&file).map_err(|e| format!("invalid 'alwaysAvailableFile': {}", e))?;
        } else if tracks == 0 {
            return Err("'alwaysAvailableTracks' must contain at least one track".into());
        }
        if gb("useAbsoluteTimestamp") {
            return Err("'useAbsoluteTimestamp' cannot be used with 'alwaysAvailable'".into());
        }
    }

    let rec = gs("recordPath");
    if !rec.contains("%path") {
        return Err("'recordPath' must contain %path".into());
    }
    let has_date = ["%Y", "%m", "%d", "%H", "%M", "%S"].iter().all(|t| rec.contains(t));
    if !rec.contains("%s") && !has_date {
        return Err("'recordPath' must contain either %s or %Y %m %d %H %M %S".into());
    }
    if playback && !rec.contains("%f") {
        return Err("'recordPath' must contain %f".into());
    }

    let dur = |k: &str| parse_duration(&gs(k)).unwrap_or(0);
    let seg = dur("recordSegmentDuration");
    if seg > 86_400 * 1_000_000_000 {
        return Err("maximum segment duration is 1 day".into());
    }
    let del = dur("recordDeleteAfter");
    if del != 0 && del < seg {
        return Err("'recordDeleteAfter' cannot be lower than 'recordSegmentDuration'".into());
    }

    if !gs("runOnInit").is_empty() && regexp {
        return Err(
            "a path with a regular expression (or path 'all_others') does not support option 'runOnInit'; use another path"
                .into(),
        );
    }
    if (!gs("runOnDemand").is_empty() || !gs("runOnUnDemand").is_empty()) && source != "publisher" {
        return Err("'runOnDemand' and 'runOnUnDemand' can be used only when source is 'publisher'".into());
    }
    Ok(())
}

/// Rules of Conf.Validate() that span path configurations.
pub fn validate_conf_names<'a>(names: impl Iterator<Item = &'a String>) -> Result<(), String> {
    let mut has_all_others = false;
    for n in names {
        if n == "all" || n == "all_others" || n == "~^.*$" {
            if has_all_others {
                return Err("all_others, all and '~^.*$' are aliases".into());
            }
            has_all_others = true;
        }
    }
    Ok(())
}

/// Applies MediaMTX's mapping of deprecated path fields (done by validate() on every
/// load): the deprecated field stays visible, the new one takes its value.
pub fn map_deprecated_path(eff: &mut Map<String, Value>) {
    let source = eff.get("source").and_then(|v| v.as_str()).unwrap_or("").to_string();
    let get = |k: &str| eff_get(eff, k);
    let updates: Vec<(&str, Value)> = {
        let mut u = Vec::new();
        if source == "publisher" {
            if let Some(Value::Bool(b)) = get("disablePublisherOverride") {
                u.push(("overridePublisher", Value::Bool(!b)));
            }
        }
        if [
            "rtsp://",
            "rtsps://",
            "rtsp+http://",
            "rtsps+http://",
            "rtsp+ws://",
            "rtsps+ws://",
        ]
        .iter()
        .any(|p| source.starts_with(p))
        {
            if let Some(v) = get("sourceProtocol") {
                u.push(("rtspTransport", v));
            }
            if let Some(v) = get("sourceAnyPortEnable") {
                u.push(("rtspAnyPort", v));
            }
        }
        if source == "rpiCamera" {
            if let Some(v) = get("rpiCameraProfile") {
                u.push(("rpiCameraHardwareH264Profile", v));
            }
            if let Some(v) = get("rpiCameraLevel") {
                u.push(("rpiCameraHardwareH264Level", v));
            }
            if let Some(v) = get("rpiCameraJPEGQuality") {
                u.push(("rpiCameraMJPEGQuality", v));
            }
        }
        if let Some(v) = get("runOnReady") {
            u.push(("runOnAvailable", v));
        }
        if let Some(v) = get("runOnReadyRestart") {
            u.push(("runOnAvailableRestart", v));
        }
        if let Some(v) = get("runOnNotReady") {
            u.push(("runOnUnavailable", v));
        }
        u
    };
    for (k, v) in updates {
        eff.insert(k.to_string(), v);
    }
}

fn eff_get(m: &Map<String, Value>, k: &str) -> Option<Value> {
    m.get(k).filter(|v| !v.is_null()).cloned()
}

/// Mapping of deprecated global fields (Conf.Validate()). Returns path-default fields
/// set through deprecated global `record*` fields.
pub fn map_deprecated_global(g: &mut Map<String, Value>) -> Map<String, Value> {
    let get = |g: &Map<String, Value>, k: &str| eff_get(g, k);
    if let Some(v) = get(g, "readBufferCount") {
        g.insert("writeQueueSize".into(), v);
    }
    if let Some(v) = get(g, "protocols") {
        g.insert("rtspTransports".into(), v);
    }
    if let Some(v) = get(g, "encryption") {
        g.insert("rtspEncryption".into(), v);
    }
    if let Some(v) = get(g, "authMethods") {
        g.insert("rtspAuthMethods".into(), v);
    }
    if let Some(v) = get(g, "externalAuthenticationURL") {
        g.insert("authMethod".into(), json!("http"));
        g.insert("authHTTPAddress".into(), v);
    }
    for (old, new) in [
        ("apiAllowOrigin", "apiAllowOrigins"),
        ("metricsAllowOrigin", "metricsAllowOrigins"),
        ("pprofAllowOrigin", "pprofAllowOrigins"),
        ("playbackAllowOrigin", "playbackAllowOrigins"),
        ("hlsAllowOrigin", "hlsAllowOrigins"),
        ("webrtcAllowOrigin", "webrtcAllowOrigins"),
    ] {
        if let Some(v) = get(g, old) {
            if g.contains_key(new) {
                g.insert(new.into(), json!([v]));
            }
        }
    }
    for (old, new) in [
        ("rtspDisable", "rtsp"),
        ("rtmpDisable", "rtmp"),
        ("hlsDisable", "hls"),
        ("webrtcDisable", "webrtc"),
    ] {
        if let Some(Value::Bool(b)) = get(g, old) {
            g.insert(new.into(), json!(!b));
        }
    }
    let mut pd = Map::new();
    for k in [
        "record",
        "recordPath",
        "recordFormat",
        "recordPartDuration",
        "recordSegmentDuration",
        "recordDeleteAfter",
    ] {
        if let Some(v) = get(g, k) {
            let v = match (k, &v) {
                ("recordPartDuration" | "recordSegmentDuration" | "recordDeleteAfter", Value::String(s)) => {
                    json!(format_duration(parse_duration(s).unwrap_or(0)))
                }
                _ => v,
            };
            pd.insert(k.into(), v);
        }
    }
    pd
}

/// Global rules of Conf.Validate() (MediaMTX v1.20.1), on the merged global configuration.
pub fn validate_global(g: &Map<String, Value>) -> Result<(), String> {
    let dur = |k: &str| {
        g.get(k)
            .and_then(|v| v.as_str())
            .map(|s| parse_duration(s).unwrap_or(0))
            .unwrap_or(0)
    };
    let int = |k: &str| g.get(k).and_then(|v| v.as_i64()).unwrap_or(0);
    let gs = |k: &str| g.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    if dur("readTimeout") <= 0 {
        return Err("'readTimeout' must be greater than zero".into());
    }
    if dur("writeTimeout") <= 0 {
        return Err("'writeTimeout' must be greater than zero".into());
    }
    let wq = int("writeQueueSize");
    if wq <= 0 {
        return Err("'writeQueueSize' must be greater than zero".into());
    }
    if (wq & (wq - 1)) != 0 {
        return Err("'writeQueueSize' must be a power of two".into());
    }
    if int("udpMaxPayloadSize") > 1472 {
        return Err("'udpMaxPayloadSize' must be less than 1472".into());
    }
    match gs("authMethod").as_str() {
        "http" => {
            let a = gs("authHTTPAddress");
            if a.is_empty() {
                return Err("'authHTTPAddress' is empty".into());
            }
            if !a.starts_with("http://") && !a.starts_with("https://") {
                return Err("'externalAuthenticationURL' must be a HTTP URL".into());
            }
        }
        "jwt" => {
            let a = gs("authJWTJWKS");
            if a.is_empty() {
                return Err("'authJWTJWKS' is empty".into());
            }
            if !a.starts_with("http://") && !a.starts_with("https://") {
                return Err("'authJWTJWKS' must be a HTTP URL".into());
            }
            if gs("authJWTClaimKey").is_empty() {
                return Err("'authJWTClaimKey' is empty".into());
            }
        }
        _ => {
            if let Some(users) = g.get("authInternalUsers").and_then(|v| v.as_array()) {
                for u in users {
                    let user = u.get("user").and_then(|v| v.as_str()).unwrap_or("");
                    let pass = u.get("pass").and_then(|v| v.as_str()).unwrap_or("");
                    if user.is_empty() {
                        return Err("empty usernames are not supported".into());
                    }
                    if user == "any" && !pass.is_empty() {
                        return Err("using a password with 'any' user is not supported".into());
                    }
                }
            }
        }
    }
    let on = |k: &str| g.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
    for (flag, addr) in [
        ("api", "apiAddress"),
        ("metrics", "metricsAddress"),
        ("pprof", "pprofAddress"),
        ("playback", "playbackAddress"),
    ] {
        if on(flag) && gs(addr).is_empty() {
            let what = match flag {
                "api" => "API is",
                "metrics" => "metrics are",
                "pprof" => "pprof is",
                _ => "playback is",
            };
            return Err(format!("'{}' must be set when {} enabled", addr, what));
        }
    }
    if on("rtmp") && gs("rtmpAddress").is_empty() {
        return Err("'rtmpAddress' must be set when RTMP is enabled".into());
    }
    if on("hls") && gs("hlsAddress").is_empty() {
        return Err("'hlsAddress' must be set when HLS is enabled".into());
    }
    if on("webrtc") && gs("webrtcAddress").is_empty() {
        return Err("'webrtcAddress' must be set when WebRTC is enabled".into());
    }
    let no_auth_methods = g
        .get("rtspAuthMethods")
        .and_then(|v| v.as_array())
        .map(|a| a.is_empty())
        .unwrap_or(false);
    if on("rtsp") && no_auth_methods {
        return Err("at least one 'rtspAuthMethods' must be provided".into());
    }
    let digest = g
        .get("rtspAuthMethods")
        .and_then(|v| v.as_array())
        .is_some_and(|a| a.iter().any(|m| m == "digest"));
    if on("rtsp") && digest {
        if gs("authMethod") != "internal" {
            return Err("when RTSP digest is enabled, the only supported auth method is 'internal'".into());
        }
        let hashed = |s: &str| s.starts_with("sha256:") || s.starts_with("argon2:");
        for u in g
            .get("authInternalUsers")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            if hashed(u["user"].as_str().unwrap_or("")) || hashed(u["pass"].as_str().unwrap_or("")) {
                return Err("when RTSP digest is enabled, hashed credentials cannot be used".into());
            }
        }
    }
    Ok(())
}

/// The global configuration as the API shows it: passwords redacted.
pub fn redact_global(g: &Map<String, Value>) -> Map<String, Value> {
    let mut g = g.clone();
    if let Some(Value::Array(users)) = g.get_mut("authInternalUsers") {
        for u in users {
            if let Some(p) = u.get_mut("pass") {
                if p.as_str().map(|s| !s.is_empty()).unwrap_or(false) {
                    *p = json!("<redacted>");
                }
            }
        }
    }
    g
}

/// A path configuration as the API shows it: deprecated passwords redacted.
pub fn redact_path(p: &mut Map<String, Value>) {
    for k in ["publishPass", "readPass"] {
        if let Some(v) = p.get_mut(k) {
            if v.as_str().map(|s| !s.is_empty()).unwrap_or(false) {
                *v = json!("<redacted>");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_mediamtx() {
        let f = |s: &str| format_duration(parse_duration(s).unwrap());
        // conf/duration_test.go cases
        assert_eq!(f("3h44m16s"), "3h44m16s");
        assert_eq!(f("7d18h53m20s"), "7d18h53m20s");
        assert_eq!(f("-7d18h53m20s"), "-7d18h53m20s");
        assert_eq!(f("7d"), "7d");
        assert_eq!(parse_duration("7d18h53m20s").unwrap(), 50 * 13456 * 1_000_000_000);
        assert_eq!(parse_duration("-7d18h53m20s").unwrap(), -50 * 13456 * 1_000_000_000);
        assert_eq!(f("1h"), "1h0m0s");
        assert_eq!(f("24h"), "1d");
        assert_eq!(f("25h"), "1d1h0m0s");
        assert_eq!(f("10s"), "10s");
        assert_eq!(f("0s"), "");
        assert_eq!(f(""), "");
        assert_eq!(f("1.5s"), "1.5s");
        assert_eq!(f("90s"), "1m30s");
        assert_eq!(f("1500us"), "1.5ms");
        assert_eq!(parse_duration("abc").unwrap_err(), "time: invalid duration \"abc\"");
        assert_eq!(
            parse_duration("10").unwrap_err(),
            "time: missing unit in duration \"10\""
        );
        assert_eq!(parse_duration("1dx").unwrap_err(), "time: invalid duration \"x\"");
        assert_eq!(
            parse_duration("5y").unwrap_err(),
            "time: unknown unit \"y\" in duration \"5y\""
        );
    }

    #[test]
    fn path_names() {
        for ok in ["camera0", "a/b.c-f_g", "x.y", "..a/b..", "A-Z_09"] {
            assert_eq!(check_path_name(ok), Ok(()), "{}", ok);
        }
        let chars = "can contain only alphanumeric characters, underscore, dot, minus, slash";
        let dots = "can't contain dot path segments";
        for (bad, why) in [
            ("", "cannot be empty"),
            ("/x", "can't begin with a slash"),
            ("x/", "can't end with a slash"),
            ("a b", chars),
            ("a~b", chars),
            ("a:b", chars),
            ("é", chars),
            (".", dots),
            ("..", dots),
            ("a/../b", dots),
            ("a/./b", dots),
            ("../a", dots),
        ] {
            assert_eq!(check_path_name(bad), Err(why.to_string()), "{}", bad);
        }
    }

    #[test]
    fn regexes() {
        assert!(regex_matches("all_others", "x"));
        assert!(regex_matches("~^cam.*$", "camera1"));
        assert!(!regex_matches("~^cam.*$", "xcamera1"));
        assert!(regex_matches("~^.*$", "abc"));
        assert!(regex_matches("~cam[0-9]+", "xcam12"));
        assert!(conf_regex("~^(cam").is_err());
    }

    #[test]
    fn urls() {
        assert!(validate_url("rtsp://h:554/x").is_ok());
        assert!(validate_url("rtsp://u:p@h/x").is_ok());
        assert_eq!(
            validate_url("rtsp://u@h/x").err().unwrap(),
            "username and password must be both provided"
        );
        assert_eq!(
            validate_url("rtsp:///x").err().unwrap(),
            "'rtsp:///x' is not a valid URL"
        );
        assert_eq!(
            validate_url("rtsp://h:abc/x").err().unwrap(),
            "'rtsp://h:abc/x' is not a valid URL"
        );
        assert!(validate_url("rtmp://h:$G1/x").is_ok());
    }
}
