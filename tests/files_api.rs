//! Files and storage (api.md §7, §8) through the real WebSocket and HTTP of the service,
//! with real media made by ffmpeg and checked against ffprobe.

mod common;

use camera_service::api::auth::Role;
use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

fn ffmpeg(args: &[&str], out: &Path) {
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let st = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y"])
        .args(args)
        .arg(out)
        .status()
        .expect("ffmpeg");
    assert!(st.success(), "ffmpeg failed for {}", out.display());
}

const SRC: &[&str] = &[
    "-f",
    "lavfi",
    "-i",
    "testsrc2=size=640x480:rate=15",
    "-t",
    "3",
    "-c:v",
    "libx264",
    "-g",
    "15",
];

fn make_fmp4(out: &Path) {
    let mut a = SRC.to_vec();
    a.extend(["-movflags", "+frag_keyframe+empty_moov+default_base_moof", "-f", "mp4"]);
    ffmpeg(&a, out);
}
fn make_mp4(out: &Path) {
    let mut a = SRC.to_vec();
    a.extend(["-f", "mp4"]);
    ffmpeg(&a, out);
}
fn make_ts(out: &Path) {
    let mut a = SRC.to_vec();
    a.extend(["-f", "mpegts"]);
    ffmpeg(&a, out);
}
fn make_image(out: &Path, size: &str) {
    ffmpeg(
        &["-f", "lavfi", "-i", &format!("testsrc2=size={size}"), "-frames:v", "1"],
        out,
    );
}

fn set_mtime(p: &Path, secs_ago: u64) {
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(secs_ago))
        .unwrap();
}

fn sha(b: &[u8]) -> String {
    format!("{:x}", Sha256::digest(b))
}

fn hdr<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn listing_info_and_delete_agree_with_the_disk_and_ffprobe() {
    let svc = Service::start("", "", "");
    let rec = svc.dir.path().join("recordings");
    let snap = svc.dir.path().join("snapshots");
    let frag = rec.join("camera0/camera0_2026-11-24_10-00-00-000001.mp4");
    let plain = rec.join("camera0/camera0_2026-11-24_11-00-00-000002.mp4");
    let ts = rec.join("camera1/camera1_2026-11-24_12-00-00-000003.ts");
    make_fmp4(&frag);
    make_mp4(&plain);
    make_ts(&ts);
    make_image(&snap.join("camera0/camera0_2026-11-24_10-00-00-123.jpg"), "320x240");
    make_image(&snap.join("camera2/my-snapshot.png"), "160x120");
    // ordering by modification time: ts newest, then plain, then frag
    set_mtime(&frag, 300);
    set_mtime(&plain, 200);
    set_mtime(&ts, 100);
    // noise the listing must ignore: wrong extension, non-camera folder, hidden file
    std::fs::write(rec.join("camera0/notes.txt"), b"x").unwrap();
    std::fs::create_dir_all(rec.join("other")).unwrap();
    std::fs::write(rec.join("other/camera5_x.mp4"), b"x").unwrap();
    std::fs::write(rec.join("camera0/.camera0_tmp.mp4"), b"x").unwrap();

    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        c.auth_as(Role::Admin).await;
        let all = c.result("list_recordings", json!({})).await;
        let names: Vec<&str> = all["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["filename"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [ts.file_name(), plain.file_name(), frag.file_name()]
                .map(|n| n.unwrap().to_str().unwrap())
                .to_vec(),
            "{all}"
        );
        assert_eq!(
            (all["total"].as_u64(), all["limit"].as_u64(), all["offset"].as_u64()),
            (Some(3), Some(50), Some(0))
        );
        let f0 = &all["files"][0];
        assert_eq!(f0["device"], "camera1");
        assert_eq!(f0["format"], "mpegts");
        assert_eq!(f0["file_size"].as_u64(), Some(std::fs::metadata(&ts).unwrap().len()));
        assert_eq!(f0["download_url"], format!("/files/recordings/{}", names[0]));
        assert!(f0["modified_time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(all["files"][1]["format"], "mp4");
        assert_eq!(all["files"][2]["format"], "fmp4");

        let page = c.result("list_recordings", json!({"limit": 1, "offset": 1})).await;
        assert_eq!(
            (page["files"][0]["filename"].as_str(), page["total"].as_u64()),
            (Some(names[1]), Some(3))
        );
        let cam1 = c.result("list_recordings", json!({"device": "camera1"})).await;
        assert_eq!(
            (cam1["total"].as_u64(), cam1["files"].as_array().unwrap().len()),
            (Some(1), 1)
        );
        let none = c
            .result("list_recordings", json!({"device": "camera7", "offset": 10}))
            .await;
        assert_eq!(none["files"], json!([]));
        for bad in [
            json!({"limit": 0}),
            json!({"limit": 1001}),
            json!({"offset": -1}),
            json!({"device": "cam1"}),
            json!({"limit": "5"}),
        ] {
            assert_eq!(
                c.error_code("list_recordings", bad.clone()).await,
                INVALID_PARAMS,
                "{bad}"
            );
        }

        // info agrees with ffprobe (duration within 0.1 s)
        for p in [&frag, &plain, &ts] {
            let name = p.file_name().unwrap().to_str().unwrap();
            let info = c.result("get_recording_info", json!({"filename": name})).await;
            let MediaProbe {
                duration,
                codec,
                width: w,
                height: h,
                ..
            } = probe_media(p);
            let dur = duration.expect("ffprobe gives the container duration");
            eprintln!("{name}: ours {} / ffprobe {dur}", info["duration"]);
            assert!(
                (info["duration"].as_f64().unwrap() - dur).abs() < 0.1,
                "{name}: {info} vs {dur}"
            );
            assert_eq!(info["codec"].as_str(), Some(codec.as_str()), "{info}");
            assert_eq!(
                (info["width"].as_u64(), info["height"].as_u64()),
                (Some(w), Some(h)),
                "{info}"
            );
            assert_eq!(info["file_size"].as_u64(), Some(std::fs::metadata(p).unwrap().len()));
        }

        let snaps = c.result("list_snapshots", json!({})).await;
        assert_eq!(snaps["total"], 2);
        assert!(snaps["files"][0].get("duration").is_none());
        let jpg = c
            .result(
                "get_snapshot_info",
                json!({"filename": "camera0_2026-11-24_10-00-00-123.jpg"}),
            )
            .await;
        assert_eq!(
            (jpg["width"].as_u64(), jpg["height"].as_u64(), jpg["format"].as_str()),
            (Some(320), Some(240), Some("jpg"))
        );
        // a client-chosen name is found by looking in every camera folder
        let png = c
            .result("get_snapshot_info", json!({"filename": "my-snapshot.png"}))
            .await;
        assert_eq!(
            (png["width"].as_u64(), png["height"].as_u64(), png["device"].as_str()),
            (Some(160), Some(120), Some("camera2"))
        );

        let storage = c.result("get_storage_info", json!({})).await;
        assert_eq!(
            (
                storage["recordings_count"].as_u64(),
                storage["snapshots_count"].as_u64()
            ),
            (Some(3), Some(2))
        );
        let rec_size: u64 = [&frag, &plain, &ts]
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        assert_eq!(storage["recordings_size"].as_u64(), Some(rec_size));
        assert!(storage["total_space"].as_u64().unwrap() >= storage["available_space"].as_u64().unwrap());
        assert!(storage["usage_percentage"].as_f64().unwrap() <= 100.0);
        assert_eq!(storage["low_space_warning"], false);

        // delete, then it is gone; missing → -32010 with resource
        let d = c.result("delete_recording", json!({"filename": names[2]})).await;
        assert_eq!(
            (d["deleted"].as_bool(), d["filename"].as_str()),
            (Some(true), Some(names[2]))
        );
        assert!(!frag.exists());
        let v = c.call("delete_recording", json!({"filename": names[2]})).await;
        assert_eq!(
            (v["error"]["code"].as_i64(), v["error"]["data"]["resource"].as_str()),
            (Some(NOT_FOUND), Some("recording"))
        );
        assert_eq!(
            c.error_code("get_recording_info", json!({"filename": "camera0_nope.mp4"}))
                .await,
            NOT_FOUND
        );
        let d = c
            .result("delete_snapshot", json!({"filename": "my-snapshot.png"}))
            .await;
        assert_eq!(d["deleted"], true);
        assert!(!snap.join("camera2/my-snapshot.png").exists());
        let after = c.result("list_recordings", json!({})).await;
        assert_eq!(after["total"], 2);
        // a viewer may list but not delete
        let mut v = Client::connect(&svc.ws_url()).await;
        v.auth_as(Role::Viewer).await;
        assert_eq!(v.result("list_snapshots", json!({})).await["total"], 1);
        assert_eq!(
            v.error_code("delete_recording", json!({"filename": names[0]})).await,
            PERMISSION_DENIED
        );
        assert_eq!(v.error_code("get_storage_info", json!({})).await, PERMISSION_DENIED);
    });
}

/// Raw HTTP on an open connection: one request, one response read by Content-Length.
fn exchange(s: &mut std::net::TcpStream, req: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "connection closed mid-head");
        raw.push(byte[0]);
    }
    let head = String::from_utf8(raw).unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = hdr(&headers, "content-length").map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0u8; if req.starts_with("HEAD") { 0 } else { len }];
    s.read_exact(&mut body).unwrap();
    (status, headers, body)
}

#[test]
fn hostile_names_never_reach_outside_files() {
    let svc = Service::start("", "", "");
    let rec = svc.dir.path().join("recordings");
    let outside = svc.dir.path().join("outside");
    std::fs::create_dir_all(rec.join("camera0")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let secret = b"TOP-SECRET-CONTENT-OUTSIDE-THE-RECORDINGS-DIR";
    std::fs::write(outside.join("secret.mp4"), secret).unwrap();
    std::fs::write(rec.join("secret.mp4"), secret).unwrap(); // not in a camera folder
    std::os::unix::fs::symlink(outside.join("secret.mp4"), rec.join("camera0/camera0_link.mp4")).unwrap();
    std::os::unix::fs::symlink(&outside, rec.join("camera9")).unwrap();
    std::fs::copy(outside.join("secret.mp4"), outside.join("camera9_in_linked_dir.mp4")).unwrap();
    let long = format!("camera0_{}.mp4", "a".repeat(300));

    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        c.auth_as(Role::Admin).await;
        let hostile = [
            "../outside/secret.mp4",
            "..",
            "camera0/../../outside/secret.mp4",
            "a/b.mp4",
            "a\\b.mp4",
            "camera0_x\0.mp4",
            "camera0_x\n.mp4",
            long.as_str(),
        ];
        for name in hostile {
            for m in [
                "get_recording_info",
                "delete_recording",
                "get_snapshot_info",
                "delete_snapshot",
            ] {
                let v = c.call(m, json!({ "filename": name })).await;
                assert_eq!(v["error"]["code"], INVALID_PARAMS, "{m} {name:?}: {v}");
                assert_eq!(v["error"]["data"]["param"], "filename");
                assert!(
                    !v.to_string().contains(svc.dir.path().to_str().unwrap()),
                    "no paths in errors: {v}"
                );
            }
        }
        // names that are valid but lead to links, or to files outside camera folders: absent
        for name in ["camera0_link.mp4", "camera9_in_linked_dir.mp4", "secret.mp4", "%2e%2e"] {
            for m in ["get_recording_info", "delete_recording"] {
                assert_eq!(
                    c.error_code(m, json!({ "filename": name })).await,
                    NOT_FOUND,
                    "{m} {name}"
                );
            }
        }
        let list = c.result("list_recordings", json!({})).await;
        assert_eq!(list["total"], 0, "links are not listed: {list}");
    });

    let tok = token(Role::Viewer, Duration::from_secs(600));
    let auth = format!("Bearer {tok}");
    for (path, expect) in [
        ("/files/recordings/..%2Foutside%2Fsecret.mp4", 400),
        ("/files/recordings/%2e%2e%2foutside%2fsecret.mp4", 400),
        ("/files/recordings/%2E%2E", 400),
        ("/files/recordings/camera0_x%00.mp4", 400),
        ("/files/recordings/camera0_x%0a.mp4", 400),
        ("/files/recordings/a%5cb.mp4", 400),
        ("/files/recordings/%zz.mp4", 400),
        ("/files/recordings/../outside/secret.mp4", 400),
        (&format!("/files/recordings/{long}"), 400),
        ("/files/recordings/camera0_link.mp4", 404),
        ("/files/recordings/camera9_in_linked_dir.mp4", 404),
        ("/files/recordings/secret.mp4", 404),
        ("/files/recordings/%252e%252e", 404), // decoded once: the literal name "%2e%2e"
        ("/files/nothing/secret.mp4", 404),
    ] {
        let (status, _, body) = http(&svc.addr, "GET", path, &[("Authorization", &auth)]);
        assert_eq!(status, expect, "{path}");
        assert!(
            !body.windows(secret.len()).any(|w| w == secret),
            "{path} served the outside file"
        );
    }
    assert_eq!(
        std::fs::read(outside.join("secret.mp4")).unwrap(),
        secret,
        "outside file intact"
    );
    assert!(outside.join("camera9_in_linked_dir.mp4").exists());
    assert!(std::fs::symlink_metadata(rec.join("camera0/camera0_link.mp4")).is_ok());
}

#[test]
fn downloads_stream_whole_files_and_ranges_with_auth() {
    let svc = Service::start("", "", "");
    let name = "camera3_2026-11-24_10-15-30-123456.mp4";
    let path = svc.dir.path().join("recordings/camera3").join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // 20 MB of varied bytes (the transfer does not look inside the file)
    let mut data = vec![0u8; 20 * 1024 * 1024 + 123];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(&path, &data).unwrap();
    let url = format!("/files/recordings/{name}");
    let viewer = token(Role::Viewer, Duration::from_secs(600));
    let bearer = format!("Bearer {viewer}");

    // no credentials, bad credentials, expired, unknown role → 401
    let (s, h, _) = http(&svc.addr, "GET", &url, &[]);
    assert_eq!(s, 401);
    assert!(hdr(&h, "www-authenticate").is_some_and(|v| v.starts_with("Bearer")));
    assert_eq!(http(&svc.addr, "GET", &url, &[("Authorization", "Bearer nope")]).0, 401);
    assert_eq!(
        http(&svc.addr, "GET", &format!("{url}?token=csk_{}", "A".repeat(43)), &[]).0,
        401
    );
    let expired =
        camera_service::api::auth::JwtKey::new(SECRET.as_bytes()).mint("t", Role::Admin, Duration::from_secs(1), 1000);
    assert_eq!(
        http(
            &svc.addr,
            "GET",
            &url,
            &[("Authorization", &format!("Bearer {expired}"))]
        )
        .0,
        401
    );
    let odd_role = {
        use hmac::Mac;
        use jwt::SignWithKey;
        let key: hmac::Hmac<Sha256> = hmac::Hmac::new_from_slice(SECRET.as_bytes()).unwrap();
        let now = camera_service::clock::unix_now();
        json!({"user_id": "x", "role": "guest", "iat": now, "exp": now + 600})
            .sign_with_key(&key)
            .unwrap()
    };
    assert_eq!(
        http(
            &svc.addr,
            "GET",
            &url,
            &[("Authorization", &format!("Bearer {odd_role}"))]
        )
        .0,
        403,
        "a genuine token whose role grants no file access: authenticated, not permitted"
    );

    // whole file
    let (s, h, body) = http(&svc.addr, "GET", &url, &[("Authorization", &bearer)]);
    assert_eq!(s, 200);
    assert_eq!(hdr(&h, "content-type"), Some("video/mp4"));
    assert_eq!(hdr(&h, "accept-ranges"), Some("bytes"));
    assert_eq!(hdr(&h, "content-length"), Some(data.len().to_string().as_str()));
    assert_eq!(sha(&body), sha(&data));
    let etag = hdr(&h, "etag").unwrap().to_string();
    // ?token= for players that cannot set headers (API key works too)
    let key = String::from_utf8(
        svc.cli(&["keys", "create", "--name", "player", "--role", "viewer"])
            .stdout,
    )
    .unwrap();
    let key = key
        .split_whitespace()
        .find(|w| w.starts_with("csk_"))
        .expect("plain key printed")
        .to_string();
    let (s, _, body) = http(&svc.addr, "GET", &format!("{url}?token={key}"), &[]);
    assert_eq!((s, sha(&body)), (200, sha(&data)));
    let (s, _, body) = http(&svc.addr, "GET", &format!("{url}?x=1&token={viewer}"), &[]);
    assert_eq!((s, body.len()), (200, data.len()));

    // ranges, reassembled
    let n = data.len();
    let mut joined = Vec::new();
    for r in [
        format!("bytes=0-{}", n / 3 - 1),
        format!("bytes={}-{}", n / 3, 2 * n / 3),
        format!("bytes={}-", 2 * n / 3 + 1),
    ] {
        let (s, h, body) = http(&svc.addr, "GET", &url, &[("Authorization", &bearer), ("Range", &r)]);
        assert_eq!(s, 206, "{r}");
        assert!(hdr(&h, "content-range").unwrap().ends_with(&format!("/{n}")));
        joined.extend(body);
    }
    assert_eq!(sha(&joined), sha(&data), "ranges reassemble the file");
    let (s, h, body) = http(
        &svc.addr,
        "GET",
        &url,
        &[("Authorization", &bearer), ("Range", "bytes=-100")],
    );
    assert_eq!((s, body.as_slice()), (206, &data[n - 100..]));
    assert_eq!(
        hdr(&h, "content-range"),
        Some(format!("bytes {}-{}/{n}", n - 100, n - 1).as_str())
    );
    let (s, h, _) = http(
        &svc.addr,
        "GET",
        &url,
        &[("Authorization", &bearer), ("Range", &format!("bytes={n}-"))],
    );
    assert_eq!(
        (s, hdr(&h, "content-range")),
        (416, Some(format!("bytes */{n}").as_str()))
    );
    // If-Range with a stale tag → whole file
    let (s, _, body) = http(
        &svc.addr,
        "GET",
        &url,
        &[
            ("Authorization", &bearer),
            ("Range", "bytes=0-9"),
            ("If-Range", "\"old\""),
        ],
    );
    assert_eq!((s, body.len()), (200, n));

    // HEAD: headers, no body; If-None-Match → 304
    let (s, h, body) = http(&svc.addr, "HEAD", &url, &[("Authorization", &bearer)]);
    assert_eq!(
        (s, body.len(), hdr(&h, "content-length")),
        (200, 0, Some(n.to_string().as_str()))
    );
    let (s, _, body) = http(
        &svc.addr,
        "GET",
        &url,
        &[("Authorization", &bearer), ("If-None-Match", &etag)],
    );
    assert_eq!((s, body.len()), (304, 0));

    // keep-alive survives streamed bodies (full, range, HEAD, errors) on one connection
    let mut conn = std::net::TcpStream::connect(&svc.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let req = |m: &str, extra: &str| format!("{m} {url} HTTP/1.1\r\nHost: x\r\nAuthorization: {bearer}\r\n{extra}\r\n");
    let (s, _, body) = exchange(&mut conn, &req("GET", "Range: bytes=100-199\r\n"));
    assert_eq!((s, body.as_slice()), (206, &data[100..200]));
    let (s, _, body) = exchange(&mut conn, &req("GET", ""));
    assert_eq!((s, sha(&body)), (200, sha(&data)));
    let (s, h, _) = exchange(&mut conn, &req("HEAD", ""));
    assert_eq!((s, hdr(&h, "connection")), (200, Some("keep-alive")));
    let (s, _, _) = exchange(
        &mut conn,
        "GET /files/recordings/camera3_missing.mp4 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n\r\n",
    );
    assert_eq!(s, 401);
    let (s, _, _) = exchange(&mut conn, "GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(s, 200);

    // a missing file with valid credentials → 404; snapshots are served with their type
    assert_eq!(
        http(
            &svc.addr,
            "GET",
            "/files/recordings/camera3_missing.mp4",
            &[("Authorization", &bearer)]
        )
        .0,
        404
    );
    let jpg = svc.dir.path().join("snapshots/camera3/shot.jpg");
    make_image(&jpg, "64x48");
    let (s, h, body) = http(
        &svc.addr,
        "GET",
        "/files/snapshots/shot.jpg",
        &[("Authorization", &bearer)],
    );
    assert_eq!((s, hdr(&h, "content-type")), (200, Some("image/jpeg")));
    assert_eq!(body, std::fs::read(&jpg).unwrap());
}

// ------------------------------------------------------------------ in-process

fn config(dir: &Path, storage_extra: &str) -> std::sync::Arc<camera_service::config::Config> {
    let text = test_config(dir, "", "", "").replace("snapshots_dir = ", &format!("{storage_extra}\nsnapshots_dir = "));
    std::sync::Arc::new(camera_service::config::Config::from_toml_str(&text, std::iter::empty()).unwrap())
}

fn file_aged(dir: &Path, name: &str, size: usize, now: i64, days: i64) -> PathBuf {
    let cam = name.split('_').next().unwrap();
    let p = dir.join(cam).join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, vec![7u8; size]).unwrap();
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs((now - days * 86_400) as u64);
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(t)
        .unwrap();
    p
}

#[test]
fn retention_by_age_and_size_with_a_manual_clock_and_active_segments() {
    let dir = TempDir::new("retention");
    smol::block_on(async {
        let svc = camera_service::service::start(config(dir.path(), ""), camera_service::config::Secret::new(SECRET))
            .await
            .unwrap();
        let now = camera_service::clock::unix_now();
        let clock = camera_service::clock::Clock::manual(now);
        svc.controller().storage().set_clock(clock.clone());
        let rec = dir.path().join("recordings");
        let snap = dir.path().join("snapshots");
        let d10 = file_aged(&rec, "camera0_d10.mp4", 1000, now, 10);
        let d5 = file_aged(&rec, "camera0_d5.mp4", 1000, now, 5);
        let d1 = file_aged(&rec, "camera1_d1.ts", 1000, now, 1);
        let s8 = file_aged(&snap, "camera0_s8.jpg", 500, now, 8);
        let active = file_aged(&rec, "camera2_active.mp4", 1000, now, 30);
        svc.controller().pin_being_written(active.clone(), true);

        let mut c = Client::connect(&format!("ws://{}/ws", svc.addr)).await;
        c.auth_as(Role::Admin).await;
        // the segment being written can be neither deleted nor cleaned up
        let v = c
            .call("delete_recording", json!({"filename": "camera2_active.mp4"}))
            .await;
        assert_eq!(
            (v["error"]["code"].as_i64(), v["error"]["data"]["state"].as_str()),
            (Some(INVALID_STATE), Some("recording"))
        );

        // default (manual) policy: nothing happens
        let r = c.result("cleanup_old_files", json!({})).await;
        assert_eq!(
            (r["cleanup_executed"].as_bool(), r["files_deleted"].as_u64()),
            (Some(false), Some(0))
        );

        for bad in [
            json!({"policy_type": "forever", "enabled": true}),
            json!({"policy_type": "age", "enabled": true, "max_age_days": 0}),
            json!({"policy_type": "age", "enabled": true, "max_age_days": 3651}),
            json!({"policy_type": "size", "enabled": true, "max_size_gb": 0}),
            json!({"policy_type": "age"}),
        ] {
            assert_eq!(
                c.error_code("set_retention_policy", bad.clone()).await,
                INVALID_PARAMS,
                "{bad}"
            );
        }
        let r = c
            .result(
                "set_retention_policy",
                json!({"policy_type": "age", "enabled": false, "max_age_days": 7}),
            )
            .await;
        assert_eq!(
            (
                r["policy_type"].as_str(),
                r["enabled"].as_bool(),
                r["max_age_days"].as_u64()
            ),
            (Some("age"), Some(false), Some(7))
        );
        let r = c.result("cleanup_old_files", json!({})).await;
        assert_eq!(
            (
                r["cleanup_executed"].as_bool(),
                r["files_deleted"].as_u64(),
                r["space_freed"].as_u64()
            ),
            (Some(true), Some(2), Some(1500)),
            "{r}"
        );
        assert!(!d10.exists() && !s8.exists());
        assert!(d5.exists() && d1.exists() && active.exists());
        // three days later the 5-day file is 8 days old
        clock.advance(3 * 86_400);
        let r = c.result("cleanup_old_files", json!({})).await;
        assert_eq!(r["files_deleted"], 1);
        assert!(!d5.exists() && d1.exists() && active.exists());

        // size: 3 files of 1000 bytes (one active) with a 2500-byte budget → the oldest
        // non-active file goes; the active one is kept even though it is oldest
        let e = file_aged(&rec, "camera0_e.mp4", 1000, clock.unix(), 0);
        let r = c
            .result(
                "set_retention_policy",
                json!({"policy_type": "size", "enabled": false, "max_size_gb": 2.5e-6}),
            )
            .await;
        assert_eq!(r["max_age_days"], 7, "unsent limits are kept");
        let r = c.result("cleanup_old_files", json!({})).await;
        assert_eq!(
            (r["files_deleted"].as_u64(), r["space_freed"].as_u64()),
            (Some(1), Some(1000)),
            "{r}"
        );
        assert!(!d1.exists() && e.exists() && active.exists());

        // background enforcement only when enabled; the segment stays protected
        svc.controller().pin_being_written(active.clone(), false);
        svc.shutdown().await;
    });
}

#[test]
fn background_retention_runs_and_policy_survives_restart() {
    let dir = TempDir::new("retention-bg");
    let cfg = config(
        dir.path(),
        "retention_check_interval = \"200ms\"\nspace_check_interval = \"200ms\"",
    );
    let rec = dir.path().join("recordings");
    smol::block_on(async {
        let svc = camera_service::service::start(cfg.clone(), camera_service::config::Secret::new(SECRET))
            .await
            .unwrap();
        let now = camera_service::clock::unix_now();
        let old = file_aged(&rec, "camera0_old.mp4", 10, now, 40);
        let young = file_aged(&rec, "camera0_young.mp4", 10, now, 2);
        let mut c = Client::connect(&format!("ws://{}/ws", svc.addr)).await;
        c.auth_as(Role::Admin).await;
        c.result(
            "set_retention_policy",
            json!({"policy_type": "age", "enabled": true, "max_age_days": 30}),
        )
        .await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while old.exists() && std::time::Instant::now() < deadline {
            smol::Timer::after(Duration::from_millis(50)).await;
        }
        assert!(!old.exists(), "the background task enforced the age policy");
        assert!(young.exists());
        drop(c);
        svc.shutdown().await;

        // restart with the same state_dir: the saved policy (not the manual default) applies.
        // The background pass is slowed down here so that the explicit cleanup below is the
        // one that deletes (on a loaded machine the 200 ms pass could win the race).
        let cfg = config(
            dir.path(),
            "retention_check_interval = \"1h\"\nspace_check_interval = \"200ms\"",
        );
        let svc = camera_service::service::start(cfg.clone(), camera_service::config::Secret::new(SECRET))
            .await
            .unwrap();
        assert_eq!(svc.controller().storage().policy().max_age_days, Some(30));
        let clock = camera_service::clock::Clock::manual(now + 29 * 86_400);
        svc.controller().storage().set_clock(clock);
        let mut c = Client::connect(&format!("ws://{}/ws", svc.addr)).await;
        c.auth_as(Role::Admin).await;
        let r = c.result("cleanup_old_files", json!({})).await;
        assert_eq!(
            (r["cleanup_executed"].as_bool(), r["files_deleted"].as_u64()),
            (Some(true), Some(1)),
            "{r}"
        );
        assert!(!young.exists());
        svc.shutdown().await;
    });
}

#[test]
fn low_space_raises_an_event_and_degrades_health() {
    let dir = TempDir::new("lowspace");
    let cfg = config(dir.path(), "space_check_interval = \"100ms\"");
    smol::block_on(async {
        let svc = camera_service::service::start(cfg, camera_service::config::Secret::new(SECRET))
            .await
            .unwrap();
        let addr = svc.addr.to_string();
        let mut c = Client::connect(&format!("ws://{addr}/ws")).await;
        c.auth_as(Role::Admin).await;
        c.result("subscribe_events", json!({"topics": ["storage.low_space"]}))
            .await;
        let storage = c.result("get_storage_info", json!({})).await;
        assert_eq!(storage["low_space_warning"], false, "{storage}");
        // every file system has less than 100% free: the warning trips on the next check
        svc.controller().storage().set_low_space_warning_percent(100);
        let ev = c
            .wait_notification("storage.low_space", Duration::from_secs(5))
            .await
            .expect("storage.low_space event");
        assert_eq!(ev["method"], "system_health_update");
        assert!(ev["params"]["available_space"].as_u64().is_some(), "{ev}");
        let a = addr.clone();
        let (_, _, body) = blocking::unblock(move || http(&a, "GET", "/health/detailed", &[])).await;
        let h: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(h["components"]["storage"]["status"], "degraded", "{h}");
        assert_ne!(h["status"], "healthy", "the overall status reflects it: {h}");
        assert_eq!(c.result("get_storage_info", json!({})).await["low_space_warning"], true);
        // and back
        svc.controller().storage().set_low_space_warning_percent(0);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let a = addr.clone();
            let (_, _, body) = blocking::unblock(move || http(&a, "GET", "/health/detailed", &[])).await;
            let h: Value = serde_json::from_slice(&body).unwrap();
            if h["components"]["storage"]["status"] == "healthy" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "storage never recovered: {h}");
            smol::Timer::after(Duration::from_millis(50)).await;
        }
        svc.shutdown().await;
    });
}

#[test]
fn free_space_floor_refuses_with_insufficient_storage() {
    let dir = TempDir::new("floor");
    let cfg = config(dir.path(), "min_free_bytes = 9000000000000000000");
    smol::block_on(async {
        let svc = camera_service::service::start(cfg, camera_service::config::Secret::new(SECRET))
            .await
            .unwrap();
        match svc.controller().check_free_space().await {
            Err(camera_service::error::ServiceError::InsufficientStorage { required_bytes, .. }) => {
                assert_eq!(required_bytes, 9_000_000_000_000_000_000)
            }
            other => panic!("expected InsufficientStorage, got {other:?}"),
        }
        let rpc: camera_service::api::error::RpcError = svc.controller().check_free_space().await.unwrap_err().into();
        assert_eq!(i64::from(rpc.code), INSUFFICIENT_STORAGE);
        let mut c = Client::connect(&format!("ws://{}/ws", svc.addr)).await;
        c.auth_as(Role::Admin).await;
        assert_eq!(c.result("get_storage_info", json!({})).await["low_space_warning"], true);
        svc.shutdown().await;
    });
}
