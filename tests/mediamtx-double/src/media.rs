//! SDP handling (keep the publisher's SDP, rewrite controls), codec identification
//! and a small H.264 SPS parser (exp-Golomb) for width/height/profile/level.

use serde_json::{json, Value};

#[derive(Clone, Debug)]
pub struct Media {
    /// control attribute announced by the publisher (may be empty)
    pub control: String,
    pub codec: &'static str,
    pub props: Option<Value>,
    pub is_h264: bool,
    /// RTP payload type and clock rate (rtpmap; 8000 for static types without one)
    pub pt: u8,
    pub clock_rate: u32,
    /// H.264 parameter sets of `sprop-parameter-sets` (NAL units)
    pub params: Vec<Vec<u8>>,
    /// the audio configuration mediasAreCompatible compares, as MediaMTX prints it
    /// (MPEG-4 Audio `type=2, sampleRate=48000, channelCount=2`, G711 `MULaw=true, ...`,
    /// LPCM `bitDepth=16, ...`); none for other codecs
    pub audio_config: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Sdp {
    pub medias: Vec<Media>,
    /// SDP served on DESCRIBE, controls rewritten to `trackID=N`.
    pub describe: String,
}

/// The indexes of the medias whose codec is among `codecs`.
pub fn tracks_of(medias: &[Media], codecs: &[&str]) -> Vec<usize> {
    (0..medias.len())
        .filter(|&i| codecs.contains(&medias[i].codec))
        .collect()
}

/// defs.MediasInfo: `1 track (H264)`, `2 tracks (H264, MPEG-4 Audio)`.
pub fn tracks_info<'a>(medias: impl IntoIterator<Item = &'a Media>) -> String {
    let codecs: Vec<&str> = medias.into_iter().map(|m| m.codec).collect();
    let noun = if codecs.len() == 1 { "track" } else { "tracks" };
    format!("{} {} ({})", codecs.len(), noun, codecs.join(", "))
}

fn codec_of(encoding: &str, payload_type: u32) -> &'static str {
    match encoding.to_ascii_uppercase().as_str() {
        "H264" => "H264",
        "H265" => "H265",
        "VP8" => "VP8",
        "VP9" => "VP9",
        "AV1" => "AV1",
        "MP4V-ES" => "MPEG-4 Video",
        "MPV" => "MPEG-1/2 Video",
        "JPEG" => "M-JPEG",
        "OPUS" => "Opus",
        "MPEG4-GENERIC" => "MPEG-4 Audio",
        "MP4A-LATM" => "MPEG-4 Audio LATM",
        "MPA" => "MPEG-1/2 Audio",
        "AC3" => "AC3",
        "SPEEX" => "Speex",
        "G722" => "G722",
        "PCMU" | "PCMA" => "G711",
        "L8" | "L16" | "L24" => "LPCM",
        "MP2T" => "MPEG-TS",
        "SMPTE336M" => "KLV",
        "" => match payload_type {
            0 | 8 => "G711",
            9 => "G722",
            14 => "MPEG-1/2 Audio",
            26 => "M-JPEG",
            32 => "MPEG-1/2 Video",
            33 => "MPEG-TS",
            _ => "Generic",
        },
        e if e.starts_with("G726") => "G726",
        _ => "Generic",
    }
}

/// Parses the publisher's SDP.
pub fn parse_sdp(sdp: &str) -> Result<Sdp, String> {
    let lines: Vec<&str> = sdp
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
        .collect();
    let mut session: Vec<String> = Vec::new();
    let mut medias_lines: Vec<Vec<String>> = Vec::new();
    for l in &lines {
        if l.starts_with("m=") {
            medias_lines.push(vec![l.to_string()]);
        } else if let Some(cur) = medias_lines.last_mut() {
            cur.push(l.to_string());
        } else {
            session.push(l.to_string());
        }
    }
    if medias_lines.is_empty() {
        return Err("no media in SDP".into());
    }
    let mut medias = Vec::new();
    let mut out = String::new();
    for l in &session {
        if l.starts_with("a=control:") {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    for (i, ml) in medias_lines.iter().enumerate() {
        let pt: u32 = ml[0]
            .split_whitespace()
            .nth(3)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let mut control = String::new();
        let mut encoding = String::new();
        let mut clock_rate = 8000;
        let mut sprop: Option<String> = None;
        let mut channels: Option<u32> = None;
        let mut asc: Option<String> = None;
        for l in ml {
            if let Some(c) = l.strip_prefix("a=control:") {
                control = c.trim().to_string();
            } else if let Some(r) = l.strip_prefix("a=rtpmap:") {
                if let Some(enc) = r.split_whitespace().nth(1) {
                    encoding = enc.split('/').next().unwrap_or("").to_string();
                    clock_rate = enc.split('/').nth(1).and_then(|c| c.parse().ok()).unwrap_or(8000);
                    channels = enc.split('/').nth(2).and_then(|c| c.parse().ok());
                }
            } else if let Some(f) = l.strip_prefix("a=fmtp:") {
                for p in f.split(';') {
                    let p = p.trim();
                    let p = p
                        .split_once(' ')
                        .map(|(a, b)| if a.chars().all(|c| c.is_ascii_digit()) { b } else { p })
                        .unwrap_or(p);
                    if let Some(v) = p.strip_prefix("sprop-parameter-sets=") {
                        sprop = Some(v.to_string());
                    }
                    if let Some(v) = p.strip_prefix("config=") {
                        asc = Some(v.to_string());
                    }
                }
            }
        }
        let codec = codec_of(&encoding, pt);
        let is_h264 = codec == "H264";
        let props = if is_h264 {
            let sps = sprop
                .as_deref()
                .and_then(|s| s.split(',').next())
                .and_then(crate::util::base64_decode);
            Some(sps.and_then(|s| h264_props(&s)).unwrap_or_else(empty_h264_props))
        } else {
            codec_props_default(codec)
        };
        let params = sprop
            .as_deref()
            .unwrap_or("")
            .split(',')
            .filter_map(crate::util::base64_decode)
            .filter(|n| !n.is_empty())
            .take(4)
            .collect();
        let audio_config = match codec {
            "MPEG-4 Audio" => asc.as_deref().and_then(mpeg4_audio_config),
            "G711" => Some(g711_config(
                encoding.eq_ignore_ascii_case("PCMU") || (encoding.is_empty() && pt == 0),
                clock_rate,
                channels.unwrap_or(1),
            )),
            "LPCM" => {
                let depth: u32 = encoding[1..].parse().unwrap_or(16);
                Some(lpcm_config(depth, clock_rate, channels.unwrap_or(1)))
            }
            _ => None,
        };
        medias.push(Media {
            control,
            codec,
            props,
            is_h264,
            pt: pt.min(127) as u8,
            clock_rate: clock_rate.max(1),
            params,
            audio_config,
        });
        for l in ml {
            if l.starts_with("a=control:") {
                continue;
            }
            out.push_str(l);
            out.push_str("\r\n");
        }
        out.push_str(&format!("a=control:trackID={}\r\n", i));
    }
    Ok(Sdp { medias, describe: out })
}

/// formatMPEG4AudioConfig of an AudioSpecificConfig in hex.
fn mpeg4_audio_config(hex: &str) -> Option<String> {
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    asc_config(&bytes)
}

/// formatMPEG4AudioConfig of an AudioSpecificConfig (ISO 14496-3 1.6.2.1: object type,
/// sampling frequency index or explicit rate, channel configuration).
pub fn asc_config(bytes: &[u8]) -> Option<String> {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let mut r = BitReader { data: bytes, pos: 0 };
    let mut kind = r.bits(5)?;
    if kind == 31 {
        kind = 32 + r.bits(6)?;
    }
    let rate = match r.bits(4)? {
        15 => r.bits(24)?,
        i => *RATES.get(i as usize)?,
    };
    let channels = r.bits(4)?;
    Some(format!("type={}, sampleRate={}, channelCount={}", kind, rate, channels))
}

/// formatG711Config.
pub fn g711_config(mu_law: bool, rate: u32, channels: u32) -> String {
    format!("MULaw={}, sampleRate={}, channelCount={}", mu_law, rate, channels)
}

/// formatLPCMConfig.
pub fn lpcm_config(bit_depth: u32, rate: u32, channels: u32) -> String {
    format!("bitDepth={}, sampleRate={}, channelCount={}", bit_depth, rate, channels)
}

fn empty_h264_props() -> Value {
    json!({"width": 0, "height": 0, "profile": "", "level": ""})
}

fn codec_props_default(codec: &str) -> Option<Value> {
    match codec {
        "H265" => Some(json!({"width": 0, "height": 0, "profile": "", "level": ""})),
        "VP9" => Some(json!({"profile": 0})),
        "AV1" => Some(json!({"width": 0, "height": 0, "profile": 0, "level": 0, "tier": 0})),
        _ => None,
    }
}

struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let b = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Some(b as u32)
    }
    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some(((1u64 << zeros) - 1 + self.bits(zeros)? as u64) as u32)
    }
    fn se(&mut self) -> Option<i32> {
        let v = self.ue()? as i64;
        Some(if v % 2 == 1 {
            ((v + 1) / 2) as i32
        } else {
            -(v / 2) as i32
        })
    }
}

fn unescape_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        if b == 0 {
            zeros += 1;
        } else {
            zeros = 0;
        }
        out.push(b);
    }
    out
}

pub fn h264_profile_string(p: u32) -> String {
    match p {
        66 => "Baseline".into(),
        77 => "Main".into(),
        88 => "Extended".into(),
        100 => "High".into(),
        110 => "High 10".into(),
        122 => "High 4:2:2".into(),
        244 => "High 4:4:4 Predictive".into(),
        o => o.to_string(),
    }
}

pub fn h264_level_string(l: u32) -> String {
    if l % 10 == 0 {
        format!("{}", l / 10)
    } else {
        format!("{}.{}", l / 10, l % 10)
    }
}

/// Parses an H.264 SPS NAL unit (with its 1-byte header) into codecProps.
pub fn h264_props(nal: &[u8]) -> Option<Value> {
    let (w, h, profile, level) = parse_h264_sps(nal)?;
    Some(json!({
        "width": w,
        "height": h,
        "profile": h264_profile_string(profile),
        "level": h264_level_string(level),
    }))
}

pub fn parse_h264_sps(nal: &[u8]) -> Option<(u32, u32, u32, u32)> {
    if nal.is_empty() || nal[0] & 0x1f != 7 {
        return None;
    }
    let rbsp = unescape_rbsp(&nal[1..]);
    let mut r = BitReader { data: &rbsp, pos: 0 };
    let profile = r.bits(8)?;
    r.bits(8)?; // constraint flags
    let level = r.bits(8)?;
    r.ue()?; // sps id
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = 0;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()?;
        }
        r.ue()?; // bit_depth_luma
        r.ue()?; // bit_depth_chroma
        r.bit()?; // qpprime
        if r.bit()? == 1 {
            let n = if chroma_format_idc != 3 { 8 } else { 12 };
            for i in 0..n {
                if r.bit()? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let mut last = 8i32;
                    let mut next = 8i32;
                    for _ in 0..size {
                        if next != 0 {
                            let delta = r.se()?;
                            next = (last + delta + 256) % 256;
                        }
                        last = if next == 0 { last } else { next };
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num
    let poc_type = r.ue()?;
    if poc_type == 0 {
        r.ue()?;
    } else if poc_type == 1 {
        r.bit()?;
        r.se()?;
        r.se()?;
        let n = r.ue()?;
        for _ in 0..n {
            r.se()?;
        }
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps
    let w_mbs = r.ue()? + 1;
    let h_map = r.ue()? + 1;
    let frame_mbs_only = r.bit()?;
    if frame_mbs_only == 0 {
        r.bit()?;
    }
    r.bit()?; // direct_8x8
    let (mut cl, mut cr, mut ct, mut cb) = (0, 0, 0, 0);
    if r.bit()? == 1 {
        cl = r.ue()?;
        cr = r.ue()?;
        ct = r.ue()?;
        cb = r.ue()?;
    }
    let chroma_array_type = if separate_colour_plane == 1 {
        0
    } else {
        chroma_format_idc
    };
    let (sub_w, sub_h) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let (crop_x, crop_y) = if chroma_array_type == 0 {
        (1, 2 - frame_mbs_only)
    } else {
        (sub_w, sub_h * (2 - frame_mbs_only))
    };
    let width = (w_mbs * 16).checked_sub(crop_x * (cl + cr))?;
    let height = ((2 - frame_mbs_only) * h_map * 16).checked_sub(crop_y * (ct + cb))?;
    Some((width, height, profile, level))
}

/// Finds an SPS in an RTP H.264 payload (single NAL or STAP-A).
pub fn find_sps_in_rtp(payload: &[u8]) -> Option<Vec<u8>> {
    let t = payload.first()? & 0x1f;
    match t {
        7 => Some(payload.to_vec()),
        24 => {
            let mut i = 1;
            while i + 2 <= payload.len() {
                let n = u16::from_be_bytes([payload[i], payload[i + 1]]) as usize;
                i += 2;
                if i + n > payload.len() {
                    break;
                }
                if n > 0 && payload[i] & 0x1f == 7 {
                    return Some(payload[i..i + n].to_vec());
                }
                i += n;
            }
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sps_640x480() {
        // x264 baseline 640x480 SPS (sprop from ffmpeg): Z0LAFtoCgPbARAAAAwAEAAADAHo8WLqA
        let sps = crate::util::base64_decode("Z0LAFtoCgPbARAAAAwAEAAADAHo8WLqA").unwrap();
        let (w, h, p, l) = parse_h264_sps(&sps).unwrap();
        assert_eq!((w, h, p, l), (640, 480, 66, 22));
        assert_eq!(h264_level_string(31), "3.1");
        assert_eq!(h264_level_string(40), "4");
    }

    #[test]
    fn sdp_rewrite() {
        let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\na=tool:libavformat\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z0LAFtoCgPbARAAAAwAEAAADAHo8WLqA,aM4PyA==; profile-level-id=42C01E\r\na=control:streamid=0\r\n";
        let s = parse_sdp(sdp).unwrap();
        assert_eq!(s.medias.len(), 1);
        assert_eq!(s.medias[0].control, "streamid=0");
        assert_eq!(s.medias[0].props.as_ref().unwrap()["width"], 640);
        assert!(s.describe.contains("a=control:trackID=0"));
        assert!(!s.describe.contains("streamid"));
    }
}
