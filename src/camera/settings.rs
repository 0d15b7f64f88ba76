//! Per-camera capture settings (`set_camera_settings`): checked against the camera's probed
//! modes, merged onto what was set before, persisted with the identity (`identity.rs`).
//! Pure functions, unit tested.

use super::identity::CaptureSettings;
use super::v4l2::Mode;

/// A rejected setting: the parameter and a message listing what is allowed.
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid {
    pub param: &'static str,
    pub message: String,
}

fn invalid(param: &'static str, message: String) -> Invalid {
    Invalid { param, message }
}

fn parse_size(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.split_once('x')?;
    Some((w.parse().ok()?, h.parse().ok()?))
}

fn unique<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// The effective mode of a camera: `(format, (w, h), fps)`; `format` is `None` when
/// nothing chose one (the publisher picks, MJPEG first).
pub type Effective = (Option<String>, (u32, u32), u32);

/// Checks `req` against `modes`, starting from the camera's effective mode `base` and its
/// saved settings `saved`; the new saved settings. A request that changes the format or
/// size without naming the rate keeps the rate when the new mode offers it, else takes the
/// mode's highest; same for a format change that keeps the size.
pub fn apply(
    modes: &[Mode],
    base: &Effective,
    saved: &CaptureSettings,
    req: &CaptureSettings,
) -> Result<CaptureSettings, Invalid> {
    let mut out = saved.clone();
    let format = req.format.clone().or_else(|| base.0.clone());
    if let Some(f) = &req.format {
        let formats = unique(modes.iter().map(|m| m.format.as_str()));
        if !formats.contains(&f.as_str()) {
            return Err(invalid(
                "format",
                format!(
                    "format {f:?} is not offered by this camera; allowed: {}",
                    formats.join(", ")
                ),
            ));
        }
        out.format = Some(f.clone());
    }
    let with_format = |m: &&Mode| format.as_deref().map_or(true, |f| m.format == f);
    let size = match &req.resolution {
        Some(r) => {
            let allowed = unique(
                modes
                    .iter()
                    .filter(with_format)
                    .map(|m| format!("{}x{}", m.width, m.height)),
            );
            let ok = parse_size(r).filter(|(w, h)| {
                modes
                    .iter()
                    .filter(with_format)
                    .any(|m| m.width == *w && m.height == *h)
            });
            let Some(size) = ok else {
                return Err(invalid(
                    "resolution",
                    format!(
                        "resolution {r:?} is not offered{}; allowed: {}",
                        format.as_deref().map_or(String::new(), |f| format!(" in format {f}")),
                        allowed.join(", ")
                    ),
                ));
            };
            out.resolution = Some(format!("{}x{}", size.0, size.1));
            size
        }
        None => {
            // A new format must offer the current size.
            if req.format.is_some() && !modes.iter().filter(with_format).any(|m| (m.width, m.height) == base.1) {
                let allowed = unique(
                    modes
                        .iter()
                        .filter(with_format)
                        .map(|m| format!("{}x{}", m.width, m.height)),
                );
                return Err(invalid(
                    "resolution",
                    format!(
                        "format {} does not offer the current resolution {}x{}; name one of: {}",
                        format.as_deref().unwrap_or_default(),
                        base.1 .0,
                        base.1 .1,
                        allowed.join(", ")
                    ),
                ));
            }
            base.1
        }
    };
    let rates: Vec<u32> = {
        let mut r: Vec<u32> = modes
            .iter()
            .filter(with_format)
            .filter(|m| (m.width, m.height) == size)
            .flat_map(|m| m.fps.iter().copied())
            .collect();
        r.sort_unstable_by(|a, b| b.cmp(a));
        r.dedup();
        r
    };
    match req.fps {
        Some(f) => {
            if !rates.contains(&f) {
                return Err(invalid(
                    "fps",
                    format!(
                        "fps {f} is not offered at {}x{}{}; allowed: {}",
                        size.0,
                        size.1,
                        format.as_deref().map_or(String::new(), |f| format!(" in format {f}")),
                        rates.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            out.fps = Some(f);
        }
        None if req.format.is_some() || req.resolution.is_some() => {
            if !rates.contains(&base.2) {
                out.fps = rates.first().copied();
            } else {
                out.fps = Some(base.2);
            }
        }
        None => {}
    }
    if let Some(b) = &req.bitrate {
        let digits = b.trim_end_matches(['k', 'K', 'M']);
        let ok = b.len() <= 12 && digits.parse::<u32>().is_ok_and(|n| n > 0) && b.len() - digits.len() <= 1;
        if !ok {
            return Err(invalid(
                "bitrate",
                format!("bitrate {b:?} must be like 2M, 800k or 500000"),
            ));
        }
        out.bitrate = Some(b.clone());
    }
    if let Some(g) = req.gop {
        if !(1..=600).contains(&g) {
            return Err(invalid("gop", format!("gop {g} must be between 1 and 600 frames")));
        }
        out.gop = Some(g);
    }
    if let Some(e) = &req.encoder {
        if e.is_empty() || e.len() > 64 || !e.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(invalid(
                "encoder",
                format!("encoder {e:?} must be an FFmpeg encoder name such as libx264 or h264_v4l2m2m"),
            ));
        }
        out.encoder = Some(e.clone());
    }
    Ok(out)
}

/// The mode saved settings select on `modes`: `(format, size, fps)`, or `None` when the
/// settings name no mode or the camera no longer offers it (then the probe's mode is used).
pub fn mode_of(modes: &[Mode], s: &CaptureSettings) -> Option<Effective> {
    let size = parse_size(s.resolution.as_deref()?)?;
    let fps = s.fps?;
    let fits = |m: &&Mode| {
        s.format.as_deref().map_or(true, |f| m.format == f) && (m.width, m.height) == size && m.fps.contains(&fps)
    };
    modes.iter().find(fits).map(|_| (s.format.clone(), size, fps))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modes() -> Vec<Mode> {
        let m = |f: &str, w, h, fps: &[u32]| Mode {
            format: f.into(),
            width: w,
            height: h,
            fps: fps.to_vec(),
        };
        vec![
            m("YUYV", 640, 360, &[30, 5]),
            m("YUYV", 1280, 720, &[10, 5]),
            m("MJPG", 640, 360, &[60, 30]),
        ]
    }

    fn req(f: Option<&str>, r: Option<&str>, fps: Option<u32>) -> CaptureSettings {
        CaptureSettings {
            format: f.map(String::from),
            resolution: r.map(String::from),
            fps,
            ..Default::default()
        }
    }

    #[test]
    fn valid_modes_are_merged() {
        let base: Effective = (None, (640, 360), 30);
        let s = apply(
            &modes(),
            &base,
            &CaptureSettings::default(),
            &req(None, Some("1280x720"), Some(10)),
        )
        .unwrap();
        assert_eq!(s, req(None, Some("1280x720"), Some(10)));
        assert_eq!(mode_of(&modes(), &s), Some((None, (1280, 720), 10)));
        // Size change without a rate: 30 is not offered at 1280x720 → the highest (10).
        let s = apply(
            &modes(),
            &base,
            &CaptureSettings::default(),
            &req(None, Some("1280x720"), None),
        )
        .unwrap();
        assert_eq!(s.fps, Some(10));
        // Format change keeping the size and rate.
        let s = apply(&modes(), &base, &s, &req(Some("MJPG"), Some("640x360"), None)).unwrap();
        assert_eq!((s.format.as_deref(), s.fps), (Some("MJPG"), Some(30)));
        // Encoding fields only.
        let e = CaptureSettings {
            bitrate: Some("2M".into()),
            gop: Some(15),
            encoder: Some("libx264".into()),
            ..Default::default()
        };
        let s2 = apply(&modes(), &base, &s, &e).unwrap();
        assert_eq!(
            (s2.format, s2.bitrate.as_deref(), s2.gop),
            (s.format, Some("2M"), Some(15))
        );
    }

    #[test]
    fn invalid_modes_name_the_parameter_and_the_allowed_values() {
        let base: Effective = (None, (640, 360), 30);
        let none = CaptureSettings::default();
        let e = apply(&modes(), &base, &none, &req(Some("H264"), None, None)).unwrap_err();
        assert_eq!(e.param, "format");
        assert!(e.message.ends_with("allowed: YUYV, MJPG"), "{}", e.message);
        let e = apply(&modes(), &base, &none, &req(Some("MJPG"), Some("1280x720"), None)).unwrap_err();
        assert_eq!(e.param, "resolution");
        assert!(e.message.contains("allowed: 640x360"), "{}", e.message);
        let e = apply(&modes(), &base, &none, &req(None, Some("1280x720"), Some(30))).unwrap_err();
        assert_eq!(e.param, "fps");
        assert!(e.message.ends_with("allowed: 10, 5"), "{}", e.message);
        let e = apply(&modes(), &base, &none, &req(None, Some("big"), None)).unwrap_err();
        assert_eq!(e.param, "resolution");
        for (field, bad) in [("bitrate", "fast"), ("gop", "0"), ("encoder", "x 264")] {
            let mut r = CaptureSettings::default();
            match field {
                "bitrate" => r.bitrate = Some(bad.into()),
                "gop" => r.gop = Some(0),
                _ => r.encoder = Some(bad.into()),
            }
            assert_eq!(apply(&modes(), &base, &none, &r).unwrap_err().param, field);
        }
        // Saved settings the camera no longer offers select no mode.
        assert_eq!(mode_of(&modes(), &req(Some("MJPG"), Some("1280x720"), Some(10))), None);
    }
}
