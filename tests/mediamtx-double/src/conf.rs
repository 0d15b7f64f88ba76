//! Strict decoding / validation of configuration bodies, like MediaMTX's jsonwrapper + Validate().

pub use crate::conf_fields::*;
use serde_json::{Map, Value};

/// Parses a MediaMTX duration ("10s", "1h30m", "200ms", "7d", "1d12h"); returns nanoseconds.
pub fn parse_duration(s: &str) -> Result<i128, String> {
    let err = || format!("time: invalid duration \"{}\"", s);
    let mut rest = s;
    let mut total: i128 = 0;
    // MediaMTX extension: a leading "<N>d" (days).
    if let Some(pos) = rest.find('d') {
        let (num, after) = rest.split_at(pos);
        if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) {
            let days: i128 = num.parse().map_err(|_| err())?;
            total += days * 24 * 3600 * 1_000_000_000;
            rest = &after[1..];
            if rest.is_empty() {
                return Ok(total);
            }
        }
    }
    let mut neg = false;
    if let Some(r) = rest.strip_prefix('-') {
        neg = true;
        rest = r;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest == "0" {
        return Ok(total);
    }
    if rest.is_empty() {
        return Err(err());
    }
    let b = rest.as_bytes();
    let mut i = 0;
    let mut sum: i128 = 0;
    while i < b.len() {
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
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("time: missing unit in duration \"{}\"", s)),
            _ => return Err(format!("time: unknown unit \"{}\" in duration \"{}\"", unit, s)),
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
    }
    Ok(total + if neg { -sum } else { sum })
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
pub fn format_duration(ns: i128) -> String {
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

fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn go_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Bool => "bool",
        Kind::Str | Kind::Enum(_) => "string",
        Kind::Dur => "conf.Duration",
        Kind::Size => "conf.StringSize",
        Kind::Int => "int",
        Kind::Uint => "uint",
        Kind::Float => "float64",
        Kind::EnumArray(_) | Kind::StrArray => "[]string",
        Kind::ObjArray => "[]struct",
        Kind::IntArray => "[]uint",
        Kind::FloatArray => "[]float64",
        Kind::Any => "interface {}",
    }
}

/// Type-checks and normalizes one field value. Returns the value to store.
fn check_value(f: &Field, v: &Value, struct_name: &str) -> Result<Value, String> {
    let mismatch = || {
        format!(
            "json: cannot unmarshal {} into Go struct field {}.{} of type {}",
            json_type_name(v),
            struct_name,
            f.name,
            go_type(f.kind)
        )
    };
    // Deprecated fields are pointers in Go: null is accepted.
    if v.is_null() && f.deprecated {
        return Ok(Value::Null);
    }
    match f.kind {
        Kind::Bool => v.as_bool().map(Value::Bool).ok_or_else(mismatch),
        Kind::Str => v.as_str().map(|s| Value::String(s.into())).ok_or_else(mismatch),
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
            if v.as_i64().is_some() {
                Ok(v.clone())
            } else {
                Err(mismatch())
            }
        }
        Kind::Uint => {
            if v.as_u64().is_some() {
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
                Err(format!("invalid {}: '{}'", f.name, s))
            }
        }
        Kind::EnumArray(list) => {
            let a = v.as_array().ok_or_else(mismatch)?;
            for it in a {
                let s = it.as_str().ok_or_else(mismatch)?;
                if !list.contains(&s) {
                    return Err(format!("invalid {}: '{}'", f.name, s));
                }
            }
            Ok(v.clone())
        }
        Kind::StrArray => {
            let a = v.as_array().ok_or_else(mismatch)?;
            if a.iter().all(|x| x.is_string()) {
                Ok(v.clone())
            } else {
                Err(mismatch())
            }
        }
        Kind::IntArray => {
            let a = v.as_array().ok_or_else(mismatch)?;
            if a.iter().all(|x| x.as_u64().is_some()) {
                Ok(v.clone())
            } else {
                Err(mismatch())
            }
        }
        Kind::FloatArray => {
            let a = v.as_array().ok_or_else(mismatch)?;
            if a.iter().all(|x| x.is_number()) {
                Ok(v.clone())
            } else {
                Err(mismatch())
            }
        }
        Kind::ObjArray => {
            let a = v.as_array().ok_or_else(mismatch)?;
            if a.iter().all(|x| x.is_object()) {
                Ok(v.clone())
            } else {
                Err(mismatch())
            }
        }
        Kind::Any => Ok(v.clone()),
    }
}

pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('K') | Some('k') => (&t[..t.len() - 1], 1024u64),
        Some('M') | Some('m') => (&t[..t.len() - 1], 1024 * 1024),
        Some('G') | Some('g') => (&t[..t.len() - 1], 1024 * 1024 * 1024),
        _ => (t, 1),
    };
    let f: f64 = num.parse().map_err(|_| format!("invalid size: '{}'", s))?;
    Ok((f * mult as f64) as u64)
}

/// Strict decode of a request body against a field table (DisallowUnknownFields).
/// Returns the sent fields, normalized.
pub fn decode_body(body: &[u8], fields: &[Field], struct_name: &str) -> Result<Map<String, Value>, String> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err("EOF".into());
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {}", e))?;
    let obj = match v {
        Value::Object(o) => o,
        other => {
            return Err(format!(
                "json: cannot unmarshal {} into Go value of type conf.{}",
                json_type_name(&other),
                struct_name
            ))
        }
    };
    let mut out = Map::new();
    for (k, val) in obj.iter() {
        let f = match fields.iter().find(|f| f.name == k) {
            Some(f) => f,
            None => return Err(format!("json: unknown field \"{}\"", k)),
        };
        if f.name == "name" {
            // read-only, filled by Validate(); MediaMTX ignores it when decoding.
            continue;
        }
        let nv = check_value(f, val, struct_name)?;
        out.insert(k.clone(), nv);
    }
    Ok(out)
}

/// Defaults of a table as a map (non-deprecated fields only), durations Go-formatted.
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
        m.insert(f.name.to_string(), v);
    }
    m
}

/// Merges sent fields into a full map (deprecated fields are accepted but not represented).
pub fn merge(base: &mut Map<String, Value>, sent: &Map<String, Value>, fields: &[Field]) {
    for (k, v) in sent {
        if let Some(f) = fields.iter().find(|f| f.name == k) {
            if f.deprecated {
                continue;
            }
        }
        base.insert(k.clone(), v.clone());
    }
}

/// MediaMTX's isValidPathName (subset of messages).
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
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-/.~:".contains(&b))
    {
        return Err("can contain only alphanumeric characters, underscore, dot, tilde, minus, slash, colon".into());
    }
    Ok(())
}

/// Whether a configured path name is a regular-expression path.
pub fn is_regex_conf(name: &str) -> bool {
    name.starts_with('~') || name == "all" || name == "all_others"
}

/// Very small regex support for configuration names: `all`, `all_others`, `~^.*$`,
/// and `~^prefix.*$`-like anchored patterns with literal text and `.*` / `.+`.
pub fn regex_matches(conf_name: &str, name: &str) -> bool {
    if conf_name == "all" || conf_name == "all_others" {
        return true;
    }
    let pat = &conf_name[1..];
    let anchored_start = pat.starts_with('^');
    let anchored_end = pat.ends_with('$') && !pat.ends_with("\\$");
    let core = pat.trim_start_matches('^');
    let core = if anchored_end { &core[..core.len() - 1] } else { core };
    fn m(p: &[u8], s: &[u8], anchored_end: bool) -> bool {
        if p.is_empty() {
            return !anchored_end || s.is_empty();
        }
        if p.len() >= 2 && p[0] == b'.' && (p[1] == b'*' || p[1] == b'+') {
            let min = if p[1] == b'+' { 1 } else { 0 };
            for k in min..=s.len() {
                if m(&p[2..], &s[k..], anchored_end) {
                    return true;
                }
            }
            return false;
        }
        if p.len() >= 2 && p[0] == b'\\' {
            return !s.is_empty() && s[0] == p[1] && m(&p[2..], &s[1..], anchored_end);
        }
        if s.is_empty() {
            return false;
        }
        (p[0] == b'.' || p[0] == s[0]) && m(&p[1..], &s[1..], anchored_end)
    }
    if anchored_start {
        m(core.as_bytes(), name.as_bytes(), anchored_end)
    } else {
        (0..=name.len()).any(|i| m(core.as_bytes(), &name.as_bytes()[i..], anchored_end))
    }
}

pub fn is_url_source(source: &str) -> bool {
    source.starts_with("rtsp://") || source.starts_with("rtsps://")
}

/// Validation of an effective path configuration, like conf.Path.validate() (subset).
pub fn validate_path(name: &str, eff: &Map<String, Value>) -> Result<(), String> {
    if !is_regex_conf(name) {
        check_path_name(name).map_err(|e| format!("invalid path name '{}': {}", name, e))?;
    } else if let Some(p) = name.strip_prefix('~') {
        if p.is_empty() {
            return Err(format!("invalid regular expression: {}", p));
        }
    }
    let gs = |k: &str| eff.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let gb = |k: &str| eff.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
    let source = gs("source");
    let known_prefix = [
        "rtsp://",
        "rtsps://",
        "rtmp://",
        "rtmps://",
        "http://",
        "https://",
        "udp://",
        "udp+mpegts://",
        "udp+rtp://",
        "unix+mpegts://",
        "unix+rtp://",
        "srt://",
        "whep://",
        "wheps://",
        "moq://",
    ];
    let valid_source = source == "publisher"
        || source == "redirect"
        || source == "rpiCamera"
        || known_prefix.iter().any(|p| source.starts_with(p));
    if !valid_source {
        return Err(format!("invalid source: '{}'", source));
    }
    if is_regex_conf(name) && source != "publisher" && source != "redirect" && !gb("sourceOnDemand") {
        return Err(
            "a path with a regular expression (or path 'all') and a static source must have 'sourceOnDemand' set to true"
                .into(),
        );
    }
    if is_url_source(&source) && !source[source.find("://").unwrap() + 3..].contains(|c: char| c != '/') {
        return Err(format!("'{}' is not a valid RTSP URL", source));
    }
    if source == "publisher" && gb("sourceOnDemand") {
        return Err("'sourceOnDemand' is useless when source is 'publisher'".into());
    }
    if source == "redirect" && gs("sourceRedirect").is_empty() {
        return Err("source redirect must be filled".into());
    }
    if !gs("runOnDemand").is_empty() && source != "publisher" {
        return Err("'runOnDemand' can be used only when source is 'publisher'".into());
    }
    let rp = gs("recordPath");
    if !rp.contains("%path") {
        return Err("'recordPath' must contain %path".into());
    }
    let has_date = ["%Y", "%m", "%d", "%H", "%M", "%S"].iter().all(|t| rp.contains(t));
    if !has_date && !rp.contains("%s") {
        return Err("'recordPath' must contain either %s or %Y %m %d %H %M %S".into());
    }
    if !gs("runOnInit").is_empty() && is_regex_conf(name) {
        return Err("a path with a regular expression does not support option 'runOnInit'; use another path".into());
    }
    Ok(())
}

/// Validation of global fields that matter (subset of Conf.Validate()).
pub fn validate_global(g: &Map<String, Value>) -> Result<(), String> {
    if let Some(v) = g.get("readTimeout").and_then(|v| v.as_str()) {
        if parse_duration(v).unwrap_or(0) <= 0 {
            return Err("'readTimeout' must be greater than zero".into());
        }
    }
    if let Some(v) = g.get("writeQueueSize").and_then(|v| v.as_i64()) {
        if v <= 0 || (v & (v - 1)) != 0 {
            return Err("'writeQueueSize' must be a power of two".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_go_style() {
        let f = |s: &str| format_duration(parse_duration(s).unwrap());
        assert_eq!(f("1h"), "1h0m0s");
        assert_eq!(f("10s"), "10s");
        assert_eq!(f("0s"), "0s");
        assert_eq!(f("0"), "0s");
        assert_eq!(f("1d"), "24h0m0s");
        assert_eq!(f("7d"), "168h0m0s");
        assert_eq!(f("200ms"), "200ms");
        assert_eq!(f("1.5s"), "1.5s");
        assert_eq!(f("90s"), "1m30s");
        assert_eq!(f("1500us"), "1.5ms");
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("10").is_err());
    }

    #[test]
    fn path_names() {
        assert!(check_path_name("camera0").is_ok());
        assert!(check_path_name("a/b.c~d:e-f_g").is_ok());
        assert!(check_path_name("/x").is_err());
        assert!(check_path_name("x/").is_err());
        assert!(check_path_name("a b").is_err());
        assert!(check_path_name("").is_err());
    }

    #[test]
    fn regexes() {
        assert!(regex_matches("all_others", "x"));
        assert!(regex_matches("~^cam.*$", "camera1"));
        assert!(!regex_matches("~^cam.*$", "xcamera1"));
        assert!(regex_matches("~^.*$", "abc"));
    }
}
