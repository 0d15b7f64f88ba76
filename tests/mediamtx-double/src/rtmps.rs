//! RTMPS: TLS with `rtmpServerKey`/`rtmpServerCert` (relative paths from the double's
//! directory), terminated by the RTSPS server's code, then the RTMP server of rtmp.rs
//! on the plain side.

use crate::core::Shared;
use std::net::TcpStream;
use std::sync::Arc;

pub fn conn(shared: Arc<Shared>, tcp: TcpStream) {
    let remote = tcp.peer_addr().ok();
    let (key, cert) = {
        let st = shared.lock();
        let s = |k: &str| st.global.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let path = |k: &str| shared.dir.join(s(k)).to_string_lossy().into_owned();
        (path("rtmpServerKey"), path("rtmpServerCert"))
    };
    let acceptor = match crate::rtsps::tls_acceptor(&key, &cert) {
        Ok(a) => a,
        Err(e) => {
            shared.log(&format!("RTMPS [conn {:?}] closed: {}", remote, e));
            return;
        }
    };
    let sh = shared.clone();
    let serve = move |inner, peer| crate::rtmp::conn(sh, inner, Some(peer), true);
    if let Err((_, e)) = crate::rtsps::terminate(&shared, tcp, &acceptor, serve) {
        shared.log(&format!("RTMPS [conn {:?}] closed: {}", remote, e));
    }
}
