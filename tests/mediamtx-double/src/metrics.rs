//! Metrics server (MediaMTX internal/metrics): `GET /metrics`, Prometheus text with
//! MediaMTX's names, labels (sorted, `{k="v"}`) and section comments, for what the double
//! has: paths (with readers and byte counters), the RTSP/RTSPS connections and sessions,
//! the RTMP, RTMPS and SRT connections (from
//! the API lists) and the empty session lists of the HLS, WebRTC and MoQ servers while
//! they are enabled. Authentication with the `metrics`
//! action before routing.

use crate::core::{self, Shared};
use crate::http::{Request, Response};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

/// Query filters of onMetrics: any of them set limits the output to its section.
const FILTERS: &[&str] = &[
    "path",
    "forward_dest",
    "hls_muxer",
    "hls_session",
    "rtsp_conn",
    "rtsp_session",
    "rtsps_conn",
    "rtsps_session",
    "rtmp_conn",
    "rtmps_conn",
    "srt_conn",
    "webrtc_session",
    "moq_session",
];

fn tags(m: &BTreeMap<&str, String>) -> String {
    let inner: Vec<String> = m.iter().map(|(k, v)| format!("{}=\"{}\"", k, v)).collect();
    format!("{{{}}}", inner.join(","))
}

fn metric(out: &mut String, key: &str, tags: &str, value: u64) {
    let _ = writeln!(out, "{}{} {}", key, tags, value);
}

/// Writes a section of zero-valued metrics without labels (a server with no items).
fn empty_section(out: &mut String, title: &str, keys: &[&str]) {
    let _ = writeln!(out, "# {}", title);
    for k in keys {
        metric(out, k, "", 0);
    }
    out.push('\n');
}

pub fn handle(shared: &Arc<Shared>, req: &Request, peer: SocketAddr) -> Response {
    if let Some(r) = crate::servers::check_auth(shared, req, peer, "metrics", "") {
        return r;
    }
    if req.method != "GET" || req.path != "/metrics" {
        return Response::not_found_text();
    }
    Response {
        code: 200,
        content_type: "text/plain; charset=utf-8",
        body: render(shared, req).into_bytes(),
        headers: Vec::new(),
    }
}

fn render(shared: &Shared, req: &Request) -> String {
    let q = |k: &str| req.query(k).unwrap_or_default();
    let typ = q("type");
    let any_filter = FILTERS.iter().any(|f| !q(f).is_empty());
    let wants = |t: &str, filter: &str| (typ.is_empty() || typ == t) && (!any_filter || !q(filter).is_empty());
    let (paths, global) = {
        let st = shared.lock();
        let paths: Vec<Value> = st.paths.values().map(core::path_json).collect();
        (paths, st.global.clone())
    };
    let on = |k: &str| global.get(k).and_then(|v| v.as_bool()) == Some(true);
    let on_or_default = |k: &str| global.get(k).and_then(|v| v.as_bool()) != Some(false);
    let mut out = String::new();

    let path_filter = q("path");
    if wants("paths", "path") {
        if !paths.is_empty() {
            paths_section(&mut out, &paths, &path_filter);
        } else if path_filter.is_empty() {
            empty_section(
                &mut out,
                "Paths",
                &[
                    "paths",
                    "paths_inbound_bytes",
                    "paths_outbound_bytes",
                    "paths_inbound_frames_in_error",
                ],
            );
            empty_section(
                &mut out,
                "Paths (deprecated)",
                &["paths_bytes_received", "paths_bytes_sent", "paths_readers"],
            );
        }
    }
    // forward destinations: the double has none; an explicit type gets the empty section
    if typ == "forward_dests" && !any_filter {
        empty_section(
            &mut out,
            "Forward destinations",
            &["forward_dests", "forward_dests_outbound_bytes"],
        );
    }
    if on("hls") {
        if wants("hls_sessions", "hls_session") && q("hls_session").is_empty() {
            empty_section(
                &mut out,
                "HLS sessions",
                &["hls_sessions", "hls_sessions_outbound_bytes"],
            );
        }
        if wants("hls_muxers", "hls_muxer") && q("hls_muxer").is_empty() {
            empty_section(
                &mut out,
                "HLS muxers",
                &[
                    "hls_muxers",
                    "hls_muxers_outbound_bytes",
                    "hls_muxers_outbound_frames_discarded",
                ],
            );
            empty_section(&mut out, "HLS muxers (deprecated)", &["hls_muxers_bytes_sent"]);
        }
    }
    let (rtsp_on, rtsps_on) = crate::api::rtsp_servers_on(&global);
    for (on, tls, name) in [(rtsp_on, false, "RTSP"), (rtsps_on, true, "RTSPS")] {
        if on {
            rtsp_sections(&mut out, shared, tls, name, &q, &wants);
        }
    }
    for (encrypted, title, prefix, filter) in [
        (false, "RTMP connections", "rtmp_conns", "rtmp_conn"),
        (true, "RTMPS connections", "rtmps_conns", "rtmps_conn"),
    ] {
        if crate::rtmp::enabled(shared, encrypted) && wants(prefix, filter) {
            let items = crate::rtmp::api_list(shared, encrypted);
            conn_sections(&mut out, title, prefix, &items, &q(filter), (CONN_LABELS, RTMP_KEYS));
            let deprecated = format!("{} (deprecated)", title);
            conn_sections(
                &mut out,
                &deprecated,
                prefix,
                &items,
                &q(filter),
                (CONN_LABELS, RTMP_DEPRECATED_KEYS),
            );
        }
    }
    if on_or_default("srt") && wants("srt_conns", "srt_conn") {
        let items: Vec<Value> = shared.srt_conns.lock().unwrap().iter().map(|c| c.json()).collect();
        conn_sections(
            &mut out,
            "SRT connections",
            "srt_conns",
            &items,
            &q("srt_conn"),
            (CONN_LABELS, SRT_KEYS),
        );
    }
    if on("webrtc") && wants("webrtc_sessions", "webrtc_session") && q("webrtc_session").is_empty() {
        empty_section(
            &mut out,
            "WebRTC sessions",
            &[
                "webrtc_sessions",
                "webrtc_sessions_inbound_bytes",
                "webrtc_sessions_inbound_rtp_packets",
                "webrtc_sessions_inbound_rtp_packets_lost",
                "webrtc_sessions_inbound_rtp_packets_jitter",
                "webrtc_sessions_inbound_rtcp_packets",
                "webrtc_sessions_outbound_bytes",
                "webrtc_sessions_outbound_rtp_packets",
                "webrtc_sessions_outbound_rtcp_packets",
                "webrtc_sessions_outbound_frames_discarded",
            ],
        );
        empty_section(
            &mut out,
            "WebRTC sessions (deprecated)",
            &[
                "webrtc_sessions_bytes_received",
                "webrtc_sessions_bytes_sent",
                "webrtc_sessions_rtp_packets_received",
                "webrtc_sessions_rtp_packets_sent",
                "webrtc_sessions_rtp_packets_lost",
                "webrtc_sessions_rtp_packets_jitter",
                "webrtc_sessions_rtcp_packets_received",
                "webrtc_sessions_rtcp_packets_sent",
            ],
        );
    }
    if on("moq") && wants("moq_sessions", "moq_session") && q("moq_session").is_empty() {
        empty_section(
            &mut out,
            "MoQ sessions",
            &[
                "moq_sessions",
                "moq_sessions_inbound_bytes",
                "moq_sessions_outbound_bytes",
            ],
        );
    }
    out
}

/// Labels of the RTMP, RTMPS and SRT connections and the RTSP(S) sessions.
const CONN_LABELS: &[&str] = &["id", "path", "remoteAddr", "state"];
/// An RTSP(S) connection is labelled with its id only.
const RTSP_CONN_LABELS: &[&str] = &["id"];
const RTSP_SESSION_KEYS: &[(&str, &str)] = &[
    ("", ""),
    ("_inbound_bytes", "inboundBytes"),
    ("_inbound_rtp_packets", "inboundRTPPackets"),
    ("_inbound_rtp_packets_lost", "inboundRTPPacketsLost"),
    ("_inbound_rtp_packets_in_error", "inboundRTPPacketsInError"),
    ("_inbound_rtp_packets_jitter", "inboundRTPPacketsJitter"),
    ("_inbound_rtcp_packets", "inboundRTCPPackets"),
    ("_inbound_rtcp_packets_in_error", "inboundRTCPPacketsInError"),
    ("_outbound_bytes", "outboundBytes"),
    ("_outbound_rtp_packets", "outboundRTPPackets"),
    ("_outbound_rtp_packets_reported_lost", "outboundRTPPacketsReportedLost"),
    ("_outbound_rtp_packets_discarded", "outboundRTPPacketsDiscarded"),
    ("_outbound_rtcp_packets", "outboundRTCPPackets"),
];
const RTSP_SESSION_DEPRECATED_KEYS: &[(&str, &str)] = &[
    ("_bytes_received", "bytesReceived"),
    ("_bytes_sent", "bytesSent"),
    ("_rtp_packets_received", "rtpPacketsReceived"),
    ("_rtp_packets_sent", "rtpPacketsSent"),
    ("_rtp_packets_lost", "rtpPacketsLost"),
    ("_rtp_packets_in_error", "rtpPacketsInError"),
    ("_rtp_packets_jitter", "rtpPacketsJitter"),
    ("_rtcp_packets_received", "rtcpPacketsReceived"),
    ("_rtcp_packets_sent", "rtcpPacketsSent"),
    ("_rtcp_packets_in_error", "rtcpPacketsInError"),
];

/// The connection and session sections of the RTSP or RTSPS server (`name`).
fn rtsp_sections(
    out: &mut String,
    shared: &Shared,
    tls: bool,
    name: &str,
    q: &dyn Fn(&str) -> String,
    wants: &dyn Fn(&str, &str) -> bool,
) {
    let lower = name.to_lowercase();
    let (conns, conn_filter) = (format!("{}_conns", lower), format!("{}_conn", lower));
    if wants(&conns, &conn_filter) {
        let items = shared.rtsp.conn_items(tls);
        let id = q(&conn_filter);
        let title = format!("{} connections", name);
        conn_sections(
            out,
            &title,
            &conns,
            &items,
            &id,
            (RTSP_CONN_LABELS, RTMP_KEYS[..3].as_ref()),
        );
        let title = format!("{} (deprecated)", title);
        conn_sections(
            out,
            &title,
            &conns,
            &items,
            &id,
            (RTSP_CONN_LABELS, RTMP_DEPRECATED_KEYS),
        );
    }
    let (sessions, session_filter) = (format!("{}_sessions", lower), format!("{}_session", lower));
    if wants(&sessions, &session_filter) {
        let items = shared.rtsp.session_items(tls);
        let id = q(&session_filter);
        let title = format!("{} sessions", name);
        conn_sections(out, &title, &sessions, &items, &id, (CONN_LABELS, RTSP_SESSION_KEYS));
        let title = format!("{} (deprecated)", title);
        conn_sections(
            out,
            &title,
            &sessions,
            &items,
            &id,
            (CONN_LABELS, RTSP_SESSION_DEPRECATED_KEYS),
        );
    }
}

/// Metrics of an RTMP/RTMPS connection (the first three are also an RTSP connection's): (name suffix, field of the API item).
const RTMP_KEYS: &[(&str, &str)] = &[
    ("", ""),
    ("_inbound_bytes", "inboundBytes"),
    ("_outbound_bytes", "outboundBytes"),
    ("_outbound_frames_discarded", "outboundFramesDiscarded"),
];
const RTMP_DEPRECATED_KEYS: &[(&str, &str)] = &[("_bytes_received", "bytesReceived"), ("_bytes_sent", "bytesSent")];

/// Metrics of an SRT connection, in MediaMTX's order (the floats are written like Go's
/// FormatFloat 'f', -1).
const SRT_KEYS: &[(&str, &str)] = &[
    ("", ""),
    ("_packets_sent", "packetsSent"),
    ("_packets_received", "packetsReceived"),
    ("_packets_sent_unique", "packetsSentUnique"),
    ("_packets_received_unique", "packetsReceivedUnique"),
    ("_packets_send_loss", "packetsSendLoss"),
    ("_packets_received_loss", "packetsReceivedLoss"),
    ("_packets_retrans", "packetsRetrans"),
    ("_packets_received_retrans", "packetsReceivedRetrans"),
    ("_packets_sent_ack", "packetsSentACK"),
    ("_packets_received_ack", "packetsReceivedACK"),
    ("_packets_sent_nak", "packetsSentNAK"),
    ("_packets_received_nak", "packetsReceivedNAK"),
    ("_packets_sent_km", "packetsSentKM"),
    ("_packets_received_km", "packetsReceivedKM"),
    ("_us_snd_duration", "usSndDuration"),
    ("_packets_received_belated", "packetsReceivedBelated"),
    ("_packets_send_drop", "packetsSendDrop"),
    ("_packets_received_drop", "packetsReceivedDrop"),
    ("_packets_received_undecrypt", "packetsReceivedUndecrypt"),
    ("_bytes_sent", "bytesSent"),
    ("_bytes_received", "bytesReceived"),
    ("_bytes_sent_unique", "bytesSentUnique"),
    ("_bytes_received_unique", "bytesReceivedUnique"),
    ("_bytes_received_loss", "bytesReceivedLoss"),
    ("_bytes_retrans", "bytesRetrans"),
    ("_bytes_received_retrans", "bytesReceivedRetrans"),
    ("_bytes_received_belated", "bytesReceivedBelated"),
    ("_bytes_send_drop", "bytesSendDrop"),
    ("_bytes_received_drop", "bytesReceivedDrop"),
    ("_bytes_received_undecrypt", "bytesReceivedUndecrypt"),
    ("_us_packets_send_period", "usPacketsSendPeriod"),
    ("_packets_flow_window", "packetsFlowWindow"),
    ("_packets_flight_size", "packetsFlightSize"),
    ("_ms_rtt", "msRTT"),
    ("_mbps_send_rate", "mbpsSendRate"),
    ("_mbps_receive_rate", "mbpsReceiveRate"),
    ("_mbps_link_capacity", "mbpsLinkCapacity"),
    ("_bytes_avail_send_buf", "bytesAvailSendBuf"),
    ("_bytes_avail_receive_buf", "bytesAvailReceiveBuf"),
    ("_mbps_max_bw", "mbpsMaxBW"),
    ("_bytes_mss", "byteMSS"),
    ("_packets_send_buf", "packetsSendBuf"),
    ("_bytes_send_buf", "bytesSendBuf"),
    ("_ms_send_buf", "msSendBuf"),
    ("_ms_send_tsb_pd_delay", "msSendTsbPdDelay"),
    ("_packets_receive_buf", "packetsReceiveBuf"),
    ("_bytes_receive_buf", "bytesReceiveBuf"),
    ("_ms_receive_buf", "msReceiveBuf"),
    ("_ms_receive_tsb_pd_delay", "msReceiveTsbPdDelay"),
    ("_packets_reorder_tolerance", "packetsReorderTolerance"),
    ("_packets_received_avg_belated_time", "packetsReceivedAvgBelatedTime"),
    ("_packets_send_loss_rate", "packetsSendLossRate"),
    ("_packets_received_loss_rate", "packetsReceivedLossRate"),
    ("_outbound_frames_discarded", "outboundFramesDiscarded"),
];

/// A connection or session section from the API list items, with the given labels; with no items, its zero metrics unless an id is asked for.
/// `("", "")` in `keys` is the connection count itself.
fn conn_sections(
    out: &mut String,
    title: &str,
    prefix: &str,
    items: &[Value],
    id: &str,
    (labels, keys): (&[&str], &[(&str, &str)]),
) {
    if items.is_empty() {
        if id.is_empty() {
            let names: Vec<String> = keys.iter().map(|(k, _)| format!("{}{}", prefix, k)).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            empty_section(out, title, &names);
        }
        return;
    }
    let _ = writeln!(out, "# {}", title);
    for i in items.iter().filter(|i| id.is_empty() || i["id"].as_str() == Some(id)) {
        let label = |k: &str| i[k].as_str().unwrap_or("").to_string();
        let ta = tags(&labels.iter().map(|k| (*k, label(k))).collect());
        for (suffix, field) in keys {
            let value = match (*field, &i[*field]) {
                ("", _) => "1".to_string(),
                (_, Value::Number(n)) if n.is_f64() => n.as_f64().unwrap_or(0.0).to_string(),
                (_, v) => v.as_u64().unwrap_or(0).to_string(),
            };
            let _ = writeln!(out, "{}{}{} {}", prefix, suffix, ta, value);
        }
    }
    out.push('\n');
}

fn paths_section(out: &mut String, paths: &[Value], filter: &str) {
    let selected: Vec<&Value> = paths
        .iter()
        .filter(|p| filter.is_empty() || p["name"].as_str() == Some(filter))
        .collect();
    let labels = |p: &Value| -> BTreeMap<&str, String> {
        let state = if p["ready"].as_bool() == Some(true) {
            "ready"
        } else {
            "notReady"
        };
        BTreeMap::from([
            ("name", p["name"].as_str().unwrap_or("").to_string()),
            ("state", state.to_string()),
        ])
    };
    let num = |p: &Value, k: &str| p[k].as_u64().unwrap_or(0);
    out.push_str("# Paths\n");
    for p in &selected {
        let l = labels(p);
        let ta = tags(&l);
        metric(out, "paths", &ta, 1);
        let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
        for r in p["readers"].as_array().into_iter().flatten() {
            *by_type.entry(r["type"].as_str().unwrap_or("").to_string()).or_default() += 1;
        }
        if by_type.is_empty() {
            by_type.insert(String::new(), 0);
        }
        for (rt, n) in by_type {
            let mut rl = l.clone();
            rl.insert("readerType", rt);
            metric(out, "paths_readers", &tags(&rl), n);
        }
        metric(out, "paths_inbound_bytes", &ta, num(p, "inboundBytes"));
        metric(out, "paths_outbound_bytes", &ta, num(p, "outboundBytes"));
        metric(
            out,
            "paths_inbound_frames_in_error",
            &ta,
            num(p, "inboundFramesInError"),
        );
    }
    out.push('\n');
    out.push_str("# Paths (deprecated)\n");
    for p in &selected {
        let ta = tags(&labels(p));
        metric(out, "paths_bytes_received", &ta, num(p, "bytesReceived"));
        metric(out, "paths_bytes_sent", &ta, num(p, "bytesSent"));
    }
    out.push('\n');
}
