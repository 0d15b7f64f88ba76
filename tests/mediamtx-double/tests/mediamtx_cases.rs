//! MediaMTX v1.20.1's own API test cases (internal/api/*_test.go), replayed against the
//! double: same requests, same expectations. Cases that need a config file loaded at start
//! (credentials in `paths:`) are replayed through the API instead.

mod common;
use common::*;
use serde_json::{json, Value};

fn ok(method: &str, url: &str, body: Value) {
    let r = http(method, url, Some(&body.to_string()));
    assert_eq!(r.status, 200, "{} {}: {}", method, url, r.body);
    assert_eq!(r.json(), json!({"status": "ok"}));
}

fn get(url: &str) -> Value {
    let r = http("GET", url, None);
    assert_eq!(r.status, 200, "GET {}: {}", url, r.body);
    r.json()
}

fn err(r: &Resp, status: u16, msg: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.json(), json!({"status": "error", "error": msg}));
}

fn add_body() -> Value {
    json!({
        "source": "rtsp://127.0.0.1:9999/mypath",
        "sourceOnDemand": true,
        "disablePublisherOverride": true, // test setting a deprecated parameter
        "rpiCameraVFlip": true,
        "rpiCameraCodec": "hardwareH264",
        "rpiCameraIDRPeriod": 120,
        "rpiCameraBitrate": 3000000,
        "rpiCameraH264Profile": "main",
        "rpiCameraH264Level": "4.2",
    })
}

#[test]
fn test_config_paths_list_and_get() {
    // the paths come from the configuration file in MediaMTX's test: through the API,
    // the second path with legacy credentials would be refused (the first one's converted
    // internal users are no longer the default ones)
    let dir = temp_dir("mtx-cases-list");
    let mut o = mediamtx_double::Options::new(&dir);
    o.paths = vec![
        ("path1".into(), json!({"readUser": "myuser1", "readPass": "mypass1"})),
        ("path2".into(), json!({"readUser": "myuser2", "readPass": "mypass2"})),
        ("my/path".into(), json!({"readUser": "myuser", "readPass": "mypass"})),
    ];
    let h = mediamtx_double::start(o).expect("start double");
    let a = h.api_url();
    let out = get(&format!("{}/v3/config/paths/list", a));
    let items = out["items"].as_array().unwrap();
    let p1 = items.iter().find(|i| i["name"] == "path1").unwrap();
    assert_eq!(p1["readUser"], "myuser1");
    assert_eq!(p1["readPass"], "<redacted>");
    let p2 = items.iter().find(|i| i["name"] == "path2").unwrap();
    assert_eq!(p2["readUser"], "myuser2");
    assert_eq!(p2["readPass"], "<redacted>");
    let out = get(&format!("{}/v3/config/paths/get/my/path", a));
    assert_eq!(out["name"], "my/path");
    assert_eq!(out["readUser"], "myuser");
    assert_eq!(out["readPass"], "<redacted>");
}

#[test]
fn test_config_paths_add_patch_replace_delete() {
    let (h, _dir) = start("mtx-cases-paths");
    let a = h.api_url();
    // TestConfigPathsAdd
    ok("POST", &format!("{}/v3/config/paths/add/my/path", a), add_body());
    let out = get(&format!("{}/v3/config/paths/get/my/path", a));
    assert_eq!(out["source"], "rtsp://127.0.0.1:9999/mypath");
    assert_eq!(out["sourceOnDemand"], true);
    assert_eq!(out["disablePublisherOverride"], true);
    assert_eq!(out["rpiCameraVFlip"], true);
    assert_eq!(out["rpiCameraCodec"], "hardwareH264");
    assert_eq!(out["rpiCameraIDRPeriod"], 120);
    assert_eq!(out["rpiCameraBitrate"], 3000000);
    assert_eq!(out["rpiCameraH264Profile"], "main");
    assert_eq!(out["rpiCameraH264Level"], "4.2");

    // TestConfigPathsAddUnknownField
    let r = http(
        "POST",
        &format!("{}/v3/config/paths/add/my/path2", a),
        Some(r#"{"test":"asd"}"#),
    );
    err(&r, 400, "json: unknown field \"test\"");

    // TestConfigPathsPatch
    ok(
        "PATCH",
        &format!("{}/v3/config/paths/patch/my/path", a),
        json!({
            "source": "rtsp://127.0.0.1:9998/mypath",
            "sourceOnDemand": true,
            "rpiCameraCodec": "softwareH264",
            "rpiCameraBitrate": 4000000,
            "rpiCameraH264Level": "4.0",
        }),
    );
    let out = get(&format!("{}/v3/config/paths/get/my/path", a));
    assert_eq!(out["source"], "rtsp://127.0.0.1:9998/mypath");
    assert_eq!(out["sourceOnDemand"], true);
    assert_eq!(out["disablePublisherOverride"], true);
    assert_eq!(out["rpiCameraVFlip"], true);
    assert_eq!(out["rpiCameraCodec"], "softwareH264");
    assert_eq!(out["rpiCameraIDRPeriod"], 120);
    assert_eq!(out["rpiCameraBitrate"], 4000000);
    assert_eq!(out["rpiCameraH264Profile"], "main");
    assert_eq!(out["rpiCameraH264Level"], "4.0");

    // TestConfigPathsReplace
    ok(
        "POST",
        &format!("{}/v3/config/paths/replace/my/path", a),
        json!({"source": "rtsp://127.0.0.1:9998/mypath", "sourceOnDemand": true}),
    );
    let out = get(&format!("{}/v3/config/paths/get/my/path", a));
    assert_eq!(out["source"], "rtsp://127.0.0.1:9998/mypath");
    assert_eq!(out["sourceOnDemand"], true);
    assert_eq!(out.get("disablePublisherOverride"), None);
    assert_eq!(out["rpiCameraVFlip"], false);
    assert_eq!(out["rpiCameraCodec"], "auto");
    assert_eq!(out["rpiCameraIDRPeriod"], 60);
    assert_eq!(out["rpiCameraBitrate"], 5000000);
    assert_eq!(out["rpiCameraH264Profile"], "auto");
    assert_eq!(out["rpiCameraH264Level"], "4.1");

    // TestConfigPathsReplaceNonExisting
    ok(
        "POST",
        &format!("{}/v3/config/paths/replace/my/path3", a),
        json!({"source": "rtsp://127.0.0.1:9998/mypath", "sourceOnDemand": true}),
    );
    let out = get(&format!("{}/v3/config/paths/get/my/path3", a));
    assert_eq!(out["source"], "rtsp://127.0.0.1:9998/mypath");
    assert_eq!(out["sourceOnDemand"], true);
    assert_eq!(out.get("disablePublisherOverride"), None);
    assert_eq!(out["rpiCameraVFlip"], false);

    // TestConfigPathsDelete
    let r = http("DELETE", &format!("{}/v3/config/paths/delete/my/path", a), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http("GET", &format!("{}/v3/config/paths/get/my/path", a), None);
    err(&r, 404, "path configuration not found");
}

#[test]
fn test_config_global_and_pathdefaults() {
    let (h, _dir) = start("mtx-cases-global");
    let a = h.api_url();
    // TestConfigGlobalGet (users given through the API instead of the config file; the
    // test's mock lets every request in, the double authenticates: the anonymous
    // localhost user keeps the api permission)
    ok(
        "PATCH",
        &format!("{}/v3/config/global/patch", a),
        json!({"authInternalUsers": [
            {"user": "myuser", "pass": "mypass", "permissions": [{"action": "api"}]},
            {"user": "any", "ips": ["127.0.0.1"], "permissions": [{"action": "api"}]},
        ]}),
    );
    let out = get(&format!("{}/v3/config/global/get", a));
    assert_eq!(out["api"], true);
    let users = out["authInternalUsers"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["pass"], "<redacted>");

    // TestConfigGlobalPatch
    ok(
        "PATCH",
        &format!("{}/v3/config/global/patch", a),
        json!({"rtmp": false, "readTimeout": "7s", "protocols": ["tcp"], "readBufferCount": 4096}),
    );
    let out = get(&format!("{}/v3/config/global/get", a));
    assert_eq!(out["rtmp"], false);
    assert_eq!(out["readTimeout"], "7s");
    assert_eq!(out["protocols"], json!(["tcp"]));
    assert_eq!(out["readBufferCount"], 4096);

    // TestConfigGlobalPatchUnknownField
    let r = http(
        "PATCH",
        &format!("{}/v3/config/global/patch", a),
        Some(r#"{"test":"asd"}"#),
    );
    err(&r, 400, "json: unknown field \"test\"");

    // legacy credentials cannot be combined with authInternalUsers (conf.Validate)
    let r = http(
        "PATCH",
        &format!("{}/v3/config/pathdefaults/patch", a),
        Some(r#"{"readUser":"myuser","readPass":"mypass"}"#),
    );
    err(
        &r,
        400,
        "authInternalUsers and legacy credentials (publishUser, publishPass, publishIPs, readUser, readPass, readIPs) cannot be used together",
    );

    // TestConfigPathDefaultsGet (readUser/readPass in the configuration file)
    let dir = temp_dir("mtx-cases-pathdefaults");
    let mut o = mediamtx_double::Options::new(&dir);
    o.path_defaults = Some(json!({"readUser": "myuser", "readPass": "mypass"}));
    let h = mediamtx_double::start(o).expect("start double");
    let a = h.api_url();
    let out = get(&format!("{}/v3/config/pathdefaults/get", a));
    assert_eq!(out["source"], "publisher");
    assert_eq!(out["readPass"], "<redacted>");

    // TestConfigPathDefaultsPatch: MediaMTX's test starts from a configuration without
    // legacy credentials; with them, every change is refused
    let r = http(
        "PATCH",
        &format!("{}/v3/config/pathdefaults/patch", a),
        Some(r#"{"recordFormat":"fmp4"}"#),
    );
    err(
        &r,
        400,
        "authInternalUsers and legacy credentials (publishUser, publishPass, publishIPs, readUser, readPass, readIPs) cannot be used together",
    );
    let (h, _dir) = start("mtx-cases-pathdefaults-patch");
    let a = h.api_url();
    ok(
        "PATCH",
        &format!("{}/v3/config/pathdefaults/patch", a),
        json!({"recordFormat": "fmp4"}),
    );
    let out = get(&format!("{}/v3/config/pathdefaults/get", a));
    assert_eq!(out["recordFormat"], "fmp4");
}

#[test]
fn test_info_and_preflight() {
    let (h, _dir) = start("mtx-cases-info");
    let a = h.api_url();
    let out = get(&format!("{}/v3/info", a));
    assert_eq!(out.as_object().unwrap().len(), 2, "{}", out);
    assert_eq!(out["version"], "v1.20.1");
    assert!(out["started"].is_string());
    // TestPreflightRequest: a preflight is answered 204 with the allowed methods/headers
    let r = raw_http(
        std::net::TcpStream::connect(a.trim_start_matches("http://")).unwrap(),
        "OPTIONS",
        "/",
        "Access-Control-Request-Method: GET\r\n",
        "",
    );
    assert_eq!(r.0, 204, "{}", r.1);
    assert!(
        r.1.contains("Access-Control-Allow-Methods: OPTIONS, GET, POST, PATCH, DELETE"),
        "{}",
        r.1
    );
    // any other OPTIONS reaches the routes, which have no OPTIONS: gin's 404
    let r = http("OPTIONS", &format!("{}/v3/info", a), None);
    assert_eq!((r.status, r.body.as_str()), (404, "404 page not found"));
}

#[test]
fn test_paginate() {
    let (h, _dir) = start("mtx-cases-pages");
    let a = h.api_url();
    // 5 items (all_others + 4): itemsPerPage=1&page=1 -> 5 pages, the 2nd item
    for n in ["p1", "p2", "p3", "p4"] {
        ok("POST", &format!("{}/v3/config/paths/add/{}", a, n), json!({}));
    }
    let l = get(&format!("{}/v3/config/paths/list?itemsPerPage=1&page=1", a));
    assert_eq!(
        (l["pageCount"].clone(), l["items"].as_array().unwrap().len()),
        (json!(5), 1)
    );
    let l = get(&format!("{}/v3/config/paths/list?itemsPerPage=3&page=2", a));
    assert_eq!((l["pageCount"].clone(), l["items"].clone()), (json!(2), json!([])));
    ok("POST", &format!("{}/v3/config/paths/add/p5", a), json!({}));
    let l = get(&format!("{}/v3/config/paths/list?itemsPerPage=4&page=1", a));
    assert_eq!(
        (l["pageCount"].clone(), l["items"].as_array().unwrap().len()),
        (json!(2), 2)
    );
    let l = get(&format!("{}/v3/recordings/list?itemsPerPage=1&page=0", a));
    assert_eq!((l["pageCount"].clone(), l["items"].clone()), (json!(0), json!([])));
}

#[test]
fn test_recordings() {
    let (h, dir) = start("mtx-cases-rec");
    let a = h.api_url();
    let rec = dir.join("rec");
    ok(
        "PATCH",
        &format!("{}/v3/config/pathdefaults/patch", a),
        json!({"recordPath": format!("{}/%path/%Y-%m-%d_%H-%M-%S-%f", rec.display())}),
    );
    ok("POST", &format!("{}/v3/config/paths/add/mypath1", a), json!({}));
    for d in ["mypath1", "mypath2", "group/cam1"] {
        std::fs::create_dir_all(rec.join(d)).unwrap();
    }
    for f in [
        "mypath1/2008-11-07_11-22-00-500000.mp4",
        "mypath1/2009-11-07_11-22-00-900000.mp4",
        "mypath2/2009-11-07_11-22-00-900000.mp4",
        "group/cam1/2008-11-07_11-22-00-900000.mp4",
    ] {
        std::fs::write(rec.join(f), b"").unwrap();
    }
    let local = |y: i64, mo: u32, d: u32, hh: u32, mi: u32, s: u32, nanos: u32| {
        let u = mediamtx_double::util::local_to_unix(y, mo, d, hh, mi, s);
        let mut tm = mediamtx_double::util::local_tm(std::time::UNIX_EPOCH + std::time::Duration::from_secs(u as u64));
        tm.nanos = nanos;
        mediamtx_double::util::rfc3339_nano_tm(&tm)
    };
    // TestRecordingsList
    let out = get(&format!("{}/v3/recordings/list", a));
    assert_eq!(out["itemCount"], 3);
    assert_eq!(out["pageCount"], 1);
    assert_eq!(
        out["items"][1],
        json!({"name": "mypath1", "segments": [
            {"start": local(2008, 11, 7, 11, 22, 0, 500_000_000)},
            {"start": local(2009, 11, 7, 11, 22, 0, 900_000_000)},
        ]})
    );
    assert_eq!(
        out["items"][2],
        json!({"name": "mypath2", "segments": [{"start": local(2009, 11, 7, 11, 22, 0, 900_000_000)}]})
    );
    // TestRecordingsGet
    let out = get(&format!("{}/v3/recordings/get/mypath1", a));
    assert_eq!(out["segments"].as_array().unwrap().len(), 2);
    // TestRecordingsDeleteSegmentInvalidPath
    let start = local(2008, 11, 7, 11, 22, 0, 900_000_000).replace('+', "%2B");
    let r = http(
        "DELETE",
        &format!("{}/v3/recordings/deletesegment?path=group/../cam1&start={}", a, start),
        None,
    );
    assert_eq!(r.status, 400);
    assert!(rec.join("group/cam1/2008-11-07_11-22-00-900000.mp4").exists());
    // TestRecordingsSegmentGetInvalidPath
    let r = http("GET", &format!("{}/v3/recordings/get/group/../cam1", a), None);
    assert_eq!(r.status, 400);
    // TestRecordingsDeleteSegment
    let r = http(
        "DELETE",
        &format!("{}/v3/recordings/deletesegment?path=group/cam1&start={}", a, start),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!rec.join("group/cam1/2008-11-07_11-22-00-900000.mp4").exists());
}
