//! Child processes: runOnDemand commands, pulled-source relays and recorders.
//! Every child runs in its own process group and is stopped with SIGINT to that group.

use crate::core::{ChildKind, PathRt, ProcSlot, Shared};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn interrupt(pid: i32) {
    // SAFETY: plain syscall; pid is a process-group leader we started.
    unsafe {
        libc::killpg(pid, libc::SIGINT);
    }
}

pub fn kill_group(pid: i32) {
    // SAFETY: plain syscall.
    unsafe {
        libc::killpg(pid, libc::SIGKILL);
    }
}

/// Stops a relay child: its stdin is closed (a publisher's end of stream) and its group
/// gets SIGINT; it is reaped in the background, with SIGKILL after `grace`.
pub fn stop_in_background(shared: &Arc<Shared>, mut child: Child, grace: Duration) {
    drop(child.stdin.take());
    let pid = child.id() as i32;
    interrupt(pid);
    let sh = shared.clone();
    std::thread::spawn(move || {
        let deadline = Instant::now() + grace;
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    kill_group(pid);
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        sh.children.lock().unwrap().remove(&pid);
    });
}

fn log_file(shared: &Shared, name: &str, kind: &str) -> (Stdio, Stdio) {
    let dir = shared.dir.join("logs");
    let _ = std::fs::create_dir_all(&dir);
    let fname = format!("{}-{}.log", name.replace('/', "_"), kind);
    match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(fname))
    {
        Ok(f) => {
            let f2 = f.try_clone().map(Stdio::from).unwrap_or_else(|_| Stdio::null());
            (Stdio::from(f), f2)
        }
        Err(_) => (Stdio::null(), Stdio::null()),
    }
}

fn spawn(
    shared: &Arc<Shared>,
    args: &[String],
    envs: &[(String, String)],
    name: &str,
    kind: ChildKind,
) -> Option<Child> {
    spawn2(shared, args, envs, name, kind, false)
}

/// The double's RTSP URL of `path` under the internal prefix (no session, reader or
/// hooks of its own): where relays, pulled sources and recorders publish or read.
pub fn internal_url(shared: &Shared, path: &str) -> String {
    format!(
        "rtsp://127.0.0.1:{}/{}{}",
        shared.internal_rtsp_port,
        shared.internal_prefix(),
        path
    )
}

fn ffmpeg_args(shared: &Shared, parts: &[&[&str]]) -> Vec<String> {
    let head: &[&str] = &[&shared.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "warning"];
    head.iter()
        .chain(parts.iter().copied().flatten())
        .map(|s| s.to_string())
        .collect()
}

/// ffmpeg of a publishing relay: the stream on its stdin (`input`: the format options)
/// copied to an RTSP publication at `url`.
/// ffmpeg's output options that publish what it reads, unchanged, to the double's RTSP
/// relay (the URL follows).
const PUBLISH_COPY: [&str; 6] = ["-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp"];

pub fn relay_in_args(shared: &Shared, input: &[&str], url: &str) -> Vec<String> {
    ffmpeg_args(shared, &[input, &["-i", "pipe:0", "-map", "0"], &PUBLISH_COPY, &[url]])
}

/// ffmpeg of a reading relay: the RTSP stream at `url` copied to its stdout (`output`:
/// the format options).
/// `tracks`: the indexes of the medias to relay (ffmpeg's streams are the SDP's medias,
/// in order); None: all.
pub fn relay_out_args(shared: &Shared, url: &str, tracks: Option<&[usize]>, output: &[&str]) -> Vec<String> {
    let maps: Vec<String> = match tracks {
        Some(t) => t
            .iter()
            .flat_map(|i| ["-map".to_string(), format!("0:{}", i)])
            .collect(),
        None => vec!["-map".into(), "0".into()],
    };
    let maps: Vec<&str> = maps.iter().map(String::as_str).collect();
    let input = ["-rtsp_transport", "tcp", "-i", url];
    ffmpeg_args(shared, &[&input, &maps, &["-c", "copy"], output, &["pipe:1"]])
}

/// A relay of an RTMP or SRT connection: ffmpeg with the stream on its stdin (publisher)
/// or stdout (reader), logged to `logs/<path>-<tag>.log`.
pub fn spawn_relay(
    shared: &Arc<Shared>,
    args: &[String],
    name: &str,
    kind: ChildKind,
    publisher: bool,
) -> Option<Child> {
    spawn3(shared, args, &[], name, kind, !publisher, publisher).ok()
}

fn spawn2(
    shared: &Arc<Shared>,
    args: &[String],
    envs: &[(String, String)],
    name: &str,
    kind: ChildKind,
    pipe_stdout: bool,
) -> Option<Child> {
    spawn3(shared, args, envs, name, kind, pipe_stdout, false).ok()
}

fn spawn3(
    shared: &Arc<Shared>,
    args: &[String],
    envs: &[(String, String)],
    name: &str,
    kind: ChildKind,
    pipe_stdout: bool,
    pipe_stdin: bool,
) -> std::io::Result<Child> {
    let tag = match kind {
        ChildKind::OnDemand => "ondemand",
        ChildKind::Puller => "source",
        ChildKind::Recorder => "recorder",
        ChildKind::Hook => "hook",
        ChildKind::Forwarder => "forward",
        ChildKind::Offline => "offline",
        ChildKind::SrtRelay => "srt",
        ChildKind::Rtmp => "rtmp",
    };
    let (mut out, err) = log_file(shared, name, tag);
    if pipe_stdout {
        out = Stdio::piped();
    }
    let input = if pipe_stdin { Stdio::piped() } else { Stdio::null() };
    spawn_registered(shared, args, envs, (input, out, err), name, tag, kind)
}

/// A hook command (hooks.rs), logged to `logs/<path>-<tag>.log`.
pub fn spawn_hook(
    shared: &Arc<Shared>,
    args: &[String],
    envs: &[(String, String)],
    name: &str,
    tag: &str,
) -> std::io::Result<Child> {
    let (out, err) = log_file(shared, name, tag);
    spawn_registered(
        shared,
        args,
        envs,
        (Stdio::null(), out, err),
        name,
        tag,
        ChildKind::Hook,
    )
}

/// Starts `args` in its own process group (so that it can be stopped as a whole) and
/// registers it in `shared.children`, logging the start or the failure.
fn spawn_registered(
    shared: &Arc<Shared>,
    args: &[String],
    envs: &[(String, String)],
    (input, out, err): (Stdio, Stdio, Stdio),
    name: &str,
    tag: &str,
    kind: ChildKind,
) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let Some(program) = args.first() else {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"));
    };
    let mut cmd = Command::new(program);
    cmd.args(&args[1..])
        .stdin(input)
        .stdout(out)
        .stderr(err)
        .current_dir(&shared.dir)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .process_group(0);
    match cmd.spawn() {
        Ok(c) => {
            shared
                .children
                .lock()
                .unwrap()
                .insert(c.id() as i32, (kind, name.to_string()));
            shared.log(&format!("path {}: started {} pid {}: {:?}", name, tag, c.id(), args));
            Ok(c)
        }
        Err(e) => {
            shared.log(&format!("path {}: cannot start {}: {} ({:?})", name, tag, e, args));
            Err(e)
        }
    }
}

/// A forward destination's ffmpeg (forward.rs), logged to `logs/<path>-<tag>.log`.
pub fn spawn_forwarder(shared: &Arc<Shared>, args: &[String], name: &str, tag: &str) -> Option<Child> {
    let (out, err) = log_file(shared, name, tag);
    spawn_registered(
        shared,
        args,
        &[],
        (Stdio::null(), out, err),
        name,
        tag,
        ChildKind::Forwarder,
    )
    .ok()
}

/// The offline-stream generator of an alwaysAvailable path (always_available.rs).
pub fn spawn_offline(shared: &Arc<Shared>, args: &[String], name: &str) -> Option<Child> {
    spawn(shared, args, &[], name, ChildKind::Offline)
}

/// Waits for a child in a thread (then unregistered and its exit logged) and calls
/// `after` with its pid.
pub fn watch<F>(shared: &Arc<Shared>, mut child: Child, after: F)
where
    F: FnOnce(&Arc<Shared>, i32) + Send + 'static,
{
    let sh = shared.clone();
    std::thread::spawn(move || {
        let pid = child.id() as i32;
        let status = child.wait();
        sh.children.lock().unwrap().remove(&pid);
        sh.log(&format!("pid {} exited: {:?}", pid, status));
        after(&sh, pid);
    });
}

/// A path's restartable child (runOnDemand or the pulled source).
#[derive(Clone, Copy)]
struct Slot {
    of: fn(&mut PathRt) -> &mut ProcSlot,
    /// whether an exit while still wanted restarts it (else the slot goes inactive)
    restarts: fn(&PathRt) -> bool,
    respawn: fn(&Arc<Shared>, &mut PathRt, &serde_json::Map<String, serde_json::Value>),
    /// the hook whose restarts are logged as `TAG command exited: ...`
    exit_line: Option<&'static str>,
}

/// Watches the child of `p`'s slot: when it exits while its path (same generation) still
/// wants it, it is started again after 5 s, MediaMTX's restart pause.
fn watch_slot(shared: &Arc<Shared>, child: Child, p: &mut PathRt, slot: Slot) {
    let name = p.name.clone();
    let path_gen = p.gen;
    let gen = (slot.of)(p).gen;
    let wanted = move |p: &mut PathRt| {
        if p.gen != path_gen {
            return false;
        }
        let s = (slot.of)(p);
        s.active && s.gen == gen
    };
    watch(shared, child, move |sh, pid| {
        let mut st = sh.lock();
        let Some(p) = st.paths.get_mut(&name) else { return };
        if p.gen != path_gen || (slot.of)(p).pid != Some(pid) {
            return;
        }
        (slot.of)(p).pid = None;
        if !wanted(p) {
            return;
        }
        if !(slot.restarts)(p) {
            (slot.of)(p).active = false;
            return;
        }
        if let Some(tag) = slot.exit_line {
            // v1.20.1 reads the exit code and drops it: every exit is a clean one
            let line = format!("{} command exited: command exited with code 0", tag);
            crate::hooks::Owner::path(&name).log(sh, &line);
        }
        drop(st);
        let sh2 = sh.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(5));
            let mut guard = sh2.lock();
            if sh2.shutdown.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let st = &mut *guard;
            if let Some(p) = st.paths.get_mut(&name) {
                if wanted(p) && (slot.of)(p).pid.is_none() {
                    (slot.respawn)(&sh2, p, &st.global);
                }
            }
        });
    });
}

pub fn spawn_on_demand(shared: &Arc<Shared>, p: &mut PathRt) {
    let mut cmdstr = p.s("runOnDemand");
    let envs = vec![
        ("MTX_PATH".to_string(), p.name.clone()),
        ("RTSP_PORT".to_string(), shared.rtsp_port_env()),
        ("MTX_QUERY".to_string(), p.ondemand_query.clone()),
    ];
    for (k, v) in &envs {
        cmdstr = cmdstr.replace(&format!("${}", k), v);
    }
    let exited =
        |e: &str| crate::hooks::Owner::path(&p.name).log(shared, &format!("runOnDemand command exited: {}", e));
    let spawned = crate::util::shell_split(&cmdstr).and_then(|args| {
        spawn3(shared, &args, &envs, &p.name, ChildKind::OnDemand, false, false)
            .map_err(|e| crate::hooks::go_exec_error(args.first().map_or("", |a| a.as_str()), &e))
    });
    let child = match spawned {
        Ok(c) => c,
        Err(e) => {
            // externalcmd reports it; the double does not try again
            exited(&e);
            return;
        }
    };
    p.ondemand.pid = Some(child.id() as i32);
    watch_slot(
        shared,
        child,
        p,
        Slot {
            of: |p| &mut p.ondemand,
            restarts: |p| p.b("runOnDemandRestart"),
            respawn: |sh, p, _| spawn_on_demand(sh, p),
            exit_line: Some("runOnDemand"),
        },
    );
}

pub fn spawn_puller(shared: &Arc<Shared>, p: &mut PathRt, globals: crate::source_input::Globals) {
    let mut args: Vec<String> = vec![
        shared.ffmpeg.clone(),
        "-nostdin".into(),
        "-hide_banner".into(),
        "-loglevel".into(),
        "warning".into(),
    ];
    let Some(input) = crate::source_input::args(shared, p, globals) else {
        shared.log(&format!("path {}: cannot prepare the source {}", p.name, p.s("source")));
        return;
    };
    args.extend(input);
    // MPEG-TS and HLS can carry data streams that RTSP cannot
    let map: &[&str] = if p.s("source").starts_with("rtsp") {
        &["-map", "0"]
    } else {
        &["-map", "0:v?", "-map", "0:a?"]
    };
    args.extend(map.iter().map(|s| s.to_string()));
    args.extend(PUBLISH_COPY.iter().map(|s| s.to_string()));
    args.push(internal_url(shared, &p.name));
    let child = match spawn(shared, &args, &[], &p.name, ChildKind::Puller) {
        Some(c) => c,
        None => return,
    };
    p.puller.pid = Some(child.id() as i32);
    // retried like MediaMTX's static sources
    watch_slot(
        shared,
        child,
        p,
        Slot {
            of: |p| &mut p.puller,
            restarts: |_| true,
            respawn: |sh, p, global| spawn_puller(sh, p, crate::source_input::Globals::of(global)),
            exit_line: None,
        },
    );
}

/// The codecs each recorder format takes (MediaMTX's formatFMP4/formatMPEGTS; MPEG-TS is
/// also what mpegts.FromStream gives SRT readers), less what
/// the double's ffmpeg cannot mux: G711 and LPCM in MP4 (MediaMTX writes them as LPCM,
/// which ffmpeg 5.1's MP4 muxer lacks) and KLV (no RTP depacketizer in ffmpeg).
const FMP4_CODECS: &[&str] = &[
    "AV1",
    "VP9",
    "H265",
    "H264",
    "MPEG-4 Video",
    "MPEG-1/2 Video",
    "M-JPEG",
    "Opus",
    "MPEG-4 Audio",
    "MPEG-4 Audio LATM",
    "MPEG-1/2 Audio",
    "AC3",
];
pub const MPEGTS_CODECS: &[&str] = &[
    "H265",
    "H264",
    "MPEG-4 Video",
    "MPEG-1/2 Video",
    "Opus",
    "MPEG-4 Audio",
    "MPEG-4 Audio LATM",
    "MPEG-1/2 Audio",
    "AC3",
];

pub fn spawn_recorder(shared: &Arc<Shared>, p: &mut PathRt) {
    let Some(stream) = p.stream.clone() else { return };
    let format = p.s("recordFormat");
    // the recorder instance takes the tracks its format supports, and says so
    let codecs = if format == "mpegts" { MPEGTS_CODECS } else { FMP4_CODECS };
    let medias = &stream.sdp.medias;
    let taken = crate::media::tracks_of(medias, codecs);
    p.recorder.stream_id = stream.id;
    p.recorder.sig = crate::core::record_sig(&p.conf);
    p.recorder.on = true;
    let scope = crate::core::recorder_scope(&p.name);
    if taken.is_empty() {
        shared.log_as(&scope, "WAR", "no supported tracks found, skipping recording");
        p.recorder.skipped = true;
        return;
    }
    let info = crate::core::log_track_choice(shared, &scope, medias, &taken);
    shared.log_as(&scope, "INF", &format!("recording {}", info));
    let ext = if format == "mpegts" { ".ts" } else { ".mp4" };
    let record_path = p.s("recordPath");
    let seg = p.d("recordSegmentDuration").max(Duration::from_millis(1));
    let part = p.d("recordPartDuration").max(Duration::from_millis(100));
    let mut args: Vec<String> = vec![
        shared.ffmpeg.clone(),
        "-nostdin".into(),
        "-hide_banner".into(),
        "-loglevel".into(),
        "warning".into(),
        "-rtsp_transport".into(),
        "tcp".into(),
    ];
    // Parameters known from the SDP (sprop-parameter-sets): no probing, so that the
    // first segment starts (and is named) right when the stream is there. Only for
    // H.264/H.265 alone: beside another track ffmpeg's probe of 32 bytes finds no size.
    let props = stream.props.lock().unwrap();
    let known = stream.sdp.medias.iter().zip(props.iter()).all(|(m, p)| {
        matches!(m.codec, "H264" | "H265") && p.as_ref().and_then(|v| v.get("width")).is_some_and(|w| w != 0)
    });
    drop(props);
    if known {
        args.extend(
            ["-analyzeduration", "0", "-probesize", "32"]
                .iter()
                .map(|s| s.to_string()),
        );
    } else {
        args.extend(["-analyzeduration", "1000000"].iter().map(|s| s.to_string()));
    }
    args.extend(["-i".into(), internal_url(shared, &p.name)]);
    // ffmpeg's streams are the SDP's medias, in order
    for i in &taken {
        args.extend(["-map".to_string(), format!("0:{}", i)]);
    }
    args.extend(["-c".to_string(), "copy".to_string()]);
    let fmp4 = format != "mpegts";
    if fmp4 {
        // one fragment per part (recordPartDuration, earlier at keyframes), handed over
        // on a pipe as soon as it is complete; the double writes the segment files
        args.extend([
            "-f".to_string(),
            "mp4".to_string(),
            "-movflags".to_string(),
            "+frag_keyframe+empty_moov+default_base_moof".to_string(),
            "-frag_duration".to_string(),
            part.as_micros().to_string(),
        ]);
    } else {
        // one PES per audio frame, as MediaMTX's writer does per unit (ffmpeg gathers
        // about 2930 bytes by default), so that segments are cut at the frame
        args.extend(["-f", "mpegts", "-pes_payload_size", "0"].iter().map(|s| s.to_string()));
    }
    args.extend(["-flush_packets".to_string(), "1".to_string(), "pipe:1".to_string()]);
    let mut child = match spawn2(shared, &args, &[], &p.name, ChildKind::Recorder, true) {
        Some(c) => c,
        None => {
            p.recorder.retry_at = Some(Instant::now() + Duration::from_secs(2));
            return;
        }
    };
    let writer = child.stdout.take().map(|out| {
        let target = crate::recordings::absolute(
            &shared.dir,
            &format!("{}{}", record_path, ext).replace("%path", &p.name),
        );
        let sh = shared.clone();
        let name = p.name.clone();
        // runOnRecordSegmentCreate/Complete, with the configuration of this recorder
        let (sh2, env) = (shared.clone(), crate::hooks::path_env(shared, &p.name, &p.conf_name));
        let (on_create, on_complete) = (p.s("runOnRecordSegmentCreate"), p.s("runOnRecordSegmentComplete"));
        let owner = crate::hooks::Owner::path(&p.name);
        let max_part = crate::conf::parse_size(&p.s("recordMaxPartSize")).unwrap_or(u64::MAX);
        let on_segment = Box::new(move |path: &str, done: Option<Duration>| {
            let mut env = env.clone();
            env.push(("MTX_SEGMENT_PATH".into(), path.to_string()));
            let (tag, cmd) = match done {
                None => ("runOnRecordSegmentCreate", &on_create),
                Some(d) => {
                    // strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
                    env.push(("MTX_SEGMENT_DURATION".into(), format!("{}", d.as_secs_f64())));
                    ("runOnRecordSegmentComplete", &on_complete)
                }
            };
            crate::hooks::launch(&sh2, &owner, tag, cmd, env);
        });
        std::thread::spawn(move || {
            // recorderInstance.Log: its errors end the instance (restarted after 2 s)
            let scope = crate::core::recorder_scope(&name);
            let log = Box::new(move |level: &str, m: &str| sh.log_as(&scope, level, m));
            if fmp4 {
                let mut s = crate::fmp4::Segmenter::new(target, seg, log);
                s.on_segment = on_segment;
                s.max_part_size = max_part;
                s.run(out);
            } else {
                let mut s = crate::ts::TsSegmenter::new(target, seg, part, log);
                s.on_segment = on_segment;
                s.run(out);
            }
        })
    });
    p.recorder.pid = Some(child.id() as i32);
    p.recorder.stopping = false;
    let name = p.name.clone();
    let path_gen = p.gen;
    let sh = shared.clone();
    // like watch(), but the recorder counts as running until its last part is on disk
    std::thread::spawn(move || {
        let pid = child.id() as i32;
        let status = child.wait();
        if let Some(w) = writer {
            let _ = w.join();
        }
        sh.children.lock().unwrap().remove(&pid);
        sh.log(&format!("pid {} exited: {:?}", pid, status));
        let mut st = sh.lock();
        if let Some(p) = st.paths.get_mut(&name) {
            if p.gen == path_gen && p.recorder.pid == Some(pid) {
                let unexpected = !p.recorder.stopping;
                p.recorder.pid = None;
                p.recorder.stopping = false;
                if unexpected {
                    // Recorder.restartPause
                    p.recorder.retry_at = Some(Instant::now() + Duration::from_secs(2));
                }
            }
        }
        sh.cv.notify_all();
    });
}

/// Waits until the given pids are gone (or timeout).
pub fn wait_pids(shared: &Shared, pids: &[i32], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let ch = shared.children.lock().unwrap();
        if pids.iter().all(|p| !ch.contains_key(p)) {
            return;
        }
        drop(ch);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops every child: SIGINT to each group, then SIGKILL after `grace`.
pub fn stop_all(shared: &Shared, grace: Duration) {
    let pids: Vec<i32> = shared.children.lock().unwrap().keys().cloned().collect();
    for p in &pids {
        interrupt(*p);
    }
    wait_pids(shared, &pids, grace);
    let left: Vec<i32> = shared.children.lock().unwrap().keys().cloned().collect();
    for p in &left {
        kill_group(*p);
    }
    wait_pids(shared, &left, Duration::from_secs(2));
}
