//! MediaMTX v1.20.1's internal authentication (internal/auth): internal users with
//! IPs and permissions, credentials in plain text, `sha256:` or `argon2:`, legacy path credentials
//! turned into internal users like Conf.Validate() does.

use base64::Engine;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::time::Duration;

/// Credentials of a request (auth.Credentials).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Creds {
    pub user: String,
    pub pass: String,
    pub token: String,
}

/// Checks the expected user and password against the request (gortsplib digest).
pub type VerifyFn<'a> = &'a dyn Fn(&str, &str) -> bool;

/// An authentication request (auth.Request, the fields the double uses).
pub struct Request<'a> {
    /// publish, read, playback, api, metrics, pprof
    pub action: &'a str,
    /// only for publish, read, playback
    pub path: &'a str,
    pub ip: IpAddr,
    pub creds: Creds,
    /// RTSP with digest enabled: gortsplib verifies the expected user and password
    pub verify: Option<VerifyFn<'a>>,
    pub ask_credentials: bool,
    /// "rtsp" for RTSP requests, "" for the API
    pub protocol: &'a str,
    /// the RTSP session id
    pub id: Option<&'a str>,
    pub query: &'a str,
    pub user_agent: &'a str,
}

/// auth.Error: `failed to authenticate: <wrapped>`; `ask` = ask the client for
/// credentials (none were sent).
#[derive(Debug, PartialEq)]
pub struct Error {
    pub ask: bool,
    pub wrapped: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "failed to authenticate: {}", self.wrapped)
    }
}

/// The default `authInternalUsers` of conf.go (what Validate() compares against).
pub fn default_users() -> Value {
    json!([
        {"user": "any", "pass": "", "ips": [], "permissions": [
            {"action": "publish", "path": ""}, {"action": "read", "path": ""}, {"action": "playback", "path": ""}]},
        {"user": "any", "pass": "", "ips": ["127.0.0.1/32", "::1/128"], "permissions": [
            {"action": "api", "path": ""}, {"action": "metrics", "path": ""}, {"action": "pprof", "path": ""}]}
    ])
}

/// conf.Credential.Check.
pub fn credential_check(cred: &str, guess: &str) -> bool {
    if let Some(h) = cred.strip_prefix("sha256:") {
        let sum = Sha256::digest(guess.as_bytes());
        return base64::engine::general_purpose::STANDARD.encode(sum) == h;
    }
    if let Some(h) = cred.strip_prefix("argon2:") {
        return crate::argon2_cred::verify(h, guess);
    }
    if !cred.is_empty() {
        return cred == guess;
    }
    true
}

/// An IP network as Go's net.IPNet (address masked) from its rendered form.
fn parse_net(s: &str) -> Option<(IpAddr, u32)> {
    let (ip, bits) = s.split_once('/')?;
    Some((ip.parse().ok()?, bits.parse().ok()?))
}

pub fn net_contains(net: &str, ip: IpAddr) -> bool {
    let Some((n, bits)) = parse_net(net) else {
        return false;
    };
    // net.IPNet.Contains: an IPv4 address also matches in its IPv6-mapped form
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match (n, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let m = if bits == 0 { 0 } else { u32::MAX << (32 - bits.min(32)) };
            u32::from(n) & m == u32::from(i) & m
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let m = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits.min(128))
            };
            u128::from(n) & m == u128::from(i) & m
        }
        _ => false,
    }
}

pub(crate) fn matches_permission(perms: &[Value], action: &str, path: &str) -> bool {
    for p in perms {
        if p["action"].as_str() != Some(action) {
            continue;
        }
        if !matches!(action, "publish" | "read" | "playback") {
            return true;
        }
        let pp = p["path"].as_str().unwrap_or("");
        if pp.is_empty() {
            return true;
        }
        if let Some(re) = pp.strip_prefix('~') {
            if crate::conf::go_regex(re).map(|r| r.is_match(path)).unwrap_or(false) {
                return true;
            }
        } else if pp == path {
            return true;
        }
    }
    false
}

fn with_user(req: &Request, u: &Value) -> bool {
    let ips = u["ips"].as_array().cloned().unwrap_or_default();
    if !ips.is_empty() && !ips.iter().any(|n| net_contains(n.as_str().unwrap_or(""), req.ip)) {
        return false;
    }
    if !matches_permission(
        u["permissions"].as_array().map(|a| a.as_slice()).unwrap_or(&[]),
        req.action,
        req.path,
    ) {
        return false;
    }
    let user = u["user"].as_str().unwrap_or("");
    let pass = u["pass"].as_str().unwrap_or("");
    if user != "any" {
        match req.verify {
            Some(f) => return f(user, pass),
            None => {
                if !credential_check(user, &req.creds.user) || !credential_check(pass, &req.creds.pass) {
                    return false;
                }
            }
        }
    }
    true
}

/// getToken: a token, else the password, else (RTSP, or the API with
/// `authJWTInHTTPQuery`) `token`/`jwt` in the query.
fn get_token(req: &Request, in_http_query: bool) -> String {
    if !req.creds.token.is_empty() {
        return req.creds.token.clone();
    }
    if !req.creds.pass.is_empty() {
        return req.creds.pass.clone();
    }
    if req.protocol == "rtsp" || (in_http_query && req.protocol.is_empty()) {
        let vals = |k: &str| -> Vec<String> {
            req.query
                .split('&')
                .filter_map(|kv| {
                    let (a, b) = kv.split_once('=').unwrap_or((kv, ""));
                    (crate::http::percent_decode(a, true).as_deref() == Some(k))
                        .then(|| crate::http::percent_decode(b, true).unwrap_or_default())
                })
                .collect()
        };
        for k in ["token", "jwt"] {
            let v = vals(k);
            if v.len() == 1 {
                return v[0].clone();
            }
        }
    }
    String::new()
}

/// authenticateHTTP: `authHTTPExclude` first, then a POST of the request to
/// `authHTTPAddress`; a 2xx answer lets it in.
fn authenticate_http(global: &Map<String, Value>, req: &Request) -> Result<(), String> {
    let exclude = global
        .get("authHTTPExclude")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    if matches_permission(&exclude, req.action, req.path) {
        return Ok(());
    }
    let body = json!({
        "ip": req.ip.to_string(),
        "user": req.creds.user,
        "password": req.creds.pass,
        "token": get_token(req, false),
        "action": req.action,
        "path": req.path,
        "protocol": req.protocol,
        "id": req.id,
        "query": req.query,
        "userAgent": req.user_agent,
    })
    .to_string();
    let addr = global.get("authHTTPAddress").and_then(|v| v.as_str()).unwrap_or("");
    let fingerprint = global.get("authHTTPFingerprint").and_then(|v| v.as_str()).unwrap_or("");
    let timeout = crate::conf::duration_of(global, "readTimeout");
    let res = crate::http_client::request("Post", addr, Some(body.as_bytes()), fingerprint, timeout, 128 * 1024)
        .map_err(|e| format!("HTTP request failed: {}", e))?;
    if !(200..=299).contains(&res.code) {
        // a body over maxInboundBodySize is not quoted
        if !res.body.is_empty() && !res.over_limit {
            return Err(format!(
                "server replied with code {}: {}",
                res.code,
                String::from_utf8_lossy(&res.body)
            ));
        }
        return Err(format!("server replied with code {}", res.code));
    }
    Ok(())
}

/// Manager.Authenticate with `authMethod` internal, http or jwt.
pub fn authenticate(shared: &crate::core::Shared, global: &Map<String, Value>, req: &Request) -> Result<(), Error> {
    crate::jwt::observe(&shared.jwks, global);
    let method = global.get("authMethod").and_then(|v| v.as_str()).unwrap_or("internal");
    if method != "internal" {
        let in_query = method == "jwt" && global.get("authJWTInHTTPQuery") == Some(&Value::Bool(true));
        let token = get_token(req, in_query);
        let res = if method == "http" {
            authenticate_http(global, req)
        } else {
            crate::jwt::authenticate(&shared.jwks, global, req.action, req.path, &token)
        };
        return res.map_err(|wrapped| {
            let c = &req.creds;
            Error {
                ask: req.ask_credentials && c.user.is_empty() && c.pass.is_empty() && token.is_empty(),
                wrapped,
            }
        });
    }
    let users = global
        .get("authInternalUsers")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    if users.iter().any(|u| with_user(req, u)) {
        return Ok(());
    }
    let c = &req.creds;
    Err(Error {
        ask: req.ask_credentials && c.user.is_empty() && c.pass.is_empty() && c.token.is_empty(),
        wrapped: "authentication failed".into(),
    })
}

/// auth.LogAndDelayError's pause: random in [0, 4 s).
pub fn failure_pause() -> Duration {
    let b = crate::util::random_bytes(4);
    let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64;
    Duration::from_millis(n % 4000)
}

/// httpp.Credentials: `Authorization: Bearer user:pass` or `Bearer <token>`, else Basic.
pub fn http_credentials(headers: &[(String, String)]) -> Creds {
    let mut c = Creds::default();
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("Authorization") {
            if let Some(b) = v.strip_prefix("Bearer ") {
                let parts: Vec<&str> = b.split(':').collect();
                if parts.len() == 2 {
                    c.user = parts[0].into();
                    c.pass = parts[1].into();
                } else {
                    c.token = b.into();
                }
                return c;
            }
        }
    }
    // net/http Request.BasicAuth: first Authorization header, "Basic " case-insensitive
    if let Some((_, v)) = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("Authorization")) {
        if v.len() >= 6 && v[..6].eq_ignore_ascii_case("Basic ") {
            if let Ok(d) = base64::engine::general_purpose::STANDARD.decode(&v[6..]) {
                if let Ok(s) = String::from_utf8(d) {
                    if let Some((u, p)) = s.split_once(':') {
                        c.user = u.into();
                        c.pass = p.into();
                    }
                }
            }
        }
    }
    c
}

/// The parsed RTSP `Authorization` header (gortsplib headers.Authorization).
#[derive(Debug, Default)]
pub struct RtspAuthorization {
    pub digest: bool,
    pub username: String,
    pub basic_pass: String,
    pub fields: Vec<(String, String)>,
}

impl RtspAuthorization {
    pub fn field(&self, k: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
}

/// headers.Authorization.Unmarshal (one value only).
pub fn parse_rtsp_authorization(values: &[&str]) -> Option<RtspAuthorization> {
    if values.len() != 1 {
        return None;
    }
    let (method, rest) = values[0].split_once(' ')?;
    match method {
        "Basic" => {
            let d = base64::engine::general_purpose::STANDARD.decode(rest).ok()?;
            let s = String::from_utf8_lossy(&d).to_string();
            let parts: Vec<&str> = s.split(':').collect();
            if parts.len() != 2 {
                return None;
            }
            Some(RtspAuthorization {
                digest: false,
                username: parts[0].into(),
                basic_pass: parts[1].into(),
                fields: vec![],
            })
        }
        "Digest" => {
            let fields = key_vals(rest)?;
            let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            // realm, username, nonce, uri and response are required
            for k in ["realm", "username", "nonce", "uri", "response"] {
                get(k)?;
            }
            if let Some(a) = get("algorithm") {
                if a != "MD5" && a != "SHA-256" {
                    return None;
                }
            }
            Some(RtspAuthorization {
                digest: true,
                username: get("username").unwrap_or_default(),
                basic_pass: String::new(),
                fields,
            })
        }
        _ => None,
    }
}

/// gortsplib keyValParse with ',' separators: `k=v` or `k="v"`.
fn key_vals(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b' ' || b[i] == b',') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' {
            i += 1;
        }
        if i >= b.len() {
            return None;
        }
        let k = s[ks..i].trim().to_string();
        i += 1;
        let v = if i < b.len() && b[i] == b'"' {
            i += 1;
            let vs = i;
            while i < b.len() && b[i] != b'"' {
                i += 1;
            }
            if i >= b.len() {
                return None;
            }
            let v = s[vs..i].to_string();
            i += 1;
            v
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            s[vs..i].trim().to_string()
        };
        out.push((k, v));
    }
    Some(out)
}

/// rtsp.Credentials: the user of either method, the password only with Basic.
pub fn rtsp_credentials(values: &[&str]) -> Creds {
    match parse_rtsp_authorization(values) {
        Some(a) => Creds {
            user: a.username,
            pass: if a.digest { String::new() } else { a.basic_pass },
            token: String::new(),
        },
        None => Creds::default(),
    }
}

fn md5_hex(s: &str) -> String {
    use md5::Md5;
    Md5::digest(s.as_bytes()).iter().map(|b| format!("{:02x}", b)).collect()
}

/// gortsplib's realm.
pub const RTSP_REALM: &str = "ipcam";

/// gortsplib auth.Verify with `rtspAuthMethods` (basic, digest = MD5): the request's
/// `Authorization` against the expected user and password.
pub fn rtsp_verify(
    values: &[&str],
    method: &str,
    url: &str,
    user: &str,
    pass: &str,
    methods: &[String],
    nonce: &str,
) -> bool {
    let Some(a) = parse_rtsp_authorization(values) else {
        return false;
    };
    let has = |m: &str| methods.iter().any(|x| x == m);
    if a.digest && has("digest") && a.field("algorithm").map(|x| x == "MD5").unwrap_or(true) {
        let uri = a.field("uri").unwrap_or("");
        if a.field("nonce") != Some(nonce) || a.field("realm") != Some(RTSP_REALM) || a.username != user {
            return false;
        }
        if !url_matches(url, uri, method == "SETUP") {
            return false;
        }
        let response = md5_hex(&format!(
            "{}:{}:{}",
            md5_hex(&format!("{}:{}:{}", user, RTSP_REALM, pass)),
            nonce,
            md5_hex(&format!("{}:{}", method, uri))
        ));
        return a.field("response") == Some(response.as_str());
    }
    if !a.digest && has("basic") {
        return a.username == user && a.basic_pass == pass;
    }
    false
}

/// gortsplib urlMatches: the absolute URL, or its path+query; in SETUP also the base of
/// a `trackID=N` URL.
fn url_matches(expected: &str, received: &str, setup: bool) -> bool {
    let request_uri = expected
        .split_once("://")
        .and_then(|(_, r)| r.find('/').map(|i| &r[i..]))
        .unwrap_or("/");
    if (received.starts_with('/') && received == request_uri) || received == expected {
        return true;
    }
    if setup {
        if let Some(i) = expected.rfind("/trackID=") {
            let (base, id) = (&expected[..i + 1], &expected[i + "/trackID=".len()..]);
            if i > 0 && !id.is_empty() && id.bytes().all(|c| c.is_ascii_digit()) {
                return received == base || format!("{}/", received) == base;
            }
        }
    }
    false
}

/// gortsplib GenerateWWWAuthenticate for the configured methods.
pub fn www_authenticate(methods: &[String], nonce: &str) -> Vec<String> {
    methods
        .iter()
        .map(|m| match m.as_str() {
            "basic" => format!("Basic realm=\"{}\"", RTSP_REALM),
            _ => format!(
                "Digest realm=\"{}\", nonce=\"{}\", algorithm=\"MD5\"",
                RTSP_REALM, nonce
            ),
        })
        .collect()
}

/// Legacy credentials mode (Conf.Validate): true when path defaults or any path set
/// publishUser/publishPass/publishIPs/readUser/readPass/readIPs.
pub const LEGACY_FIELDS: [&str; 6] = [
    "publishUser",
    "publishPass",
    "publishIPs",
    "readUser",
    "readPass",
    "readIPs",
];

pub fn has_legacy(m: &Map<String, Value>) -> bool {
    LEGACY_FIELDS.iter().any(|k| m.get(*k).is_some_and(|v| !v.is_null()))
}

/// The internal users of legacy mode: playback for anyone, api/metrics/pprof from
/// localhost, then per path (sorted by name, merged with the path defaults) one publish
/// and one read user.
pub fn legacy_users<'a>(paths: impl Iterator<Item = (&'a String, &'a Map<String, Value>)>) -> Value {
    let mut users = vec![
        json!({"user": "any", "pass": "", "ips": [], "permissions": [{"action": "playback", "path": ""}]}),
        json!({"user": "any", "pass": "", "ips": ["127.0.0.1/32", "::1/128"], "permissions": [
            {"action": "api", "path": ""}, {"action": "metrics", "path": ""}, {"action": "pprof", "path": ""}]}),
    ];
    for (name, eff) in paths {
        let path_name = if name == "all_others" || name == "all" {
            "~^.*$".to_string()
        } else {
            name.clone()
        };
        for (action, uk, pk, ik) in [
            ("publish", "publishUser", "publishPass", "publishIPs"),
            ("read", "readUser", "readPass", "readIPs"),
        ] {
            let s = |k: &str| eff.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
            let user = if s(uk).is_empty() { "any".to_string() } else { s(uk) };
            let ips = match eff.get(ik).and_then(|v| v.as_array()) {
                Some(a) if !a.is_empty() => Value::Array(a.clone()),
                _ => json!(["0.0.0.0/0"]),
            };
            users.push(json!({"user": user, "pass": s(pk), "ips": ips,
                "permissions": [{"action": action, "path": path_name}]}));
        }
    }
    Value::Array(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let l: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(net_contains("127.0.0.1/32", l));
        assert!(net_contains("127.0.0.0/8", "127.9.9.9".parse().unwrap()));
        assert!(!net_contains("127.0.0.1/32", "127.0.0.2".parse().unwrap()));
        assert!(net_contains("0.0.0.0/0", l));
        assert!(!net_contains("::1/128", l));
        assert!(net_contains("::1/128", "::1".parse().unwrap()));
        assert!(net_contains("127.0.0.1/32", "::ffff:127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn credentials() {
        // base64(sha256("testing123")), computed independently (python hashlib)
        let h = "sha256:uCLxzS3PxoW0foPjmAKJ/V2OP/OoLe8k19HWi7Jy6zI=";
        assert!(credential_check(h, "testing123"));
        assert!(!credential_check(h, "testing12"));
        assert!(credential_check("", "x"));
        assert!(credential_check("a", "a"));
        assert!(!credential_check("a", "b"));
    }

    #[test]
    fn digest() {
        let nonce = "0123456789abcdef0123456789abcdef";
        let url = "rtsp://127.0.0.1:8554/cam/trackID=0";
        let uri = "rtsp://127.0.0.1:8554/cam/";
        let resp = md5_hex(&format!(
            "{}:{}:{}",
            md5_hex("u:ipcam:p"),
            nonce,
            md5_hex(&format!("SETUP:{}", uri))
        ));
        let h = format!(
            r#"Digest username="u", realm="ipcam", nonce="{}", uri="{}", response="{}""#,
            nonce, uri, resp
        );
        let m = vec!["digest".to_string()];
        assert!(rtsp_verify(&[&h], "SETUP", url, "u", "p", &m, nonce));
        assert!(!rtsp_verify(&[&h], "SETUP", url, "u", "x", &m, nonce));
        assert!(!rtsp_verify(&[&h], "SETUP", url, "u", "p", &m, "other"));
        assert!(!rtsp_verify(
            &[&h],
            "SETUP",
            url,
            "u",
            "p",
            &["basic".to_string()],
            nonce
        ));
        // not a SETUP: the base URL does not match the track URL
        assert!(!rtsp_verify(&[&h], "DESCRIBE", url, "u", "p", &m, nonce));
        assert_eq!(
            www_authenticate(&["basic".into(), "digest".into()], "n"),
            vec![
                r#"Basic realm="ipcam""#.to_string(),
                r#"Digest realm="ipcam", nonce="n", algorithm="MD5""#.to_string()
            ]
        );
    }

    #[test]
    fn headers() {
        let h = |v: &str| vec![("Authorization".to_string(), v.to_string())];
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(http_credentials(&h(&format!("Basic {}", b64("u:p:q")))).pass, "p:q");
        assert_eq!(http_credentials(&h(&format!("basic {}", b64("u:p")))).user, "u");
        assert_eq!(http_credentials(&h("Bearer u:p")).user, "u");
        assert_eq!(http_credentials(&h("Bearer tok")).token, "tok");
        assert_eq!(http_credentials(&[]), Creds::default());
        // RTSP: exactly one ':' for Basic, no password with Digest
        assert_eq!(
            rtsp_credentials(&[&format!("Basic {}", b64("u:p:q"))]),
            Creds::default()
        );
        assert_eq!(rtsp_credentials(&[&format!("Basic {}", b64("u:p"))]).pass, "p");
        let d = r#"Digest username="u", realm="ipcam", nonce="n", uri="rtsp://h/x", response="r""#;
        let c = rtsp_credentials(&[d]);
        assert_eq!((c.user.as_str(), c.pass.as_str()), ("u", ""));
    }
}
