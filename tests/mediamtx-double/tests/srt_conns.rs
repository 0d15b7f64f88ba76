//! The lifetime of an SRT connection in `/v3/srtconns` like MediaMTX's: listed `idle`
//! from the connection request (while authentication runs), removed after a refusal;
//! `runOnConnect`/`runOnDisconnect` around it. And `srtAddress` changes at runtime.

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Duration;

/// An HTTP authentication server that holds each request until the test answers it:
/// the requests' JSON bodies come out of the first receiver, the status codes to answer
/// go into the sender.
fn held_auth_server() -> (String, Receiver<Value>, Sender<u16>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/auth", l.local_addr().unwrap().port());
    let (req_tx, req_rx) = channel();
    let (code_tx, code_rx) = channel::<u16>();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let body = read_request_body(&mut BufReader::new(s.try_clone().unwrap()));
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if req_tx.send(v).is_err() {
                return;
            }
            // bounded: the test answers within seconds
            let Ok(code) = code_rx.recv_timeout(Duration::from_secs(60)) else {
                return;
            };
            let _ = write!(
                s,
                "HTTP/1.1 {} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                code
            );
        }
    });
    (url, req_rx, code_tx)
}

fn srt_conns(h: &mediamtx_double::Handle) -> Vec<Value> {
    items(h, "/v3/srtconns/list")
}

/// An ffmpeg SRT publisher of test video with stream id `sid`, waiting long for the
/// handshake (the authentication is held).
fn srt_publisher(h: &mediamtx_double::Handle, sid: &str, log: &Path) -> Proc {
    let url = format!("{}?connect_timeout=30000&streamid={}", h.srt_url(), sid);
    spawn_cmd(&sender_cmd("mpegts", &url, "160x120"), log)
}

/// The connection's only entry while its authentication is held: `idle`, no path, query,
/// user or counters yet, the id the authentication request carries.
fn assert_idle_while_authenticating(h: &mediamtx_double::Handle, auth_req: &Value) -> String {
    let list = srt_conns(h);
    assert_eq!(list.len(), 1, "{:?}", list);
    let c = &list[0];
    assert_eq!(c["state"], "idle", "{}", c);
    assert_eq!(
        (&c["path"], &c["query"], &c["user"]),
        (&json!(""), &json!(""), &json!(""))
    );
    assert_eq!((&c["bytesReceived"], &c["byteMSS"]), (&json!(0), &json!(0)), "{}", c);
    assert_eq!(auth_req["id"], c["id"], "the auth request names the connection");
    let id = c["id"].as_str().unwrap().to_string();
    let got = get(h, &format!("/v3/srtconns/get/{}", id));
    assert_eq!(got.status, 200, "{}", got.body);
    id
}

#[test]
fn srt_conn_listed_idle_while_authenticating_and_removed_after_refusal() {
    require_ffmpeg();
    let (h, dir) = start("srt-idle");
    let (auth_url, requests, answers) = held_auth_server();
    let (on, off) = (dir.join("connect.txt"), dir.join("disconnect.txt"));
    patch_global(
        &h,
        json!({
            "authMethod": "http",
            "authHTTPAddress": auth_url,
            // the test's own API calls do not wait for the held server
            "authHTTPExclude": [{"action": "api"}],
            "runOnConnect": format!("sh -c 'echo $MTX_CONN_ID >> {}; exec sleep 60'", on.display()),
            "runOnDisconnect": format!("sh -c 'echo $MTX_CONN_ID >> {}'", off.display()),
        }),
    );

    // refused: listed from the request until the refusal
    let mut refused = srt_publisher(&h, "publish:cam:u:bad:q=1", &dir.join("refused.log"));
    let req = requests.recv_timeout(Duration::from_secs(30)).expect("auth request");
    assert_eq!((&req["action"], &req["protocol"]), (&json!("publish"), &json!("srt")));
    let id = assert_idle_while_authenticating(&h, &req);
    wait_until(Duration::from_secs(10), "runOnConnect of the idle connection", || {
        std::fs::read_to_string(&on).unwrap_or_default().trim() == id
    });
    answers.send(401).unwrap();
    // the refusal waits out auth's failure pause (up to 4 s)
    wait_until(Duration::from_secs(20), "refused connection removed", || {
        srt_conns(&h).is_empty()
    });
    assert_eq!(
        get(&h, &format!("/v3/srtconns/get/{}", id)).status,
        404,
        "gone after the refusal"
    );
    wait_until(
        Duration::from_secs(10),
        "runOnDisconnect of the refused connection",
        || std::fs::read_to_string(&off).unwrap_or_default().trim() == id,
    );
    let log = log_of(&dir);
    assert!(log.contains("] opened"), "{}", log);
    assert!(log.contains("closed: failed to authenticate"), "{}", log);
    wait_until(Duration::from_secs(30), "refused ffmpeg exits", || {
        matches!(refused.0.try_wait(), Ok(Some(_)))
    });

    // accepted: idle while authenticating, then publishing
    let _publisher = srt_publisher(&h, "publish:cam:u:good:q=2", &dir.join("pub.log"));
    let req = requests.recv_timeout(Duration::from_secs(30)).expect("auth request");
    let id = assert_idle_while_authenticating(&h, &req);
    answers.send(200).unwrap();
    wait_available(&h, "cam");
    let c = get(&h, &format!("/v3/srtconns/get/{}", id)).json();
    assert_eq!(c["state"], "publish", "{}", c);
    assert_eq!(
        (&c["path"], &c["query"], &c["user"]),
        (&json!("cam"), &json!("q=2"), &json!("u"))
    );
    assert_eq!(path_get(&h, "cam")["source"]["id"], json!(id));
}

/// An SRT induction handshake (HSv4, UDT datagram type) to the listener, by hand.
fn induction() -> Vec<u8> {
    let mut v = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    for w in [4u32, 2, 1000, 1500, 8192, 1, 0x1234, 0] {
        v.extend_from_slice(&w.to_be_bytes());
    }
    v.extend_from_slice(&[0; 16]);
    v
}

/// Whether an SRT listener on `port` answers an induction within `wait`.
fn answers_handshake(port: u16, wait: Duration) -> bool {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.send_to(&induction(), ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 1500];
    // an unanswered (or ICMP-refused) datagram is no answer
    matches!(s.recv_from(&mut buf), Ok((n, _)) if n >= 64)
}

/// A changed `srtAddress` restarts the SRT server like MediaMTX's core: its connections
/// are closed, the new port serves, the old one answers nothing.
#[test]
fn srt_address_change_rebinds_the_listener() {
    require_ffmpeg();
    let (h, dir) = start("srt-rebind");
    let old = h.srt_port;
    let mut before = srt_publisher(&h, "publish:before", &dir.join("before.log"));
    wait_available(&h, "before");
    assert_eq!(srt_conns(&h).len(), 1);

    let port = free_udp_port();
    patch_global(&h, json!({ "srtAddress": format!(":{}", port) }));
    wait_until(Duration::from_secs(10), "the old server's connection closed", || {
        srt_conns(&h).is_empty()
    });
    assert!(
        !answers_handshake(old, Duration::from_secs(2)),
        "old port still answers"
    );
    assert!(
        answers_handshake(port, Duration::from_secs(5)),
        "new port does not answer"
    );
    let log = log_of(&dir);
    assert!(log.contains("INF [SRT] closing"), "{}", log);
    assert!(
        log.contains(&format!("INF [SRT] started with listener on :{} (UDP/SRT)", port)),
        "{}",
        log
    );
    before.interrupt_and_wait();

    let url = format!("srt://127.0.0.1:{}?streamid=publish:after", port);
    let _after = spawn_cmd(&sender_cmd("mpegts", &url, "160x120"), &dir.join("after.log"));
    wait_available(&h, "after");
    let list = srt_conns(&h);
    assert_eq!((list.len(), &list[0]["state"]), (1, &json!("publish")), "{:?}", list);
    // the same address again: no restart, the connection stays
    patch_global(&h, json!({ "srtAddress": format!(":{}", port) }));
    assert_eq!(srt_conns(&h).len(), 1);
    // another of the server's fields: restarted on the same port
    patch_global(&h, json!({ "readTimeout": "20s" }));
    wait_until(Duration::from_secs(10), "connection closed by the restart", || {
        srt_conns(&h).is_empty()
    });
    assert!(
        answers_handshake(port, Duration::from_secs(5)),
        "same port after restart"
    );
}
