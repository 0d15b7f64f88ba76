//! RTMP messages as gortmplib v1.0.1 takes them (pkg/message: allocateMessage and the
//! unmarshal checks of control, user control, audio and video messages; enhanced RTMP
//! only by its extended types), and its Reader's track detection (readTracks), which
//! MediaMTX runs on a publisher before it asks its path to take it.

/// What gortmplib's message reader refuses: its error, which ends the connection.
pub fn check(typ: u8, body: &[u8]) -> Result<(), String> {
    let size = |n: usize| {
        if body.len() == n {
            Ok(())
        } else {
            Err("invalid body size".to_string())
        }
    };
    match typ {
        1 | 2 | 5 => size(4),
        3 if body.len() != 4 => Err("unexpected body size".into()),
        3 => Ok(()),
        6 => size(5),
        4 => {
            let Some(kind) = body.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
                return Err("not enough bytes".into());
            };
            match kind {
                0 | 1 | 2 | 4 | 6 | 7 => size(6),
                3 => size(10),
                31 | 32 => Ok(()),
                k => Err(format!("invalid user control type: {}", k)),
            }
        }
        8 => check_audio(body),
        9 => check_video(body),
        18 | 20 => Ok(()),
        t => Err(format!("invalid message type: {}", t)),
    }
}

/// Legacy audio codecs gortmplib takes: LPCM (3), MPEG-1 audio (2), G.711 A-law (7)
/// and µ-law (8), AAC (10).
const AUDIO_CODECS: [u8; 5] = [2, 3, 7, 8, 10];
const AAC: u8 = 10;

fn check_audio(body: &[u8]) -> Result<(), String> {
    let Some(&first) = body.first() else {
        return Err("not enough bytes".into());
    };
    if first >> 4 == 9 {
        return match first & 0x0f {
            0 | 1 | 2 | 4 | 5 => Ok(()),
            t => Err(format!("unsupported audio extended type: {}", t)),
        };
    }
    if body.len() < 2 {
        return Err("invalid body size".into());
    }
    let codec = first >> 4;
    if !AUDIO_CODECS.contains(&codec) {
        return Err(format!("unsupported audio codec: {}", codec));
    }
    if codec == AAC {
        match body[1] {
            0 => {}
            1 if body.len() < 3 => return Err("invalid body size".into()),
            1 => {}
            t => return Err(format!("unsupported audio message type: {}", t)),
        }
    }
    Ok(())
}

fn check_video(body: &[u8]) -> Result<(), String> {
    let Some(&first) = body.first() else {
        return Err("not enough bytes".into());
    };
    if first & 0x80 != 0 {
        return match first & 0x0f {
            0 | 1 | 2 | 3 | 4 | 6 => Ok(()),
            t => Err(format!("unsupported video extended type: {}", t)),
        };
    }
    if body.len() < 5 {
        return Err("invalid body size".into());
    }
    let codec = first & 0x0f;
    if codec != 7 && codec != 12 {
        return Err(format!("unsupported video codec: {}", codec));
    }
    match body[1] {
        1 if body.len() < 6 => Err("invalid body size".into()),
        0..=2 => Ok(()),
        t => Err(format!("unsupported video message type: {}", t)),
    }
}

/// gortmplib's analyzePeriod: how much media (by DTS) a publisher's tracks are read from.
const ANALYZE_MS: u32 = 2000;

/// Reader.readTracks: media messages are read until 2 s of media (from the first media
/// message's DTS) came; a video track is an H.264 or H.265 sequence header (or an
/// enhanced sequence start), an audio track an AAC config or the data of another codec
/// (or enhanced coded frames).
#[derive(Default)]
pub struct TrackProbe {
    first_dts: Option<u32>,
    last_dts: u32,
    video: bool,
    audio: bool,
}

impl TrackProbe {
    /// Notes a checked message; true once the tracks are read.
    pub fn add(&mut self, typ: u8, dts: u32, body: &[u8]) -> bool {
        let first = body.first().copied().unwrap_or(0);
        match typ {
            // enhanced: coded frames carry the time and make the track
            8 if first >> 4 == 9 && first & 0x0f == 1 => {
                self.at(dts);
                self.audio = true;
            }
            8 if first >> 4 == 9 => {}
            8 => {
                self.at(dts);
                let aac_config = first >> 4 == AAC && body.get(1) == Some(&0) && body.len() > 2;
                self.audio |= aac_config || first >> 4 != AAC;
            }
            9 if first & 0x80 != 0 => match first & 0x0f {
                0 => self.video = true,
                1 | 3 => self.at(dts),
                _ => {}
            },
            9 => {
                self.at(dts);
                self.video |= body.get(1) == Some(&0);
            }
            _ => {}
        }
        self.first_dts
            .is_some_and(|f| self.last_dts.wrapping_sub(f) >= ANALYZE_MS && self.last_dts >= f)
    }

    fn at(&mut self, dts: u32) {
        self.first_dts.get_or_insert(dts);
        self.last_dts = dts;
    }

    /// The tracks' verdict once read.
    pub fn result(&self) -> Result<(), String> {
        if self.video || self.audio {
            Ok(())
        } else {
            Err("no tracks found".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_checked_like_gortmplib() {
        for (typ, body, want) in [
            (1u8, &[0, 0, 16, 0][..], Ok(())),
            (1, &[0, 16, 0][..], Err("invalid body size")),
            (3, &[0, 0, 0][..], Err("unexpected body size")),
            (6, &[0, 0, 16, 0, 2][..], Ok(())),
            (4, &[0][..], Err("not enough bytes")),
            (4, &[0, 3, 0, 0, 0, 1, 0, 0, 0, 100][..], Ok(())),
            (4, &[0, 0, 0, 0, 0][..], Err("invalid body size")),
            (4, &[0, 9, 0, 0, 0, 0][..], Err("invalid user control type: 9")),
            (17, &[0, 2][..], Err("invalid message type: 17")),
            (22, &[][..], Err("invalid message type: 22")),
            (8, &[0xaf, 0x00, 0x12, 0x10][..], Ok(())),
            (8, &[0xaf, 0x01][..], Err("invalid body size")),
            (8, &[0xaf, 0x05, 0][..], Err("unsupported audio message type: 5")),
            (8, &[0x6f, 0x00][..], Err("unsupported audio codec: 6")),
            (8, &[0x9c][..], Err("unsupported audio extended type: 12")),
            (9, &[0x17, 0, 0, 0, 0, 1][..], Ok(())),
            (9, &[0x17, 1, 0, 0, 0][..], Err("invalid body size")),
            (9, &[0x12, 1, 0, 0, 0, 1][..], Err("unsupported video codec: 2")),
            (9, &[0x17, 3, 0, 0, 0][..], Err("unsupported video message type: 3")),
            (9, &[0x95][..], Err("unsupported video extended type: 5")),
        ] {
            assert_eq!(check(typ, body), want.map_err(String::from), "{} {:?}", typ, body);
        }
    }

    #[test]
    fn tracks_are_read_from_two_seconds_of_media() {
        let mut p = TrackProbe::default();
        assert!(!p.add(18, 0, b"meta"));
        assert!(!p.add(9, 1000, &[0x17, 1, 0, 0, 0, 1]));
        assert!(!p.add(9, 2999, &[0x27, 1, 0, 0, 0, 1]));
        // frames without a sequence header make no track
        assert!(p.add(9, 3000, &[0x27, 1, 0, 0, 0, 1]));
        assert_eq!(p.result(), Err("no tracks found".into()));

        let mut p = TrackProbe::default();
        p.add(8, 0, &[0xaf, 0, 0x12, 0x10]);
        assert!(p.add(8, 2000, &[0xaf, 1, 0x21]));
        assert_eq!(p.result(), Ok(()));
    }
}
