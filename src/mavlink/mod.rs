//! The MAVLink camera front end (docs/mavlink.md): every camera of the service is a MAVLink
//! camera component (ids 100–105, assigned stably), so QGroundControl and other GCSs list its
//! stream and drive snapshots and recordings through the same typed core as JSON-RPC.
//!
//! Shape: `link` (threads, framing, counters) ↔ bounded channels ↔ two smol tasks here: the
//! heartbeat loop (one HEARTBEAT per camera component per interval; a camera that
//! disappears stops its heartbeat) and the inbound loop (vehicle heartbeat → system id,
//! position/attitude → geotags, commands → one short task each: `COMMAND_ACK` first, then
//! the message). Message encoding lives in `messages`, persisted ids in `state`.

pub(crate) mod config;
pub(crate) mod exif;
pub(crate) mod link;
mod messages;
mod state;

use crate::camera::registry::{Camera, Status};
use crate::controller::Controller;
use crate::events::Event;
use crate::media::recording::RecEvent;
use config::MavlinkConfig;
use link::{Inbound, Link};
use mavlink::common::*;
use mavlink::MessageData;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The vehicle position (and attitude) last reported by the autopilot: geotags for photos.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Position {
    /// Degrees × 1e7.
    pub lat: i32,
    pub lon: i32,
    /// Millimetres above MSL / above home.
    pub alt_mm: i32,
    pub relative_alt_mm: i32,
    /// Attitude quaternion w, x, y, z (zeros when unknown).
    pub q: [f32; 4],
    /// When the position arrived (this host's clock).
    pub received_at: time::OffsetDateTime,
}

/// One running image capture (`MAV_CMD_IMAGE_START_CAPTURE`).
struct Job {
    stop: Arc<AtomicBool>,
    /// Closed when the job ends.
    done: async_channel::Receiver<()>,
    interval: f32,
}

#[derive(Default)]
struct Live {
    jobs: HashMap<String, Job>,
    modes: HashMap<String, CameraMode>,
    recording_since: HashMap<String, Instant>,
    position: Option<Position>,
    attitude: Option<[f32; 4]>,
    last_autopilot: Option<Instant>,
    last_gcs: Option<Instant>,
    /// Components that sent a heartbeat on the last tick (for hot-plug logging).
    beating: Vec<u8>,
    /// 5-second slot of the last health report.
    reported_at: Option<u32>,
}

pub(crate) struct Front {
    ctl: Arc<Controller>,
    cfg: MavlinkConfig,
    link: Link,
    /// Host written into stream URIs and file URLs.
    host: String,
    http_port: u16,
    boot: Instant,
    sysid: AtomicU8,
    ids: state::Ids,
    live: Mutex<Live>,
}

/// The running front end, for status and metrics (none when `[mavlink]` is off).
static FRONT: OnceLock<Arc<Front>> = OnceLock::new();

/// What `get_status` and `/metrics` report about the link.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkStats {
    pub system_id: u8,
    pub cameras: usize,
    pub messages_in: u64,
    pub messages_out: u64,
    pub dropped: u64,
    pub last_autopilot_heartbeat_s: Option<f64>,
    pub last_gcs_heartbeat_s: Option<f64>,
}

pub fn stats() -> Option<LinkStats> {
    let f = FRONT.get()?;
    let live = f.live.lock().unwrap();
    let c = &f.link.counters;
    Some(LinkStats {
        system_id: f.sysid.load(Ordering::Relaxed),
        cameras: live.beating.len(),
        messages_in: c.rx.load(Ordering::Relaxed),
        messages_out: c.tx.load(Ordering::Relaxed),
        dropped: c.rx_dropped.load(Ordering::Relaxed) + c.queue_dropped.load(Ordering::Relaxed),
        last_autopilot_heartbeat_s: live.last_autopilot.map(|t| t.elapsed().as_secs_f64()),
        last_gcs_heartbeat_s: live.last_gcs.map(|t| t.elapsed().as_secs_f64()),
    })
}

impl LinkStats {
    /// The `mavlink` entry of `get_status` details.
    fn summary(&self) -> String {
        let age = |t: Option<f64>| t.map_or("never".to_string(), |s| format!("{s:.1} s ago"));
        format!(
            "system id {}, {} camera component(s); messages in {}, out {}, dropped {}; autopilot heartbeat {}, GCS heartbeat {}",
            self.system_id,
            self.cameras,
            self.messages_in,
            self.messages_out,
            self.dropped,
            age(self.last_autopilot_heartbeat_s),
            age(self.last_gcs_heartbeat_s)
        )
    }
}

/// The link's figures in `/metrics` (nothing when `[mavlink]` is off).
pub(crate) fn register_metrics(reg: &prometheus::Registry) {
    let Some(s) = stats() else { return };
    let add = |m: Box<dyn prometheus::core::Collector>| reg.register(m).expect("unique");
    for (name, help, v) in [
        (
            "camera_service_mavlink_messages_in_total",
            "MAVLink messages received",
            s.messages_in,
        ),
        (
            "camera_service_mavlink_messages_out_total",
            "MAVLink frames sent (per peer)",
            s.messages_out,
        ),
        (
            "camera_service_mavlink_dropped_total",
            "MAVLink frames dropped: malformed, foreign dialect, or queue full",
            s.dropped,
        ),
    ] {
        let c = prometheus::IntCounter::new(name, help).expect("valid metric");
        c.inc_by(v);
        add(Box::new(c));
    }
    let g = prometheus::IntGauge::new("camera_service_mavlink_cameras", "Camera components sending heartbeats")
        .expect("valid metric");
    g.set(s.cameras as i64);
    add(Box::new(g));
    for (name, help, v) in [
        (
            "camera_service_mavlink_autopilot_heartbeat_age_seconds",
            "Seconds since the last autopilot HEARTBEAT (absent: never)",
            s.last_autopilot_heartbeat_s,
        ),
        (
            "camera_service_mavlink_gcs_heartbeat_age_seconds",
            "Seconds since the last GCS HEARTBEAT (absent: never)",
            s.last_gcs_heartbeat_s,
        ),
    ] {
        if let Some(v) = v {
            let g = prometheus::Gauge::new(name, help).expect("valid metric");
            g.set(v);
            add(Box::new(g));
        }
    }
}

/// The vehicle position for geotags, when the MAVLink front end knows one.
pub fn position() -> Option<Position> {
    let f = FRONT.get()?;
    let live = f.live.lock().unwrap();
    live.position.map(|mut p| {
        p.q = live.attitude.unwrap_or_default();
        p
    })
}

/// The host a GCS can reach: `mavlink.advertised_host`, else `mediamtx.public_host`, else
/// this machine's host name.
fn advertised_host(ctl: &Controller) -> String {
    let own = ctl.config().mavlink.advertised_host.trim();
    if !own.is_empty() {
        return own.to_string();
    }
    ctl.hosts().for_events()
}

/// Starts the front end when `[mavlink] enabled`: opens the endpoints and spawns its loops
/// into the controller's tasks (joined on shutdown). `http_port`: the bound HTTP port, for
/// the `file_url` of photos.
pub async fn start(ctl: &Arc<Controller>, http_port: u16) -> Result<(), String> {
    let cfg = ctl.config().mavlink.clone();
    if !cfg.enabled {
        return Ok(());
    }
    let endpoints = cfg.parsed_endpoints();
    let (link, inbound) = Link::open(&endpoints)?;
    let state_path = ctl.config().storage.state_dir.join("mavlink-state.json");
    let front = Arc::new(Front {
        ctl: ctl.clone(),
        host: advertised_host(ctl),
        http_port,
        boot: Instant::now(),
        sysid: AtomicU8::new(cfg.system_id),
        ids: state::Ids::load(state_path, cfg.component_id_base),
        live: Mutex::new(Live::default()),
        link,
        cfg,
    });
    let _ = FRONT.set(front.clone());
    log::info!(
        "mavlink: camera components on {} (system id {} until an autopilot is heard, policy {}); stream host {}",
        front.cfg.endpoints.join(", "),
        front.cfg.system_id,
        front.cfg.system_id_policy,
        front.host
    );

    // Recording start times for CAMERA_CAPTURE_STATUS, whichever front end started them.
    let weak = Arc::downgrade(&front);
    ctl.events().listen(move |e| {
        let Some(f) = weak.upgrade() else { return };
        if let Event::Recording(r) = e {
            let mut live = f.live.lock().unwrap();
            match r {
                RecEvent::Started { device, .. } => {
                    live.recording_since.insert(device.clone(), Instant::now());
                }
                RecEvent::Stopped { device, .. } | RecEvent::Error { device, .. } => {
                    live.recording_since.remove(device);
                }
                _ => {}
            }
        }
    });

    let shutdown = ctl.shutdown_signal().clone();
    let f = front.clone();
    ctl.spawn_task("mavlink-heartbeat", async move {
        let every = f.cfg.heartbeat_interval.get();
        loop {
            f.heartbeat_tick();
            if crate::controller::stop_or_sleep(&shutdown, every).await {
                break;
            }
        }
        // Jobs end with the service and are waited for (a photo being written finishes;
        // the task join bounds the wait); then the link threads stop and are joined.
        let jobs: Vec<Job> = f.live.lock().unwrap().jobs.drain().map(|(_, j)| j).collect();
        for j in &jobs {
            j.stop.store(true, Ordering::Relaxed);
        }
        for j in jobs {
            let _ = j.done.recv().await;
        }
        let ff = f.clone();
        blocking::unblock(move || ff.link.close()).await;
    });
    let shutdown = ctl.shutdown_signal().clone();
    let f = front;
    ctl.spawn_task("mavlink-inbound", async move {
        loop {
            let next = futures_lite::future::or(async { inbound.recv().await.ok() }, async {
                shutdown.wait().await;
                None
            })
            .await;
            match next {
                Some(m) => f.handle(m),
                None => break,
            }
        }
    });
    Ok(())
}

/// MAV_COMP_ID_AUTOPILOT1.
const AUTOPILOT_COMPONENT: u8 = 1;

impl Front {
    fn sysid(&self) -> u8 {
        self.sysid.load(Ordering::Relaxed)
    }

    fn send(&self, compid: u8, msg: &MavMessage) {
        self.link.send(self.sysid(), compid, msg);
    }

    fn time_boot_ms(&self) -> u32 {
        self.boot.elapsed().as_millis() as u32
    }

    /// Connected cameras with their component ids (new ones get the lowest free id; at most
    /// six).
    fn components(&self) -> Vec<(u8, Camera)> {
        let cams: Vec<Camera> = self
            .ctl
            .cameras()
            .list()
            .into_iter()
            .filter(|c| c.status == Status::Connected)
            .collect();
        let present: Vec<&str> = cams.iter().map(|c| c.id.as_str()).collect();
        let ids: Vec<Option<u8>> = cams.iter().map(|c| self.ids.component_for(&c.id, &present)).collect();
        cams.into_iter()
            .zip(ids)
            .filter_map(|(c, id)| id.map(|id| (id, c)))
            .collect()
    }

    fn heartbeat_tick(&self) {
        let comps = self.components();
        // get_status details: the link's figures, refreshed about every 5 s
        let slot = self.time_boot_ms() / 5000;
        let due = self.live.lock().unwrap().reported_at.replace(slot) != Some(slot);
        if due {
            if let Some(s) = stats() {
                self.ctl
                    .set_component("mavlink", crate::health::Level::Healthy, &s.summary(), false, true);
            }
        }
        for (id, _) in &comps {
            self.send(*id, &messages::heartbeat());
        }
        let now: Vec<u8> = comps.iter().map(|(id, _)| *id).collect();
        let mut live = self.live.lock().unwrap();
        if live.beating != now {
            for (id, c) in comps.iter().filter(|(id, _)| !live.beating.contains(id)) {
                log::info!("mavlink: {} is camera component {id}", c.id);
            }
            for id in live.beating.iter().filter(|id| !now.contains(id)) {
                log::info!("mavlink: camera component {id} gone (no more heartbeats)");
            }
            live.beating = now;
        }
    }

    fn handle(self: &Arc<Self>, m: Inbound) {
        let h = m.header;
        match m.msg {
            MavMessage::HEARTBEAT(hb) => {
                let mut live = self.live.lock().unwrap();
                if hb.mavtype == MavType::MAV_TYPE_GCS {
                    live.last_gcs = Some(Instant::now());
                } else if hb.autopilot != MavAutopilot::MAV_AUTOPILOT_INVALID && h.component_id == AUTOPILOT_COMPONENT {
                    live.last_autopilot = Some(Instant::now());
                    if self.cfg.adopt_autopilot() && self.sysid() != h.system_id {
                        log::info!(
                            "mavlink: autopilot heard with system id {}; cameras adopt it",
                            h.system_id
                        );
                        self.sysid.store(h.system_id, Ordering::Relaxed);
                    }
                }
            }
            MavMessage::GLOBAL_POSITION_INT(p) if h.system_id == self.sysid() => {
                self.live.lock().unwrap().position = Some(Position {
                    lat: p.lat,
                    lon: p.lon,
                    alt_mm: p.alt,
                    relative_alt_mm: p.relative_alt,
                    q: [0.0; 4],
                    received_at: time::OffsetDateTime::now_utc(),
                });
            }
            MavMessage::ATTITUDE(a) if h.system_id == self.sysid() => {
                self.live.lock().unwrap().attitude = Some(messages::quaternion(a.roll, a.pitch, a.yaw));
            }
            MavMessage::COMMAND_LONG(c) => {
                if c.target_system != 0 && c.target_system != self.sysid() {
                    return;
                }
                let targets: Vec<u8> = if c.target_component == 0 {
                    self.components().into_iter().map(|(id, _)| id).collect()
                } else if self.ids.is_ours(c.target_component) {
                    vec![c.target_component]
                } else {
                    return;
                };
                for compid in targets {
                    let me = self.clone();
                    let c = c.clone();
                    smol::spawn(async move { me.command(compid, h, c).await }).detach();
                }
            }
            _ => {}
        }
    }

    fn ack(&self, compid: u8, from: mavlink::MavHeader, command: MavCmd, result: MavResult) {
        if result != MavResult::MAV_RESULT_ACCEPTED {
            log::info!("mavlink: component {compid}: {command:?} → {result:?}");
        }
        self.send(
            compid,
            &MavMessage::COMMAND_ACK(COMMAND_ACK_DATA {
                command,
                result,
                progress: 0,
                result_param2: 0,
                target_system: from.system_id,
                target_component: from.component_id,
            }),
        );
    }

    /// The connected camera behind `compid`, if any.
    fn camera(&self, compid: u8) -> Option<Camera> {
        self.components()
            .into_iter()
            .find(|(id, _)| *id == compid)
            .map(|(_, c)| c)
    }

    async fn command(self: Arc<Self>, compid: u8, from: mavlink::MavHeader, c: COMMAND_LONG_DATA) {
        use MavCmd::*;
        use MavResult::*;
        let cmd = c.command;
        let cam = self.camera(compid);
        // Information requests: the message id (REQUEST_MESSAGE) or the legacy command.
        let wanted: Option<u32> = match cmd {
            MAV_CMD_REQUEST_MESSAGE => Some(c.param1 as u32),
            MAV_CMD_REQUEST_CAMERA_INFORMATION => Some(CAMERA_INFORMATION_DATA::ID),
            MAV_CMD_REQUEST_CAMERA_SETTINGS => Some(CAMERA_SETTINGS_DATA::ID),
            MAV_CMD_REQUEST_STORAGE_INFORMATION => Some(STORAGE_INFORMATION_DATA::ID),
            MAV_CMD_REQUEST_CAMERA_CAPTURE_STATUS => Some(CAMERA_CAPTURE_STATUS_DATA::ID),
            MAV_CMD_REQUEST_VIDEO_STREAM_INFORMATION => Some(VIDEO_STREAM_INFORMATION_DATA::ID),
            MAV_CMD_REQUEST_VIDEO_STREAM_STATUS => Some(VIDEO_STREAM_STATUS_DATA::ID),
            _ => None,
        };
        if let Some(id) = wanted {
            // Legacy requests: param1 is the stream id (0 = all) or a "1 = send" flag.
            let stream = match cmd {
                MAV_CMD_REQUEST_MESSAGE => c.param2,
                MAV_CMD_REQUEST_VIDEO_STREAM_INFORMATION | MAV_CMD_REQUEST_VIDEO_STREAM_STATUS => c.param1,
                _ => 0.0,
            };
            let Some(cam) = cam else {
                return self.ack(compid, from, cmd, MAV_RESULT_FAILED);
            };
            if !matches!(stream as i32, 0 | 1)
                && matches!(id, VIDEO_STREAM_INFORMATION_DATA::ID | VIDEO_STREAM_STATUS_DATA::ID)
            {
                return self.ack(compid, from, cmd, MAV_RESULT_DENIED);
            }
            return match self.message(id, &cam).await {
                Some(msg) => {
                    self.ack(compid, from, cmd, MAV_RESULT_ACCEPTED);
                    self.send(compid, &msg);
                }
                None => self.ack(compid, from, cmd, MAV_RESULT_UNSUPPORTED),
            };
        }
        match cmd {
            MAV_CMD_SET_CAMERA_MODE => {
                let Some(cam) = cam else {
                    return self.ack(compid, from, cmd, MAV_RESULT_FAILED);
                };
                let mode = if c.param2 == 0.0 {
                    CameraMode::CAMERA_MODE_IMAGE
                } else if c.param2 == 1.0 {
                    CameraMode::CAMERA_MODE_VIDEO
                } else {
                    return self.ack(compid, from, cmd, MAV_RESULT_DENIED);
                };
                self.live.lock().unwrap().modes.insert(cam.id.clone(), mode);
                self.ack(compid, from, cmd, MAV_RESULT_ACCEPTED);
                self.send(compid, &self.settings(&cam));
            }
            MAV_CMD_IMAGE_START_CAPTURE => self.image_start(compid, from, c, cam),
            MAV_CMD_IMAGE_STOP_CAPTURE => {
                let job = cam
                    .as_ref()
                    .and_then(|cam| self.live.lock().unwrap().jobs.remove(&cam.id));
                if let Some(j) = job {
                    j.stop.store(true, Ordering::Relaxed);
                    // An image being taken is announced before the ACK; nothing after it.
                    futures_lite::future::or(async { j.done.recv().await.ok() }, async {
                        smol::Timer::after(Duration::from_secs(10)).await;
                        None
                    })
                    .await;
                }
                self.ack(compid, from, cmd, MAV_RESULT_ACCEPTED);
            }
            MAV_CMD_VIDEO_START_CAPTURE => self.video(compid, from, c, cam, true).await,
            MAV_CMD_VIDEO_STOP_CAPTURE => self.video(compid, from, c, cam, false).await,
            _ => self.ack(compid, from, cmd, MAV_RESULT_UNSUPPORTED),
        }
    }

    fn settings(&self, cam: &Camera) -> MavMessage {
        let mode = self.live.lock().unwrap().modes.get(&cam.id).copied();
        messages::settings(self.time_boot_ms(), mode.unwrap_or(CameraMode::CAMERA_MODE_IMAGE))
    }

    async fn message(&self, id: u32, cam: &Camera) -> Option<MavMessage> {
        Some(match id {
            CAMERA_INFORMATION_DATA::ID => messages::information(self.time_boot_ms(), cam),
            CAMERA_SETTINGS_DATA::ID => self.settings(cam),
            VIDEO_STREAM_INFORMATION_DATA::ID => {
                let uri = crate::media::service::StreamUrls::new(&self.ctl.config().mediamtx, &self.host, &cam.id).rtsp;
                messages::stream_information(cam, &uri)
            }
            VIDEO_STREAM_STATUS_DATA::ID => messages::stream_status(cam),
            STORAGE_INFORMATION_DATA::ID => {
                let info = self.ctl.storage_info().await.ok();
                messages::storage(self.time_boot_ms(), info.as_ref())
            }
            CAMERA_CAPTURE_STATUS_DATA::ID => self.capture_status(cam).await,
            _ => return None,
        })
    }

    async fn capture_status(&self, cam: &Camera) -> MavMessage {
        let st = self.ctl.storage().clone();
        let available = blocking::unblock(move || st.space()).await.ok().map(|s| s.available);
        let recording = self.ctl.media().recordings().is_recording(&cam.id);
        let (image_status, interval, since) = {
            let live = self.live.lock().unwrap();
            let (status, interval) = match live.jobs.get(&cam.id) {
                Some(j) if j.interval > 0.0 => (3, j.interval),
                Some(_) => (1, 0.0),
                None => (0, 0.0),
            };
            (status, interval, live.recording_since.get(&cam.id).copied())
        };
        let recording_ms = match (recording, since) {
            (true, Some(t)) => t.elapsed().as_millis() as u32,
            _ => 0,
        };
        MavMessage::CAMERA_CAPTURE_STATUS(CAMERA_CAPTURE_STATUS_DATA {
            time_boot_ms: self.time_boot_ms(),
            image_interval: interval,
            recording_time_ms: recording_ms,
            available_capacity: available.map_or(0.0, messages::mib),
            image_status,
            video_status: recording as u8,
            image_count: self.ids.image_count(&cam.id),
            camera_device_id: 0,
        })
    }

    fn image_start(self: &Arc<Self>, compid: u8, from: mavlink::MavHeader, c: COMMAND_LONG_DATA, cam: Option<Camera>) {
        let cmd = c.command;
        let Some(cam) = cam else {
            log::warn!("mavlink: photo on component {compid}: its camera is gone");
            return self.ack(compid, from, cmd, MavResult::MAV_RESULT_FAILED);
        };
        let (interval, count) = (c.param2, c.param3);
        let valid = interval.is_finite()
            && interval >= 0.0
            && count.is_finite()
            && count >= 0.0
            && count.fract() == 0.0
            && count <= 10_000.0
            && (count == 1.0 || interval > 0.0);
        if !valid {
            return self.ack(compid, from, cmd, MavResult::MAV_RESULT_DENIED);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done_rx) = async_channel::bounded::<()>(1);
        {
            let mut live = self.live.lock().unwrap();
            if live.jobs.contains_key(&cam.id) {
                drop(live);
                return self.ack(compid, from, cmd, MavResult::MAV_RESULT_TEMPORARILY_REJECTED);
            }
            live.jobs.insert(
                cam.id.clone(),
                Job {
                    stop: stop.clone(),
                    done: done_rx,
                    interval: if count == 1.0 { 0.0 } else { interval },
                },
            );
        }
        self.ack(compid, from, cmd, MavResult::MAV_RESULT_ACCEPTED);
        let me = self.clone();
        smol::spawn(async move {
            let count = count as u32;
            let mut n = 0u32;
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) && (count == 0 || n < count) {
                me.one_image(compid, &cam, &stop).await;
                n += 1;
                if count != 0 && n >= count {
                    break;
                }
                // Start to start at least `interval`; a shot slower than that is followed
                // at once, without a catch-up burst.
                next = (next + Duration::from_secs_f32(interval)).max(Instant::now());
                while Instant::now() < next && !stop.load(Ordering::Relaxed) {
                    smol::Timer::after((next - Instant::now()).min(Duration::from_millis(50))).await;
                }
            }
            let mut live = me.live.lock().unwrap();
            if live.jobs.get(&cam.id).is_some_and(|j| Arc::ptr_eq(&j.stop, &stop)) {
                live.jobs.remove(&cam.id);
            }
            drop(done_tx);
        })
        .detach();
    }

    /// One snapshot through the core, announced with one CAMERA_IMAGE_CAPTURED (to component
    /// 0 of every system: GCS and autopilot both see it). Not announced once stopped.
    async fn one_image(&self, compid: u8, cam: &Camera, stop: &AtomicBool) {
        let cfg = &self.ctl.config().snapshot;
        let req = crate::media::snapshot::Request {
            format: crate::media::image::ImageFormat::Jpg,
            quality: cfg.default_quality,
            filename: None,
            max_width: (cfg.max_width > 0).then_some(cfg.max_width),
            max_height: (cfg.max_height > 0).then_some(cfg.max_height),
        };
        let position = position();
        let result = self.ctl.take_snapshot(&cam.id, req).await;
        let (ok, url) = match &result {
            Ok(r) => (
                true,
                format!(
                    "http://{}:{}/files/snapshots/{}",
                    bracket(&self.host),
                    self.http_port,
                    crate::storage::url_encode(&r.filename)
                ),
            ),
            Err(e) => {
                log::warn!("mavlink: photo on {} failed: {e}", cam.id);
                (false, String::new())
            }
        };
        if stop.load(Ordering::Relaxed) && !ok {
            return;
        }
        let index = self.ids.next_index(&cam.id);
        self.send(
            compid,
            &messages::image_captured(self.time_boot_ms(), index, ok, &url, position.as_ref()),
        );
    }

    async fn video(
        &self,
        compid: u8,
        from: mavlink::MavHeader,
        c: COMMAND_LONG_DATA,
        cam: Option<Camera>,
        start: bool,
    ) {
        let cmd = c.command;
        let Some(cam) = cam else {
            log::warn!("mavlink: video on component {compid}: its camera is gone");
            return self.ack(compid, from, cmd, MavResult::MAV_RESULT_FAILED);
        };
        if !matches!(c.param1 as i32, 0 | 1) || !c.param1.is_finite() {
            return self.ack(compid, from, cmd, MavResult::MAV_RESULT_DENIED);
        }
        let recording = self.ctl.media().recordings().is_recording(&cam.id);
        let result = if start {
            if recording {
                return self.ack(compid, from, cmd, MavResult::MAV_RESULT_TEMPORARILY_REJECTED);
            }
            self.ctl.start_recording(&cam.id, None, None).await.map(|_| ())
        } else {
            if !recording {
                return self.ack(compid, from, cmd, MavResult::MAV_RESULT_ACCEPTED);
            }
            self.ctl.stop_recording(&cam.id).await.map(|_| ())
        };
        match result {
            Ok(()) => {
                self.ack(compid, from, cmd, MavResult::MAV_RESULT_ACCEPTED);
                let status = self.capture_status(&cam).await;
                self.send(compid, &status);
            }
            Err(e) => {
                log::warn!(
                    "mavlink: {} recording on {}: {e}",
                    if start { "start" } else { "stop" },
                    cam.id
                );
                let busy = matches!(e, crate::error::ServiceError::InvalidState { .. });
                let r = if busy {
                    MavResult::MAV_RESULT_TEMPORARILY_REJECTED
                } else {
                    MavResult::MAV_RESULT_FAILED
                };
                self.ack(compid, from, cmd, r);
            }
        }
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}
