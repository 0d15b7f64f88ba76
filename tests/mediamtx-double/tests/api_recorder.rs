//! The API's client IP behind trusted proxies (`apiTrustedProxies`, gin's ClientIP) and
//! the recorder of audio-only streams in both record formats.

mod common;
use common::*;
use serde_json::json;
use std::net::TcpStream;
use std::time::Duration;

/// A GET of the API from 127.0.0.1 with extra header lines: (status, head).
fn api_get(h: &mediamtx_double::Handle, headers: &str) -> (u16, String) {
    let s = TcpStream::connect(("127.0.0.1", h.api_port)).unwrap();
    let (code, head, _) = raw_http(s, "GET", "/v3/config/global/get", headers, "");
    (code, head)
}

#[test]
fn api_client_ip_comes_through_trusted_proxies() {
    let (h, dir) = start("api-proxies");
    // the api action for anyone from 10.1.2.3 only, and for an admin with a password
    patch_global(
        &h,
        json!({"authInternalUsers": [
            {"user": "any", "pass": "", "ips": ["10.1.2.3/32"], "permissions": [{"action": "api"}]},
            {"user": "admin", "pass": "pw", "ips": [], "permissions": [{"action": "api"}]},
        ]}),
    );
    let admin = "Authorization: Basic YWRtaW46cHc=\r\n";
    let xff = "X-Forwarded-For: 10.1.2.3\r\n";
    let (code, head) = api_get(&h, "");
    assert_eq!(code, 401, "{}", head);
    assert!(head.contains("WWW-Authenticate: Basic realm=\"mediamtx\""), "{}", head);
    // 127.0.0.1 is no trusted proxy: the header is ignored
    assert_eq!(api_get(&h, xff).0, 401);
    let patch = |body: serde_json::Value| {
        let s = TcpStream::connect(("127.0.0.1", h.api_port)).unwrap();
        let (code, _, body) = raw_http(s, "PATCH", "/v3/config/global/patch", admin, &body.to_string());
        assert_eq!(code, 200, "{}", body);
    };
    patch(json!({"apiTrustedProxies": ["127.0.0.1/32"]}));
    assert_eq!(api_get(&h, xff).0, 200);
    assert_eq!(api_get(&h, "X-Real-IP: 10.1.2.3\r\n").0, 200);
    assert_eq!(api_get(&h, "X-Forwarded-For: 10.1.2.4\r\n").0, 401);
    // a failure is logged with the client IP and the peer's port (httpp.RemoteAddr)
    let (code, _) = api_get(
        &h,
        "X-Forwarded-For: 10.9.8.7\r\nAuthorization: Basic YWRtaW46d3Jvbmc=\r\n",
    );
    assert_eq!(code, 401);
    wait_until(Duration::from_secs(20), "the refusal in the log", || {
        log_of(&dir).contains("WAR [API] [conn 10.9.8.7:")
    });
    // without trusted proxies the header is ignored again
    patch(json!({"apiTrustedProxies": []}));
    assert_eq!(api_get(&h, xff).0, 401);
}
