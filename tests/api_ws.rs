//! Black-box tests of the foundation through a real WebSocket (api.md §1–3, §8 health, §9).

mod common;

use async_tungstenite::tungstenite::Message;
use camera_service::api::auth::Role;
use camera_service::api::methods::METHODS;
use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn err_reason(v: &Value) -> &str {
    v["error"]["data"]["reason"].as_str().unwrap_or("")
}

#[test]
fn every_error_code_of_the_envelope_on_the_wire() {
    let svc = Service::start("", "", "");
    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        // -32700: parse error, id null
        c.send_text("{\"jsonrpc\":\"2.0\",").await;
        let v = c.recv_json().await.unwrap();
        assert_eq!(
            (v["error"]["code"].as_i64(), &v["id"]),
            (Some(PARSE_ERROR), &Value::Null),
            "{v}"
        );
        assert_eq!(v["error"]["message"], "Parse error");
        // -32600: bad jsonrpc version, not an object, empty batch
        c.send_text(r#"{"jsonrpc":"1.0","method":"ping","id":3}"#).await;
        let v = c.recv_json().await.unwrap();
        assert_eq!(
            (v["error"]["code"].as_i64(), &v["id"]),
            (Some(INVALID_REQUEST), &json!(3)),
            "{v}"
        );
        c.send_text("42").await;
        assert_eq!(c.recv_json().await.unwrap()["error"]["code"], INVALID_REQUEST);
        c.send_text("[]").await;
        let v = c.recv_json().await.unwrap();
        assert!(v.is_object(), "an empty batch is answered by one error object: {v}");
        assert_eq!(v["error"]["code"], INVALID_REQUEST);
        // -32601 with data.method
        let v = c.call("no_such_method", Value::Null).await;
        assert_eq!(
            (v["error"]["code"].as_i64(), v["error"]["data"]["method"].as_str()),
            (Some(METHOD_NOT_FOUND), Some("no_such_method"))
        );
        // -32001 before auth; ping needs none
        assert_eq!(c.result("ping", Value::Null).await, "pong");
        let v = c.call("get_server_info", json!({})).await;
        assert_eq!(
            (v["error"]["code"].as_i64(), err_reason(&v)),
            (Some(AUTH_FAILED), "auth_required")
        );
        let v = c.authenticate("not-a-token").await;
        assert_eq!(
            (v["error"]["code"].as_i64(), err_reason(&v)),
            (Some(AUTH_FAILED), "auth_failed")
        );
        // -32002 with required_role and role
        c.auth_as(Role::Viewer).await;
        let v = c.call("delete_recording", json!({"filename": "x.mp4"})).await;
        assert_eq!(v["error"]["code"], PERMISSION_DENIED);
        assert_eq!(
            (
                v["error"]["data"]["required_role"].as_str(),
                v["error"]["data"]["role"].as_str()
            ),
            (Some("admin"), Some("viewer"))
        );
        // -32602: positional params, unknown topic (data.param), unknown param
        let v = c.call("subscribe_events", json!(["camera.connected"])).await;
        assert_eq!(v["error"]["code"], INVALID_PARAMS);
        let v = c.call("subscribe_events", json!({"topics": ["camera.nope"]})).await;
        assert_eq!(
            (v["error"]["code"].as_i64(), v["error"]["data"]["param"].as_str()),
            (Some(INVALID_PARAMS), Some("topics"))
        );
        let v = c.call("ping", json!({"bogus": 1})).await;
        assert_eq!(
            (v["error"]["code"].as_i64(), v["error"]["data"]["param"].as_str()),
            (Some(INVALID_PARAMS), Some("bogus"))
        );
        // every error carries message, reason, details; details leak no paths
        let v = c.call("no_such_method", json!({})).await;
        for k in ["reason", "details"] {
            assert!(v["error"]["data"][k].is_string(), "{k} in {v}");
        }
        assert!(!v.to_string().contains(svc.dir.path().to_str().unwrap()));
    });
}

#[test]
fn disabled_feature_is_unsupported() {
    let svc = Service::start("", "", "[external_streams]\nenabled = false\n");
    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        c.auth_as(Role::Operator).await;
        let v = c.call("get_external_streams", json!({})).await;
        assert_eq!(v["error"]["code"], UNSUPPORTED, "{v}");
        assert_eq!(v["error"]["message"], "Unsupported");
        assert_eq!(v["error"]["data"]["feature"], "external_streams");
    });
}

#[test]
fn internal_error_has_a_correlation_id_and_is_logged() {
    let svc = Service::start("", "", "");
    // A corrupt key store is a server fault: -32603 with a correlation id that is in the log.
    std::fs::write(svc.dir.path().join("api-keys.json"), "{corrupt").unwrap();
    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        let v = c.authenticate(&format!("csk_{}", "A".repeat(43))).await;
        assert_eq!(v["error"]["code"], INTERNAL_ERROR, "{v}");
        let id = v["error"]["data"]["correlation_id"].as_str().unwrap().to_string();
        assert!(
            !v.to_string().contains("api-keys.json"),
            "no server paths in errors: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
        assert!(svc.log().contains(&id), "correlation id {id} in the log");
    });
}

#[test]
fn batch_mixes_valid_invalid_and_notifications() {
    let svc = Service::start("", "", "");
    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        c.send_text(
            r#"[{"jsonrpc":"2.0","method":"ping","id":1},
                {"jsonrpc":"2.0","method":"ping"},
                {"foo":"bar"},
                {"jsonrpc":"2.0","method":"nope","id":"b"},
                5,
                {"jsonrpc":"2.0","method":"get_server_info","id":2}]"#,
        )
        .await;
        let v = c.recv_json().await.unwrap();
        let arr = v
            .as_array()
            .unwrap_or_else(|| panic!("batch reply must be an array: {v}"));
        assert_eq!(arr.len(), 5, "the notification gets no reply: {v}");
        let by_id = |id: Value| arr.iter().find(|r| r["id"] == id).cloned().unwrap();
        assert_eq!(by_id(json!(1))["result"], "pong");
        assert_eq!(by_id(json!("b"))["error"]["code"], METHOD_NOT_FOUND);
        assert_eq!(by_id(json!(2))["error"]["code"], AUTH_FAILED);
        assert_eq!(
            arr.iter()
                .filter(|r| r["id"].is_null() && r["error"]["code"] == INVALID_REQUEST)
                .count(),
            2
        );
        // a batch of notifications only: no reply at all
        c.send_text(r#"[{"jsonrpc":"2.0","method":"ping"},{"jsonrpc":"2.0","method":"ping"}]"#)
            .await;
        assert_eq!(
            c.result("ping", json!({})).await,
            "pong",
            "the next reply is for the next request"
        );
    });
}

#[test]
fn role_matrix_from_the_method_table() {
    let svc = Service::start("", "", "");
    smol::block_on(async {
        let mut clients = Vec::new();
        let mut anon = Client::connect(&svc.ws_url()).await;
        for role in Role::ALL {
            let mut c = Client::connect(&svc.ws_url()).await;
            c.auth_as(role).await;
            clients.push((role, c));
        }
        let mut checked = 0;
        for spec in METHODS {
            if spec.name == "authenticate" {
                continue;
            }
            let v = anon.call(spec.name, json!({})).await;
            match spec.min_role {
                None => assert_ne!(v["error"]["code"], AUTH_FAILED, "{} needs no auth: {v}", spec.name),
                Some(_) => assert_eq!(
                    (v["error"]["code"].as_i64(), err_reason(&v)),
                    (Some(AUTH_FAILED), "auth_required"),
                    "{}",
                    spec.name
                ),
            }
            for (role, c) in clients.iter_mut() {
                let v = c.call(spec.name, json!({})).await;
                let code = v["error"]["code"].as_i64();
                match spec.min_role {
                    Some(min) if *role < min => {
                        assert_eq!(code, Some(PERMISSION_DENIED), "{} as {role:?}: {v}", spec.name);
                        assert_eq!(v["error"]["data"]["required_role"], min.as_str());
                    }
                    _ => assert!(
                        code != Some(PERMISSION_DENIED) && code != Some(AUTH_FAILED),
                        "{} as {role:?} must pass auth: {v}",
                        spec.name
                    ),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, (METHODS.len() - 1) * 3);
    });
}

#[test]
fn expired_token_is_refused_on_an_open_connection() {
    let svc = Service::start("", "", "");
    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        let v = c.authenticate(&token(Role::Admin, Duration::from_secs(2))).await;
        assert_eq!(v["result"]["role"], "admin");
        assert_eq!(v["result"]["auth_method"], "jwt");
        assert_eq!(v["result"]["permissions"], json!(["view", "control", "admin"]));
        assert!(v["result"]["expires_at"].as_str().unwrap().ends_with('Z'));
        assert!(v["result"]["session_id"].as_str().is_some_and(|s| !s.is_empty()));
        c.result("get_server_info", json!({})).await;
        smol::Timer::after(Duration::from_millis(2100)).await;
        let v = c.call("get_server_info", json!({})).await;
        assert_eq!(
            (v["error"]["code"].as_i64(), err_reason(&v)),
            (Some(AUTH_FAILED), "token_expired")
        );
        // a failed authenticate leaves the identity as it was (still expired)
        let v = c.authenticate("garbage").await;
        assert_eq!(v["error"]["code"], AUTH_FAILED);
        assert_eq!(err_reason(&c.call("get_server_info", json!({})).await), "token_expired");
        // a fresh token restores access
        c.auth_as(Role::Viewer).await;
        c.result("get_server_info", json!({})).await;
        // an already expired token is refused at authenticate
        let v = c
            .authenticate(&camera_service::api::auth::JwtKey::new(SECRET.as_bytes()).mint(
                "x",
                Role::Admin,
                Duration::from_secs(1),
                camera_service::clock::unix_now() - 10,
            ))
            .await;
        assert_eq!(v["error"]["code"], AUTH_FAILED);
        assert_eq!(
            c.result("get_server_info", json!({})).await["name"],
            "camera-service",
            "viewer identity kept after the failed attempt"
        );
    });
}

#[test]
fn api_key_accepted_then_revoked() {
    let svc = Service::start("", "", "");
    let out = svc.cli(&["keys", "create", "--role", "operator", "--name", "gcs1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("csk_") && key.len() == 47, "{key}");
    let store = std::fs::read_to_string(svc.dir.path().join("api-keys.json")).unwrap();
    assert!(!store.contains(&key[4..]), "the key is stored hashed");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(svc.dir.path().join("api-keys.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let list = String::from_utf8(svc.cli(&["keys", "list"]).stdout).unwrap();
    assert!(
        list.contains("gcs1") && list.contains("operator") && list.contains("active") && !list.contains(&key),
        "{list}"
    );
    let id = list
        .lines()
        .find(|l| l.contains("gcs1"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        let v = c.authenticate(&key).await;
        assert_eq!(
            (v["result"]["auth_method"].as_str(), v["result"]["role"].as_str()),
            (Some("api_key"), Some("operator")),
            "{v}"
        );
        c.result("get_server_info", json!({})).await;
        let out = svc.cli(&["keys", "revoke", &id]);
        assert!(out.status.success());
        // the open connection loses access, and the key no longer authenticates
        let v = c.call("get_server_info", json!({})).await;
        assert_eq!(v["error"]["code"], AUTH_FAILED, "{v}");
        let mut c2 = Client::connect(&svc.ws_url()).await;
        let v = c2.authenticate(&key).await;
        assert_eq!(
            (v["error"]["code"].as_i64(), err_reason(&v)),
            (Some(AUTH_FAILED), "auth_failed")
        );
    });
    let list = String::from_utf8(svc.cli(&["keys", "list"]).stdout).unwrap();
    assert!(list.contains("revoked"), "{list}");
}

#[test]
fn sixth_failed_auth_from_one_ip_is_rate_limited() {
    let svc = Service::start("", "", "");
    smol::block_on(async {
        // spread over connections: the limit is per address, not per socket
        for i in 0..5 {
            let mut c = Client::connect(&svc.ws_url()).await;
            let v = c.authenticate(&format!("bad-{i}")).await;
            assert_eq!(v["error"]["code"], AUTH_FAILED, "attempt {}", i + 1);
        }
        let mut c = Client::connect(&svc.ws_url()).await;
        let v = c.authenticate("bad-6").await;
        assert_eq!(v["error"]["code"], RATE_LIMITED, "{v}");
        assert!(v["error"]["data"]["retry_after_ms"].as_u64().unwrap() > 0);
        // only failures are throttled: a good token from this address is accepted (v1.1)
        let v = c.authenticate(&token(Role::Viewer, Duration::from_secs(60))).await;
        assert_eq!(v["result"]["authenticated"], true, "{v}");
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        svc.log().contains("WARN") && svc.log().contains("too many failed attempts"),
        "logged as a warning"
    );
}

#[test]
fn per_connection_rate_limit() {
    let svc = Service::start("", "rate_limit_per_second = 5\nrate_limit_burst = 10", "");
    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        let batch: Vec<Value> = (0..20)
            .map(|i| json!({"jsonrpc":"2.0","method":"ping","id":i}))
            .collect();
        c.send_text(&Value::Array(batch).to_string()).await;
        let v = c.recv_json().await.unwrap();
        let limited = v
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["error"]["code"] == RATE_LIMITED)
            .count();
        assert!(
            (9..=11).contains(&(20 - limited)),
            "burst of 10 passes, the rest is limited: {limited} limited"
        );
    });
}

#[test]
fn events_reach_subscribers_only_and_sigterm_closes_with_1001() {
    let mut svc = Service::start("", "", "");
    let (mut sub, mut unsub, mut anon) = smol::block_on(async {
        let mut sub = Client::connect(&svc.ws_url()).await;
        sub.auth_as(Role::Viewer).await;
        let r = sub
            .result("subscribe_events", json!({"topics": ["system_health_update"]}))
            .await;
        assert!(
            r["topics"].as_array().unwrap().contains(&json!("system.shutdown")),
            "{r}"
        );
        let mut unsub = Client::connect(&svc.ws_url()).await;
        unsub.auth_as(Role::Viewer).await;
        unsub
            .result(
                "subscribe_events",
                json!({"topics": ["system.shutdown", "camera.connected"]}),
            )
            .await;
        let r = unsub
            .result("unsubscribe_events", json!({"topics": ["system.shutdown"]}))
            .await;
        assert_eq!(r["topics"], json!(["system.shutdown"]));
        let stats = unsub.result("get_subscription_stats", json!({})).await;
        assert_eq!(stats["client_topics"], json!(["camera.connected"]));
        assert!(stats["global_stats"]["active_clients"].as_u64().unwrap() >= 2);
        let anon = Client::connect(&svc.ws_url()).await;
        (sub, unsub, anon)
    });
    svc.signal(nix::sys::signal::Signal::SIGTERM);
    smol::block_on(async {
        let ev = sub
            .wait_notification("system.shutdown", Duration::from_secs(5))
            .await
            .expect("system.shutdown delivered");
        assert_eq!(ev["method"], "system_health_update");
        assert!(ev["params"]["timestamp"].as_str().unwrap().ends_with('Z'));
        for (name, c) in [
            ("subscribed", &mut sub),
            ("unsubscribed", &mut unsub),
            ("anonymous", &mut anon),
        ] {
            let mut code = None;
            while let Some(m) = timeout(Duration::from_secs(5), c.ws.next()).await.flatten() {
                match m {
                    Ok(Message::Close(f)) => {
                        code = f.map(|f| u16::from(f.code));
                        break;
                    }
                    Ok(Message::Text(t)) => {
                        let v: Value = serde_json::from_str(t.as_str()).unwrap();
                        assert_ne!(name, "unsubscribed", "unsubscribed client got {v}");
                        assert_ne!(name, "anonymous", "unauthenticated client got {v}");
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            assert_eq!(code, Some(1001), "{name} closed with 1001");
        }
    });
    let status = svc
        .wait_exit(Duration::from_secs(10))
        .expect("service exits after SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn transport_limits_binary_size_origin_connections() {
    let svc = Service::start(
        "max_connections = 3\nmax_message_bytes = 4096",
        "allowed_origins = [\"https://gcs.example\"]",
        "",
    );
    smol::block_on(async {
        // binary frame → 1003
        let mut c = Client::connect(&svc.ws_url()).await;
        c.ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
        assert_eq!(close_code(&mut c).await, Some(1003));
        // oversized message → 1009
        let mut c = Client::connect(&svc.ws_url()).await;
        c.send_text(&format!(
            "{{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":1,\"pad\":\"{}\"}}",
            "x".repeat(8000)
        ))
        .await;
        assert_eq!(close_code(&mut c).await, Some(1009));
        // origin: listed ok, other 403, absent ok
        assert!(
            Client::connect_with(&svc.ws_url(), &[("Origin", "https://evil.example")])
                .await
                .is_err()
        );
        let (status, _, _) = http(
            &svc.addr,
            "GET",
            "/ws",
            &[
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Version", "13"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("Origin", "https://evil.example"),
            ],
        );
        assert_eq!(status, 403);
        let mut ok = Client::connect_with(&svc.ws_url(), &[("Origin", "https://gcs.example")])
            .await
            .unwrap();
        assert_eq!(ok.result("ping", json!({})).await, "pong");
        // connection limit: 3 open → the 4th upgrade gets 503
        let _b = Client::connect(&svc.ws_url()).await;
        let _c = Client::connect(&svc.ws_url()).await;
        smol::Timer::after(Duration::from_millis(200)).await;
        let (status, _, body) = http(
            &svc.addr,
            "GET",
            "/ws",
            &[
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Version", "13"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ],
        );
        assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
        drop(ok);
    });
}

async fn close_code(c: &mut Client) -> Option<u16> {
    while let Some(m) = timeout(Duration::from_secs(5), c.ws.next()).await.flatten() {
        match m {
            Ok(Message::Close(f)) => return f.map(|f| u16::from(f.code)),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

#[test]
fn pings_keep_clients_and_silent_ones_are_dropped() {
    let svc = Service::start("ping_interval = \"200ms\"\nidle_timeout = \"1s\"", "", "");
    smol::block_on(async {
        // A client that reads answers the server's pings (tungstenite replies to pings) and stays.
        let mut alive = Client::connect(&svc.ws_url()).await;
        let mut pings = 0;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(2500) {
            if let Some(Some(Ok(Message::Ping(_)))) = timeout(Duration::from_millis(300), alive.ws.next()).await {
                pings += 1;
            }
        }
        assert!(pings >= 5, "server pings every 200 ms: {pings}");
        assert_eq!(
            alive.result("ping", json!({})).await,
            "pong",
            "still connected after 2.5 s > idle timeout"
        );
        // A raw socket that completed the handshake but never answers is dropped.
        let mut raw = std::net::TcpStream::connect(&svc.addr).unwrap();
        use std::io::{Read, Write};
        raw.write_all(format!("GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", svc.addr).as_bytes()).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        let mut all = Vec::new();
        loop {
            match raw.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
                Err(e) => panic!("silent client not dropped: {e}"),
            }
        }
        assert!(
            start.elapsed() >= Duration::from_millis(900) && start.elapsed() < Duration::from_secs(4),
            "{:?}",
            start.elapsed()
        );
        assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 101"));
    });
}

#[test]
fn http_health_and_json_404() {
    let svc = Service::start("", "", "");
    let (s, h, b) = http(&svc.addr, "GET", "/health/live", &[]);
    assert_eq!(s, 200);
    assert!(h.iter().any(|(k, v)| k == "content-type" && v == "application/json"));
    assert_eq!(serde_json::from_slice::<Value>(&b).unwrap()["status"], "alive");
    // No MediaMTX runs for this service: not ready, and the summary says so.
    let (s, _, b) = http(&svc.addr, "GET", "/health/ready", &[]);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!((s, &v["ready"]), (503, &json!(false)), "{v}");
    assert!(v["reason"].as_str().unwrap().contains("mediamtx"), "{v}");
    let (s, _, b) = http(&svc.addr, "GET", "/health/detailed", &[]);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(s, 503);
    assert_eq!(v["components"]["websocket_server"]["status"], "healthy", "{v}");
    assert_eq!(v["components"]["mediamtx"]["status"], "unhealthy", "{v}");
    assert!(
        !v.to_string().contains(svc.dir.path().to_str().unwrap()),
        "health reveals no paths"
    );
    let (s, _, b) = http(&svc.addr, "GET", "/health", &[]);
    assert_eq!(s, 503);
    assert_eq!(serde_json::from_slice::<Value>(&b).unwrap()["status"], "unhealthy");
    let (s, h, b) = http(&svc.addr, "HEAD", "/health/live", &[]);
    assert_eq!(s, 200);
    assert!(b.is_empty(), "HEAD has no body");
    assert!(h.iter().any(|(k, v)| k == "content-length" && v != "0"));
    let (s, _, b) = http(&svc.addr, "GET", "/nope/../etc", &[]);
    assert_eq!(s, 404);
    assert_eq!(serde_json::from_slice::<Value>(&b).unwrap()["error"], "not_found");
    let (s, _, _) = http(&svc.addr, "DELETE", "/health", &[]);
    assert_eq!(s, 405);
}

#[test]
fn server_info_reports_build_facts() {
    let svc = Service::start("", "", "");
    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        c.auth_as(Role::Viewer).await;
        let r = c.result("get_server_info", json!({})).await;
        assert_eq!(r["name"], "camera-service");
        assert_eq!(r["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(r["architecture"], std::env::consts::ARCH);
        assert!(r["rust_version"].as_str().unwrap().starts_with("rustc "));
        assert_eq!(r["supported_formats"], json!(["fmp4", "mpegts", "jpg", "png"]));
        assert!(r["capabilities"].as_array().unwrap().contains(&json!("events")));
    });
}

#[test]
fn cli_check_config_and_token() {
    let dir = TempDir::new("cli");
    let good = dir.path().join("good.toml");
    std::fs::write(&good, test_config(dir.path(), "", "", "")).unwrap();
    let out = std::process::Command::new(bin())
        .args(["--config", good.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("<redacted>") && !text.contains(SECRET), "{text}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nmax_connections = 0\nnope = 1\n").unwrap();
    let out = std::process::Command::new(bin())
        .args(["--config", bad.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("nope"), "{err}");
    // env override is applied and validated
    let out = std::process::Command::new(bin())
        .args(["--config", good.to_str().unwrap(), "check-config"])
        .env("CAMERA_SERVICE_SERVER_MAX_CONNECTIONS", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("server.max_connections"));
    // token minted by the CLI verifies with the same secret and carries the role
    let out = std::process::Command::new(bin())
        .args([
            "--config",
            good.to_str().unwrap(),
            "token",
            "--role",
            "operator",
            "--ttl",
            "1h",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let tok = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let (claims, role) = camera_service::api::auth::JwtKey::new(SECRET.as_bytes())
        .verify(&tok, camera_service::clock::unix_now())
        .unwrap();
    assert_eq!(role, Role::Operator);
    assert!((claims.exp - claims.iat - 3600).abs() <= 1);
}
