//! The tracks of an `alwaysAvailableFile`, as MediaMTX takes them
//! (stream.mediasFromAlwaysAvailableFile over mediacommon's MP4 codec boxes reader):
//! H.264, H.265, AV1, VP9, Opus, MPEG-4 Audio and LPCM tracks, in file order; tracks
//! of the other codecs that reader knows (MPEG-4/1 video, M-JPEG, MPEG-1 audio, AC-3,
//! E-AC-3, FLAC, CEA-608) are dropped, and any other sample entry is an error.
//! Only the `moov` box is read.

use crate::always_available::OfflineTrack;
use crate::fmp4::{be32, children, BoxRef};
use std::io::{Read, Seek, SeekFrom};

/// Bound on the `moov` box read into memory.
const MAX_MOOV: u64 = 16 << 20;

pub fn tracks(path: &str) -> Result<Vec<OfflineTrack>, String> {
    let moov = read_moov(path)?;
    let mut out = Vec::new();
    let top = children(&moov, 0, moov.len());
    let Some(m) = top.first() else {
        return Err("parse error".into());
    };
    let traks = children(&moov, m.body, m.end);
    if traks.iter().all(|b| &b.typ != b"trak") {
        return Err("no tracks found".into());
    }
    for (index, trak) in traks.iter().filter(|b| &b.typ == b"trak").enumerate() {
        let entry = path_of(&moov, trak, &[b"mdia", b"minf", b"stbl", b"stsd"])
            .and_then(|stsd| children(&moov, stsd.body + 8, stsd.end).into_iter().next())
            .ok_or("codec information not found")?;
        if let Some((codec, audio)) = codec_of(&moov, &entry)? {
            out.push(OfflineTrack {
                index,
                codec: codec.into(),
                audio,
            });
        }
    }
    Ok(out)
}

/// The `moov` box of the file (header included), found by skipping the boxes before it.
fn read_moov(path: &str) -> Result<Vec<u8>, String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("open {}: {}", path, crate::conf::go_io_error(&e)))?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    let mut at = 0u64;
    while at + 8 <= len {
        let mut head = [0u8; 16];
        f.seek(SeekFrom::Start(at)).map_err(|e| e.to_string())?;
        f.read_exact(&mut head[..8]).map_err(|_| "unexpected EOF".to_string())?;
        let size = match u32::from_be_bytes([head[0], head[1], head[2], head[3]]) {
            0 => len - at,
            1 => {
                f.read_exact(&mut head[8..]).map_err(|_| "unexpected EOF".to_string())?;
                u64::from_be_bytes(head[8..16].try_into().expect("8 bytes"))
            }
            s => s as u64,
        };
        if size < 8 || at + size > len {
            return Err("unexpected EOF".into());
        }
        if &head[4..8] == b"moov" {
            if size > MAX_MOOV {
                return Err(format!("moov box of {} bytes is too large for the double", size));
            }
            let mut moov = vec![0u8; size as usize];
            f.seek(SeekFrom::Start(at)).map_err(|e| e.to_string())?;
            f.read_exact(&mut moov).map_err(|_| "unexpected EOF".to_string())?;
            return Ok(moov);
        }
        at += size;
    }
    Err("parse error".into())
}

/// The box reached from `from` through the first child of each type in `types`.
fn path_of(buf: &[u8], from: &BoxRef, types: &[&[u8; 4]]) -> Option<BoxRef> {
    let mut cur = *from;
    for t in types {
        cur = children(buf, cur.body, cur.end).into_iter().find(|b| &b.typ == *t)?;
    }
    Some(cur)
}

type Codec = Option<(&'static str, Option<(&'static str, String)>)>;

/// The codec of a sample entry: its formatlabel name and, for MPEG-4 Audio and LPCM,
/// the configuration mediasAreCompatible compares; None for a dropped one.
fn codec_of(buf: &[u8], entry: &BoxRef) -> Result<Codec, String> {
    // SampleEntry (8 bytes) + AudioSampleEntry v0 fields (20) before the child boxes
    const AUDIO_CHILDREN: usize = 28;
    let audio_field = |at: usize| be32(buf, entry.body + at).unwrap_or(0);
    let channels = audio_field(16) >> 16;
    let rate = audio_field(24) >> 16;
    let audio_child = |typ: &[u8; 4]| {
        children(buf, (entry.body + AUDIO_CHILDREN).min(entry.end), entry.end)
            .into_iter()
            .find(|b| &b.typ == typ)
    };
    Ok(match &entry.typ {
        b"avc1" => Some(("H264", None)),
        b"hvc1" | b"hev1" => Some(("H265", None)),
        b"av01" => Some(("AV1", None)),
        b"vp09" => Some(("VP9", None)),
        b"Opus" => Some(("Opus", None)),
        b"mp4v" | b"c608" | b"fLaC" | b"ac-3" | b"ec-3" => None,
        b"ipcm" => {
            let pcmc = audio_child(b"pcmC").ok_or("codec information not found")?;
            // FullBox header, format_flags, PCM_sample_size
            let depth = buf.get(pcmc.body + 5).copied().unwrap_or(0) as u32;
            Some(("LPCM", Some(("LPCM", crate::media::lpcm_config(depth, rate, channels)))))
        }
        b"mp4a" => {
            let esds = audio_child(b"esds").ok_or("codec information not found")?;
            let (object_type, asc) =
                decoder_config(&buf[(esds.body + 4).min(esds.end)..esds.end]).ok_or("unable to find decoder config")?;
            match object_type {
                0x40 => {
                    let asc = asc
                        .filter(|a| !a.is_empty())
                        .ok_or("unable to find decoder specific info")?;
                    let config = crate::media::asc_config(asc).ok_or("invalid MPEG-4 Audio configuration")?;
                    Some(("MPEG-4 Audio", Some(("MPEG-4 audio", config))))
                }
                0x6B => None,
                t => return Err(format!("unsupported object type indication: 0x{:02x}", t)),
            }
        }
        _ => return Err("codec information not found".into()),
    })
}

/// The object type indication of an `esds` DecoderConfigDescriptor and its
/// DecoderSpecificInfo (ISO 14496-1 7.2.6), walking the descriptors in order.
fn decoder_config(mut d: &[u8]) -> Option<(u8, Option<&[u8]>)> {
    let mut object_type = None;
    while d.len() >= 2 {
        let tag = d[0];
        let mut len = 0usize;
        let mut at = 1;
        loop {
            let b = *d.get(at)?;
            len = (len << 7) | (b & 0x7f) as usize;
            at += 1;
            if b & 0x80 == 0 || at > 4 {
                break;
            }
        }
        let body = d.get(at..at + len)?;
        match tag {
            // ES_Descriptor: ES_ID, flags, then the optional fields the flags announce
            0x03 => {
                let flags = *body.get(2)?;
                let mut skip = 3;
                if flags & 0x80 != 0 {
                    skip += 2;
                }
                if flags & 0x40 != 0 {
                    skip += 1 + *body.get(skip)? as usize;
                }
                if flags & 0x20 != 0 {
                    skip += 2;
                }
                d = body.get(skip..)?;
            }
            // DecoderConfigDescriptor: 13 bytes of fields, then its descriptors
            0x04 => {
                object_type = Some(*body.first()?);
                d = body.get(13..)?;
            }
            0x05 => return Some((object_type?, Some(body))),
            _ => d = &d[at + len..],
        }
    }
    object_type.map(|t| (t, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp4_box(typ: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        [&((payload.len() + 8) as u32).to_be_bytes()[..], typ, payload].concat()
    }

    #[test]
    fn unknown_sample_entries_are_refused_and_known_ones_dropped() {
        let dir = std::env::temp_dir().join(format!("aaf-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, entries: &[&[u8; 4]]| {
            let traks: Vec<u8> = entries
                .iter()
                .flat_map(|e| {
                    let stsd = mp4_box(b"stsd", &[&[0u8; 8][..], &mp4_box(e, &[0u8; 28])].concat());
                    let stbl = mp4_box(b"stbl", &stsd);
                    let minf = mp4_box(b"minf", &stbl);
                    let mdia = mp4_box(b"mdia", &minf);
                    mp4_box(b"trak", &mdia)
                })
                .collect();
            let data = [
                mp4_box(b"ftyp", b"isom"),
                mp4_box(b"mdat", &[1, 2, 3]),
                mp4_box(b"moov", &traks),
            ]
            .concat();
            let p = dir.join(name);
            std::fs::write(&p, data).unwrap();
            p.to_str().unwrap().to_string()
        };
        let got = tracks(&file("ok.mp4", &[b"avc1", b"mp4v", b"Opus"])).unwrap();
        let got: Vec<(usize, &str)> = got.iter().map(|t| (t.index, t.codec.as_str())).collect();
        assert_eq!(got, vec![(0, "H264"), (2, "Opus")]);
        assert_eq!(
            tracks(&file("avc3.mp4", &[b"avc3"])).err().as_deref(),
            Some("codec information not found")
        );
        assert_eq!(
            tracks(&file("empty.mp4", &[])).err().as_deref(),
            Some("no tracks found")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
