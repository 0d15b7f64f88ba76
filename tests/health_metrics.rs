//! Health, status and metrics that tell the truth (api.md §8, §10): MediaMTX (the double)
//! stops answering → readiness 503, `get_status` reports it, a `system.health` event goes
//! out; restored → HEALTHY again. `/metrics` is parsed by a Prometheus text-format parser
//! and its counters move with requests.

mod common;

use camera_service::api::auth::Role;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn control(double: &mediamtx_double::Handle, path: &str) {
    let (s, _, b) = http(&format!("127.0.0.1:{}", double.control_port), "POST", path, &[]);
    assert_eq!(s, 200, "{path}: {}", String::from_utf8_lossy(&b));
}

fn ready(svc: &Service) -> (u16, Value) {
    let (s, _, b) = http(&svc.addr, "GET", "/health/ready", &[]);
    (s, serde_json::from_slice(&b).unwrap())
}

fn scrape(svc: &Service) -> Vec<prometheus_parse::Sample> {
    let (s, h, b) = http(&svc.addr, "GET", "/metrics", &[]);
    assert_eq!(s, 200);
    assert!(
        h.iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("text/plain; version=0.0.4")),
        "{h:?}"
    );
    let text = String::from_utf8(b).unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines)
        .expect("valid Prometheus text format")
        .samples
}

fn value(samples: &[prometheus_parse::Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

#[test]
fn mediamtx_outage_is_reported_and_recovered() {
    let double = start_double();
    let rest = format!(
        "[mediamtx]\napi_url = \"{}\"\nhealth_interval = \"300ms\"\nrequest_timeout = \"500ms\"\nretries = 0\nbreaker_failures = 2\nbreaker_reset = \"1s\"\n\n\
         [[camera.simulated]]\nid = \"camera50\"\n",
        double.api_url()
    );
    let svc = Service::start("", "", &rest);
    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        c.auth_as(Role::Admin).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while ready(&svc).0 != 200 && Instant::now() < deadline {
            smol::Timer::after(Duration::from_millis(100)).await;
        }
        assert_eq!(ready(&svc).0, 200, "ready with MediaMTX answering: {:?}", ready(&svc));
        let st = c.result("get_status", json!({})).await;
        assert_eq!(st["status"], "HEALTHY", "{st}");
        assert_eq!(
            st["components"],
            json!({"websocket_server": "RUNNING", "camera_monitor": "RUNNING", "mediamtx": "RUNNING", "storage": "RUNNING", "ffmpeg": "RUNNING"})
        );
        c.result("subscribe_events", json!({"topics": ["system.health"]})).await;

        control(&double, "/control/api-stop?mode=refuse");
        let t0 = Instant::now();
        let ev = c
            .wait_notification("system.health", Duration::from_secs(5))
            .await
            .expect("system.health on outage");
        println!("outage reported after {:?} (probe interval 300 ms)", t0.elapsed());
        assert_ne!(ev["params"]["status"], "HEALTHY", "{ev}");
        assert_eq!(ev["params"]["components"]["mediamtx"]["status"], "unhealthy", "{ev}");
        let (s, r) = ready(&svc);
        assert_eq!(s, 503, "{r}");
        assert!(r["reason"].as_str().unwrap().contains("mediamtx"), "{r}");
        let st = c.result("get_status", json!({})).await;
        assert_eq!(st["components"]["mediamtx"], "ERROR", "{st}");
        assert!(st["status"] == "DEGRADED" || st["status"] == "UNHEALTHY", "{st}");
        // While the breaker is open, calls needing MediaMTX fail fast with -32050.
        let t = Instant::now();
        let v = c.call("get_stream_status", json!({"device": "camera50"})).await;
        assert_eq!(v["error"]["code"], DEPENDENCY_FAILED, "{v}");
        assert_eq!(v["error"]["data"]["dependency"], "mediamtx");
        assert!(t.elapsed() < Duration::from_secs(2), "fail fast: {:?}", t.elapsed());

        control(&double, "/control/api-start");
        let ev = c
            .wait_notification("system.health", Duration::from_secs(10))
            .await
            .expect("system.health on recovery");
        assert_eq!(ev["params"]["status"], "HEALTHY", "{ev}");
        assert_eq!(ready(&svc).0, 200);
        assert_eq!(
            c.result("get_status", json!({})).await["components"]["mediamtx"],
            "RUNNING"
        );
    });
}

#[test]
fn prometheus_metrics_move_with_requests_and_get_metrics_answers_from_memory() {
    let svc = Service::start("", "", "[[camera.simulated]]\nid = \"camera50\"\n");
    smol::block_on(async {
        let mut c = Client::connect(&svc.ws_url()).await;
        c.auth_as(Role::Admin).await;
        let before = scrape(&svc);
        let pings = value(
            &before,
            "camera_service_rpc_requests_total",
            &[("method", "ping"), ("code", "0")],
        )
        .unwrap_or(0.0);
        for _ in 0..5 {
            c.result("ping", json!({})).await;
        }
        assert_eq!(
            c.error_code("get_camera_status", json!({"device": "camera9"})).await,
            NOT_FOUND
        );
        let after = scrape(&svc);
        assert_eq!(
            value(
                &after,
                "camera_service_rpc_requests_total",
                &[("method", "ping"), ("code", "0")]
            ),
            Some(pings + 5.0)
        );
        assert_eq!(
            value(
                &after,
                "camera_service_rpc_requests_total",
                &[
                    ("method", "get_camera_status"),
                    ("code", NOT_FOUND.to_string().as_str())
                ]
            ),
            Some(1.0)
        );
        let count = |s: &[prometheus_parse::Sample]| {
            s.iter()
                .find(|s| s.metric == "camera_service_rpc_request_duration_seconds")
                .and_then(|s| match &s.value {
                    prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).reduce(f64::max),
                    _ => None,
                })
                .unwrap_or(0.0)
        };
        assert!(
            count(&after) >= count(&before) + 6.0,
            "latency histogram counts requests"
        );
        assert_eq!(value(&after, "camera_service_connected_clients", &[]), Some(1.0));
        assert_eq!(
            value(&after, "camera_service_cameras", &[("status", "CONNECTED")]),
            Some(1.0)
        );
        assert_eq!(value(&after, "camera_service_active_recordings", &[]), Some(0.0));
        assert!(value(&after, "camera_service_storage_bytes", &[("kind", "total")]).unwrap() > 0.0);
        assert!(value(&after, "camera_service_mediamtx_calls_total", &[]).is_some());
        assert_eq!(
            value(
                &after,
                "camera_service_component_status",
                &[("component", "websocket_server")]
            ),
            Some(0.0)
        );
        let shots = [("tier", "v4l2_direct"), ("result", "success")];
        assert_eq!(
            value(&after, "camera_service_snapshots_total", &shots),
            Some(0.0),
            "snapshot tiers exported"
        );

        // get_metrics: every figure present, answered fast (measured properly in scripts/bench-rpc)
        smol::Timer::after(Duration::from_millis(2200)).await; // one sampler period
        let t = Instant::now();
        let m = c.result("get_metrics", json!({})).await;
        println!("get_metrics round trip {:?}", t.elapsed());
        let sys = &m["system_metrics"];
        assert!(
            sys["rss_bytes"].as_u64().unwrap() > 1_000_000 && sys["threads"].as_u64().unwrap() >= 2,
            "{m}"
        );
        assert!(
            sys["open_fds"].as_u64().unwrap() >= 3
                && sys["cpu_usage"].as_f64().is_some()
                && sys["disk_usage"].as_f64().is_some()
        );
        assert_eq!(m["camera_metrics"]["connected_cameras"], 1);
        assert_eq!(m["camera_metrics"]["cameras"]["camera50"]["status"], "CONNECTED");
        assert_eq!(
            m["recording_metrics"],
            json!({"active_recordings": 0, "total_started": 0, "total_failed": 0})
        );
        // authenticate + 5 pings + get_camera_status (get_metrics itself is counted when it ends)
        assert!(m["api_metrics"]["requests_total"].as_u64().unwrap() >= 7, "{m}");
        assert!(m["api_metrics"]["errors_total"].as_u64().unwrap() >= 1);
        assert_eq!(m["api_metrics"]["connected_clients"], 1);
        assert!(m["api_metrics"]["p99_ms"].as_f64().unwrap() >= m["api_metrics"]["p50_ms"].as_f64().unwrap());
        for k in ["active_streams", "total_streams", "total_viewers"] {
            assert!(m["stream_metrics"][k].is_u64(), "{k}");
        }
    });
}
