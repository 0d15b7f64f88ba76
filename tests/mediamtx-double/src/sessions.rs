//! `/v3/hlsmuxers`, `/v3/hlssessions`, `/v3/webrtcsessions`, `/v3/moqsessions`: the
//! double serves no HLS, WebRTC or MoQ, so while their server is enabled (`hls`,
//! `webrtc`, `moq`, all on by default) the lists are empty and every get/kick answers
//! MediaMTX's `not found` error; while disabled the routes do not exist (404 page not
//! found), as MediaMTX registers them only for running servers.

use crate::core::Shared;
use crate::http::{Request, Response};
use serde_json::json;

/// (global switch, route prefix, not-found error of get/kick by id)
const SERVERS: &[(&str, &str, &str)] = &[
    ("hls", "/v3/hlssessions/", "session not found"),
    ("webrtc", "/v3/webrtcsessions/", "session not found"),
    ("moq", "/v3/moqsessions/", "session not found"),
];

/// Some(response) when the request is one of these routes and its server is enabled.
pub fn handle(shared: &Shared, req: &Request) -> Option<Response> {
    let m = req.method.as_str();
    let p = req.path.as_str();
    let on = |k: &str| shared.lock().global.get(k).and_then(|v| v.as_bool()) == Some(true);
    if let Some(rest) = p.strip_prefix("/v3/hlsmuxers/") {
        if !on("hls") || m != "GET" {
            return None;
        }
        if rest == "list" {
            return Some(empty_list(req));
        }
        // gin "/get/*name"; MediaMTX strips the leading slash, an empty name is invalid
        let name = rest.strip_prefix("get")?;
        return Some(match name.strip_prefix('/') {
            Some(n) if !n.is_empty() => Response::error(404, "muxer not found"),
            _ if name.is_empty() => return None,
            _ => Response::error(400, "invalid name"),
        });
    }
    for (switch, prefix, not_found) in SERVERS {
        let Some(rest) = p.strip_prefix(prefix) else { continue };
        if !on(switch) {
            return None;
        }
        if rest == "list" {
            return (m == "GET").then(|| empty_list(req));
        }
        let (op, id) = rest.split_once('/')?;
        // gin ":id" matches one non-empty segment
        if id.is_empty() || id.contains('/') {
            return None;
        }
        let method_ok = matches!((op, m), ("get", "GET") | ("kick", "POST"));
        if !method_ok {
            return None;
        }
        return Some(match uuid_check(id) {
            Err(e) => Response::error(400, &e),
            Ok(()) => Response::error(404, not_found),
        });
    }
    None
}

fn empty_list(req: &Request) -> Response {
    // paginate still parses its parameters on an empty list
    for k in ["itemsPerPage", "page"] {
        let v = req.query(k).unwrap_or_default();
        if v.is_empty() {
            continue;
        }
        if !v.bytes().all(|c| c.is_ascii_digit()) {
            return Response::error(400, &format!("strconv.ParseUint: parsing \"{}\": invalid syntax", v));
        }
        match v.parse::<u64>() {
            Ok(n) if n < (1 << 31) => {
                if k == "itemsPerPage" && n == 0 {
                    return Response::error(400, "invalid items per page");
                }
            }
            _ => {
                return Response::error(
                    400,
                    &format!("strconv.ParseUint: parsing \"{}\": value out of range", v),
                )
            }
        }
    }
    Response::json(200, &json!({"itemCount": 0, "pageCount": 0, "items": []}))
}

/// google/uuid Parse's checks and error texts.
fn uuid_check(s: &str) -> Result<(), String> {
    crate::util::parse_uuid(s).map(|_| ())
}
