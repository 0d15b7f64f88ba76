//! The service against the strict MediaMTX double (MediaMTX v1.20.1's configuration rules,
//! tests/mediamtx-double): every operation of ours that creates or changes a MediaMTX path is
//! accepted, and a refusal from MediaMTX reaches the client as -32050 with MediaMTX's own
//! error text in `data.mediamtx_error`, and is logged.

mod common;

use camera_service::api::auth::Role;
use common::*;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Publisher(Child);

impl Publisher {
    fn start(rtsp_port: u16, path: &str) -> Publisher {
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=320x240:rate=15")
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
                "-g",
                "15",
            ])
            .args(["-f", "rtsp", "-rtsp_transport", "tcp"])
            .arg(format!("rtsp://127.0.0.1:{rtsp_port}/{path}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg is installed (scripts/setup)");
        Publisher(child)
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn mtx_get(d: &Double, path: &str) -> (u16, Value) {
    let (status, _, body) = http(&format!("127.0.0.1:{}", d.api_port), "GET", path, &[]);
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn path_configured(d: &Double, name: &str) -> bool {
    mtx_get(d, &format!("/v3/config/paths/get/{name}")).0 == 200
}

fn path_available(d: &Double, name: &str) -> bool {
    mtx_get(d, &format!("/v3/paths/get/{name}")).1["available"] == true
}

fn control(d: &Double, what: &str) {
    let (status, _, body) = http(&format!("127.0.0.1:{}", d.control_port), "GET", what, &[]);
    assert_eq!(status, 200, "{what}: {}", String::from_utf8_lossy(&body));
}

fn service(d: &Double) -> Service {
    let rest = format!(
        "[mediamtx]\napi_url = \"{}\"\nrtsp_port = {}\nhealth_interval = \"1s\"\nretries = 1\n\n\
         [recording]\nstart_timeout = \"15s\"\nprogress_interval = \"1s\"\nsegment_duration = \"1h\"\n\n\
         [external_streams]\nhealth_interval = \"1s\"\nprobe_timeout = \"1s\"\noffline_after = 2\n\n\
         [[camera.simulated]]\nid = \"camera50\"\nsize = \"320x240\"\nfps = 15\n\n\
         [[camera.simulated]]\nid = \"camera51\"\nsize = \"320x240\"\nfps = 10\n",
        d.api_url(),
        d.rtsp_port
    );
    Service::start("", "", &rest)
}

/// Every configuration change the service sent that MediaMTX's rules refuse.
fn refused(d: &Double) -> Vec<Value> {
    d.refused()
}

#[test]
fn every_path_operation_is_accepted_by_mediamtx_rules() {
    let d = start_double();
    let _publisher = Publisher::start(d.rtsp_port, "extsrc");
    assert!(
        wait_until(Duration::from_secs(20), || path_available(&d, "extsrc")),
        "publisher up"
    );
    let svc = service(&d);
    // discovery: every camera gets its path
    assert!(
        wait_until(Duration::from_secs(20), || path_configured(&d, "camera50")
            && path_configured(&d, "camera51")),
        "camera paths created; refused: {:?}",
        refused(&d)
    );
    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        c.auth_as(Role::Operator).await;

        c.result("start_streaming", json!({"device": "camera50"})).await;
        // recording on and off, both formats, with and without a duration
        let r = c.result("start_recording", json!({"device": "camera50"})).await;
        assert_eq!(r["status"], "RECORDING", "{r}");
        c.result("stop_recording", json!({"device": "camera50"})).await;
        let r = c
            .result(
                "start_recording",
                json!({"device": "camera51", "format": "mpegts", "duration": 3}),
            )
            .await;
        assert_eq!(r["status"], "RECORDING", "{r}");
        c.result("stop_recording", json!({"device": "camera51"})).await;
        // read back as MediaMTX renders it: ensure() must not see a difference
        c.result("start_streaming", json!({"device": "camera51"})).await;

        // an external stream becomes a camera with its own path, records, goes away
        let url = format!("rtsp://pilot:s3cret@127.0.0.1:{}/extsrc", d.rtsp_port);
        let added = c
            .result(
                "add_external_stream",
                json!({"stream_url": url, "stream_name": "drone"}),
            )
            .await;
        let dev = added["device"].as_str().expect("device").to_string();
        assert!(
            wait_until(Duration::from_secs(20), || path_configured(&d, &dev)),
            "external path; refused: {:?}",
            refused(&d)
        );
        // recordable once its health probe has seen the stream
        let deadline = Instant::now() + Duration::from_secs(20);
        let r = loop {
            let v = c.call("start_recording", json!({"device": dev})).await;
            if v["error"]["code"] != -32020 || Instant::now() > deadline {
                break v;
            }
            smol::Timer::after(Duration::from_millis(300)).await;
        };
        assert_eq!(r["result"]["status"], "RECORDING", "{r}");
        c.result("stop_recording", json!({"device": dev})).await;
        c.result("remove_external_stream", json!({"stream_url": url})).await;
        assert!(wait_until(Duration::from_secs(10), || !path_configured(&d, &dev)));

        // MediaMTX restarts (configuration back to the file): every path is re-applied,
        // an active recording included
        let r = c.result("start_recording", json!({"device": "camera50"})).await;
        assert_eq!(r["status"], "RECORDING", "{r}");
        control(&d, "/control/restart");
        assert!(
            wait_until(Duration::from_secs(20), || path_configured(&d, "camera50")
                && path_configured(&d, "camera51")
                && mtx_get(&d, "/v3/config/paths/get/camera50").1["record"] == true),
            "paths re-applied; refused: {:?}",
            refused(&d)
        );
        c.result("stop_recording", json!({"device": "camera50"})).await;
        c.result("stop_streaming", json!({"device": "camera50"})).await;
    });
    assert_eq!(refused(&d), Vec::<Value>::new(), "MediaMTX would refuse these");
    assert!(!svc.log().contains("MediaMTX refused"), "{}", svc.log());
}

#[test]
fn a_mediamtx_refusal_reaches_the_client_as_32050_with_its_text() {
    let d = start_double();
    let svc = service(&d);
    assert!(wait_until(Duration::from_secs(20), || path_configured(&d, "camera50")));
    let text = "'recordDeleteAfter' cannot be lower than 'recordSegmentDuration'";
    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        c.auth_as(Role::Operator).await;
        control(
            &d,
            &format!("/control/fail400?count=1&error={}", text.replace(' ', "%20")),
        );
        let v = c.call("start_recording", json!({"device": "camera50"})).await;
        let e = &v["error"];
        assert_eq!(e["code"], -32050, "{v}");
        assert_eq!(e["data"]["reason"], "dependency_failed", "{v}");
        assert_eq!(e["data"]["dependency"], "mediamtx", "{v}");
        assert_eq!(e["data"]["mediamtx_error"], text, "{v}");
        // nothing half-done: the next attempt works
        let r = c.result("start_recording", json!({"device": "camera50"})).await;
        assert_eq!(r["status"], "RECORDING", "{r}");
        c.result("stop_recording", json!({"device": "camera50"})).await;
    });
    let log = svc.log();
    assert!(
        log.lines().any(|l| l.contains("MediaMTX refused") && l.contains(text)),
        "{log}"
    );
}

/// MediaMTX v1.20.1 refuses a source URL with a user but no password ("username and
/// password must be both provided"); the service must refuse it itself (-32602) instead
/// of accepting the stream and failing to create its path forever.
#[test]
#[ignore = "service: external::validate_url accepts rtsp://user@host (see issue 17 report)"]
fn external_url_with_user_but_no_password_is_refused_up_front() {
    let d = start_double();
    let svc = service(&d);
    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        c.auth_as(Role::Operator).await;
        for bad in [
            format!("rtsp://pilot@127.0.0.1:{}/extsrc", d.rtsp_port),
            format!("rtsp://pilot:@127.0.0.1:{}/extsrc", d.rtsp_port),
        ] {
            let v = c
                .call("add_external_stream", json!({"stream_url": bad, "stream_name": "x"}))
                .await;
            assert_eq!(v["error"]["code"], -32602, "{bad}: {v}");
        }
    });
    assert_eq!(refused(&d), Vec::<Value>::new());
}
