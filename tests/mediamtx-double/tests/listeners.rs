//! The RTSP, RTSPS, RTMP and RTMPS listeners follow the configuration like MediaMTX's
//! closeResources/createResources: a changed `rtspAddress`/`rtspsAddress`/`rtmpAddress`/`rtmpsAddress`
//! restarts the server on the new port (the old one closes), and a TLS server whose key
//! or certificate does not load logs MediaMTX's error and does not listen.
//! Needs the ffmpeg, ffprobe and openssl CLIs.

mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// An ffmpeg publisher of 320x240 test video to an RTMP(S) URL.
fn rtmp_publisher(url: &str, dir: &std::path::Path) -> Proc {
    spawn_cmd(&sender_cmd("flv", url, "320x240"), &dir.join("pub.log"))
}

#[test]
fn a_changed_rtmp_address_moves_the_rtmp_server() {
    require_ffmpeg();
    let (h, dir) = start("listeners-rtmp");
    let (old, new) = (h.rtmp_port, free_tcp_port());
    assert!(!refused(old), "RTMP not listening at start");
    patch_global(&h, json!({"rtmpAddress": format!(":{}", new)}));
    // applied before the PATCH answers
    assert!(closed(old), "the old RTMP port still open");
    let _p = rtmp_publisher(&format!("rtmp://127.0.0.1:{}/cam", new), &dir);
    wait_available(&h, "cam");
    assert_h264(&probe_stream(&format!("{}/cam", h.rtsp_url()), &[]).unwrap(), 320, 240);
    let log = log_of(&dir);
    assert!(log.contains("INF [RTMP] closing"), "{}", log);
    assert!(
        log.contains(&format!("INF [RTMP] started with listener on :{} (TCP/RTMP)", new)),
        "{}",
        log
    );
}

#[test]
fn rtmps_with_a_bad_certificate_does_not_listen() {
    require_ffmpeg();
    let (h, dir) = start("listeners-rtmps");
    let port = h.rtmps_port;
    // the default files (server.key/server.crt in the double's directory) are missing
    patch_global(&h, json!({"rtmpEncryption": "strict"}));
    wait_until(WAIT, "the start error logged", || {
        log_of(&dir).contains("ERR open server.crt: no such file or directory")
    });
    assert!(refused(port), "RTMPS listening without a certificate");
    // a certificate file that is no PEM fails too
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let (key, cert) = self_signed(&tls);
    std::fs::write(dir.join("bad.crt"), "not a certificate").unwrap();
    patch_global(&h, json!({"rtmpServerKey": key, "rtmpServerCert": "bad.crt"}));
    // logged before the PATCH answers
    let log = log_of(&dir);
    assert!(
        log.contains("ERR tls: failed to find any PEM data in certificate input"),
        "{}",
        log
    );
    assert!(refused(port), "RTMPS listening with a bad certificate");

    patch_global(&h, json!({"rtmpServerCert": cert}));
    let _p = rtmp_publisher(&format!("rtmps://127.0.0.1:{}/cam", port), &dir);
    wait_available(&h, "cam");
    let log = log_of(&dir);
    assert!(
        log.contains(&format!("INF [RTMPS] started with listener on :{} (TCP/RTMPS)", port)),
        "{}",
        log
    );
}

#[test]
fn a_changed_rtsps_address_moves_the_rtsps_server() {
    require_ffmpeg();
    let (h, dir) = start("listeners-rtsps");
    let (key, cert) = self_signed(&dir);
    patch_global(
        &h,
        json!({"rtspEncryption": "optional", "rtspServerKey": key, "rtspServerCert": cert}),
    );
    let _p = publish(&h, &dir, "cam");
    let (old, new) = (h.rtsps_port, free_tcp_port());
    assert!(!refused(old), "RTSPS not listening");
    patch_global(&h, json!({"rtspsAddress": format!(":{}", new)}));
    assert!(closed(old), "the old RTSPS port still open");
    // ffmpeg 5.1 does not verify the server's certificate by default (tls_verify 0)
    let s = probe_stream(&format!("rtsps://127.0.0.1:{}/cam", new), &[]).unwrap();
    assert_h264(&s, 320, 240);
    // the plain RTSP server stays where it is
    assert!(!refused(h.rtsp_port));
    let log = log_of(&dir);
    assert!(
        log.contains(&format!("INF [RTSPS] started with listeners on :{} (TCP/RTSPS)", new)),
        "{}",
        log
    );
}

#[test]
fn a_changed_rtsp_address_moves_the_rtsp_server_and_rtsp_port() {
    require_ffmpeg();
    let (h, dir) = start("listeners-rtsp");
    let (old, new) = (h.rtsp_port, free_tcp_port());
    // an on-demand publisher told where to publish by RTSP_PORT, as MediaMTX sets it
    let url = "rtsp://127.0.0.1:$RTSP_PORT/$MTX_PATH";
    add_path(&h, "ondemand", &json!({"runOnDemand": publisher_cmd(url, "320x240")}));
    patch_global(&h, json!({"rtspAddress": format!(":{}", new)}));
    assert!(closed(old), "the old RTSP port still open: {}", log_of(&dir));
    let s = probe_stream(&format!("rtsp://127.0.0.1:{}/ondemand", new), &[]).unwrap();
    assert_h264(&s, 320, 240);
    let log = log_of(&dir);
    let g = get(&h, "/v3/config/global/get").json();
    let started = format!(
        "INF [RTSP] started with listeners on :{} (TCP/RTSP), {} (UDP/RTP), {} (UDP/RTCP)",
        new,
        g["rtpAddress"].as_str().unwrap(),
        g["rtcpAddress"].as_str().unwrap()
    );
    let closing = log.find("INF [RTSP] closing").expect("closing logged");
    assert!(log[closing..].contains(&started), "{}", log);
    // `rtsp: false` closes it
    patch_global(&h, json!({"rtsp": false}));
    assert!(closed(new), "RTSP still listening");
}

/// What a change of shared settings restarts, as MediaMTX's closeResources composes it:
/// the authentication and log settings close every server, those of the metrics server
/// and path manager only the media servers, and new internal users none (they are
/// reloaded in place). Each restarted server closes its connections and listens again.
#[test]
fn shared_settings_restart_the_servers_built_on_them() {
    let (h, dir) = start("listeners-shared");
    patch_global(&h, json!({"playback": true}));
    let mut users = get(&h, "/v3/config/global/get").json()["authInternalUsers"].clone();
    users
        .as_array_mut()
        .unwrap()
        .push(json!({"user": "u2", "pass": "p2", "ips": [], "permissions": [{"action": "read"}]}));
    let all = ["playback", "RTSP", "RTMP", "SRT"];
    let media = ["RTSP", "RTMP", "SRT"];
    let cases = [
        (json!({"authJWTClaimKey": "grants"}), &all[..]),
        (json!({"sysLogPrefix": "cams"}), &all[..]),
        (json!({"metrics": true}), &media[..]),
        (json!({"writeQueueSize": 1024}), &media[..]),
        (json!({"rtspTransports": ["tcp"]}), &["RTSP"][..]),
        (json!({"authInternalUsers": users}), &[][..]),
    ];
    for (body, restarted) in cases {
        let closings = |name: &str| log_of(&dir).matches(&format!("INF [{}] closing", name)).count();
        let before: Vec<usize> = all.iter().map(|n| closings(n)).collect();
        let conns = [("RTSP", h.rtsp_port), ("RTMP", h.rtmp_port)].map(|(name, port)| {
            let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            (name, c)
        });
        patch_global(&h, &body);
        for (n, b) in all.iter().zip(before) {
            let expected = usize::from(restarted.contains(n));
            assert_eq!(closings(n) - b, expected, "{} after {}", n, body);
        }
        // a connection is closed with its server (EOF), else it is still open (nothing
        // to read)
        for (name, mut c) in conns {
            let read = std::io::Read::read(&mut c, &mut [0u8; 1]);
            if restarted.contains(&name) {
                assert!(
                    matches!(read, Ok(0)) || read.is_err() && !is_timeout(&read),
                    "{}: {:?} after {}",
                    name,
                    read,
                    body
                );
            } else {
                assert!(is_timeout(&read), "{}: {:?} after {}", name, read, body);
            }
        }
        for port in [h.rtsp_port, h.rtmp_port, h.playback_port] {
            assert!(!refused(port), "{} listening after {}", port, body);
        }
    }
}

fn is_timeout(r: &std::io::Result<usize>) -> bool {
    r.as_ref()
        .is_err_and(|e| matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}

/// A PROXY protocol v2 header (HAProxy's spec, built here byte by byte): PROXY command,
/// TCP over IPv4, from `src` to 10.0.0.1:554; `local`: the LOCAL command instead.
fn proxy_v2(src: std::net::SocketAddrV4, local: bool) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(if local { 0x20 } else { 0x21 });
    h.push(0x11);
    h.extend_from_slice(&12u16.to_be_bytes());
    h.extend_from_slice(&src.ip().octets());
    h.extend_from_slice(&[10, 0, 0, 1]);
    h.extend_from_slice(&src.port().to_be_bytes());
    h.extend_from_slice(&554u16.to_be_bytes());
    h
}

/// The remote address a connection of `list` is shown with, once it is listed.
fn listed_remote(h: &mediamtx_double::Handle, list: &str, n: usize) -> String {
    let mut remote = String::new();
    wait_until(Duration::from_secs(5), "the connection listed", || {
        let items = items(h, list);
        remote = items
            .last()
            .map(|c| c["remoteAddr"].as_str().unwrap_or("").to_string())
            .unwrap_or_default();
        items.len() == n
    });
    remote
}

/// A new RTSP connection that sends `header` (its pieces 200 ms apart), then OPTIONS,
/// answered 200.
fn proxied_options(h: &mediamtx_double::Handle, header: &[&[u8]]) -> std::net::TcpStream {
    use common::rtsp::*;
    use std::io::Write;
    let mut s = connect(h.rtsp_port, WAIT);
    for (i, piece) in header.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(200));
        }
        s.write_all(piece).unwrap();
    }
    let options = format!("OPTIONS {} RTSP/1.0\r\nCSeq: 1\r\n\r\n", url(h.rtsp_port, "x"));
    let answer = rtsp_req(&mut s, &options);
    assert!(answer.starts_with("RTSP/1.0 200 OK"), "{}", answer);
    s
}

/// MediaMTX's RTSP and RTMP listeners take a PROXY protocol header (v1 or v2) from a peer
/// in `rtspTrustedProxies`/`rtmpTrustedProxies` (go-proxyproto, policy USE): the client
/// it names is the connection's address. A LOCAL command or no header keeps the peer's;
/// a malformed one closes the connection with go-proxyproto's error.
#[test]
fn proxy_protocol_headers_from_trusted_proxies_name_the_client() {
    use common::rtsp::*;
    use std::io::Write;
    let (h, dir) = start("listeners-proxy");
    patch_global(
        &h,
        json!({"rtspTrustedProxies": ["127.0.0.0/8"], "rtmpTrustedProxies": ["127.0.0.1"]}),
    );
    // v1 on RTSP, then RTSP on the same connection
    let _a = proxied_options(&h, &[b"PROXY TCP4 192.168.1.100 10.0.0.1 1234 554\r\n"]);
    assert_eq!(listed_remote(&h, "/v3/rtspconns/list", 1), "192.168.1.100:1234");

    // v2 on RTMP; with the LOCAL command the peer's own address stays
    let mut b = std::net::TcpStream::connect(("127.0.0.1", h.rtmp_port)).unwrap();
    b.write_all(&proxy_v2("203.0.113.7:4321".parse().unwrap(), false))
        .unwrap();
    assert_eq!(listed_remote(&h, "/v3/rtmpconns/list", 1), "203.0.113.7:4321");
    let mut c = std::net::TcpStream::connect(("127.0.0.1", h.rtmp_port)).unwrap();
    c.write_all(&proxy_v2("203.0.113.8:1".parse().unwrap(), true)).unwrap();
    assert_eq!(
        listed_remote(&h, "/v3/rtmpconns/list", 2),
        c.local_addr().unwrap().to_string()
    );

    // a malformed header closes the connection, opened under the peer's address first
    // (go-proxyproto fails at the first read, after MediaMTX listed the connection)
    for (server, port, header, error) in [
        (
            "RTSP",
            h.rtsp_port,
            &b"PROXY TCP4 300.1.1.1 10.0.0.1 1 2\r\n"[..],
            r#"invalid address: ParseAddr("300.1.1.1"): IPv4 field has value >255"#,
        ),
        (
            "RTMP",
            h.rtmp_port,
            &b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x01x"[..],
            "invalid length",
        ),
    ] {
        let mut d = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        d.write_all(header).unwrap();
        d.set_read_timeout(Some(WAIT)).unwrap();
        assert_eq!(
            std::io::Read::read(&mut d, &mut [0u8; 16]).unwrap_or(0),
            0,
            "not closed"
        );
        let conn = format!("INF [{}] [conn {}] ", server, d.local_addr().unwrap());
        let closed = format!("{}closed: proxyproto: {}\n", conn, error);
        wait_until(WAIT, &closed.clone(), || log_of(&dir).contains(&closed));
        let log = log_of(&dir);
        let opened = log.find(&format!("{}opened", conn));
        assert!(opened.is_some_and(|at| at < log.find(&closed).unwrap()), "{}", log);
    }

    // not trusted: no header is waited for (a trusted peer that sends nothing is listed
    // only after go-proxyproto's 10 s), the connection is the peer's
    patch_global(&h, json!({"rtspTrustedProxies": []}));
    let e = connect(h.rtsp_port, WAIT);
    assert_eq!(
        listed_remote(&h, "/v3/rtspconns/list", 1),
        e.local_addr().unwrap().to_string()
    );
}

/// Once trusted proxies are configured, go-proxyproto reads every connection's header
/// (policy IGNORE for untrusted peers): an untrusted peer's header is dropped, its
/// address stays, and a malformed header closes its connection too; a v1 line must come
/// in one read, a v2 header may come in pieces.
#[test]
fn proxy_protocol_headers_of_untrusted_peers_are_read_and_dropped() {
    use common::rtsp::*;
    use std::io::Write;
    let (h, dir) = start("listeners-proxy-untrusted");
    patch_global(&h, json!({"rtspTrustedProxies": ["10.9.9.9"]}));
    let a = proxied_options(&h, &[b"PROXY TCP4 192.168.1.100 10.0.0.1 1234 554\r\n"]);
    assert_eq!(
        listed_remote(&h, "/v3/rtspconns/list", 1),
        a.local_addr().unwrap().to_string()
    );

    // a v2 header in two pieces is waited for
    let v2 = proxy_v2("203.0.113.7:4321".parse().unwrap(), false);
    proxied_options(&h, &[&v2[..14], &v2[14..]]);

    // a v1 line in two pieces, and a malformed line, close the connection
    for (first, rest, error) in [
        (
            &b"PROXY TCP4 1.2."[..],
            &b"3.4 10.0.0.1 1 2\r\n"[..],
            "can't read version 1 header",
        ),
        (
            &b"PROXY TCP6 1::2::3 ::1 1 2\r\n"[..],
            &b""[..],
            r#"invalid address: ParseAddr("1::2::3"): multiple :: in address (at ":3")"#,
        ),
    ] {
        let mut c = connect(h.rtsp_port, WAIT);
        c.write_all(first).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let _ = c.write_all(rest);
        let closed = format!(
            "INF [RTSP] [conn {}] closed: proxyproto: {}\n",
            c.local_addr().unwrap(),
            error
        );
        wait_until(WAIT, &closed.clone(), || log_of(&dir).contains(&closed));
    }
}

/// MediaMTX creates its RTSP server's UDP listeners with it: a new `rtpAddress` and
/// `rtcpAddress` restart it on their ports, where UDP publishers send and from which
/// readers are served.
#[test]
fn the_rtsp_udp_listeners_move_with_rtp_and_rtcp_address() {
    use common::rtsp::*;
    require_ffmpeg();
    let (h, dir) = start("listeners-udp");
    let (rtp, rtcp) = (free_udp_port(), free_udp_port());
    patch_global(
        &h,
        json!({"rtpAddress": format!(":{}", rtp), "rtcpAddress": format!(":{}", rtcp)}),
    );
    let log = log_of(&dir);
    let started = format!(
        "INF [RTSP] started with listeners on :{} (TCP/RTSP), :{} (UDP/RTP), :{} (UDP/RTCP)",
        h.rtsp_port, rtp, rtcp
    );
    assert!(log.contains(&started), "{}", log);

    // a publisher over UDP sends its RTP to the new RTP port
    let u = url(h.rtsp_port, "cam");
    let cmd = publisher_cmd(&u, "320x240").replace("-rtsp_transport tcp", "-rtsp_transport udp");
    let _p = spawn_cmd(&cmd, &dir.join("pub.log"));
    wait_available(&h, "cam");
    wait_until(WAIT, "RTP received over UDP", || {
        items(&h, "/v3/rtspsessions/list")
            .iter()
            .any(|s| s["transport"] == "UDP" && s["inboundRTPPackets"].as_u64().unwrap_or(0) > 10)
    });
    // a reader over UDP is told the new ports and served from them
    let mut s = connect(h.rtsp_port, WAIT);
    let setup = format!(
        "SETUP {}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port=40000-40001\r\n\r\n",
        u
    );
    let a = rtsp_req(&mut s, &setup);
    assert!(a.contains(&format!(";server_port={}-{}", rtp, rtcp)), "{}", a);
    assert!(read_frames(&u, "udp", 15, &dir.join("r.md5")) >= 15);
}

/// Whether a datagram sent to 127.0.0.1:`port` is refused (ICMP port unreachable), as
/// when nothing listens there.
fn udp_refused(port: u16) -> bool {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let _ = s.send(b"x");
    let mut buf = [0u8; 16];
    match s.recv(&mut buf) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => true,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => false,
        other => panic!("unexpected answer on UDP port {}: {:?}", port, other),
    }
}

/// MediaMTX has UDP listeners only while its RTSP server runs with UDP among
/// `rtspTransports`: otherwise a datagram to `rtpAddress`/`rtcpAddress` finds no socket.
#[test]
fn the_rtsp_udp_listeners_exist_only_while_udp_is_a_transport() {
    let (h, _dir) = start("listeners-udp-off");
    let ports = [h.rtp_port, h.rtcp_port];
    assert!(ports.iter().all(|p| !udp_refused(*p)), "UDP listeners at start");
    patch_global(&h, json!({"rtspTransports": ["tcp"]}));
    assert!(ports.iter().all(|p| udp_refused(*p)), "UDP listeners without UDP");
    patch_global(&h, json!({"rtspTransports": ["udp", "tcp"]}));
    assert!(ports.iter().all(|p| !udp_refused(*p)), "UDP listeners back with UDP");
    patch_global(&h, json!({"rtsp": false}));
    assert!(
        ports.iter().all(|p| udp_refused(*p)),
        "UDP listeners with the RTSP server off"
    );
    patch_global(&h, json!({"rtsp": true, "rtspEncryption": "strict"}));
    assert!(ports.iter().all(|p| udp_refused(*p)), "UDP listeners with RTSPS only");
    patch_global(&h, json!({"rtspEncryption": "no"}));
    assert!(ports.iter().all(|p| !udp_refused(*p)), "UDP listeners back");
}
