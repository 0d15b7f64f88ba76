//! FLV, the byte stream between the RTMP server and its ffmpeg relays: RTMP audio,
//! video and data messages are FLV tags with the same type, timestamp and body.

use crate::amf0;
use std::io::Read;

/// Reads an FLV stream and hands each tag (type, timestamp, body) to `tag`.
pub fn read_tags(mut r: impl Read, mut tag: impl FnMut(u8, u32, &[u8]) -> std::io::Result<()>) -> std::io::Result<()> {
    let mut hdr = [0u8; 9];
    r.read_exact(&mut hdr)?;
    let offset = u32::from_be_bytes([hdr[5], hdr[6], hdr[7], hdr[8]]) as usize;
    std::io::copy(
        &mut r.by_ref().take(offset.saturating_sub(9) as u64 + 4),
        &mut std::io::sink(),
    )?;
    loop {
        let mut th = [0u8; 11];
        r.read_exact(&mut th)?;
        let typ = th[0] & 0x1f;
        let size = u32::from_be_bytes([0, th[1], th[2], th[3]]) as usize;
        let ts = u32::from_be_bytes([th[7], th[4], th[5], th[6]]);
        let mut data = vec![0u8; size];
        r.read_exact(&mut data)?;
        let mut prev = [0u8; 4];
        r.read_exact(&mut prev)?;
        tag(typ, ts, &data)?;
    }
}

/// One FLV tag with its trailing previous-tag-size.
pub fn tag(typ: u8, ts: u32, data: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(data.len() + 15);
    t.push(typ);
    t.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
    t.extend_from_slice(&ts.to_be_bytes()[1..]);
    t.push((ts >> 24) as u8);
    t.extend_from_slice(&[0, 0, 0]);
    t.extend_from_slice(data);
    t.extend_from_slice(&((data.len() + 11) as u32).to_be_bytes());
    t
}

/// The FLV file header for these tracks, with the first previous-tag-size.
pub fn header(has_audio: bool, has_video: bool) -> [u8; 13] {
    let flags = (has_audio as u8) << 2 | has_video as u8;
    [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]
}

/// `@setDataFrame onMetaData {...}` (publisher metadata) becomes the FLV file's
/// `onMetaData {...}`.
pub fn strip_set_data_frame(p: Vec<u8>) -> Vec<u8> {
    const PREFIX: &[u8] = b"\x02\x00\x0d@setDataFrame";
    match p.strip_prefix(PREFIX) {
        Some(rest) => rest.to_vec(),
        None => p,
    }
}

/// (has audio, has video): which tracks a publisher announces in its metadata (the FLV header's flags, so
/// that ffmpeg does not wait for a track that never comes).
pub fn codecs_of(meta: &[u8]) -> (bool, bool) {
    let v = amf0::decode_all(meta).unwrap_or_default();
    let o = v.get(1);
    let has = |k: &str| o.and_then(|o| o.get(k)).is_some();
    let (a, v) = (has("audiocodecid"), has("videocodecid"));
    if !a && !v {
        (true, true)
    } else {
        (a, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        let mut f = header(true, true).to_vec();
        f.extend(tag(9, 0x0123_4567, b"video"));
        f.extend(tag(8, 5, b"a"));
        let mut got = Vec::new();
        let end = read_tags(&f[..], |t, ts, b| {
            got.push((t, ts, b.to_vec()));
            Ok(())
        });
        assert!(end.is_err(), "ends at EOF");
        assert_eq!(got, vec![(9, 0x0123_4567, b"video".to_vec()), (8, 5, b"a".to_vec())]);
        let mut meta = vec![0x02, 0x00, 0x0d];
        meta.extend_from_slice(b"@setDataFrame");
        meta.extend_from_slice(&[0x02, 0, 1, b'x']);
        assert_eq!(strip_set_data_frame(meta), vec![0x02, 0, 1, b'x']);
    }
}
