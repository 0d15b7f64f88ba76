//! The MAVLink camera front end end to end (docs/mavlink.md): the service binary with the
//! MediaMTX double and simulated cameras, driven over loopback UDP as QGroundControl does
//! (here through the `mavlink` crate; `tests/mavlink/*.py` through pymavlink, an independent
//! implementation).

mod common;

use camera_service::api::auth::Role;
use common::*;
use mavlink::common::*;
use mavlink::{MavHeader, MavlinkVersion, MessageData};
use serde_json::{json, Value};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

const VEHICLE: u8 = 7;
const GCS: u8 = 255;
const GCS_COMP: u8 = 190;

struct Rig {
    double: Double,
    svc: Service,
    port: u16,
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn rig(extra: &str) -> Rig {
    let double = start_double();
    let port = free_udp_port();
    let mavlink = format!(
        "[mavlink]\nenabled = true\nendpoints = [\"udpin:127.0.0.1:{port}\"]\nadvertised_host = \"127.0.0.1\"\n{extra}\n\n"
    );
    let rest = with_double(
        &double,
        "health_interval = \"1s\"",
        &[
            QUICK_RECORDING,
            &mavlink,
            &simulated("camera50", "640x480", 15),
            &simulated("camera51", "320x240", 10),
        ]
        .concat(),
    );
    let svc = Service::start("", "", &rest);
    Rig { double, svc, port }
}

/// A stand-in for QGC plus the vehicle's autopilot on one UDP socket.
struct Gcs {
    sock: UdpSocket,
    to: String,
    seq: u8,
    /// Everything received, in order.
    seen: Vec<(MavHeader, MavMessage)>,
}

impl Gcs {
    fn new(port: u16) -> Gcs {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        Gcs {
            sock,
            to: format!("127.0.0.1:{port}"),
            seq: 0,
            seen: Vec::new(),
        }
    }

    fn send_raw(&self, bytes: &[u8]) {
        self.sock.send_to(bytes, &self.to).unwrap();
    }

    fn send(&mut self, sysid: u8, compid: u8, msg: &MavMessage) {
        let mut buf = Vec::new();
        let h = MavHeader {
            system_id: sysid,
            component_id: compid,
            sequence: self.seq,
        };
        self.seq = self.seq.wrapping_add(1);
        mavlink::write_versioned_msg(&mut buf, MavlinkVersion::V2, h, msg).unwrap();
        self.send_raw(&buf);
    }

    fn vehicle_heartbeat(&mut self) {
        self.send(
            VEHICLE,
            1,
            &MavMessage::HEARTBEAT(HEARTBEAT_DATA {
                custom_mode: 0,
                mavtype: MavType::MAV_TYPE_QUADROTOR,
                autopilot: MavAutopilot::MAV_AUTOPILOT_PX4,
                base_mode: MavModeFlag::empty(),
                system_status: MavState::MAV_STATE_ACTIVE,
                mavlink_version: 3,
            }),
        );
        self.send(
            GCS,
            GCS_COMP,
            &MavMessage::HEARTBEAT(HEARTBEAT_DATA {
                custom_mode: 0,
                mavtype: MavType::MAV_TYPE_GCS,
                autopilot: MavAutopilot::MAV_AUTOPILOT_INVALID,
                base_mode: MavModeFlag::empty(),
                system_status: MavState::MAV_STATE_ACTIVE,
                mavlink_version: 3,
            }),
        );
    }

    fn command(&mut self, compid: u8, command: MavCmd, p: [f32; 7]) {
        self.send(
            GCS,
            GCS_COMP,
            &MavMessage::COMMAND_LONG(COMMAND_LONG_DATA {
                param1: p[0],
                param2: p[1],
                param3: p[2],
                param4: p[3],
                param5: p[4],
                param6: p[5],
                param7: p[6],
                command,
                target_system: VEHICLE,
                target_component: compid,
                confirmation: 0,
            }),
        );
    }

    /// Receives for `d`, appending to `seen`.
    fn pump(&mut self, d: Duration) {
        let end = Instant::now() + d;
        let mut buf = [0u8; 2048];
        while Instant::now() < end {
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                let mut r = mavlink::peek_reader::PeekReader::<_, 280>::new(&buf[..n]);
                while let Ok((h, m)) = mavlink::read_versioned_msg::<MavMessage, _>(&mut r, mavlink::ReadVersion::Any) {
                    self.seen.push((h, m));
                }
            }
        }
    }

    /// Waits for a message matching `f` (received from now on), up to `limit`.
    fn wait<T>(&mut self, limit: Duration, mut f: impl FnMut(&MavHeader, &MavMessage) -> Option<T>) -> Option<T> {
        let start = self.seen.len();
        let end = Instant::now() + limit;
        let mut checked = start;
        loop {
            while checked < self.seen.len() {
                let (h, m) = &self.seen[checked];
                checked += 1;
                if let Some(v) = f(h, m) {
                    return Some(v);
                }
            }
            if Instant::now() >= end {
                return None;
            }
            self.pump(Duration::from_millis(100));
        }
    }

    /// Sends a command and returns its ACK result and the messages from `compid` that came
    /// after the ACK within `after`.
    fn request(&mut self, compid: u8, command: MavCmd, p: [f32; 7], after: Duration) -> (MavResult, Vec<MavMessage>) {
        let start = self.seen.len();
        self.command(compid, command, p);
        let result = self
            .wait(Duration::from_secs(10), |h, m| match m {
                MavMessage::COMMAND_ACK(a) if h.component_id == compid && a.command == command => {
                    assert_eq!(h.system_id, VEHICLE, "the camera speaks with the vehicle's system id");
                    assert_eq!((a.target_system, a.target_component), (GCS, GCS_COMP));
                    Some(a.result)
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("no COMMAND_ACK for {command:?} from {compid}"));
        self.pump(after);
        let ack_at = self.seen[start..]
            .iter()
            .position(|(h, m)| {
                h.component_id == compid && matches!(m, MavMessage::COMMAND_ACK(a) if a.command == command)
            })
            .unwrap()
            + start;
        let after_ack = self.seen[ack_at + 1..]
            .iter()
            .filter(|(h, m)| h.component_id == compid && !matches!(m, MavMessage::HEARTBEAT(_)))
            .map(|(_, m)| m.clone())
            .collect();
        (result, after_ack)
    }

    /// Both request forms for one message: ACK accepted, then the message (never before).
    fn both_forms(&mut self, compid: u8, legacy: MavCmd, legacy_p1: f32, id: u32) -> Vec<MavMessage> {
        let mut got = Vec::new();
        for (cmd, p) in [
            (
                MavCmd::MAV_CMD_REQUEST_MESSAGE,
                [id as f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            ),
            (legacy, [legacy_p1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
        ] {
            let before = self.seen.len();
            let (result, after) = self.request(compid, cmd, p, Duration::from_millis(300));
            assert_eq!(result, MavResult::MAV_RESULT_ACCEPTED, "{cmd:?} for message {id}");
            let m = after
                .into_iter()
                .find(|m| mavlink::Message::message_id(m) == id)
                .unwrap_or_else(|| panic!("message {id} after the ACK of {cmd:?}"));
            // nothing of this id came between the request and the ACK
            let early = self.seen[before..]
                .iter()
                .take_while(|(_, m)| !matches!(m, MavMessage::COMMAND_ACK(a) if a.command == cmd))
                .any(|(h, m)| h.component_id == compid && mavlink::Message::message_id(m) == id);
            assert!(!early, "message {id} came before the ACK of {cmd:?}");
            got.push(m);
        }
        got
    }

    fn camera_heartbeat(&mut self, compid: u8, limit: Duration) -> bool {
        self.wait(limit, |h, m| match m {
            MavMessage::HEARTBEAT(hb) if h.component_id == compid && h.system_id == VEHICLE => {
                assert_eq!(hb.mavtype, MavType::MAV_TYPE_CAMERA);
                assert_eq!(hb.autopilot, MavAutopilot::MAV_AUTOPILOT_INVALID);
                Some(())
            }
            _ => None,
        })
        .is_some()
    }
}

fn cstr(b: &[u8]) -> String {
    String::from_utf8_lossy(b.split(|c| *c == 0).next().unwrap()).into_owned()
}

const NO_PARAMS: [f32; 7] = [0.0; 7];

#[test]
fn qgc_discovery_both_request_forms_and_acks() {
    let r = rig("");
    let mut g = Gcs::new(r.port);
    g.vehicle_heartbeat();
    assert!(
        g.camera_heartbeat(100, Duration::from_secs(10)),
        "camera50 heartbeat on component 100"
    );
    assert!(
        g.camera_heartbeat(101, Duration::from_secs(5)),
        "camera51 heartbeat on component 101"
    );

    let info = g.both_forms(
        100,
        MavCmd::MAV_CMD_REQUEST_CAMERA_INFORMATION,
        1.0,
        CAMERA_INFORMATION_DATA::ID,
    );
    for m in &info {
        let MavMessage::CAMERA_INFORMATION(i) = m else {
            unreachable!()
        };
        let want = CameraCapFlags::CAMERA_CAP_FLAGS_CAPTURE_VIDEO
            | CameraCapFlags::CAMERA_CAP_FLAGS_CAPTURE_IMAGE
            | CameraCapFlags::CAMERA_CAP_FLAGS_HAS_VIDEO_STREAM
            | CameraCapFlags::CAMERA_CAP_FLAGS_CAN_CAPTURE_IMAGE_IN_VIDEO_MODE
            | CameraCapFlags::CAMERA_CAP_FLAGS_CAN_CAPTURE_VIDEO_IN_IMAGE_MODE;
        assert!(i.flags.contains(want), "{:?}", i.flags);
        assert!(!cstr(&i.vendor_name).is_empty() && !cstr(&i.model_name).is_empty());
        assert_eq!((i.resolution_h, i.resolution_v), (640, 480));
    }
    let streams = g.both_forms(
        100,
        MavCmd::MAV_CMD_REQUEST_VIDEO_STREAM_INFORMATION,
        0.0,
        VIDEO_STREAM_INFORMATION_DATA::ID,
    );
    let uri = format!("rtsp://127.0.0.1:{}/camera50", r.double.rtsp_port);
    for m in &streams {
        let MavMessage::VIDEO_STREAM_INFORMATION(s) = m else {
            unreachable!()
        };
        assert_eq!(cstr(&s.uri), uri);
        assert_eq!((s.stream_id, s.count), (1, 1));
        assert_eq!(s.mavtype, VideoStreamType::VIDEO_STREAM_TYPE_RTSP);
        assert_eq!(s.encoding, VideoStreamEncoding::VIDEO_STREAM_ENCODING_H264);
        assert!(s
            .flags
            .contains(VideoStreamStatusFlags::VIDEO_STREAM_STATUS_FLAGS_RUNNING));
        assert!(!s
            .flags
            .contains(VideoStreamStatusFlags::VIDEO_STREAM_STATUS_FLAGS_THERMAL));
        assert_eq!((s.resolution_h, s.resolution_v, s.framerate), (640, 480, 15.0));
    }
    let status = g.both_forms(
        100,
        MavCmd::MAV_CMD_REQUEST_VIDEO_STREAM_STATUS,
        0.0,
        VIDEO_STREAM_STATUS_DATA::ID,
    );
    assert!(matches!(&status[0], MavMessage::VIDEO_STREAM_STATUS(s) if s.stream_id == 1));
    let settings = g.both_forms(
        100,
        MavCmd::MAV_CMD_REQUEST_CAMERA_SETTINGS,
        1.0,
        CAMERA_SETTINGS_DATA::ID,
    );
    assert!(matches!(&settings[0], MavMessage::CAMERA_SETTINGS(s) if s.mode_id == CameraMode::CAMERA_MODE_IMAGE));
    let storage = g.both_forms(
        100,
        MavCmd::MAV_CMD_REQUEST_STORAGE_INFORMATION,
        0.0,
        STORAGE_INFORMATION_DATA::ID,
    );
    for m in &storage {
        let MavMessage::STORAGE_INFORMATION(s) = m else {
            unreachable!()
        };
        assert_eq!(s.status, StorageStatus::STORAGE_STATUS_READY);
        assert!(s.total_capacity > 0.0 && s.available_capacity > 0.0 && s.storage_count >= 1);
        assert!(s.used_capacity + s.available_capacity <= s.total_capacity * 1.01);
    }
    let capture = g.both_forms(
        100,
        MavCmd::MAV_CMD_REQUEST_CAMERA_CAPTURE_STATUS,
        1.0,
        CAMERA_CAPTURE_STATUS_DATA::ID,
    );
    for m in &capture {
        let MavMessage::CAMERA_CAPTURE_STATUS(s) = m else {
            unreachable!()
        };
        assert_eq!((s.image_status, s.video_status, s.recording_time_ms), (0, 0, 0));
        assert!(s.available_capacity > 0.0);
    }

    // the advertised stream is readable: an RTSP read gets frames
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-i",
            &uri,
            "-frames:v",
            "5",
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg (scripts/setup)");
    assert!(
        out.status.success(),
        "RTSP read of {uri}: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // the mode switch answers with the new settings
    let (res, after) = g.request(
        100,
        MavCmd::MAV_CMD_SET_CAMERA_MODE,
        [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        Duration::from_millis(300),
    );
    assert_eq!(res, MavResult::MAV_RESULT_ACCEPTED);
    assert!(after
        .iter()
        .any(|m| matches!(m, MavMessage::CAMERA_SETTINGS(s) if s.mode_id == CameraMode::CAMERA_MODE_VIDEO)));

    // ACK results: unsupported, bad parameters
    let ack = |g: &mut Gcs, cmd, p| g.request(100, cmd, p, Duration::ZERO).0;
    assert_eq!(
        ack(&mut g, MavCmd::MAV_CMD_SET_CAMERA_ZOOM, NO_PARAMS),
        MavResult::MAV_RESULT_UNSUPPORTED
    );
    assert_eq!(
        ack(
            &mut g,
            MavCmd::MAV_CMD_REQUEST_MESSAGE,
            [33.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        ),
        MavResult::MAV_RESULT_UNSUPPORTED
    );
    assert_eq!(
        ack(
            &mut g,
            MavCmd::MAV_CMD_SET_CAMERA_MODE,
            [0.0, 7.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        ),
        MavResult::MAV_RESULT_DENIED
    );
    for p in [
        [0.0, 0.0, 2.0, 0.0],
        [0.0, -1.0, 3.0, 0.0],
        [0.0, 1.0, 1.5, 0.0],
        [0.0, f32::NAN, 1.0, 0.0],
    ] {
        let p7 = [p[0], p[1], p[2], p[3], 0.0, 0.0, 0.0];
        assert_eq!(
            ack(&mut g, MavCmd::MAV_CMD_IMAGE_START_CAPTURE, p7),
            MavResult::MAV_RESULT_DENIED,
            "{p:?}"
        );
    }
    assert_eq!(
        ack(
            &mut g,
            MavCmd::MAV_CMD_VIDEO_START_CAPTURE,
            [5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        ),
        MavResult::MAV_RESULT_DENIED
    );

    // malformed and foreign-dialect frames are dropped; the link keeps answering
    g.send_raw(b"\xfd\x09\x00\x00\x00garbage that is no frame at all");
    let mut foreign = Vec::new();
    let h = MavHeader {
        system_id: VEHICLE,
        component_id: 1,
        sequence: 0,
    };
    mavlink::write_versioned_msg(
        &mut foreign,
        MavlinkVersion::V2,
        h,
        &MavMessage::HEARTBEAT(HEARTBEAT_DATA::default()),
    )
    .unwrap();
    foreign[7] = 150; // an ArduPilot-dialect message id
    g.send_raw(&foreign);
    g.send_raw(&[0xfe; 600]);
    let (res, _) = g.request(
        101,
        MavCmd::MAV_CMD_REQUEST_CAMERA_INFORMATION,
        [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        Duration::ZERO,
    );
    assert_eq!(res, MavResult::MAV_RESULT_ACCEPTED);
    assert!(r.svc.child.try_wait_alive());

    // the link in get_status and /metrics
    g.pump(Duration::from_secs(5));
    let (status, _, body) = http(&r.svc.addr, "GET", "/metrics", &[]);
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body).to_string();
    let metric = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{name} in /metrics"))
    };
    assert!(metric("camera_service_mavlink_messages_in_total ") >= 10.0);
    assert!(metric("camera_service_mavlink_messages_out_total ") >= 10.0);
    assert!(
        metric("camera_service_mavlink_dropped_total ") >= 3.0,
        "garbage, foreign, bad frames counted"
    );
    assert_eq!(metric("camera_service_mavlink_cameras "), 2.0);
    assert!(metric("camera_service_mavlink_autopilot_heartbeat_age_seconds ") < 60.0);
    smol::block_on(async {
        let mut c = Client::connect(&r.svc.ws_url()).await;
        c.auth_as(Role::Admin).await;
        let st = c.result("get_status", json!({})).await;
        let m = st["details"]["mavlink"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("mavlink in {st}"));
        assert!(m.contains("system id 7") && m.contains("2 camera component(s)"), "{m}");
    });
}

trait Alive {
    fn try_wait_alive(&self) -> bool;
}

impl Alive for std::process::Child {
    fn try_wait_alive(&self) -> bool {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.id() as i32), None).is_ok()
    }
}

fn capture_status(g: &mut Gcs, compid: u8) -> CAMERA_CAPTURE_STATUS_DATA {
    let (res, after) = g.request(
        compid,
        MavCmd::MAV_CMD_REQUEST_MESSAGE,
        [CAMERA_CAPTURE_STATUS_DATA::ID as f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        Duration::from_millis(200),
    );
    assert_eq!(res, MavResult::MAV_RESULT_ACCEPTED);
    after
        .into_iter()
        .find_map(|m| match m {
            MavMessage::CAMERA_CAPTURE_STATUS(s) => Some(s),
            _ => None,
        })
        .expect("CAMERA_CAPTURE_STATUS")
}

#[test]
fn video_start_stop_records_through_the_core() {
    let r = rig("");
    let mut g = Gcs::new(r.port);
    g.vehicle_heartbeat();
    assert!(g.camera_heartbeat(100, Duration::from_secs(10)));
    smol::block_on(async {
        let mut c = Client::connect(&r.svc.ws_url()).await;
        c.auth_as(Role::Operator).await;
        c.result(
            "subscribe_events",
            json!({"topics": ["recording.start", "recording.stop"]}),
        )
        .await;

        let t0 = Instant::now();
        let (res, after) = g.request(
            100,
            MavCmd::MAV_CMD_VIDEO_START_CAPTURE,
            NO_PARAMS,
            Duration::from_millis(300),
        );
        assert_eq!(res, MavResult::MAV_RESULT_ACCEPTED);
        assert!(after
            .iter()
            .any(|m| matches!(m, MavMessage::CAMERA_CAPTURE_STATUS(s) if s.video_status == 1)));
        let ev = c
            .wait_notification("recording.start", Duration::from_secs(10))
            .await
            .expect("recording.start for JSON-RPC clients");
        assert_eq!(ev["params"]["device"], "camera50", "{ev}");
        // busy: a second start is temporarily rejected
        let (res, _) = g.request(100, MavCmd::MAV_CMD_VIDEO_START_CAPTURE, NO_PARAMS, Duration::ZERO);
        assert_eq!(res, MavResult::MAV_RESULT_TEMPORARILY_REJECTED);

        let first = capture_status(&mut g, 100);
        smol::Timer::after(Duration::from_secs(2)).await;
        let second = capture_status(&mut g, 100);
        assert_eq!((first.video_status, second.video_status), (1, 1));
        assert!(
            second.recording_time_ms >= first.recording_time_ms + 1500,
            "recording time grows: {} then {}",
            first.recording_time_ms,
            second.recording_time_ms
        );
        while t0.elapsed() < Duration::from_secs(5) {
            smol::Timer::after(Duration::from_millis(100)).await;
        }
        let (res, _) = g.request(100, MavCmd::MAV_CMD_VIDEO_STOP_CAPTURE, NO_PARAMS, Duration::ZERO);
        assert_eq!(res, MavResult::MAV_RESULT_ACCEPTED);
        let ev = c
            .wait_notification("recording.stop", Duration::from_secs(10))
            .await
            .expect("recording.stop for JSON-RPC clients");
        assert_eq!(ev["params"]["device"], "camera50", "{ev}");
        let st = capture_status(&mut g, 100);
        assert_eq!((st.video_status, st.recording_time_ms), (0, 0));

        let files = c.result("list_recordings", json!({"limit": 10})).await;
        let name = files["files"]
            .as_array()
            .and_then(|f| {
                f.iter()
                    .find(|f| f["filename"].as_str().unwrap_or("").starts_with("camera50_"))
            })
            .map(|f| f["filename"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("a camera50 recording in {files}"));
        let path = r.svc.dir.path().join("recordings").join("camera50").join(&name);
        let media = probe_media(&path);
        assert_eq!(media.codec, "h264", "{media:?}");
        let dur = media.duration.unwrap_or(0.0);
        assert!((2.5..=7.5).contains(&dur), "about 5 s recorded, got {dur} ({media:?})");
    });
}

#[test]
fn hot_plug_and_photo_on_a_gone_camera() {
    let r = rig("");
    let mut g = Gcs::new(r.port);
    g.vehicle_heartbeat();
    assert!(g.camera_heartbeat(101, Duration::from_secs(10)));
    smol::block_on(async {
        let mut c = Client::connect(&r.svc.ws_url()).await;
        c.auth_as(Role::Operator).await;
        let url = format!("rtsp://127.0.0.1:{}/camera51", r.double.rtsp_port);
        let added = c
            .result(
                "add_external_stream",
                json!({"stream_url": url, "stream_name": "Drone IR", "stream_type": "skydio_ir"}),
            )
            .await;
        let dev = added["device"].as_str().unwrap().to_string();
        // appears: a third component starts its heartbeat; its stream is flagged thermal
        assert!(
            g.camera_heartbeat(102, Duration::from_secs(20)),
            "{dev} heartbeat on 102"
        );
        let s = g.both_forms(
            102,
            MavCmd::MAV_CMD_REQUEST_VIDEO_STREAM_INFORMATION,
            0.0,
            VIDEO_STREAM_INFORMATION_DATA::ID,
        );
        assert!(
            matches!(&s[0], MavMessage::VIDEO_STREAM_INFORMATION(v) if v.flags.contains(VideoStreamStatusFlags::VIDEO_STREAM_STATUS_FLAGS_THERMAL))
        );
        // disappears: no more heartbeats, and a photo is refused with FAILED
        c.result("remove_external_stream", json!({"stream_url": url})).await;
        g.pump(Duration::from_millis(1500));
        assert!(
            !g.camera_heartbeat(102, Duration::from_secs(3)),
            "no heartbeat once gone"
        );
        let (res, after) = g.request(
            102,
            MavCmd::MAV_CMD_IMAGE_START_CAPTURE,
            [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0],
            Duration::from_millis(500),
        );
        assert_eq!(res, MavResult::MAV_RESULT_FAILED);
        assert!(!after.iter().any(|m| matches!(m, MavMessage::CAMERA_IMAGE_CAPTURED(_))));
        // the others keep beating
        assert!(g.camera_heartbeat(100, Duration::from_secs(3)));
    });
}

/// The python with pymavlink and exifread: `CAMERA_SERVICE_TEST_PYTHON`, else the venv of
/// `scripts/setup --test`, else `python3`.
fn test_python() -> String {
    if let Ok(p) = std::env::var("CAMERA_SERVICE_TEST_PYTHON") {
        return p;
    }
    let cache = std::env::var("XDG_CACHE_HOME")
        .unwrap_or_else(|_| format!("{}/.cache", std::env::var("HOME").unwrap_or_default()));
    let venv = format!("{cache}/camera-service/pyvenv/bin/python3");
    if std::path::Path::new(&venv).exists() {
        venv
    } else {
        "python3".into()
    }
}

#[test]
fn photos_through_pymavlink_with_geotags() {
    let r = rig("");
    let (lat, lon, alt) = (473977419i64, 85455939i64, 488123i64);
    let token = token(Role::Viewer, Duration::from_secs(600));
    smol::block_on(async {
        let mut c = Client::connect(&r.svc.ws_url()).await;
        c.auth_as(Role::Operator).await;
        c.result("subscribe_events", json!({"topics": ["snapshot.taken"]}))
            .await;

        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mavlink/photos.py");
        let args = [
            r.port.to_string(),
            token.clone(),
            lat.to_string(),
            lon.to_string(),
            alt.to_string(),
        ];
        let python = test_python();
        let out = blocking::unblock(move || std::process::Command::new(python).arg(script).args(args).output())
            .await
            .expect("python3");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "photos.py failed (pymavlink and exifread come from scripts/setup --test): {stderr}"
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
        eprintln!("photos.py: {v}");
        assert_eq!(v["camera_heartbeat"], true);
        assert_eq!(v["start_ack"], 0, "ACCEPTED");
        let images = v["images"].as_array().unwrap();
        assert_eq!(images.len(), 3, "exactly three CAMERA_IMAGE_CAPTURED: {v}");
        assert_eq!(v["extra_after_count"], 0);
        let idx: Vec<i64> = images.iter().map(|i| i["index"].as_i64().unwrap()).collect();
        assert!(idx.windows(2).all(|w| w[1] == w[0] + 1), "indices increase: {idx:?}");
        let times: Vec<i64> = v["times"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_i64().unwrap())
            .collect();
        let now_us = camera_service::clock::unix_now() * 1_000_000;
        for w in times.windows(2) {
            let gap = (w[1] - w[0]) as f64 / 1e6;
            // at least the interval apart; more when a capture takes longer (a loaded machine)
            assert!((0.8..=10.0).contains(&gap), "one interval apart: {times:?}");
        }
        assert!((now_us - times[0]).abs() < 120_000_000, "UTC time: {times:?}");
        for i in images {
            assert_eq!(i["result"], 1, "{i}");
            assert_eq!(
                (i["lat"].as_i64(), i["lon"].as_i64(), i["alt"].as_i64()),
                (Some(lat), Some(lon), Some(alt))
            );
            assert_eq!(i["relative_alt"], 25000);
            assert!(i["download_error"].is_null(), "{i}");
            assert_eq!(i["jpeg"], true);
            let (elat, elon) = (i["exif_lat"].as_f64().unwrap(), i["exif_lon"].as_f64().unwrap());
            assert!((elat - lat as f64 / 1e7).abs() < 1e-7, "EXIF latitude {elat}");
            assert!((elon - lon as f64 / 1e7).abs() < 1e-7, "EXIF longitude {elon}");
            assert!((i["exif_alt"].as_f64().unwrap() - alt as f64 / 1000.0).abs() < 1e-3);
            // the file behind file_url decodes (downloaded again, independently of Python)
            let url = i["file_url"].as_str().unwrap();
            let path = url
                .split_once(&r.svc.addr)
                .map(|(_, p)| p.to_string())
                .expect("file_url on the service address");
            let (status, _, body) = http(
                &r.svc.addr,
                "GET",
                &path,
                &[("Authorization", &format!("Bearer {token}"))],
            );
            assert_eq!(status, 200, "{url}");
            let tmp = r.svc.dir.path().join("download.jpg");
            std::fs::write(&tmp, &body).unwrap();
            let (w, h, px) = decode(&tmp);
            assert_eq!((w, h), (640, 480));
            assert!(spread(&px) > 5.0);
        }
        // until stopped: images until the STOP, none after its ACK, indices keep growing
        assert_eq!((v["endless_ack"].as_i64(), v["stop_ack"].as_i64()), (Some(0), Some(0)));
        assert_eq!(v["after_stop"], 0, "nothing after STOP: {v}");
        let more: Vec<i64> = v["endless_indices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_i64().unwrap())
            .collect();
        assert!(
            more.len() >= 2 && more[0] > *idx.last().unwrap(),
            "{more:?} after {idx:?}"
        );
        assert_eq!(v["stop_ack_idle"], 0);
        // busy → TEMPORARILY_REJECTED
        assert_eq!(
            (v["busy_first"].as_i64(), v["busy_second"].as_i64()),
            (Some(0), Some(1))
        );

        // JSON-RPC clients saw the same snapshot.taken events, with the position
        let ev = c
            .wait_notification("snapshot.taken", Duration::from_secs(5))
            .await
            .expect("snapshot.taken from a MAVLink photo");
        assert_eq!(ev["params"]["position"]["lat"].as_f64(), Some(lat as f64 / 1e7), "{ev}");
        // and what produced the photo, with the frame's age (api.md §12)
        assert!(
            ev["params"]["source"].is_string() && ev["params"]["frame_age_ms"].is_u64(),
            "{ev}"
        );
        // and a JSON-RPC snapshot carries the geotag too
        let s = c.result("take_snapshot", json!({"device": "camera50"})).await;
        assert!(
            (s["position"]["lon"].as_f64().unwrap() - lon as f64 / 1e7).abs() < 1e-9
                && s["position"]["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{s}"
        );
    });
}

/// An endless photo job (count 0) is a task of the service like any other: SIGTERM stops it
/// and waits for it, the service exits 0 without a task cancelled at the deadline.
#[test]
fn endless_photo_job_ends_with_the_service() {
    let mut r = rig("");
    let mut g = Gcs::new(r.port);
    g.vehicle_heartbeat();
    assert!(g.camera_heartbeat(100, Duration::from_secs(10)));
    let (res, after) = g.request(
        100,
        MavCmd::MAV_CMD_IMAGE_START_CAPTURE,
        [0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0],
        Duration::from_secs(6),
    );
    assert_eq!(res, MavResult::MAV_RESULT_ACCEPTED);
    assert!(
        after.iter().any(|m| matches!(m, MavMessage::CAMERA_IMAGE_CAPTURED(_))),
        "the job takes photos"
    );
    r.svc.signal(nix::sys::signal::Signal::SIGTERM);
    let status = r.svc.wait_exit(Duration::from_secs(20)).expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    let log = r.svc.log();
    assert!(
        !log.contains("did not stop"),
        "a task was cancelled at the deadline:\n{log}"
    );
}
