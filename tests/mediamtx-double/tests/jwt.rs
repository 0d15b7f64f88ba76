//! `authMethod: jwt` and the https auth clients: a JWKS (and an auth server) served by
//! the test over http or https (self-signed, pinned by fingerprint), tokens signed here
//! with openssl; the API and RTSP (ffprobe/ffmpeg) are let in or refused by the tokens'
//! permissions, with MediaMTX's texts in the log.

mod common;
use common::*;
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn b64url(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A signing key and its public JWK.
struct Key {
    kid: String,
    alg: &'static str,
    pkey: PKey<Private>,
}

impl Key {
    fn rsa(kid: &str) -> Key {
        let pkey = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        Key {
            kid: kid.into(),
            alg: "RS256",
            pkey,
        }
    }

    fn es256(kid: &str) -> Key {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let pkey = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        Key {
            kid: kid.into(),
            alg: "ES256",
            pkey,
        }
    }

    fn jwk(&self) -> Value {
        if let Ok(rsa) = self.pkey.rsa() {
            return json!({"kty": "RSA", "kid": self.kid, "alg": self.alg, "use": "sig",
                "n": b64url(&rsa.n().to_vec()), "e": b64url(&rsa.e().to_vec())});
        }
        let ec = self.pkey.ec_key().unwrap();
        let mut ctx = openssl::bn::BigNumContext::new().unwrap();
        let (mut x, mut y) = (openssl::bn::BigNum::new().unwrap(), openssl::bn::BigNum::new().unwrap());
        ec.public_key()
            .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)
            .unwrap();
        json!({"kty": "EC", "crv": "P-256", "kid": self.kid,
            "x": b64url(&x.to_vec_padded(32).unwrap()), "y": b64url(&y.to_vec_padded(32).unwrap())})
    }

    /// A compact JWS of `claims` (ES256 signatures as raw r||s, RFC 7518).
    fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": self.alg, "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let mut s = Signer::new(MessageDigest::sha256(), &self.pkey).unwrap();
        let mut sig = s.sign_oneshot_to_vec(input.as_bytes()).unwrap();
        if self.alg == "ES256" {
            let der = EcdsaSig::from_der(&sig).unwrap();
            sig = [der.r().to_vec_padded(32).unwrap(), der.s().to_vec_padded(32).unwrap()].concat();
        }
        format!("{}.{}", input, b64url(&sig))
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Claims with MediaMTX's default claim key and an hour of validity.
fn claims(perms: Value) -> Value {
    json!({"sub": "tester", "exp": now() + 3600, "mediamtx_permissions": perms})
}

/// A one-route HTTP(S) server answering every request with the current (status, body).
struct Served {
    url: String,
    hits: Arc<AtomicUsize>,
    answer: Arc<Mutex<(u16, String)>>,
}

fn serve(tls: Option<SslAcceptor>, route: &str, code: u16, body: &str) -> Served {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{}://{}{}", scheme, l.local_addr().unwrap(), route);
    let hits = Arc::new(AtomicUsize::new(0));
    let answer = Arc::new(Mutex::new((code, body.to_string())));
    let (h2, a2) = (hits.clone(), answer.clone());
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            c.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let stream: Box<dyn ReadWrite> = match &tls {
                Some(acc) => match acc.accept(c) {
                    Ok(s) => Box::new(s),
                    Err(_) => continue, // a refused handshake
                },
                None => Box::new(c),
            };
            h2.fetch_add(1, Ordering::SeqCst);
            let (code, body) = a2.lock().unwrap().clone();
            answer_one(stream, code, &body);
        }
    });
    Served { url, hits, answer }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn answer_one(s: Box<dyn ReadWrite>, code: u16, body: &str) {
    let mut rd = BufReader::new(s);
    read_request_body(&mut rd);
    let mut s = rd.into_inner();
    let _ = write!(
        s,
        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        code,
        body.len(),
        body
    );
    let _ = s.flush();
}

/// A self-signed certificate made by the openssl CLI, its acceptor and SHA-256
/// fingerprint (as `openssl x509 -fingerprint` prints it, colons removed).
fn tls_server_identity(dir: &Path) -> (SslAcceptor, String) {
    let (key, cert) = self_signed_key(dir, &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let fp = text
        .trim()
        .split_once('=')
        .expect("fingerprint line")
        .1
        .replace(':', "")
        .to_lowercase();
    let mut acc = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
    acc.set_private_key_file(&key, SslFiletype::PEM).unwrap();
    acc.set_certificate_chain_file(&cert).unwrap();
    (acc.build(), fp)
}

/// One API request with an optional bearer token: (status, body, WWW-Authenticate).
fn api(port: u16, method: &str, path: &str, token: Option<&str>) -> (u16, String, Option<String>) {
    let a = token
        .map(|t| format!("Authorization: Bearer {}\r\n", t))
        .unwrap_or_default();
    let (code, head, body) = raw_http(TcpStream::connect(("127.0.0.1", port)).unwrap(), method, path, &a, "");
    let www = head
        .lines()
        .find_map(|l| l.strip_prefix("WWW-Authenticate: ").map(String::from));
    (code, body, www)
}

fn jwks(keys: &[&Key]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string()
}

/// Switches the double to JWT (while the default users still let localhost in).
fn use_jwt(h: &mediamtx_double::Handle, extra: Value) {
    let mut body = json!({"authMethod": "jwt"});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    patch_global(h, body);
}

#[test]
fn jwt_api_permissions_and_expiry() {
    let (h, dir) = start("jwt-api");
    let key = Key::rsa("k1");
    let server = serve(None, "/jwks", 200, &jwks(&[&key]));
    use_jwt(&h, json!({"authJWTJWKS": server.url}));
    let p = h.api_port;

    // no token: asked for credentials, nothing logged
    let (code, body, www) = api(p, "GET", "/v3/info", None);
    assert_eq!((code, www.as_deref()), (401, Some(r#"Basic realm="mediamtx""#)));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"status": "error", "error": "authentication error"})
    );

    let admin = key.sign(&claims(json!([{"action": "api"}])));
    let (code, body, _) = api(p, "GET", "/v3/info", Some(&admin));
    assert_eq!(code, 200, "{}", body);

    // a token without the api permission
    let reader = key.sign(&claims(json!([{"action": "read", "path": "cam"}])));
    let (code, _, www) = api(p, "GET", "/v3/info", Some(&reader));
    assert_eq!((code, www), (401, None));
    assert!(
        log_of(&dir).contains("failed to authenticate: user doesn't have permission to perform action"),
        "{}",
        log_of(&dir)
    );

    // an expired one
    let mut c = claims(json!([{"action": "api"}]));
    c["exp"] = json!(now() - 10);
    let (code, _, _) = api(p, "GET", "/v3/info", Some(&key.sign(&c)));
    assert_eq!(code, 401);
    assert!(
        log_of(&dir).contains("failed to authenticate: token has invalid claims: token is expired"),
        "{}",
        log_of(&dir)
    );
    // the key set was fetched once and kept
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);

    // the API reads `?jwt=` only with the deprecated authJWTInHTTPQuery
    let query = format!("/v3/info?jwt={}", admin);
    assert_eq!(api(p, "GET", &query, None).0, 401);
    let patch = json!({"authJWTInHTTPQuery": true}).to_string();
    let (code, body) = http_with_bearer(p, "PATCH", "/v3/config/global/patch", &admin, &patch);
    assert_eq!(code, 200, "{}", body);
    assert_eq!(api(p, "GET", &query, None).0, 200);
}

#[test]
fn jwt_key_set_refreshed_by_the_api_only() {
    let (h, dir) = start("jwt-refresh");
    let (k1, k2) = (Key::rsa("k1"), Key::es256("k2"));
    let server = serve(None, "/jwks", 200, &jwks(&[&k1]));
    use_jwt(&h, json!({"authJWTJWKS": server.url, "authJWTIssuer": "me"}));
    let p = h.api_port;
    let admin = |k: &Key| {
        let mut c = claims(json!([{"action": "api"}]));
        c["iss"] = json!("me");
        k.sign(&c)
    };
    assert_eq!(api(p, "GET", "/v3/info", Some(&admin(&k1))).0, 200);

    // k2 is published, but MediaMTX does not fetch the key set for an unknown kid
    *server.answer.lock().unwrap() = (200, jwks(&[&k1, &k2]));
    assert_eq!(api(p, "GET", "/v3/info", Some(&admin(&k2))).0, 401);
    assert!(
        log_of(&dir).contains(
            "failed to authenticate: token is unverifiable: error while executing keyfunc: key not found: kid \"k2\""
        ),
        "{}",
        log_of(&dir)
    );
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);

    let (code, body, _) = api(p, "POST", "/v3/auth/jwks/refresh", Some(&admin(&k1)));
    assert_eq!((code, body.as_str()), (200, r#"{"status":"ok"}"#));
    assert_eq!(server.hits.load(Ordering::SeqCst), 1, "fetched on the next use");
    assert_eq!(api(p, "GET", "/v3/info", Some(&admin(&k2))).0, 200);
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);

    // an auth setting changed (and changed back): a new auth manager, a new fetch
    for t in ["9s", "10s"] {
        let patch = json!({"readTimeout": t}).to_string();
        let r = http_with_bearer(p, "PATCH", "/v3/config/global/patch", &admin(&k1), &patch);
        assert_eq!(r.0, 200, "{}", r.1);
    }
    assert_eq!(api(p, "GET", "/v3/info", Some(&admin(&k2))).0, 200);
    assert_eq!(server.hits.load(Ordering::SeqCst), 4);

    // authJWTIssuer is enforced
    let wrong_issuer = k2.sign(&claims(json!([{"action": "api"}])));
    assert_eq!(api(p, "GET", "/v3/info", Some(&wrong_issuer)).0, 401);
    assert!(
        log_of(&dir).contains("token has invalid claims: token is missing required claim: iss claim is required"),
        "{}",
        log_of(&dir)
    );

    // the API moved: a new API, the same auth manager and key set
    let hits = server.hits.load(Ordering::SeqCst);
    let moved = free_tcp_port();
    let patch = json!({"apiAddress": format!("127.0.0.1:{}", moved)}).to_string();
    let r = http_with_bearer(p, "PATCH", "/v3/config/global/patch", &admin(&k1), &patch);
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(api(moved, "GET", "/v3/info", Some(&admin(&k2))).0, 200);
    assert_eq!(server.hits.load(Ordering::SeqCst), hits, "the key set fetched again");
}

#[test]
fn jwt_rtsp_password_and_query_token() {
    require_ffmpeg();
    let (h, dir) = start("jwt-rtsp");
    let key = Key::es256("e1");
    let server = serve(None, "/jwks", 200, &jwks(&[&key]));
    // the API stays reachable without a token: authJWTExclude
    use_jwt(
        &h,
        json!({"authJWTJWKS": server.url, "authJWTExclude": [{"action": "api"}]}),
    );
    let publisher = key.sign(&claims(json!([{"action": "publish", "path": "cam"}])));
    let url = |cred: &str, path: &str| format!("rtsp://{}127.0.0.1:{}/{}", cred, h.rtsp_port, path);
    let _pubp = spawn_cmd(
        // ffmpeg cuts URL credentials at 127 bytes: the token goes in the query
        &publisher_cmd(&format!("{}?jwt={}", url("", "cam"), publisher), "320x240"),
        &dir.join("pub.log"),
    );
    wait_available(&h, "cam");

    let probe = |u: &str| {
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-rtsp_transport",
                "tcp",
                "-show_entries",
                "stream=codec_name",
            ])
            .args(["-of", "csv=p=0", u])
            .stdin(Stdio::null())
            .output()
            .expect("run ffprobe")
    };
    let reader = key.sign(&claims(json!([{"action": "read", "path": "~^ca"}])));
    // the token as the password (Basic)
    let describe = |cred: &str| {
        use base64::Engine;
        let mut s = TcpStream::connect(("127.0.0.1", h.rtsp_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let b = base64::engine::general_purpose::STANDARD.encode(cred);
        write!(
            s,
            "DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\nAuthorization: Basic {}\r\n\r\n",
            url("", "cam"),
            b
        )
        .unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        line
    };
    assert!(describe(&format!("any:{}", reader)).starts_with("RTSP/1.0 200"));
    // `?token=` in the query
    let out = probe(&format!("{}?token={}", url("", "cam"), reader));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "h264", "{:?}", out);
    // a token for another path is refused
    let other = key.sign(&claims(json!([{"action": "read", "path": "other"}])));
    let out = probe(&format!("{}?jwt={}", url("", "cam"), other));
    assert!(!out.status.success(), "{:?}", out);
    assert!(
        log_of(&dir).contains("failed to authenticate: user doesn't have permission to perform action"),
        "{}",
        log_of(&dir)
    );
}

#[test]
fn https_auth_servers_pinned_by_fingerprint() {
    let (h, dir) = start("https-auth");
    let (acc, fp) = tls_server_identity(&dir);
    let key = Key::es256("e1");
    let server = serve(Some(acc.clone()), "/jwks", 200, &jwks(&[&key]));
    let auth = serve(Some(acc), "/auth", 200, "");
    let p = h.api_port;

    // authHTTPAddress over https, pinned (the fingerprint's case does not matter)
    let r = http(
        "PATCH",
        &format!("{}/v3/config/global/patch", h.api_url()),
        Some(
            &json!({"authMethod": "http", "authHTTPAddress": auth.url,
                "authHTTPFingerprint": fp.to_uppercase(), "authHTTPExclude": [{"action": "api"}]})
            .to_string(),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let describe = || {
        let mut s = TcpStream::connect(("127.0.0.1", h.rtsp_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "DESCRIBE rtsp://127.0.0.1:{}/cam RTSP/1.0\r\nCSeq: 1\r\nAuthorization: Basic dTpw\r\n\r\n",
            h.rtsp_port
        )
        .unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        line
    };
    // let in by the auth server (then 404: nothing is published)
    assert!(describe().starts_with("RTSP/1.0 404"));
    assert_eq!(auth.hits.load(Ordering::SeqCst), 1);
    // not pinned: verified against the system roots, which do not know it
    let r = http(
        "PATCH",
        &format!("{}/v3/config/global/patch", h.api_url()),
        Some(&json!({"authHTTPFingerprint": ""}).to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(describe().starts_with("RTSP/1.0 401"));
    let want = format!(
        "failed to authenticate: HTTP request failed: Post \"{}\": tls: failed to verify certificate: x509: certificate signed by unknown authority",
        auth.url
    );
    assert!(log_of(&dir).contains(&want), "{}\n{}", want, log_of(&dir));
    assert_eq!(auth.hits.load(Ordering::SeqCst), 1);

    // JWKS over https, pinned
    let admin = key.sign(&claims(json!([{"action": "api"}])));
    use_jwt(&h, json!({"authJWTJWKS": server.url, "authJWTJWKSFingerprint": fp}));
    assert_eq!(api(p, "GET", "/v3/info", None).0, 401);
    assert_eq!(api(p, "GET", "/v3/info", Some(&admin)).0, 200);
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);

    // a wrong fingerprint fails the check after the handshake
    let wrong = "00".repeat(32);
    let body = json!({"authJWTJWKSFingerprint": wrong});
    let r = http_with_bearer(p, "PATCH", "/v3/config/global/patch", &admin, &body.to_string());
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(api(p, "GET", "/v3/info", Some(&admin)).0, 401);
    let want = format!(
        "failed to authenticate: Get \"{}\": source fingerprint does not match: expected {}, got {}",
        server.url, wrong, fp
    );
    assert!(log_of(&dir).contains(&want), "{}\n{}", want, log_of(&dir));
}

/// An API request with `Authorization: Bearer <cred>` and a JSON body: (status, body).
fn http_with_bearer(port: u16, method: &str, path: &str, cred: &str, body: &str) -> (u16, String) {
    let headers = format!("Authorization: Bearer {}\r\nContent-Type: application/json\r\n", cred);
    let (code, _, body) = raw_http(
        TcpStream::connect(("127.0.0.1", port)).unwrap(),
        method,
        path,
        &headers,
        body,
    );
    (code, body)
}
