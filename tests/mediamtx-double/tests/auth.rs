//! MediaMTX's internal authentication in the double: the API (HTTP Basic/Bearer) and
//! RTSP (Basic and Digest), with MediaMTX's status codes, headers and bodies, IP rules,
//! hashed credentials and legacy path credentials.

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::FromRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A TCP connection to 127.0.0.1:port from the loopback address `src` (127.0.0.X).
fn connect_from(src: &str, port: u16) -> TcpStream {
    let src: std::net::Ipv4Addr = src.parse().unwrap();
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let mut a: libc::sockaddr_in = std::mem::zeroed();
        a.sin_family = libc::AF_INET as libc::sa_family_t;
        a.sin_addr.s_addr = u32::from(src).to_be();
        let r = libc::bind(
            fd,
            &a as *const _ as *const libc::sockaddr,
            std::mem::size_of_val(&a) as u32,
        );
        assert_eq!(r, 0, "bind {}", src);
        a.sin_port = port.to_be();
        a.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let r = libc::connect(
            fd,
            &a as *const _ as *const libc::sockaddr,
            std::mem::size_of_val(&a) as u32,
        );
        assert_eq!(r, 0, "connect from {}", src);
        TcpStream::from_raw_fd(fd)
    }
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Vec<String> {
        self.head
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .collect()
    }
}

/// An `Authorization` value for Basic credentials `user:pass`.
fn basic(cred: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(cred))
}

/// One API request from `src` with an optional Authorization header.
fn api(src: &str, port: u16, method: &str, path: &str, authz: Option<&str>, body: &str) -> Answer {
    let a = authz.map(|v| format!("Authorization: {}\r\n", v)).unwrap_or_default();
    let (status, head, body) = raw_http(connect_from(src, port), method, path, &a, body);
    Answer { status, head, body }
}

/// One RTSP request on a fresh connection; also reports whether the server closed it.
fn rtsp(src: &str, port: u16, req: &str) -> (Answer, bool) {
    let mut s = connect_from(src, port);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&buf).contains("\r\n\r\n") {
        let n = s.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "connection closed without an answer to {:?}: {:?}",
            req,
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, _) = text.split_once("\r\n\r\n").unwrap();
    let ans = Answer {
        status: head.split_whitespace().nth(1).and_then(|x| x.parse().ok()).unwrap_or(0),
        head: head.to_string(),
        body: String::new(),
    };
    // the connection stays open unless the server closes it
    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let closed = matches!(s.read(&mut chunk), Ok(0));
    (ans, closed)
}

#[test]
fn api_default_config_allows_localhost_only() {
    let (h, _d) = start("auth-api-default");
    let p = h.api_port;
    // (source, path, authorization, status, asks for credentials)
    let cases: &[(&str, &str, Option<&str>, u16, bool)] = &[
        ("127.0.0.1", "/v3/info", None, 200, false),
        ("127.0.0.1", "/v3/nothing", None, 404, false),
        ("127.0.0.2", "/v3/info", None, 401, true),
        // gin's global middleware runs before routing: unknown routes too
        ("127.0.0.2", "/v3/nothing", None, 401, true),
        ("127.0.0.2", "/v3/config/global/get", Some("Basic !!!"), 401, true),
    ];
    for (src, path, authz, status, ask) in cases {
        let a = api(src, p, "GET", path, *authz, "");
        assert_eq!(a.status, *status, "{} {} {:?}: {}", src, path, authz, a.head);
        if *status == 401 {
            let body: Value = serde_json::from_str(&a.body).unwrap();
            assert_eq!(body, json!({"status": "error", "error": "authentication error"}));
            let want: Vec<String> = if *ask {
                vec![r#"Basic realm="mediamtx""#.into()]
            } else {
                vec![]
            };
            assert_eq!(a.header("WWW-Authenticate"), want, "{} {}", src, path);
        }
    }
    // wrong credentials: no challenge, answered after MediaMTX's anti brute-force pause
    let t = Instant::now();
    let a = api("127.0.0.2", p, "GET", "/v3/info", Some(&basic("u:p")), "");
    assert_eq!(a.status, 401);
    assert!(a.header("WWW-Authenticate").is_empty(), "{}", a.head);
    assert!(t.elapsed() < Duration::from_millis(4500));
    assert!(log_of(&_d).contains("failed to authenticate: authentication failed"));
}

#[test]
fn api_internal_users() {
    let (h, _d) = start("auth-api-users");
    let p = h.api_port;
    // sha256:base64(sha256("hashedpw"))
    let hashed = {
        use base64::Engine;
        use sha2::Digest;
        format!(
            "sha256:{}",
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(b"hashedpw"))
        )
    };
    patch_global(
        &h,
        json!({"authInternalUsers": [
            {"user": "admin", "pass": "secret", "permissions": [{"action": "api"}]},
            {"user": "hu", "pass": hashed, "permissions": [{"action": "api"}]},
            // made by the reference argon2 CLI: `echo -n testing123 | argon2 somesalt12345678 -id -t 2 -m 10 -p 1 -e`
            {"user": "au", "pass": "argon2:$argon2id$v=19$m=1024,t=2,p=1$c29tZXNhbHQxMjM0NTY3OA$mmurGOlslO+ebLYRPlcQmDJm0uvwSmYAfZfHZ8ecBKc",
             "permissions": [{"action": "api"}]},
            {"user": "any", "ips": ["127.0.0.3"], "permissions": [{"action": "api"}]},
            {"user": "reader", "pass": "r", "permissions": [{"action": "read"}]},
        ]}),
    );
    // (source, authorization, status)
    let cases: Vec<(&str, Option<String>, u16)> = vec![
        ("127.0.0.1", None, 401),
        ("127.0.0.1", Some(basic("admin:secret")), 200),
        ("127.0.0.2", Some(basic("admin:secret")), 200),
        ("127.0.0.1", Some("Bearer admin:secret".into()), 200),
        ("127.0.0.1", Some(basic("hu:hashedpw")), 200),
        ("127.0.0.1", Some(basic("admin:wrong")), 401),
        ("127.0.0.1", Some(basic("hu:wrong")), 401),
        ("127.0.0.1", Some(basic("au:testing123")), 200),
        ("127.0.0.1", Some(basic("au:testing12")), 401),
        // a user without the api permission
        ("127.0.0.1", Some(basic("reader:r")), 401),
        // 'any' limited to 127.0.0.3
        ("127.0.0.3", None, 200),
        ("127.0.0.4", None, 401),
    ];
    let threads: Vec<_> = cases
        .into_iter()
        .map(|(src, authz, status)| {
            std::thread::spawn(move || {
                let a = api(src, p, "GET", "/v3/config/global/get", authz.as_deref(), "");
                assert_eq!(a.status, status, "{} {:?}: {} {}", src, authz, a.head, a.body);
                if status == 200 {
                    let g: Value = serde_json::from_str(&a.body).unwrap();
                    assert_eq!(g["authInternalUsers"][0]["pass"], "<redacted>");
                    assert_eq!(g["authInternalUsers"][3]["ips"], json!(["127.0.0.3/32"]));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// ffprobe of an RTSP URL: Ok(codec name) or Err(stderr).
fn probe(url: &str) -> Result<String, String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=codec_name", "-of", "csv=p=0", url])
        .stdin(Stdio::null())
        .output()
        .expect("run ffprobe");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

#[test]
fn rtsp_basic_and_digest() {
    require_ffmpeg();
    let (h, dir) = start("auth-rtsp");
    let port = h.rtsp_port;
    patch_global(
        &h,
        json!({"authInternalUsers": [
            {"user": "pub", "pass": "pw1", "permissions": [{"action": "publish", "path": "~^cam"}]},
            {"user": "viewer", "pass": "pw2", "permissions": [{"action": "read", "path": "cam1"}]},
            {"user": "any", "ips": ["127.0.0.1"], "permissions": [{"action": "api"}]},
        ]}),
    );
    let url = |cred: &str, path: &str| format!("rtsp://{}127.0.0.1:{}/{}", cred, port, path);
    let describe = |path: &str, authz: Option<String>| {
        let a = authz.map(|v| format!("Authorization: {}\r\n", v)).unwrap_or_default();
        rtsp(
            "127.0.0.1",
            port,
            &format!("DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\n{}\r\n", url("", path), a),
        )
    };
    // no credentials: 401 with the challenge of rtspAuthMethods, the connection stays
    let (a, closed) = describe("cam1", None);
    assert_eq!(a.status, 401, "{}", a.head);
    assert_eq!(a.header("WWW-Authenticate"), vec![r#"Basic realm="ipcam""#.to_string()]);
    assert!(!closed);
    // wrong credentials: 401 without challenge, the connection is closed
    let (a, closed) = describe("cam1", Some(basic("viewer:bad")));
    assert_eq!(a.status, 401, "{}", a.head);
    assert!(a.header("WWW-Authenticate").is_empty());
    assert!(closed);
    // right credentials, no stream yet → 404
    let (a, _) = describe("cam1", Some(basic("viewer:pw2")));
    assert_eq!(a.status, 404, "{}", a.head);

    // publishing needs the publish permission (ffmpeg answers the challenge)
    let bad = spawn_cmd(&publisher_cmd(&url("", "cam1"), "320x240"), &dir.join("pub-bad.log"));
    std::thread::sleep(Duration::from_secs(2));
    let st = http("GET", &format!("{}/v3/paths/get/cam1", h.api_url()), None);
    assert_ne!(st.json()["available"], true, "published without credentials");
    drop(bad);
    let _pubp = spawn_cmd(
        &publisher_cmd(&url("pub:pw1@", "cam1"), "320x240"),
        &dir.join("pub.log"),
    );
    wait_available(&h, "cam1");
    assert_eq!(probe(&url("viewer:pw2@", "cam1")), Ok("h264".into()));
    assert!(probe(&url("", "cam1")).unwrap_err().contains("401"));
    assert!(probe(&url("viewer:bad@", "cam1")).unwrap_err().contains("401"));

    // digest only: the challenge carries a nonce, and ffmpeg answers with MD5 digest
    patch_global(&h, json!({"rtspAuthMethods": ["digest"]}));
    let (a, _) = describe("cam1", None);
    assert_eq!(a.status, 401);
    let chal = a.header("WWW-Authenticate");
    assert_eq!(chal.len(), 1);
    assert!(
        chal[0].starts_with(r#"Digest realm="ipcam", nonce=""#) && chal[0].ends_with(r#"", algorithm="MD5""#),
        "{:?}",
        chal
    );
    // Basic is refused when only digest is enabled
    let (a, _) = describe("cam1", Some(basic("viewer:pw2")));
    assert_eq!(a.status, 401);
    // the change restarted the RTSP server (closeRTSPServer): the publisher comes back,
    // now through digest
    let _pubp = spawn_cmd(
        &publisher_cmd(&url("pub:pw1@", "cam1"), "320x240"),
        &dir.join("pub2.log"),
    );
    wait_available(&h, "cam1");
    assert_eq!(probe(&url("viewer:pw2@", "cam1")), Ok("h264".into()));
    let e = probe(&url("viewer:bad@", "cam1")).unwrap_err();
    assert!(e.contains("401"), "{}", e);
    // digest cannot verify hashed credentials
    let r = http(
        "PATCH",
        &format!("{}/v3/config/global/patch", h.api_url()),
        Some(
            r#"{"authInternalUsers":[{"user":"a","pass":"sha256:rl3rgi4NcZkpAEcacZnQ2VuOfJ0FxAqCRaKB/SwdZoQ=","permissions":[{"action":"read"}]}]}"#,
        ),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["error"],
        "when RTSP digest is enabled, hashed credentials cannot be used"
    );
}

#[test]
fn legacy_path_credentials_become_internal_users() {
    // without all_others: its converted users would let anyone read and publish any path
    let dir = temp_dir("auth-legacy");
    let mut o = mediamtx_double::Options::new(&dir);
    o.all_others = false;
    let h = mediamtx_double::start(o).expect("start double");
    let a = h.api_url();
    let r = http(
        "POST",
        &format!("{}/v3/config/paths/add/cam", a),
        Some(r#"{"readUser":"ru","readPass":"rp","publishIPs":["10.0.0.0/8"]}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let g = http("GET", &format!("{}/v3/config/global/get", a), None).json();
    // conf.go: playback for anyone, api/metrics/pprof from localhost, then per path
    // (sorted, all_others as ~^.*$) a publish and a read user
    let want = json!([
        {"user":"any","pass":"","ips":[],"permissions":[{"action":"playback","path":""}]},
        {"user":"any","pass":"","ips":["127.0.0.1/32","::1/128"],"permissions":[
            {"action":"api","path":""},{"action":"metrics","path":""},{"action":"pprof","path":""}]},
        {"user":"any","pass":"","ips":["10.0.0.0/8"],"permissions":[{"action":"publish","path":"cam"}]},
        {"user":"ru","pass":"<redacted>","ips":["0.0.0.0/0"],"permissions":[{"action":"read","path":"cam"}]},
    ]);
    assert_eq!(g["authInternalUsers"], want);

    // RTSP: reading cam needs ru:rp now; publishing cam only from 10/8
    let port = h.rtsp_port;
    let (r1, _) = rtsp(
        "127.0.0.1",
        port,
        &format!("DESCRIBE rtsp://127.0.0.1:{}/cam RTSP/1.0\r\nCSeq: 1\r\n\r\n", port),
    );
    assert_eq!(r1.status, 401);
    let (r2, _) = rtsp(
        "127.0.0.1",
        port,
        &format!(
            "DESCRIBE rtsp://127.0.0.1:{}/cam RTSP/1.0\r\nCSeq: 1\r\nAuthorization: {}\r\n\r\n",
            port,
            basic("ru:rp")
        ),
    );
    assert_eq!(r2.status, 404, "{}", r2.head);
    let (r3, _) = rtsp(
        "127.0.0.1",
        port,
        &format!("DESCRIBE rtsp://127.0.0.1:{}/other RTSP/1.0\r\nCSeq: 1\r\n\r\n", port),
    );
    // not configured: 400 before any authentication
    assert_eq!(r3.status, 400, "{}", r3.head);
    let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n";
    let (r4, _) = rtsp(
        "127.0.0.1",
        port,
        &format!(
            "ANNOUNCE rtsp://127.0.0.1:{}/cam RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{}",
            port,
            sdp.len(),
            sdp
        ),
    );
    assert_eq!(r4.status, 401, "{}", r4.head);

    // the converted users are part of the configuration now: MediaMTX refuses the next
    // change while legacy credentials remain
    let r = http(
        "PATCH",
        &format!("{}/v3/config/paths/patch/cam", a),
        Some(r#"{"record":false}"#),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["error"],
        "authInternalUsers and legacy credentials (publishUser, publishPass, publishIPs, readUser, readPass, readIPs) cannot be used together"
    );
}

/// A stand-in for an external authentication server: records each request's JSON and
/// allows user "good" only.
fn auth_server() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/auth", l.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let body = read_request_body(&mut std::io::BufReader::new(c.try_clone().unwrap()));
            let v: Value = serde_json::from_slice(&body).unwrap();
            let ok = v["user"] == "good";
            s2.lock().unwrap().push(v);
            let mut c = c;
            let resp = if ok {
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
            } else {
                "HTTP/1.1 400 Bad Request\r\nContent-Length: 6\r\nConnection: close\r\n\r\ndenied".to_string()
            };
            let _ = c.write_all(resp.as_bytes());
        }
    });
    (url, seen)
}

#[test]
fn auth_method_http() {
    let (h, _d) = start("auth-http");
    let p = h.api_port;
    let (url, seen) = auth_server();
    patch_global(&h, json!({"authMethod": "http", "authHTTPAddress": url}));
    let last = || seen.lock().unwrap().last().cloned().unwrap();

    // API: the external server decides, asked with MediaMTX's JSON
    let a = api("127.0.0.1", p, "GET", "/v3/info", None, "");
    assert_eq!(a.status, 401);
    assert_eq!(
        a.header("WWW-Authenticate"),
        vec![r#"Basic realm="mediamtx""#.to_string()]
    );
    assert_eq!(
        last(),
        json!({"ip": "127.0.0.1", "user": "", "password": "", "token": "", "action": "api", "path": "",
               "protocol": "", "id": null, "query": "", "userAgent": ""})
    );
    let a = api("127.0.0.1", p, "GET", "/v3/info?x=1", Some(&basic("good:pw")), "");
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(last()["token"], "pw", "the password doubles as token");
    assert_eq!(last()["query"], "x=1");
    let a = api("127.0.0.1", p, "GET", "/v3/info", Some(&basic("bad:pw")), "");
    assert_eq!(a.status, 401);
    assert!(a.header("WWW-Authenticate").is_empty());

    // RTSP: token from the query, protocol and session id
    let port = h.rtsp_port;
    let (r, closed) = rtsp(
        "127.0.0.1",
        port,
        &format!(
            "DESCRIBE rtsp://127.0.0.1:{}/cam?token=abc RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: t\r\n\r\n",
            port
        ),
    );
    assert_eq!(r.status, 401);
    assert!(closed, "a token was given: no second chance");
    let v = last();
    assert_eq!(
        (
            &v["action"],
            &v["path"],
            &v["protocol"],
            &v["token"],
            &v["query"],
            &v["userAgent"]
        ),
        (
            &json!("read"),
            &json!("cam"),
            &json!("rtsp"),
            &json!("abc"),
            &json!("token=abc"),
            &json!("t")
        )
    );
    assert_eq!(v["id"].as_str().map(|s| s.len()), Some(36));

    // authHTTPExclude: excluded actions never reach the server
    let n = seen.lock().unwrap().len();
    let a = api(
        "127.0.0.1",
        p,
        "PATCH",
        "/v3/config/global/patch",
        Some(&basic("good:pw")),
        r#"{"authHTTPExclude":[{"action":"api"}]}"#,
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let a = api("127.0.0.1", p, "GET", "/v3/info", None, "");
    assert_eq!(a.status, 200);
    assert_eq!(seen.lock().unwrap().len(), n + 1, "only the PATCH was checked");
}
