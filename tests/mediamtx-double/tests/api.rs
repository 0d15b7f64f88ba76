//! Control API v3 of the double: every endpoint's success and error responses validated
//! against MediaMTX v1.20.1's openapi.yaml, plus semantics, RAM-only restart and faults.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[test]
fn every_endpoint_matches_openapi_schema() {
    let spec = load_spec();
    let (h, dir) = start("schema");
    let a = h.api_url();
    let chk = |tpl: &str, method: &str, url: &str, body: Option<&str>, want: u16| -> Resp {
        let r = http(method, &format!("{}{}", a, url), body);
        assert_eq!(r.status, want, "{} {} -> {} {}", method, url, r.status, r.body);
        check_response(&spec, tpl, method, &r);
        r
    };

    let r = chk("/v3/info", "GET", "/v3/info", None, 200);
    assert_eq!(r.json()["version"], "v1.20.1");

    chk("/v3/config/global/get", "GET", "/v3/config/global/get", None, 200);
    chk(
        "/v3/config/global/patch",
        "PATCH",
        "/v3/config/global/patch",
        Some(r#"{"logLevel":"debug","readTimeout":"5s"}"#),
        200,
    );
    let r = chk(
        "/v3/config/global/patch",
        "PATCH",
        "/v3/config/global/patch",
        Some(r#"{"nope":1}"#),
        400,
    );
    assert_eq!(r.json()["error"], "json: unknown field \"nope\"");
    chk(
        "/v3/config/global/patch",
        "PATCH",
        "/v3/config/global/patch",
        Some(r#"{"logLevel":"loud"}"#),
        400,
    );
    chk(
        "/v3/config/global/patch",
        "PATCH",
        "/v3/config/global/patch",
        Some(r#"{"readTimeout":5}"#),
        400,
    );
    let g = chk("/v3/config/global/get", "GET", "/v3/config/global/get", None, 200).json();
    assert_eq!(g["logLevel"], "debug");
    assert_eq!(g["readTimeout"], "5s");

    chk(
        "/v3/config/pathdefaults/get",
        "GET",
        "/v3/config/pathdefaults/get",
        None,
        200,
    );
    chk(
        "/v3/config/pathdefaults/patch",
        "PATCH",
        "/v3/config/pathdefaults/patch",
        Some(r#"{"recordDeleteAfter":"0s"}"#),
        200,
    );
    chk(
        "/v3/config/pathdefaults/patch",
        "PATCH",
        "/v3/config/pathdefaults/patch",
        Some(r#"{"recordFormat":"avi"}"#),
        400,
    );
    chk(
        "/v3/config/pathdefaults/patch",
        "PATCH",
        "/v3/config/pathdefaults/patch",
        Some(r#"{"x":true}"#),
        400,
    );

    chk(
        "/v3/config/paths/add/{name}",
        "POST",
        "/v3/config/paths/add/cam0",
        Some(r#"{"recordDeleteAfter":"0s"}"#),
        200,
    );
    let r = chk(
        "/v3/config/paths/add/{name}",
        "POST",
        "/v3/config/paths/add/cam0",
        Some("{}"),
        400,
    );
    assert_eq!(r.json()["error"], "path already exists");
    chk(
        "/v3/config/paths/add/{name}",
        "POST",
        "/v3/config/paths/add/bad%20name",
        Some("{}"),
        400,
    );
    chk(
        "/v3/config/paths/add/{name}",
        "POST",
        "/v3/config/paths/add/cam9",
        Some(r#"{"record":"yes"}"#),
        400,
    );
    chk(
        "/v3/config/paths/add/{name}",
        "POST",
        "/v3/config/paths/add/cam9",
        Some(r#"{"source":"rtsp://x/y","runOnDemand":"true"}"#),
        400,
    );
    chk(
        "/v3/config/paths/get/{name}",
        "GET",
        "/v3/config/paths/get/cam0",
        None,
        200,
    );
    let r = chk(
        "/v3/config/paths/get/{name}",
        "GET",
        "/v3/config/paths/get/ghost",
        None,
        404,
    );
    assert_eq!(r.json()["error"], "path configuration not found");
    chk(
        "/v3/config/paths/patch/{name}",
        "PATCH",
        "/v3/config/paths/patch/cam0",
        Some(r#"{"record":false}"#),
        200,
    );
    let r = chk(
        "/v3/config/paths/patch/{name}",
        "PATCH",
        "/v3/config/paths/patch/ghost",
        Some("{}"),
        404,
    );
    assert_eq!(r.json()["error"], "path not found");
    chk(
        "/v3/config/paths/patch/{name}",
        "PATCH",
        "/v3/config/paths/patch/cam0",
        Some(r#"{"recordPath":"/x/%path"}"#),
        400,
    );
    chk(
        "/v3/config/paths/replace/{name}",
        "POST",
        "/v3/config/paths/replace/cam1",
        Some(r#"{"sourceOnDemand":false}"#),
        200,
    );
    chk(
        "/v3/config/paths/replace/{name}",
        "POST",
        "/v3/config/paths/replace/cam1",
        Some(r#"{"source":"ftp://x"}"#),
        400,
    );
    chk("/v3/config/paths/list", "GET", "/v3/config/paths/list", None, 200);
    chk(
        "/v3/config/paths/list",
        "GET",
        "/v3/config/paths/list?itemsPerPage=0",
        None,
        400,
    );
    chk(
        "/v3/config/paths/list",
        "GET",
        "/v3/config/paths/list?page=abc",
        None,
        400,
    );

    chk("/v3/paths/list", "GET", "/v3/paths/list", None, 200);
    let p = chk("/v3/paths/get/{name}", "GET", "/v3/paths/get/cam0", None, 200).json();
    assert_eq!(p["available"], false);
    assert_eq!(p["source"], Value::Null);
    let r = chk("/v3/paths/get/{name}", "GET", "/v3/paths/get/ghost", None, 404);
    assert_eq!(r.json()["error"], "path not found");
    chk("/v3/paths/list", "GET", "/v3/paths/list?itemsPerPage=x", None, 400);

    // recordings are computed from the files on disk
    let rec = dir.join("rec");
    let patch = format!(
        r#"{{"recordPath":"{}/%path/cam0_%Y-%m-%d_%H-%M-%S-%f"}}"#,
        rec.display()
    );
    chk(
        "/v3/config/paths/patch/{name}",
        "PATCH",
        "/v3/config/paths/patch/cam0",
        Some(&patch),
        200,
    );
    std::fs::create_dir_all(rec.join("cam0")).unwrap();
    std::fs::write(rec.join("cam0/cam0_2024-05-01_10-00-03-123456.mp4"), b"x").unwrap();
    std::fs::write(rec.join("cam0/cam0_2024-05-01_11-00-00-000000.mp4"), b"x").unwrap();
    std::fs::write(rec.join("cam0/unrelated.txt"), b"x").unwrap();
    let l = chk("/v3/recordings/list", "GET", "/v3/recordings/list", None, 200).json();
    assert_eq!(l["itemCount"], 1, "{}", l);
    let g = chk("/v3/recordings/get/{name}", "GET", "/v3/recordings/get/cam0", None, 200).json();
    assert_eq!(g["name"], "cam0");
    let starts: Vec<String> = g["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["start"].as_str().unwrap().to_string())
        .collect();
    // local time of the test machine (UTC in CI)
    assert_eq!(starts.len(), 2, "{:?}", starts);
    assert!(starts[0].starts_with("2024-05-01T10:00:03.123456"), "{:?}", starts);
    chk(
        "/v3/recordings/get/{name}",
        "GET",
        "/v3/recordings/get/bad%20name",
        None,
        400,
    );
    chk(
        "/v3/recordings/list",
        "GET",
        "/v3/recordings/list?itemsPerPage=0",
        None,
        400,
    );
    let enc = starts[0].replace('+', "%2B");
    chk(
        "/v3/recordings/deletesegment",
        "DELETE",
        &format!("/v3/recordings/deletesegment?path=cam0&start={}", enc),
        None,
        200,
    );
    assert!(!rec.join("cam0/cam0_2024-05-01_10-00-03-123456.mp4").exists());
    chk(
        "/v3/recordings/deletesegment",
        "DELETE",
        &format!("/v3/recordings/deletesegment?path=cam0&start={}", enc),
        None,
        400,
    );
    chk(
        "/v3/recordings/deletesegment",
        "DELETE",
        "/v3/recordings/deletesegment?path=cam0&start=yesterday",
        None,
        400,
    );
    chk(
        "/v3/recordings/deletesegment",
        "DELETE",
        "/v3/recordings/deletesegment?path=bad%20name&start=2024-05-01T11:00:00Z",
        None,
        400,
    );

    chk(
        "/v3/config/paths/delete/{name}",
        "DELETE",
        "/v3/config/paths/delete/cam1",
        None,
        200,
    );
    chk(
        "/v3/config/paths/delete/{name}",
        "DELETE",
        "/v3/config/paths/delete/cam1",
        None,
        404,
    );

    // unknown routes and wrong methods: gin's plain-text 404
    for (m, u) in [
        ("GET", "/v3/nope"),
        ("POST", "/v3/info"),
        ("GET", "/v3/config/paths/add/x"),
        ("GET", "/"),
    ] {
        let r = http(m, &format!("{}{}", a, u), None);
        assert_eq!(r.status, 404, "{} {}", m, u);
        assert!(
            r.content_type.starts_with("text/plain"),
            "{} {}: {}",
            m,
            u,
            r.content_type
        );
        assert_eq!(r.body, "404 page not found");
    }
}

/// The defaults served are the ones of mediamtx.default.yml.
#[test]
fn defaults_match_mediamtx_default_yml() {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("spec/mediamtx.default.yml");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {}", p.display(), e));
    let yml: Value = serde_yaml::from_str(&text).unwrap();
    let (h, _dir) = start("defaults");
    let d = http("GET", &format!("{}/v3/config/pathdefaults/get", h.api_url()), None).json();
    let norm = |v: &Value| -> Value {
        match v {
            Value::Null => json!(""),
            Value::String(s) => match mediamtx_double::conf::parse_duration(s) {
                Ok(ns) if s.chars().last().map(|c| c.is_ascii_alphabetic()).unwrap_or(false) => {
                    json!(mediamtx_double::conf::format_duration(ns))
                }
                _ => v.clone(),
            },
            Value::Number(n) => json!(n.as_f64().unwrap()),
            other => other.clone(),
        }
    };
    for (k, v) in yml["pathDefaults"].as_object().unwrap() {
        assert_eq!(norm(&d[k]), norm(v), "pathDefaults.{}", k);
    }
    let g = http("GET", &format!("{}/v3/config/global/get", h.api_url()), None).json();
    for k in [
        "logLevel",
        "readTimeout",
        "writeQueueSize",
        "rtspTransports",
        "hlsVariant",
        "rtspAuthMethods",
    ] {
        let mut want = norm(&yml[k]);
        if k == "rtspTransports" {
            // a set in MediaMTX (RTSPTransports), rendered sorted
            want.as_array_mut().unwrap().sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        }
        assert_eq!(norm(&g[k]), want, "{}", k);
    }
    assert_eq!(d["recordSegmentDuration"], "1h0m0s");
    assert_eq!(d["recordDeleteAfter"], "1d");
    assert_eq!(d["runOnDemandCloseAfter"], "10s");
}

#[test]
fn path_config_semantics() {
    let (h, _dir) = start("semantics");
    let a = h.api_url();
    let get = |n: &str| http("GET", &format!("{}/v3/config/paths/get/{}", a, n), None).json();

    // replace is an upsert; unsent fields revert to defaults
    let r = http(
        "POST",
        &format!("{}/v3/config/paths/replace/c1", a),
        Some(r#"{"record":true,"recordSegmentDuration":"90s"}"#),
    );
    assert_eq!((r.status, r.json()), (200, json!({"status":"ok"})));
    assert_eq!(get("c1")["recordSegmentDuration"], "1m30s");
    assert_eq!(get("c1")["record"], true);
    http(
        "POST",
        &format!("{}/v3/config/paths/replace/c1", a),
        Some(r#"{"recordDeleteAfter":"0s"}"#),
    );
    assert_eq!(get("c1")["record"], false);
    assert_eq!(get("c1")["recordSegmentDuration"], "1h0m0s");
    // conf.Duration renders zero as ""
    assert_eq!(get("c1")["recordDeleteAfter"], "");
    assert_eq!(get("c1")["name"], "c1");

    // patch merges only sent fields
    http(
        "PATCH",
        &format!("{}/v3/config/paths/patch/c1", a),
        Some(r#"{"record":true}"#),
    );
    assert_eq!(get("c1")["record"], true);
    // conf.Duration renders zero as ""
    assert_eq!(get("c1")["recordDeleteAfter"], "");

    // unsent fields follow pathdefaults changes
    http(
        "PATCH",
        &format!("{}/v3/config/pathdefaults/patch", a),
        Some(r#"{"recordPartDuration":"200ms"}"#),
    );
    assert_eq!(get("c1")["recordPartDuration"], "200ms");

    // durations: MediaMTX formatting of accepted inputs (whole days as "<N>d")
    http(
        "PATCH",
        &format!("{}/v3/config/paths/patch/c1", a),
        Some(r#"{"recordSegmentDuration":"24h","runOnDemandCloseAfter":"1.5s"}"#),
    );
    assert_eq!(get("c1")["recordSegmentDuration"], "1d");
    assert_eq!(get("c1")["runOnDemandCloseAfter"], "1.5s");
    let r = http(
        "PATCH",
        &format!("{}/v3/config/paths/patch/c1", a),
        Some(r#"{"recordSegmentDuration":"soon"}"#),
    );
    assert_eq!(r.status, 400);

    // configured paths exist in /v3/paths from creation, not available
    let p = http("GET", &format!("{}/v3/paths/get/c1", a), None).json();
    assert_eq!(p["available"], false);
    assert_eq!(p["confName"], "c1");
    assert_eq!(p["readers"], json!([]));

    // URL source: source always rtspSource, online true
    http(
        "POST",
        &format!("{}/v3/config/paths/replace/ext", a),
        Some(r#"{"source":"rtsp://127.0.0.1:9/none","sourceOnDemand":true,"rtspTransport":"tcp"}"#),
    );
    let p = http("GET", &format!("{}/v3/paths/get/ext", a), None).json();
    assert_eq!(p["source"], json!({"type":"rtspSource","id":""}));
    assert_eq!(p["online"], true);
    assert_eq!(p["available"], false);

    // pagination
    for i in 0..5 {
        http("POST", &format!("{}/v3/config/paths/add/p{}", a, i), Some("{}"));
    }
    let l = http(
        "GET",
        &format!("{}/v3/config/paths/list?itemsPerPage=3&page=1", a),
        None,
    )
    .json();
    // all_others, c1, ext, p0..p4 = 8 configurations
    assert_eq!(l["itemCount"], 8);
    assert_eq!(l["pageCount"], 3);
    assert_eq!(l["items"].as_array().unwrap().len(), 3);
    let l = http(
        "GET",
        &format!("{}/v3/config/paths/list?itemsPerPage=3&page=9", a),
        None,
    )
    .json();
    assert_eq!(l["items"], json!([]));
    let l = http("GET", &format!("{}/v3/paths/list", a), None).json();
    assert_eq!(l["itemCount"], 7);

    // delete removes the runtime path too, unless all_others could take it over unchanged
    // (pathConfCanBeUpdated): p0 differs from all_others
    let r = http(
        "PATCH",
        &format!("{}/v3/config/paths/patch/p0", a),
        Some(r#"{"maxReaders":2}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        http("DELETE", &format!("{}/v3/config/paths/delete/p0", a), None).status,
        200
    );
    assert_eq!(http("GET", &format!("{}/v3/paths/get/p0", a), None).status, 404);
}

#[test]
fn restart_drops_ram_config_and_changes_started() {
    let (h, _dir) = start("restart");
    let a = h.api_url();
    let c = h.control_url();
    let started = http("GET", &format!("{}/v3/info", a), None).json()["started"].clone();
    let global = |k: &str| http("GET", &format!("{}/v3/config/global/get", a), None).json()[k].clone();
    let own_keys = [
        "rtspsAddress",
        "rtpAddress",
        "rtcpAddress",
        "metricsAddress",
        "srtAddress",
    ];
    let own = own_keys.map(global);
    patch_global(&h, json!({"rtspsAddress": ":1", "metricsAddress": ":2"}));
    http("POST", &format!("{}/v3/config/paths/add/cam0", a), Some("{}"));
    http(
        "PATCH",
        &format!("{}/v3/config/pathdefaults/patch", a),
        Some(r#"{"recordDeleteAfter":"0s"}"#),
    );
    assert_eq!(http("POST", &format!("{}/control/restart", c), None).status, 200);
    let info = http("GET", &format!("{}/v3/info", a), None).json();
    assert_ne!(info["started"], started);
    assert_eq!(
        http("GET", &format!("{}/v3/config/paths/get/cam0", a), None).status,
        404
    );
    assert_eq!(http("GET", &format!("{}/v3/paths/get/cam0", a), None).status, 404);
    let d = http("GET", &format!("{}/v3/config/pathdefaults/get", a), None).json();
    assert_eq!(d["recordDeleteAfter"], "1d");
    // the double's own listeners come back with the configuration it started with
    let after = own_keys.map(global);
    assert_eq!(after, own);
    assert!(
        own.iter().all(|v| v.as_str().is_some_and(|s| s.contains(':'))),
        "{:?}",
        own
    );

    // restart with downtime: refused while down, back afterwards
    let c2 = c.clone();
    let t = std::thread::spawn(move || http("POST", &format!("{}/control/restart?down_ms=800", c2), None).status);
    std::thread::sleep(Duration::from_millis(300));
    assert!(try_http("GET", &format!("{}/v3/info", a), None, Duration::from_secs(1)).is_err());
    assert_eq!(t.join().unwrap(), 200);
    assert_eq!(http("GET", &format!("{}/v3/info", a), None).status, 200);
}

#[test]
fn fault_injection() {
    let (h, _dir) = start("faults");
    let a = h.api_url();
    let c = h.control_url();
    let info = format!("{}/v3/info", a);

    // 500s, for every request or for the next N
    http("POST", &format!("{}/control/fail500?on=1", c), None);
    let r = http("GET", &info, None);
    assert_eq!(r.status, 500);
    check_response(&load_spec(), "/v3/info", "GET", &r);
    http("POST", &format!("{}/control/fail500?on=0", c), None);
    assert_eq!(http("GET", &info, None).status, 200);
    http("POST", &format!("{}/control/fail500?on=1&count=2", c), None);
    assert_eq!(http("GET", &info, None).status, 500);
    assert_eq!(http("GET", &info, None).status, 500);
    assert_eq!(http("GET", &info, None).status, 200);

    // delay
    http("POST", &format!("{}/control/delay?ms=700", c), None);
    let t0 = Instant::now();
    assert_eq!(http("GET", &info, None).status, 200);
    assert!(t0.elapsed() >= Duration::from_millis(700));
    assert!(
        try_http("GET", &info, None, Duration::from_millis(200)).is_err(),
        "client timeout expected"
    );
    http("POST", &format!("{}/control/delay?ms=0", c), None);

    // stop: connection refused, then back
    http("POST", &format!("{}/control/api-stop", c), None);
    let e = try_http("GET", &info, None, Duration::from_secs(1))
        .err()
        .expect("refused");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{}", e);
    http("POST", &format!("{}/control/api-start", c), None);
    assert_eq!(http("GET", &info, None).status, 200);

    // stop (hang): accepted but never answered
    http("POST", &format!("{}/control/api-stop?mode=hang", c), None);
    let t0 = Instant::now();
    assert!(try_http("GET", &info, None, Duration::from_millis(500)).is_err());
    assert!(t0.elapsed() >= Duration::from_millis(450));
    // stop (close): connection closed without a response
    http("POST", &format!("{}/control/api-stop?mode=close", c), None);
    assert!(try_http("GET", &info, None, Duration::from_secs(2)).is_err());
    http("POST", &format!("{}/control/api-start", c), None);
    assert_eq!(http("GET", &info, None).status, 200);

    // control surface is separate from v3 and has its own 404s
    assert_eq!(http("GET", &format!("{}/control/status", a), None).status, 404);
    assert_eq!(http("GET", &format!("{}/v3/info", c), None).status, 404);
    let st = http("GET", &format!("{}/control/status", c), None).json();
    assert_eq!(st["apiMode"], "Up");
}
