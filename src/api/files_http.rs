//! `GET|HEAD /files/recordings/<name>` and `/files/snapshots/<name>` (api.md §8): bearer or
//! `?token=` authentication through the same verification as `authenticate`, file lookup
//! through `storage::files` (the same rules as every JSON-RPC file method), single-range
//! requests, ETag/If-None-Match, and bodies streamed from disk in chunks on the blocking
//! pool.

use super::auth::{verify_credential, CredentialError, Role};
use super::http::{reason_phrase, write_response, RequestHead, Response};
use super::AppState;
use crate::error::ServiceError;
use crate::storage::files::{self, Kind};
use futures_lite::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::io::{self, Seek, SeekFrom};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

/// Minimum role for downloads (api.md §8: viewer or above). A valid credential always
/// carries at least viewer; a genuine token carrying any other role gets 403.
pub const DOWNLOAD_MIN_ROLE: Role = Role::Viewer;

pub const PREFIX: &str = "/files/";
const CHUNK: usize = 64 * 1024;

pub fn is_files_path(path: &str) -> bool {
    path.starts_with(PREFIX)
}

/// What a `Range` header asks for, for a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// No usable range (absent, other unit, several ranges, malformed): send everything.
    Full,
    /// Inclusive byte positions.
    Partial(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// Parses one `bytes=` range (RFC 9110 §14). Malformed headers and multi-range requests are
/// ignored (the whole file is sent), as the RFC allows.
pub fn parse_range(header: &str, size: u64) -> RangeSpec {
    let h = header.trim();
    let Some(unit_end) = h.find('=') else {
        return RangeSpec::Full;
    };
    if !h[..unit_end].trim().eq_ignore_ascii_case("bytes") {
        return RangeSpec::Full;
    }
    let spec = h[unit_end + 1..].trim();
    if spec.contains(',') {
        return RangeSpec::Full;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeSpec::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match (a.is_empty(), b.is_empty()) {
        (true, true) => RangeSpec::Full,
        (true, false) => match num(b) {
            None => RangeSpec::Full,
            Some(0) => RangeSpec::Unsatisfiable,
            Some(_) if size == 0 => RangeSpec::Unsatisfiable,
            Some(n) => RangeSpec::Partial(size - n.min(size), size - 1),
        },
        (false, _) => {
            let Some(start) = num(a) else {
                return RangeSpec::Full;
            };
            let end = if b.is_empty() {
                None
            } else {
                match num(b) {
                    Some(e) if e >= start => Some(e),
                    _ => return RangeSpec::Full,
                }
            };
            if start >= size {
                return RangeSpec::Unsatisfiable;
            }
            RangeSpec::Partial(start, end.map_or(size - 1, |e| e.min(size - 1)))
        }
    }
}

/// `"<size>-<mtime ns>"` in hex: changes whenever the file is rewritten or grows.
pub fn etag(size: u64, modified: SystemTime) -> String {
    let ns = modified
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("\"{size:x}-{ns:x}\"")
}

/// `If-None-Match` against our (strong) tag; weak comparison as RFC 9110 requires.
pub fn none_match(header: &str, tag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == tag)
}

fn http_date(t: SystemTime) -> String {
    use time::macros::format_description;
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|d| {
            d.format(format_description!(
                "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
            ))
            .ok()
        })
        .unwrap_or_default()
}

fn bearer(head: &RequestHead) -> Option<String> {
    if let Some(v) = head.header("authorization") {
        let v = v.trim();
        let (scheme, rest) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| rest.trim().to_string())
            .filter(|t| !t.is_empty());
    }
    head.query
        .as_deref()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .and_then(files::percent_decode)
        .filter(|t| !t.is_empty())
}

fn unauthorized(details: &str) -> Response {
    Response::error(401, "unauthorized", details).header("WWW-Authenticate", "Bearer realm=\"camera-service\"")
}

/// A refused credential counts against the same per-address budget as `authenticate`; over
/// it the answer is 429 instead of `normal` (a valid credential is never refused for it).
fn failed(state: &AppState, peer: IpAddr, why: &str, normal: Response) -> Response {
    if let Err(wait) = state.auth_failures.record_failure(peer, std::time::Instant::now()) {
        log::warn!("file download from {peer} refused: too many failed attempts in the last minute");
        return Response::error(
            429,
            "auth_rate_limited",
            "too many failed authentication attempts from this address",
        )
        .header("Retry-After", wait.as_secs().max(1).to_string());
    }
    log::info!("file download from {peer} refused: {why}");
    normal
}

enum Prepared {
    Reply(Response),
    File { opened: files::Opened, name: String },
}

async fn prepare(state: &Arc<AppState>, head: &RequestHead, peer: IpAddr) -> Prepared {
    if head.method != "GET" && head.method != "HEAD" {
        return Prepared::Reply(
            Response::error(405, "method_not_allowed", "only GET and HEAD are served").header("Allow", "GET, HEAD"),
        );
    }
    let rest = &head.path[PREFIX.len()..];
    let Some((segment, raw)) = rest.split_once('/') else {
        return Prepared::Reply(Response::error(404, "not_found", "no such resource"));
    };
    let Some(kind) = Kind::from_url_segment(segment) else {
        return Prepared::Reply(Response::error(404, "not_found", "no such resource"));
    };
    // Credentials first: nothing about files is revealed to anonymous clients.
    let Some(token) = bearer(head) else {
        return Prepared::Reply(unauthorized("send Authorization: Bearer <JWT or API key>, or ?token="));
    };
    let st = state.clone();
    let now = crate::clock::unix_now();
    let identity = match blocking::unblock(move || verify_credential(&st.jwt, &st.keys, &token, now)).await {
        Ok(i) => i,
        // Failed credentials count against the same per-address budget as `authenticate`;
        // over it the answer is 429 (a valid credential is never refused for it).
        Err(CredentialError::Rejected(why)) => return Prepared::Reply(failed(state, peer, why, unauthorized(why))),
        Err(CredentialError::Forbidden(why)) => {
            return Prepared::Reply(failed(state, peer, why, Response::error(403, "insufficient_role", why)))
        }
        Err(CredentialError::Store(e)) => {
            log::error!("file download: API key store: {e}");
            return Prepared::Reply(Response::error(
                500,
                "internal_error",
                "unexpected server error; it has been logged",
            ));
        }
    };
    if identity.role < DOWNLOAD_MIN_ROLE {
        return Prepared::Reply(Response::error(
            403,
            "insufficient_role",
            "downloads need role viewer or above",
        ));
    }
    // The name is percent-decoded exactly once, then validated like any JSON-RPC name.
    if raw.is_empty() || raw.contains('/') {
        return Prepared::Reply(Response::error(
            400,
            "invalid_filename",
            "the file name must be a bare name",
        ));
    }
    let Some(name) = files::percent_decode(raw) else {
        return Prepared::Reply(Response::error(400, "invalid_filename", "malformed percent-encoding"));
    };
    if let Err(ServiceError::InvalidParam { details, .. }) = files::validate_name(&name) {
        return Prepared::Reply(Response::error(400, "invalid_filename", &details));
    }
    match state.controller.open_download(kind, name.clone()).await {
        Ok(opened) => Prepared::File { opened, name },
        Err(ServiceError::NotFound { .. }) => Prepared::Reply(Response::error(404, "not_found", "no such file")),
        Err(ServiceError::InvalidParam { details, .. }) => {
            Prepared::Reply(Response::error(400, "invalid_filename", &details))
        }
        Err(e) => {
            log::error!("file download failed: {e}");
            Prepared::Reply(Response::error(
                500,
                "internal_error",
                "unexpected server error; it has been logged",
            ))
        }
    }
}

/// Answers one request under `/files/`; returns whether the connection may be kept.
pub async fn serve<S: AsyncWrite + Unpin>(
    state: &Arc<AppState>,
    head: &RequestHead,
    peer: IpAddr,
    stream: &mut S,
    keep_alive: bool,
) -> io::Result<bool> {
    let head_only = head.method == "HEAD";
    let (opened, name) = match prepare(state, head, peer).await {
        Prepared::Reply(resp) => {
            write_response(stream, &resp, head_only, keep_alive).await?;
            return Ok(keep_alive);
        }
        Prepared::File { opened, name } => (opened, name),
    };
    let size = opened.meta.len();
    let modified = opened.meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let tag = etag(size, modified);
    let mut headers: Vec<(&str, String)> = vec![
        ("Accept-Ranges", "bytes".into()),
        ("ETag", tag.clone()),
        ("Last-Modified", http_date(modified)),
        ("Cache-Control", "private, no-cache".into()),
    ];
    let (status, start, len) = if head.header("if-none-match").is_some_and(|v| none_match(v, &tag)) {
        (304, 0, 0)
    } else {
        let range = match head.header("range") {
            // If-Range: the range applies only while the client's copy is current.
            Some(r) if head.header("if-range").map_or(true, |ir| ir.trim() == tag) => parse_range(r, size),
            _ => RangeSpec::Full,
        };
        match range {
            RangeSpec::Full => (200, 0, size),
            RangeSpec::Partial(a, b) => {
                headers.push(("Content-Range", format!("bytes {a}-{b}/{size}")));
                (206, a, b - a + 1)
            }
            RangeSpec::Unsatisfiable => {
                let resp = Response::error(416, "range_not_satisfiable", "the requested range is beyond the file")
                    .header("Content-Range", format!("bytes */{size}"))
                    .header("Accept-Ranges", "bytes");
                write_response(stream, &resp, head_only, keep_alive).await?;
                return Ok(keep_alive);
            }
        }
    };
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    if status != 304 {
        out.push_str(&format!(
            "Content-Type: {}\r\nContent-Length: {len}\r\n",
            files::content_type(&name)
        ));
    }
    for (k, v) in &headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    stream.write_all(out.as_bytes()).await?;
    if head_only || status == 304 || len == 0 {
        stream.flush().await?;
        return Ok(keep_alive);
    }
    let mut file = opened.file;
    file.seek(SeekFrom::Start(start))?;
    let reader = blocking::Unblock::with_capacity(CHUNK, file);
    let sent = futures_lite::io::copy(reader.take(len), &mut *stream).await?;
    stream.flush().await?;
    if sent != len {
        // The file shrank while being sent: the promised length cannot be honoured, so the
        // connection must close for the client to notice.
        log::warn!("download of {name} ended early ({sent} of {len} bytes)");
        return Ok(false);
    }
    Ok(keep_alive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeSpec::*;
        let n = 1000;
        assert_eq!(parse_range("bytes=0-99", n), Partial(0, 99));
        assert_eq!(parse_range("bytes=900-", n), Partial(900, 999));
        assert_eq!(parse_range("bytes=-100", n), Partial(900, 999));
        assert_eq!(parse_range("bytes=-5000", n), Partial(0, 999));
        assert_eq!(parse_range("bytes=990-5000", n), Partial(990, 999));
        assert_eq!(parse_range(" Bytes = 5 - 9 ", n), Partial(5, 9));
        assert_eq!(parse_range("bytes=1000-", n), Unsatisfiable);
        assert_eq!(parse_range("bytes=5000-6000", n), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", n), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=-1", 0), Unsatisfiable);
        // ignored: malformed, reversed, other units, several ranges
        for h in [
            "bytes=9-5",
            "bytes=a-b",
            "bytes=-",
            "items=0-5",
            "bytes=0-1,5-6",
            "bytes",
            "bytes=+1-2",
            "bytes=0-99999999999999999999999",
        ] {
            assert_eq!(parse_range(h, n), Full, "{h}");
        }
    }

    #[test]
    fn etags_and_if_none_match() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(1_700_000_000_123_456_789);
        let tag = etag(4096, t);
        assert!(tag.starts_with("\"1000-") && tag.ends_with('"'), "{tag}");
        assert_ne!(tag, etag(4097, t));
        assert!(none_match(&tag, &tag));
        assert!(none_match(&format!("\"x\", W/{tag}"), &tag));
        assert!(none_match("*", &tag));
        assert!(!none_match("\"other\"", &tag));
        assert_eq!(http_date(SystemTime::UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
