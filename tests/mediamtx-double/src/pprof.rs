//! pprof server (MediaMTX internal/pprof + gin-contrib/pprof routes): authentication
//! with the `pprof` action before routing, `/debug/pprof/` index. The profiles are Go
//! runtime data the double has no counterpart for: their routes answer 501.

use crate::core::Shared;
use crate::http::{Request, Response};
use std::net::SocketAddr;
use std::sync::Arc;

/// gin-contrib/pprof's routes under /debug/pprof (GET; `symbol` also POST).
const PROFILES: &[&str] = &[
    "cmdline",
    "profile",
    "symbol",
    "trace",
    "allocs",
    "block",
    "goroutine",
    "heap",
    "mutex",
    "threadcreate",
];

pub fn handle(shared: &Arc<Shared>, req: &Request, peer: SocketAddr) -> Response {
    if let Some(r) = crate::servers::check_auth(shared, req, peer, "pprof", "") {
        return r;
    }
    let m = req.method.as_str();
    let Some(rest) = req.path.strip_prefix("/debug/pprof/") else {
        return Response::not_found_text();
    };
    if rest.is_empty() && m == "GET" {
        let mut body = String::from(
            "<html><head><title>/debug/pprof/</title></head><body>\n/debug/pprof/\n\
             <p>mediamtx-double: Go runtime profiles are not available (the double is not a Go program).</p>\n\
             Types of profiles available:\n<table>\n",
        );
        for p in PROFILES {
            body.push_str(&format!("<tr><td>0</td><td><a href=\"{0}\">{0}</a></td></tr>\n", p));
        }
        body.push_str("</table>\n</body></html>\n");
        return Response {
            code: 200,
            content_type: "text/html; charset=utf-8",
            body: body.into_bytes(),
            headers: Vec::new(),
        };
    }
    if PROFILES.contains(&rest) && (m == "GET" || (m == "POST" && rest == "symbol")) {
        return Response {
            code: 501,
            content_type: "text/plain; charset=utf-8",
            body: b"mediamtx-double: Go runtime profiles are not available\n".to_vec(),
            headers: Vec::new(),
        };
    }
    Response::not_found_text()
}
