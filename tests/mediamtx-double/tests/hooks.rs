//! MediaMTX's hooks in the double, with real ffmpeg publishers and readers: runOnInit,
//! runOnReady/runOnNotReady (→ runOnAvailable/runOnUnavailable), runOnRead/runOnUnread,
//! runOnRecordSegmentCreate/Complete and runOnConnect/runOnDisconnect, each writing its
//! environment to a file.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn read(dir: &Path, f: &str) -> String {
    std::fs::read_to_string(dir.join(f))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The lines of the double's log that end with `text` (after level and scope).
fn lines_ending(dir: &Path, text: &str) -> usize {
    log_of(dir).lines().filter(|l| l.ends_with(text)).count()
}

/// Where the first line ending with `text` is in the log (for order checks).
fn line_of(dir: &Path, text: &str) -> usize {
    let log = log_of(dir);
    log.lines()
        .position(|l| l.ends_with(text))
        .unwrap_or_else(|| panic!("no line ending with {:?} in:\n{}", text, log))
}

fn hook_children(h: &mediamtx_double::Handle) -> Vec<Value> {
    let s = http("GET", &format!("{}/control/status", h.control_url()), None).json();
    s["children"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "Hook")
        .cloned()
        .collect()
}

#[test]
fn hooks_run_with_mediamtx_environment() {
    require_ffmpeg();
    let (h, dir) = start("hooks");
    let a = h.api_url();
    let sh = |script: &str| format!("sh -c '{}'", script);
    let r = http(
        "PATCH",
        &format!("{}/v3/config/global/patch", a),
        Some(
            &json!({
                "runOnConnect": sh("echo $MTX_CONN_TYPE $RTSP_PORT >> connect.txt"),
                "runOnDisconnect": sh("echo $MTX_CONN_ID >> disconnect.txt"),
            })
            .to_string(),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let body = json!({
        "runOnInit": sh("echo $MTX_PATH:$RTSP_PORT > init.txt; exec sleep 60"),
        "runOnReady": sh("echo $MTX_SOURCE_TYPE $MTX_QUERY > ready.txt; exec sleep 60"),
        "runOnNotReady": sh("echo $MTX_PATH > notready.txt"),
        "runOnRead": sh("echo $MTX_READER_TYPE > read.txt"),
        "runOnUnread": sh("echo $MTX_READER_ID > unread.txt"),
        "record": true,
        "recordPath": "rec/%path/%Y-%m-%d_%H-%M-%S-%f",
        "recordSegmentDuration": "2s",
        "recordDeleteAfter": "0s",
        "runOnRecordSegmentCreate": sh("echo $MTX_SEGMENT_PATH >> segcreate.txt"),
        "runOnRecordSegmentComplete": sh("echo $MTX_SEGMENT_PATH $MTX_SEGMENT_DURATION >> segdone.txt"),
    });
    add_path(&h, "cam", &body);
    // runOnInit runs while the path exists
    wait_until(Duration::from_secs(5), "runOnInit", || {
        read(&dir, "init.txt") == format!("cam:{}", h.rtsp_port)
    });
    assert_eq!(hook_children(&h).len(), 1);

    let url = format!("{}/cam", h.rtsp_url());
    let mut pubp = spawn_cmd(&publisher_cmd(&url, "320x240"), &dir.join("pub.log"));
    wait_until(Duration::from_secs(15), "runOnReady", || {
        !read(&dir, "ready.txt").is_empty()
    });
    // no query: MTX_QUERY is empty
    assert_eq!(read(&dir, "ready.txt"), "rtspSession");
    wait_until(Duration::from_secs(5), "runOnConnect", || {
        read(&dir, "connect.txt").starts_with(&format!("rtspConn {}", h.rtsp_port))
    });

    // a reader: runOnRead, then runOnUnread once it has gone
    let st = Command::new("ffprobe")
        .args(["-v", "error", "-rtsp_transport", "tcp", "-show_streams"])
        .arg(format!("{}/cam", h.rtsp_url()))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    wait_until(Duration::from_secs(5), "runOnRead", || {
        read(&dir, "read.txt") == "rtspSession"
    });
    wait_until(Duration::from_secs(5), "runOnUnread", || {
        read(&dir, "unread.txt").len() == 36
    });

    // segments: created, then completed with their duration
    wait_until(Duration::from_secs(15), "two segments", || {
        read(&dir, "segcreate.txt").lines().count() >= 2
    });
    let created: Vec<String> = read(&dir, "segcreate.txt").lines().map(String::from).collect();
    assert!(
        created[0].ends_with(".mp4") && created[0].contains("/rec/cam/"),
        "{:?}",
        created
    );
    assert!(Path::new(&created[0]).exists());
    wait_until(Duration::from_secs(5), "first segment completed", || {
        !read(&dir, "segdone.txt").is_empty()
    });
    let done = read(&dir, "segdone.txt");
    let (p, d) = done.lines().next().unwrap().split_once(' ').unwrap();
    assert_eq!(p, created[0]);
    let d: f64 = d.parse().unwrap();
    assert!((1.5..4.0).contains(&d), "segment duration {}", d);

    // the publisher leaves: runOnReady is stopped, runOnNotReady launched
    pubp.interrupt_and_wait();
    wait_until(Duration::from_secs(5), "runOnNotReady", || {
        read(&dir, "notready.txt") == "cam"
    });
    wait_until(Duration::from_secs(5), "runOnDisconnect", || {
        !read(&dir, "disconnect.txt").is_empty()
    });
    wait_until(Duration::from_secs(5), "runOnReady stopped", || {
        hook_children(&h).len() == 1
    });

    // deleting the configuration closes the path: runOnInit is stopped (SIGINT)
    let r = http("DELETE", &format!("{}/v3/config/paths/delete/cam", a), None);
    assert_eq!(r.status, 200, "{}", r.body);
    wait_until(Duration::from_secs(5), "runOnInit stopped", || {
        hook_children(&h).is_empty()
    });

    // each hook logged as MediaMTX logs it, by the logger of what it belongs to
    let conn = "INF [RTSP] [conn 127.0.0.1:";
    let log = log_of(&dir);
    for (scope, text) in [
        ("INF [path cam] ", "runOnInit command started"),
        ("INF [path cam] ", "runOnAvailable command started"),
        ("INF [path cam] ", "runOnAvailable command stopped"),
        ("INF [path cam] ", "runOnUnavailable command launched"),
        ("INF [path cam] ", "runOnRecordSegmentCreate command launched"),
        ("INF [path cam] ", "runOnRecordSegmentComplete command launched"),
        ("INF [path cam] ", "runOnInit command stopped"),
        ("INF [RTSP] [session ", "runOnRead command started"),
        ("INF [RTSP] [session ", "runOnRead command stopped"),
        ("INF [RTSP] [session ", "runOnUnread command launched"),
        (conn, "runOnConnect command started"),
        (conn, "runOnConnect command stopped"),
        (conn, "runOnDisconnect command launched"),
    ] {
        assert!(
            log.lines().any(|l| l.contains(scope) && l.ends_with(text)),
            "no {:?}...{:?} line in:\n{}",
            scope,
            text,
            log
        );
    }
    // a session is named by the first 4 bytes of its UUID; its hooks' lines carry it
    let read_line = log.lines().find(|l| l.ends_with("runOnRead command started")).unwrap();
    let id = read_line.split("[session ").nth(1).unwrap().split(']').next().unwrap();
    assert!(
        id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{}",
        read_line
    );
    // stopped, then its closing hook launched; none of these commands exits on its own
    // with a restart, so no `exited` line
    assert!(
        line_of(&dir, "[path cam] runOnAvailable command stopped")
            < line_of(&dir, "[path cam] runOnUnavailable command launched")
    );
    assert_eq!(
        lines_ending(&dir, "command exited: command exited with code 0"),
        0,
        "{}",
        log
    );
}

#[test]
fn run_on_init_restart() {
    let (h, dir) = start("hooks-restart");
    let body = json!({
        "runOnInit": "sh -c 'echo x >> runs.txt'",
        "runOnInitRestart": true,
    });
    add_path(&h, "cam", &body);
    // restarted 5 s after each exit
    wait_until(Duration::from_secs(3), "first run", || {
        read(&dir, "runs.txt").lines().count() == 1
    });
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(read(&dir, "runs.txt").lines().count(), 1, "restarted before 5 s");
    wait_until(Duration::from_secs(3), "second run", || {
        read(&dir, "runs.txt").lines().count() == 2
    });
    // each exit of a restarting hook is reported, always as a clean one (v1.20.1 drops the
    // exit code it reads); the command is started (logged) once
    assert_eq!(lines_ending(&dir, "INF [path cam] runOnInit command started"), 1);
    assert!(
        lines_ending(
            &dir,
            "INF [path cam] runOnInit command exited: command exited with code 0"
        ) >= 1
    );
}

/// externalcmd reports a command that cannot be split or started (`exited: ERR` with
/// Go's texts), retrying it every 5 s with a restart; a command that exits on its own
/// without a restart is not reported, whatever its code.
#[test]
fn hook_commands_that_cannot_start_are_reported_with_go_texts() {
    let (h, dir) = start("hooks-exits");
    for (name, cmd, restart, line) in [
        (
            "a",
            "no-such-program-x1 arg",
            false,
            Some("exec: \"no-such-program-x1\": executable file not found in $PATH"),
        ),
        (
            "b",
            "/nonexistent/prog",
            false,
            Some("fork/exec /nonexistent/prog: no such file or directory"),
        ),
        ("c", "sh -c 'echo", false, Some("Unterminated single-quoted string")),
        ("d", "sh -c 'exit 3'", false, None),
        (
            "e",
            "no-such-program-x2",
            true,
            Some("exec: \"no-such-program-x2\": executable file not found in $PATH"),
        ),
    ] {
        add_path(&h, name, &json!({"runOnInit": cmd, "runOnInitRestart": restart}));
        let started = format!("INF [path {}] runOnInit command started", name);
        wait_until(Duration::from_secs(5), &started, || lines_ending(&dir, &started) == 1);
        if let Some(line) = line {
            let exited = format!("INF [path {}] runOnInit command exited: {}", name, line);
            wait_until(Duration::from_secs(5), &exited, || lines_ending(&dir, &exited) == 1);
        }
    }
    // the restarting one is tried again after 5 s, the others are not
    let again =
        "INF [path e] runOnInit command exited: exec: \"no-such-program-x2\": executable file not found in $PATH";
    wait_until(Duration::from_secs(8), "a second try of e", || {
        lines_ending(&dir, again) == 2
    });
    let log = log_of(&dir);
    for name in ["a", "b", "c", "d"] {
        let exits = log
            .lines()
            .filter(|l| l.contains(&format!("INF [path {}] runOnInit command exited", name)))
            .count();
        assert_eq!(exits, usize::from(name != "d"), "path {}:\n{}", name, log);
    }
}

/// runOnDemand as hooks.OnDemand logs it: started with the first reader, stopped with
/// the reason when nobody needs it any more, then runOnUnDemand launched.
#[test]
fn on_demand_commands_are_logged_with_their_stop_reason() {
    require_ffmpeg();
    let (h, dir) = start("hooks-ondemand");
    let url = format!("{}/cam", h.rtsp_url());
    let body = json!({
        "runOnDemand": publisher_cmd("rtsp://127.0.0.1:$RTSP_PORT/$MTX_PATH", "160x120"),
        "runOnDemandCloseAfter": "1s",
        "runOnUnDemand": "sh -c 'echo $MTX_PATH > undemand.txt'",
    });
    add_path(&h, "cam", &body);
    let st = Command::new("ffprobe")
        .args(["-v", "error", "-rtsp_transport", "tcp", "-show_streams"])
        .arg(&url)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    wait_until(Duration::from_secs(10), "runOnUnDemand", || {
        read(&dir, "undemand.txt") == "cam"
    });
    let started = line_of(&dir, "INF [path cam] runOnDemand command started");
    let stopped = line_of(&dir, "INF [path cam] runOnDemand command stopped: not needed by anyone");
    let launched = line_of(&dir, "INF [path cam] runOnUnDemand command launched");
    assert!(started < stopped && stopped < launched, "{}", log_of(&dir));
}

/// runOnConnect starts when an RTSP connection opens (conn.initialize), before any
/// request, and runOnDisconnect when it closes; the double's own clients (its recorder)
/// are no connections of MediaMTX and start neither.
#[test]
fn run_on_connect_starts_when_a_connection_opens() {
    require_ffmpeg();
    let (h, dir) = start("hooks-connect");
    patch_global(
        &h,
        json!({
            "runOnConnect": "sh -c 'echo $MTX_CONN_TYPE $MTX_CONN_ID >> connect.txt'",
            "runOnDisconnect": "sh -c 'echo $MTX_CONN_ID >> disconnect.txt'",
        }),
    );
    let bare = std::net::TcpStream::connect(("127.0.0.1", h.rtsp_port)).unwrap();
    wait_until(Duration::from_secs(5), "runOnConnect of a silent connection", || {
        read(&dir, "connect.txt").starts_with("rtspConn ")
    });
    let id = read(&dir, "connect.txt")["rtspConn ".len()..].to_string();
    assert_eq!(items(&h, "/v3/rtspconns/list")[0]["id"], json!(id));
    drop(bare);
    wait_until(Duration::from_secs(5), "runOnDisconnect", || {
        read(&dir, "disconnect.txt") == id
    });

    // a recorded publisher: its connection only
    add_path(
        &h,
        "rec",
        &json!({"record": true, "recordPath": "rec/%path/%Y-%m-%d_%H-%M-%S-%f"}),
    );
    let _p = publish(&h, &dir, "rec");
    wait_until(Duration::from_secs(15), "a recorded segment", || {
        std::fs::read_dir(dir.join("rec/rec")).is_ok_and(|mut d| d.next().is_some())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        read(&dir, "connect.txt").lines().count(),
        2,
        "{}",
        read(&dir, "connect.txt")
    );

    // RTSP tunnelled in HTTP: the GET and the POST are connections of their own, ended
    // by the upgrade, and the tunnel is a third one (gortsplib's ServerConns)
    let st = Command::new("ffprobe")
        .args(["-v", "error", "-rtsp_transport", "http", "-show_streams"])
        .arg(format!("{}/rec", h.rtsp_url()))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    wait_until(Duration::from_secs(5), "the tunnel's three connections ended", || {
        read(&dir, "disconnect.txt").lines().count() == 4
    });
    let ended = read(&dir, "disconnect.txt");
    let ids: std::collections::HashSet<&str> = ended.lines().collect();
    assert_eq!(ids.len(), 4, "{}", ended);
    // a runOnConnect still running when its connection ends is stopped, as in MediaMTX:
    // a leg's may not have written its line
    let connects = read(&dir, "connect.txt");
    assert!((3..=5).contains(&connects.lines().count()), "{}", connects);
    assert!(connects.lines().all(|l| l.starts_with("rtspConn ")), "{}", connects);

    // a tunnel's GET whose POST never comes: its hooks end when its client closes it
    let n = connects.lines().count();
    let mut get = std::net::TcpStream::connect(("127.0.0.1", h.rtsp_port)).unwrap();
    std::io::Write::write_all(
        &mut get,
        b"GET /rec HTTP/1.0\r\nx-sessioncookie: lonely\r\nAccept: application/x-rtsp-tunnelled\r\n\r\n",
    )
    .unwrap();
    wait_until(Duration::from_secs(5), "runOnConnect of the GET", || {
        read(&dir, "connect.txt").lines().count() == n + 1
    });
    // listed while it waits, as a connection without tunnel (gortsplib's ServerConn)
    let get_id = read(&dir, "connect.txt").lines().last().unwrap()["rtspConn ".len()..].to_string();
    let listed = items(&h, "/v3/rtspconns/list");
    assert!(
        listed.iter().any(|c| c["id"] == json!(get_id) && c["tunnel"] == "none"),
        "{:?}",
        listed
    );
    drop(get);
    wait_until(Duration::from_secs(5), "runOnDisconnect of the closed GET", || {
        read(&dir, "disconnect.txt").lines().count() == 5
    });
    assert!(!items(&h, "/v3/rtspconns/list").iter().any(|c| c["id"] == json!(get_id)));
}

/// MediaMTX opens an RTSPS or RTMPS connection (listed, runOnConnect started) at accept:
/// Go's TLS handshakes at the first read. A failed handshake closes it like any error.
#[test]
fn tls_connections_run_their_hooks_before_the_handshake() {
    let (h, dir) = start("hooks-tls");
    let (key, cert) = self_signed(&dir);
    patch_global(
        &h,
        json!({
            "rtspEncryption": "optional", "rtspServerKey": key, "rtspServerCert": cert,
            "rtmpEncryption": "optional", "rtmpServerKey": key, "rtmpServerCert": cert,
            "runOnConnect": "sh -c 'echo $MTX_CONN_TYPE $MTX_CONN_ID >> connect.txt'",
            "runOnDisconnect": "sh -c 'echo $MTX_CONN_ID >> disconnect.txt'",
        }),
    );
    for (n, port, list, kind, tag) in [
        (1, h.rtsps_port, "/v3/rtspsconns/list", "rtspsConn", "RTSPS"),
        (2, h.rtmps_port, "/v3/rtmpsconns/list", "rtmpsConn", "RTMPS"),
    ] {
        let mut bare = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        wait_until(Duration::from_secs(5), "runOnConnect before any TLS byte", || {
            read(&dir, "connect.txt").lines().count() == n
        });
        let connects = read(&dir, "connect.txt");
        let (typ, id) = connects.lines().last().unwrap().split_once(' ').unwrap();
        assert_eq!(typ, kind);
        let listed = items(&h, list);
        assert_eq!(listed.len(), 1, "{:?}", listed);
        assert_eq!(listed[0]["id"], json!(id));

        // not a TLS client: the handshake fails, the connection closes and its hooks end
        std::io::Write::write_all(&mut bare, b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n").unwrap();
        wait_until(
            Duration::from_secs(5),
            "runOnDisconnect after the failed handshake",
            || read(&dir, "disconnect.txt").lines().last() == Some(id),
        );
        assert!(items(&h, list).is_empty());
        let logged = format!(
            "INF [{}] [conn {}] closed: tls: first record does not look like a TLS handshake\n",
            tag,
            bare.local_addr().unwrap()
        );
        wait_until(Duration::from_secs(5), &logged.clone(), || {
            log_of(&dir).contains(&logged)
        });
    }
    // crypto/tls's words for the other failures: the client's alert, the end
    for (port, tag) in [(h.rtsps_port, "RTSPS"), (h.rtmps_port, "RTMPS")] {
        let mut c = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client()).unwrap();
        c.set_verify(openssl::ssl::SslVerifyMode::PEER);
        let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let me = tcp.local_addr().unwrap();
        assert!(c.build().connect("localhost", tcp).is_err(), "self-signed accepted");
        let logged = format!(
            "INF [{}] [conn {}] closed: remote error: tls: unknown certificate authority\n",
            tag, me
        );
        wait_until(Duration::from_secs(5), &logged.clone(), || {
            log_of(&dir).contains(&logged)
        });
        let gone = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let me = gone.local_addr().unwrap();
        drop(gone);
        let logged = format!("INF [{}] [conn {}] closed: EOF\n", tag, me);
        wait_until(Duration::from_secs(5), &logged.clone(), || {
            log_of(&dir).contains(&logged)
        });
    }
}
