//! Control API v3 (subset used by the camera service) and the test-control surface.

use crate::conf::{self, GLOBAL_FIELDS, PATH_FIELDS};
use crate::core::{self, ApiMode, Shared};
use crate::http::{self, Request, Response};
use crate::recordings;
use serde_json::{json, Map, Value};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub fn bind(port: u16) -> std::io::Result<TcpListener> {
    let l = TcpListener::bind(("127.0.0.1", port))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// The API server (run by servers.rs): on `apiAddress` while `api` is on, HTTPS with
/// `apiEncryption`, closed and recreated as core.go's closeAPI decides: on a change of
/// its own fields (those of an auxiliary HTTP server) or with any other server. The
/// control surface can hold it off (`/control/api-stop`, connections refused).
pub const SERVER: crate::servers::Kind = crate::servers::Kind {
    name: "API",
    settings,
    serve: crate::servers::Serve::HttpConn(api_conn),
    held_off: |st| st.fault.mode == ApiMode::Refuse,
    proxy_protocol: None,
};

/// The fields of the servers MediaMTX closes its API with (closeAPI: closeRTSPServer,
/// closeRTSPSServer, closeRTMP(S)Server, closeHLSServer, closeWebRTCServer,
/// closeSRTServer, closeMoQServer), besides those of the RTSP servers' shared list and
/// of the metrics server, path manager, authentication manager and logger.
const FIELDS_OF_OTHER_SERVERS: [&str; 60] = [
    "rtsp",
    "rtspEncryption",
    "rtspAddress",
    "rtspsAddress",
    "rtspServerKey",
    "rtspServerCert",
    "rtpAddress",
    "rtcpAddress",
    "multicastIPRange",
    "multicastRTPPort",
    "multicastRTCPPort",
    "rtmp",
    "rtmpEncryption",
    "rtmpAddress",
    "rtmpsAddress",
    "rtmpServerKey",
    "rtmpServerCert",
    "rtmpTrustedProxies",
    "hls",
    "hlsAddress",
    "hlsEncryption",
    "hlsServerKey",
    "hlsServerCert",
    "hlsAllowOrigins",
    "hlsTrustedProxies",
    "hlsAlwaysRemux",
    "hlsVariant",
    "hlsSegmentCount",
    "hlsSegmentDuration",
    "hlsPartDuration",
    "hlsSegmentMaxSize",
    "hlsDirectory",
    "hlsMuxerCloseAfter",
    "hlsCDNSecret",
    "webrtc",
    "webrtcAddress",
    "webrtcEncryption",
    "webrtcServerKey",
    "webrtcServerCert",
    "webrtcAllowOrigins",
    "webrtcTrustedProxies",
    "webrtcLocalUDPAddress",
    "webrtcLocalTCPAddress",
    "webrtcIPsFromInterfaces",
    "webrtcIPsFromInterfacesList",
    "webrtcAdditionalHosts",
    "webrtcICEServers2",
    "webrtcSTUNGatherTimeout",
    "webrtcHandshakeTimeout",
    "webrtcTrackGatherTimeout",
    "srt",
    "srtAddress",
    "moq",
    "moqHTTP2Address",
    "moqHTTP3Address",
    "moqQUICAddress",
    "moqServerKey",
    "moqServerCert",
    "moqAllowOrigins",
    "moqTrustedProxies",
];

/// The API's settings: an auxiliary HTTP server's (`api*`, timeouts, authentication,
/// log) and what closes the other servers.
fn settings(g: &Map<String, Value>, _: &str) -> Option<crate::servers::Settings> {
    let mut s = crate::servers::http_settings(g, "api")?;
    s.others.extend(crate::servers::values(g, &FIELDS_OF_OTHER_SERVERS));
    s.others.extend(crate::servers::values(g, &crate::rtsp::SHARED_FIELDS));
    s.others.extend(crate::servers::media_server_dependencies(g));
    Some(s)
}

/// One connection of the API (`peer`: the client, also behind TLS), with the control
/// surface's faults: `close` ends it at once, `refuse` (which also closes the listener)
/// and `hang` before an answer.
fn api_conn(shared: Arc<Shared>, s: TcpStream, peer: std::net::SocketAddr) {
    let Ok(mut w) = s.try_clone() else { return };
    if shared.lock().fault.mode == ApiMode::Close {
        let _ = w.shutdown(Shutdown::Both);
        return;
    }
    let peer = Some(peer);
    let read_timeout = crate::conf::duration_of(&shared.lock().global, "readTimeout");
    let mut conn = crate::http_read::Conn::new(s, read_timeout, crate::http_read::IDLE_TIMEOUT);
    loop {
        let Some(req) = crate::http_read::read_request(&mut conn) else {
            return;
        };
        // fault injection
        let (mode, delay, fail) = {
            let mut st = shared.lock();
            let f = &mut st.fault;
            let mut fail = f.fail500;
            if fail {
                if let Some(n) = f.fail_count.as_mut() {
                    if *n == 0 {
                        fail = false;
                        f.fail500 = false;
                        f.fail_count = None;
                    } else {
                        *n -= 1;
                    }
                }
            }
            (f.mode, f.delay_ms, fail)
        };
        match mode {
            ApiMode::Hang => {
                // never answer; hold the connection until the API is started again
                while shared.lock().fault.mode == ApiMode::Hang && !shared.shutdown.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = w.shutdown(Shutdown::Both);
                return;
            }
            ApiMode::Refuse | ApiMode::Close => {
                let _ = w.shutdown(Shutdown::Both);
                return;
            }
            ApiMode::Up => {}
        }
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        let change = matches!(req.method.as_str(), "POST" | "PATCH" | "DELETE");
        let fail400 = if change && !fail {
            let mut st = shared.lock();
            let f = &mut st.fault;
            let text = f.fail400.as_ref().map(|(t, _)| t.clone());
            if let Some((_, n)) = f.fail400.as_mut() {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    f.fail400 = None;
                }
            }
            text
        } else {
            None
        };
        let mut resp = if fail {
            Response::error(500, "injected failure (mediamtx-double)")
        } else if let Some(text) = fail400 {
            Response::error(400, &text)
        } else if let Some(r) = api_auth(&shared, &req, peer) {
            r
        } else {
            let r = handle_v3(&shared, &req);
            if change && r.code == 400 {
                let error = serde_json::from_slice::<Value>(&r.body)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(String::from))
                    .unwrap_or_default();
                shared.log(&format!("refused {} {}: {}", req.method, req.path, error));
                shared.refused.lock().unwrap().push(json!({
                    "method": req.method,
                    "path": req.path,
                    "body": String::from_utf8_lossy(&req.body_read()),
                    "error": error,
                }));
            }
            r
        };
        crate::servers::add_allowed_origin(&shared, "api", &req, &mut resp);
        if !http::respond(&mut w, &resp, &req) {
            let _ = w.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// API.middlewareAuth (after the CORS preflight, before routing: unknown routes too).
/// Some(response) = refused.
fn api_auth(shared: &Shared, req: &Request, peer: Option<std::net::SocketAddr>) -> Option<Response> {
    if req.method == "OPTIONS" && req.header("Access-Control-Request-Method").is_some() {
        return None;
    }
    let peer = peer?;
    let ip = crate::servers::server_client_ip(shared, req, peer, "api");
    crate::servers::refuse_unauthenticated(shared, req, peer, ip, "api", "", "API")
}

fn param_name(path: &str, prefix: &str) -> Option<Result<String, ()>> {
    let rest = path.strip_prefix(prefix)?;
    // gin wildcard "/*name": the param keeps its leading slash, which MediaMTX strips
    if rest.is_empty() {
        return Some(Err(()));
    }
    Some(Ok(rest.to_string()))
}

fn paginate<T>(items: Vec<T>, req: &Request) -> Result<(usize, usize, Vec<T>), String> {
    // strconv.ParseUint(s, 10, 31)
    fn parse(s: &str) -> Result<usize, String> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(format!("strconv.ParseUint: parsing \"{}\": invalid syntax", s));
        }
        match s.parse::<u64>() {
            Ok(v) if v < (1 << 31) => Ok(v as usize),
            _ => Err(format!("strconv.ParseUint: parsing \"{}\": value out of range", s)),
        }
    }
    let ipp_s = req.query("itemsPerPage").unwrap_or_default();
    let page_s = req.query("page").unwrap_or_default();
    let mut ipp: usize = 100;
    if !ipp_s.is_empty() {
        ipp = parse(&ipp_s)?;
        if ipp == 0 {
            return Err("invalid items per page".into());
        }
    }
    let mut page: usize = 0;
    if !page_s.is_empty() {
        page = parse(&page_s)?;
    }
    let n = items.len();
    if n == 0 {
        return Ok((0, 0, items));
    }
    let page_count = n / ipp + usize::from(n % ipp != 0);
    let min = (page * ipp).min(n);
    let max = ((page + 1) * ipp).min(n);
    let v: Vec<T> = items.into_iter().skip(min).take(max - min).collect();
    Ok((n, page_count, v))
}

pub(crate) fn list_json(req: &Request, items: Vec<Value>) -> Response {
    match paginate(items, req) {
        Ok((n, pc, v)) => Response::json(200, &json!({"itemCount": n, "pageCount": pc, "items": v})),
        Err(e) => Response::error(400, &e),
    }
}

fn global_json(g: &Map<String, Value>) -> Value {
    Value::Object(conf::redact_global(g))
}

pub fn handle_v3(shared: &Arc<Shared>, req: &Request) -> Response {
    let m = req.method.as_str();
    let p = req.path.as_str();
    // middlewarePreflightRequests: only a preflight (with Access-Control-Request-Method);
    // any other OPTIONS goes on to the routes, which have none (gin's 404)
    if m == "OPTIONS" && req.header("Access-Control-Request-Method").is_some() {
        return Response {
            code: 204,
            content_type: "text/plain",
            body: vec![],
            headers: vec![
                (
                    "Access-Control-Allow-Methods",
                    "OPTIONS, GET, POST, PATCH, DELETE".into(),
                ),
                ("Access-Control-Allow-Headers", "Authorization, Content-Type".into()),
            ],
        };
    }
    match (m, p) {
        ("GET", "/v3/info") => {
            let st = shared.lock();
            return Response::json(
                200,
                &json!({"version": core::VERSION, "started": crate::util::rfc3339_nano(st.started)}),
            );
        }
        ("POST", "/v3/auth/jwks/refresh") => {
            crate::jwt::refresh(&shared.jwks);
            return Response::ok();
        }
        ("GET", "/v3/config/global/get") => {
            let st = shared.lock();
            return Response::json(200, &global_json(&st.global));
        }
        ("PATCH", "/v3/config/global/patch") => {
            let sent = match req.config_body().and_then(|b| conf::decode_body(&b, GLOBAL_FIELDS)) {
                Ok(s) => s,
                Err(e) => return Response::error(400, &e),
            };
            let mut st = shared.lock();
            let mut g = st.global.clone();
            conf::merge(&mut g, &sent, GLOBAL_FIELDS);
            let pd_sent = conf::map_deprecated_global(&mut g);
            if let Err(e) = conf::validate_global(&g) {
                return Response::error(400, &e);
            }
            let mut d = st.path_defaults.clone();
            conf::merge(&mut d, &pd_sent, PATH_FIELDS);
            match validate_all(&st, &g, &d, None) {
                Err(e) => return Response::error(400, &e),
                Ok(Some(users)) => {
                    g.insert("authInternalUsers".into(), users);
                }
                Ok(None) => {}
            }
            st.global = g;
            shared.note_rtsp_address(&st.global);
            let old_log = crate::logger::configure(&shared.log_conf, &st.global);
            let mut wait = Vec::new();
            if !pd_sent.is_empty() {
                st.path_defaults = d;
                wait = core::sync_paths(shared, &mut st);
            }
            drop(st);
            crate::servers::sync(shared, old_log);
            crate::procs::wait_pids(shared, &wait, Duration::from_secs(5));
            return Response::ok();
        }
        ("GET", "/v3/config/pathdefaults/get") => {
            let st = shared.lock();
            let mut d = st.path_defaults.clone();
            d.insert("name".into(), json!(""));
            conf::redact_path(&mut d);
            return Response::json(200, &Value::Object(d));
        }
        ("PATCH", "/v3/config/pathdefaults/patch") => {
            let sent = match req.config_body().and_then(|b| conf::decode_body(&b, PATH_FIELDS)) {
                Ok(s) => s,
                Err(e) => return Response::error(400, &e),
            };
            let mut st = shared.lock();
            let mut d = st.path_defaults.clone();
            conf::merge(&mut d, &sent, PATH_FIELDS);
            // every configured path must stay valid
            match validate_all(&st, &st.global, &d, None) {
                Err(e) => return Response::error(400, &e),
                Ok(Some(users)) => {
                    st.global.insert("authInternalUsers".into(), users);
                }
                Ok(None) => {}
            }
            st.path_defaults = d;
            let wait = core::sync_paths(shared, &mut st);
            drop(st);
            crate::procs::wait_pids(shared, &wait, Duration::from_secs(5));
            return Response::ok();
        }
        ("GET", "/v3/config/paths/list") => {
            let st = shared.lock();
            let items: Vec<Value> = st
                .confs
                .keys()
                .filter_map(|k| st.effective(k))
                .map(|mut e| {
                    conf::redact_path(&mut e);
                    Value::Object(e)
                })
                .collect();
            drop(st);
            return list_json(req, items);
        }
        ("GET", "/v3/paths/list") => {
            let st = shared.lock();
            let items: Vec<Value> = st.paths.values().map(core::path_json).collect();
            drop(st);
            return list_json(req, items);
        }
        ("GET", "/v3/paths/forward/list") => return forward_list(shared, req),
        ("GET", "/v3/paths/forward/get") => return forward_get(shared, req),
        ("GET", "/v3/recordings/list") => {
            let st = shared.lock();
            let mut names: Vec<String> = Vec::new();
            for cn in st.confs.keys() {
                let eff = st.effective(cn).unwrap_or_default();
                let fmt = recording_format(shared, &eff, None);
                for (name, _, _) in recordings::find(&fmt) {
                    if st.find_conf(&name).ok().as_deref() == Some(cn.as_str()) && !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
            names.sort();
            let items: Vec<Value> = names
                .iter()
                .map(|n| {
                    let cn = st.find_conf(n).unwrap_or_default();
                    let eff = st.effective(&cn).unwrap_or_default();
                    recording_json(shared, &eff, n)
                })
                .collect();
            drop(st);
            return list_json(req, items);
        }
        ("DELETE", "/v3/recordings/deletesegment") => {
            let path = req.query("path").unwrap_or_default();
            let start_s = req.query("start").unwrap_or_default();
            let Some((tm, _)) = crate::util::parse_rfc3339_tm(&start_s) else {
                return Response::error(
                    400,
                    &format!(
                        "invalid 'start' parameter: parsing time \"{}\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \"{}\" as \"2006\"",
                        start_s, start_s
                    ),
                );
            };
            let st = shared.lock();
            let cn = match st.find_conf(&path) {
                Ok(c) => c,
                Err(e) => return Response::error(400, &e),
            };
            let eff = st.effective(&cn).unwrap_or_default();
            drop(st);
            let fmt = recording_format(shared, &eff, Some(&path));
            // recordstore Path{Start}.Encode: the clock time and offset as written in `start`
            let file = recordings::encode(&fmt, &path, &tm);
            let base = recordings::common_path(&recording_format(shared, &eff, None));
            if !recordings::inside(&base, &fmt) || !recordings::inside(&base, &file) {
                return Response::error(400, "path escapes base directory");
            }
            return match std::fs::remove_file(&file) {
                Ok(()) => Response::ok(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Response::error(400, &format!("remove {}: no such file or directory", file))
                }
                Err(e) => Response::error(400, &format!("remove {}: {}", file, e)),
            };
        }
        _ => {}
    }
    if let Some(r) = rtmp_route(shared, req) {
        return r;
    }
    if let Some(n) = param_name(p, "/v3/config/paths/") {
        let rest = &p["/v3/config/paths/".len()..];
        let (op, _) = rest.split_once('/').unwrap_or((rest, ""));
        let name = n.ok().and_then(|s| s.split_once('/').map(|(_, n)| n.to_string()));
        let expected = match op {
            "get" => "GET",
            "add" | "replace" => "POST",
            "patch" => "PATCH",
            "delete" => "DELETE",
            _ => return Response::not_found_text(),
        };
        if m != expected {
            return Response::not_found_text();
        }
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            if rest.contains('/') {
                return Response::error(400, "invalid name");
            }
            return Response::not_found_text();
        };
        return config_path_op(shared, req, op, &name);
    }
    if m == "GET" {
        if let Some(rest) = p.strip_prefix("/v3/paths/get/") {
            if rest.is_empty() {
                return Response::error(400, "invalid name");
            }
            let st = shared.lock();
            return match st.paths.get(rest) {
                Some(pp) => Response::json(200, &core::path_json(pp)),
                None => Response::error(404, "path not found"),
            };
        }
        if let Some(rest) = p.strip_prefix("/v3/recordings/get/") {
            if rest.is_empty() {
                return Response::error(400, "invalid name");
            }
            let st = shared.lock();
            let cn = match st.find_conf(rest) {
                Ok(c) => c,
                Err(e) => return Response::error(400, &e),
            };
            let eff = st.effective(&cn).unwrap_or_default();
            drop(st);
            return Response::json(200, &recording_json(shared, &eff, rest));
        }
    }
    if let Some(r) = crate::sessions::handle(shared, req) {
        return r;
    }
    if let Some(r) = srt_conns(shared, req) {
        return r;
    }
    // the RTSP / RTSPS routes exist only while that server runs (core.go)
    let (rtsp_on, rtsps_on) = rtsp_servers_on(&shared.lock().global);
    for (on, tls) in [(rtsp_on, false), (rtsps_on, true)] {
        if on {
            if let Some(r) = crate::rtsp_registry::handle(&shared.rtsp, req, tls) {
                return r;
            }
        }
    }
    Response::not_found_text()
}

/// onForwardList: `path` required (400 `invalid path`), 404 `path not found`.
fn forward_list(shared: &Arc<Shared>, req: &Request) -> Response {
    let name = req.query("path").unwrap_or_default();
    if name.is_empty() {
        return Response::error(400, "invalid path");
    }
    let st = shared.lock();
    let Some(p) = st.paths.get(&name) else {
        return Response::error(404, "path not found");
    };
    let items: Vec<Value> = p.forward.iter().map(crate::forward::item_json).collect();
    drop(st);
    list_json(req, items)
}

/// onForwardGet: `id` parsed first (uuid.Parse's errors), then `path`.
fn forward_get(shared: &Arc<Shared>, req: &Request) -> Response {
    let id = match crate::util::parse_uuid(&req.query("id").unwrap_or_default()) {
        Ok(id) => id,
        Err(e) => return Response::error(400, &e),
    };
    let name = req.query("path").unwrap_or_default();
    if name.is_empty() {
        return Response::error(400, "invalid path");
    }
    let st = shared.lock();
    let Some(p) = st.paths.get(&name) else {
        return Response::error(404, "path not found");
    };
    match p
        .forward
        .iter()
        .find(|d| crate::util::parse_uuid(&d.id).as_ref() == Ok(&id))
    {
        Some(d) => Response::json(200, &crate::forward::item_json(d)),
        None => Response::error(404, "forward destination not found"),
    }
}

/// `/v3/srtconns/list|get/{id}|kick/{id}` (api_srt.go); absent when `srt` is off.
fn srt_conns(shared: &Arc<Shared>, req: &Request) -> Option<Response> {
    let on = shared
        .lock()
        .global
        .get("srt")
        .and_then(|v| v.as_bool())
        .unwrap_or(true);
    let rest = req.path.strip_prefix("/v3/srtconns/").filter(|_| on)?;
    if (req.method.as_str(), rest) == ("GET", "list") {
        let items = shared.srt_conns.lock().unwrap().iter().map(|c| c.json()).collect();
        return Some(list_json(req, items));
    }
    let (op, id) = rest.split_once('/')?;
    if id.is_empty()
        || id.contains('/')
        || (op, req.method.as_str()) != ("get", "GET") && (op, req.method.as_str()) != ("kick", "POST")
    {
        return None;
    }
    let id = match crate::util::parse_uuid(id) {
        Ok(id) => id,
        Err(e) => return Some(Response::error(400, &e)),
    };
    let Some(c) = crate::srt::find(shared, &id) else {
        return Some(Response::error(404, "connection not found"));
    };
    if op == "get" {
        return Some(Response::json(200, &c.json()));
    }
    c.kick.store(true, std::sync::atomic::Ordering::SeqCst);
    Some(Response::ok())
}

/// `/v3/rtmpconns/list|get/{id}|kick/{id}` and `/v3/rtmpsconns/...`, registered only
/// while that server runs.
fn rtmp_route(shared: &Arc<Shared>, req: &Request) -> Option<Response> {
    let (rest, enc) = match req.path.strip_prefix("/v3/rtmpconns/") {
        Some(r) => (r, false),
        None => (req.path.strip_prefix("/v3/rtmpsconns/")?, true),
    };
    if !crate::rtmp::enabled(shared, enc) {
        return None;
    }
    let id = |pre: &str| rest.strip_prefix(pre).filter(|id| !id.is_empty() && !id.contains('/'));
    let answer = |r: Result<Value, (u16, String)>| match r {
        Ok(v) => Response::json(200, &v),
        Err((code, e)) => Response::error(code, &e),
    };
    match req.method.as_str() {
        "GET" if rest == "list" => Some(list_json(req, crate::rtmp::api_list(shared, enc))),
        "GET" => id("get/").map(|id| answer(crate::rtmp::api_get(shared, enc, id))),
        "POST" => {
            id("kick/").map(|id| answer(crate::rtmp::api_kick(shared, enc, id).map(|()| json!({"status": "ok"}))))
        }
        _ => None,
    }
}

/// Whether MediaMTX runs its RTSP and RTSPS servers: `rtsp` and `rtspEncryption`
/// (no: RTSP only, strict: RTSPS only, optional: both).
pub fn rtsp_servers_on(g: &Map<String, Value>) -> (bool, bool) {
    let on = g.get("rtsp").and_then(|v| v.as_bool()).unwrap_or(true);
    let enc = g.get("rtspEncryption").and_then(|v| v.as_str()).unwrap_or("no");
    (on && enc != "strict", on && enc != "no")
}

/// The `pathDefaults` and `paths` of a configuration file, validated like conf.Load.
pub fn load_conf_file(st: &mut core::State, defaults: Option<&Value>, paths: &[(String, Value)]) -> Result<(), String> {
    if let Some(d) = defaults {
        let sent = conf::decode_body(d.to_string().as_bytes(), PATH_FIELDS)?;
        conf::merge(&mut st.path_defaults, &sent, PATH_FIELDS);
    }
    for (name, v) in paths {
        let sent = conf::decode_body(v.to_string().as_bytes(), PATH_FIELDS)?;
        st.confs.insert(name.clone(), sent);
    }
    if let Some(users) = validate_all(st, &st.global, &st.path_defaults, None)? {
        st.global.insert("authInternalUsers".into(), users);
    }
    Ok(())
}

/// Conf.Validate() over every path configuration (sorted by name, like MediaMTX), with
/// `defaults` as path defaults and `change` = (name, new optional values or None = deleted).
/// In legacy credentials mode returns the internal users Validate() puts in their place
/// (kept in the configuration, so that the next change is refused like MediaMTX does).
fn validate_all(
    st: &core::State,
    global: &Map<String, Value>,
    defaults: &Map<String, Value>,
    change: Option<(&str, Option<&Map<String, Value>>)>,
) -> Result<Option<Value>, String> {
    let mut confs = st.confs.clone();
    if let Some((name, opt)) = change {
        match opt {
            Some(o) => {
                confs.insert(name.to_string(), o.clone());
            }
            None => {
                confs.remove(name);
            }
        }
    }
    // legacy credentials (readUser, ... on paths) turn into internal users
    let legacy = crate::auth::has_legacy(defaults) || confs.values().any(crate::auth::has_legacy);
    if legacy && global.get("authInternalUsers") != Some(&crate::auth::default_users()) {
        return Err("authInternalUsers and legacy credentials \
                    (publishUser, publishPass, publishIPs, readUser, readPass, readIPs) cannot be used together"
            .into());
    }
    conf::validate_conf_names(confs.keys())?;
    let mut effs = Vec::new();
    for (name, opt) in confs.iter() {
        let mut eff = defaults.clone();
        conf::merge(&mut eff, opt, PATH_FIELDS);
        conf::map_deprecated_path(&mut eff);
        effs.push((name.clone(), eff));
    }
    let playback = global.get("playback") == Some(&Value::Bool(true));
    for (name, eff) in &effs {
        conf::validate_path(name, eff, playback, &effs)?;
    }
    Ok(legacy.then(|| crate::auth::legacy_users(effs.iter().map(|(n, e)| (n, e)))))
}

pub(crate) fn recording_format(shared: &Shared, eff: &Map<String, Value>, name: Option<&str>) -> String {
    let rp = eff.get("recordPath").and_then(|v| v.as_str()).unwrap_or("").to_string();
    let fmtname = eff.get("recordFormat").and_then(|v| v.as_str()).unwrap_or("fmp4");
    let mut f = format!("{}{}", rp, recordings::ext_for(fmtname));
    if let Some(n) = name {
        f = f.replace("%path", n);
    }
    recordings::absolute(&shared.dir, &f)
}

fn recording_json(shared: &Shared, eff: &Map<String, Value>, name: &str) -> Value {
    let fmt = recording_format(shared, eff, Some(name));
    let segs: Vec<Value> = recordings::find(&fmt)
        .into_iter()
        .map(|(_, s, _)| json!({"start": s}))
        .collect();
    json!({"name": name, "segments": segs})
}

fn config_path_op(shared: &Arc<Shared>, req: &Request, op: &str, name: &str) -> Response {
    if op == "get" {
        let st = shared.lock();
        return match st.effective(name) {
            Some(mut e) => {
                conf::redact_path(&mut e);
                Response::json(200, &Value::Object(e))
            }
            None => Response::error(404, "path configuration not found"),
        };
    }
    let sent = if op == "delete" {
        Map::new()
    } else {
        match req.config_body().and_then(|b| conf::decode_body(&b, PATH_FIELDS)) {
            Ok(s) => s,
            Err(e) => return Response::error(400, &e),
        }
    };
    let mut st = shared.lock();
    let new_opt: Option<Map<String, Value>> = match op {
        "add" => {
            if st.confs.contains_key(name) {
                return Response::error(400, "path already exists");
            }
            Some(sent)
        }
        "replace" => Some(sent),
        "patch" => match st.confs.get(name) {
            None => return Response::error(404, "path not found"),
            Some(old) => {
                let mut m = old.clone();
                for (k, v) in sent {
                    m.insert(k, v);
                }
                Some(m)
            }
        },
        "delete" => {
            if !st.confs.contains_key(name) {
                return Response::error(404, "path not found");
            }
            None
        }
        _ => return Response::not_found_text(),
    };
    match validate_all(&st, &st.global, &st.path_defaults, Some((name, new_opt.as_ref()))) {
        Err(e) => return Response::error(400, &e),
        Ok(Some(users)) => {
            st.global.insert("authInternalUsers".into(), users);
        }
        Ok(None) => {}
    }
    match new_opt {
        Some(o) => {
            st.confs.insert(name.to_string(), o);
        }
        None => {
            st.confs.remove(name);
        }
    }
    let wait = core::sync_paths(shared, &mut st);
    // record toggles are applied by the supervisor; stop recorders now so that a
    // `record: false` patch returns with the last segment closed.
    let mut wait2 = wait;
    if let Some(p) = st.paths.get_mut(name) {
        wait2.extend(core::close_unwanted_recorder(shared, p));
    }
    drop(st);
    crate::procs::wait_pids(shared, &wait2, Duration::from_secs(5));
    Response::ok()
}

// ---------------------------------------------------------------- control surface

pub fn serve_control(shared: Arc<Shared>, listener: TcpListener) {
    while !shared.shutdown.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).ok();
                let sh = shared.clone();
                std::thread::spawn(move || control_conn(sh, s));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn control_conn(shared: Arc<Shared>, s: TcpStream) {
    let mut w = match s.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    // the double's own surface: no deadlines
    let mut conn = crate::http_read::Conn::new(s, Duration::MAX, Duration::MAX);
    while let Some(req) = crate::http_read::read_request(&mut conn) {
        let resp = handle_control(&shared, &req);
        if !http::respond(&mut w, &resp, &req) {
            return;
        }
    }
}

pub fn handle_control(shared: &Arc<Shared>, req: &Request) -> Response {
    let q = |k: &str| req.query(k).unwrap_or_default();
    match req.path.as_str() {
        "/control/api-stop" => {
            let mode = match q("mode").as_str() {
                "" | "refuse" => ApiMode::Refuse,
                "hang" => ApiMode::Hang,
                "close" => ApiMode::Close,
                other => return Response::error(400, &format!("unknown mode '{}'", other)),
            };
            shared.lock().fault.mode = mode;
            apply_api_mode(shared);
            Response::ok()
        }
        "/control/api-start" => {
            shared.lock().fault.mode = ApiMode::Up;
            apply_api_mode(shared);
            Response::ok()
        }
        "/control/delay" => {
            let ms: u64 = match q("ms").parse() {
                Ok(v) => v,
                Err(_) => return Response::error(400, "ms must be an integer"),
            };
            shared.lock().fault.delay_ms = ms;
            Response::ok()
        }
        "/control/fail500" => {
            let on = matches!(q("on").as_str(), "1" | "true" | "yes" | "");
            let count = q("count").parse::<u64>().ok();
            let mut st = shared.lock();
            st.fault.fail500 = on;
            st.fault.fail_count = if on { count } else { None };
            Response::ok()
        }
        "/control/fail400" => {
            let count = q("count").parse::<u64>().unwrap_or(1);
            let text = q("error");
            let text = if text.is_empty() {
                "injected refusal (mediamtx-double)".to_string()
            } else {
                text
            };
            shared.lock().fault.fail400 = if count == 0 { None } else { Some((text, count)) };
            Response::ok()
        }
        "/control/refused" => {
            let v = shared.refused.lock().unwrap().clone();
            Response::json(200, &json!({ "refused": v }))
        }
        "/control/reset-faults" => {
            let mut st = shared.lock();
            st.fault = core::Fault {
                mode: ApiMode::Up,
                delay_ms: 0,
                fail500: false,
                fail_count: None,
                fail400: None,
            };
            drop(st);
            apply_api_mode(shared);
            Response::ok()
        }
        "/control/restart" => {
            let down_ms: u64 = q("down_ms").parse().unwrap_or(0);
            restart(shared, down_ms);
            Response::ok()
        }
        "/control/drop-publisher" => {
            let name = q("path");
            let mut st = shared.lock();
            let Some(p) = st.paths.get_mut(&name) else {
                return Response::error(404, "path not found");
            };
            let mut dropped = false;
            if let Some(pb) = &p.publisher {
                let _ = pb.conn.shutdown(Shutdown::Both);
                dropped = true;
            }
            if let Some(pid) = p.puller.pid {
                crate::procs::kill_group(pid);
                dropped = true;
            }
            if !dropped {
                return Response::error(400, "path has no publisher");
            }
            Response::ok()
        }
        "/control/status" => {
            let st = shared.lock();
            let children: Vec<Value> = shared
                .children
                .lock()
                .unwrap()
                .iter()
                .map(|(pid, (k, path))| json!({"pid": pid, "kind": format!("{:?}", k), "path": path}))
                .collect();
            let paths: Vec<Value> = st
                .paths
                .values()
                .map(|p| {
                    json!({
                        "name": p.name,
                        "demand": p.demand,
                        "onDemandActive": p.ondemand.active,
                        "onDemandPid": p.ondemand.pid,
                        "pullerPid": p.puller.pid,
                        "recorderPid": p.recorder.pid,
                    })
                })
                .collect();
            Response::json(
                200,
                &json!({
                    "apiMode": format!("{:?}", st.fault.mode),
                    "delayMs": st.fault.delay_ms,
                    "fail500": st.fault.fail500,
                    "started": crate::util::rfc3339_nano(st.started),
                    "refused": shared.refused.lock().unwrap().clone(),
                    "children": children,
                    "paths": paths,
                }),
            )
        }
        _ => Response::not_found_text(),
    }
}

/// Simulated MediaMTX restart: every child stopped, every connection dropped,
/// configuration back to the initial one (API changes were RAM-only), new `started`.
pub fn restart(shared: &Arc<Shared>, down_ms: u64) {
    let prev_mode;
    {
        let mut st = shared.lock();
        prev_mode = st.fault.mode;
        if down_ms > 0 {
            st.fault.mode = ApiMode::Refuse;
        }
        let names: Vec<String> = st.paths.keys().cloned().collect();
        for n in names {
            if let Some(mut p) = st.paths.remove(&n) {
                core::destroy_path(shared, &mut p);
            }
        }
        shared.cv.notify_all();
    }
    if down_ms > 0 {
        apply_api_mode(shared);
    }
    for (_, c) in shared.conns.lock().unwrap().drain() {
        let _ = c.shutdown(Shutdown::Both);
    }
    crate::srt::kick_all(shared);
    crate::procs::stop_all(shared, Duration::from_secs(5));
    if down_ms > 0 {
        std::thread::sleep(Duration::from_millis(down_ms));
    }
    let mut st = shared.lock();
    let fault = std::mem::replace(
        &mut st.fault,
        core::Fault {
            mode: ApiMode::Up,
            delay_ms: 0,
            fail500: false,
            fail_count: None,
            fail400: None,
        },
    );
    *st = core::initial_state(
        shared.api_port,
        shared.rtsp_port,
        shared.srt_port,
        shared.rtmp_ports,
        shared.all_others,
    );
    // back to the start's global configuration, the double's own listeners included
    st.global = shared.initial_global.clone();
    shared.note_rtsp_address(&st.global);
    let old_log = crate::logger::configure(&shared.log_conf, &st.global);
    // keep injected faults other than the restart's own downtime
    st.fault = fault;
    st.fault.mode = if down_ms > 0 { prev_mode } else { st.fault.mode };
    core::sync_paths(shared, &mut st);
    drop(st);
    crate::servers::sync(shared, old_log);
}

/// The API listener follows the control surface's mode at once: closed while refused
/// (its connections too), open again after.
fn apply_api_mode(shared: &Arc<Shared>) {
    let log = shared.log_conf.lock().unwrap().clone();
    crate::servers::sync(shared, log);
}
