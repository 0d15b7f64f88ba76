//! V4L2 capability probe: `VIDIOC_QUERYCAP` decides whether a node is a camera, then every
//! pixel format × frame size × frame interval is enumerated and flattened into discrete
//! modes. Everything here blocks (ioctls): callers run it on the blocking pool.

use std::collections::BTreeSet;
use std::io;
use std::path::Path;
use v4l::capability::Flags;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::video::Capture;

/// What `VIDIOC_QUERYCAP` says about a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub driver: String,
    pub card: String,
    pub bus_info: String,
    /// The node's own capabilities (`device_caps`) as snake_case names.
    pub capabilities: Vec<String>,
}

/// One capture mode: a pixel format at one size with the frame rates it offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mode {
    /// FourCC as text (`YUYV`, `MJPG`, ...).
    pub format: String,
    pub width: u32,
    pub height: u32,
    /// Whole frames per second, highest first, unique.
    pub fps: Vec<u32>,
}

/// A probed capture node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub info: DeviceInfo,
    pub modes: Vec<Mode>,
    /// The format the driver is set to now (`VIDIOC_G_FMT`), if it answered.
    pub current: Option<(u32, u32)>,
    /// The current frame rate (`VIDIOC_G_PARM`), if it answered.
    pub current_fps: Option<u32>,
}

#[derive(Debug)]
pub enum ProbeError {
    /// The node answered QUERYCAP but has no video-capture capability (metadata, radio,
    /// VBI, SDR, touch, output, m2m...).
    NotCapture(DeviceInfo),
    /// Open or QUERYCAP failed (gone, permission, busy).
    Io(io::Error),
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::NotCapture(i) => write!(f, "not a video capture node ({}, {})", i.driver, i.card),
            ProbeError::Io(e) => write!(f, "{e}"),
        }
    }
}

const CAP_NAMES: &[(Flags, &str)] = &[
    (Flags::VIDEO_CAPTURE, "video_capture"),
    (Flags::VIDEO_OUTPUT, "video_output"),
    (Flags::VIDEO_OVERLAY, "video_overlay"),
    (Flags::VBI_CAPTURE, "vbi_capture"),
    (Flags::VBI_OUTPUT, "vbi_output"),
    (Flags::SLICED_VBI_CAPTURE, "sliced_vbi_capture"),
    (Flags::SLICED_VBI_OUTPUT, "sliced_vbi_output"),
    (Flags::RDS_CAPTURE, "rds_capture"),
    (Flags::VIDEO_OUTPUT_OVERLAY, "video_output_overlay"),
    (Flags::HW_FREQ_SEEK, "hw_freq_seek"),
    (Flags::RDS_OUTPUT, "rds_output"),
    (Flags::VIDEO_CAPTURE_MPLANE, "video_capture_mplane"),
    (Flags::VIDEO_OUTPUT_MPLANE, "video_output_mplane"),
    (Flags::VIDEO_M2M_MPLANE, "video_m2m_mplane"),
    (Flags::VIDEO_M2M, "video_m2m"),
    (Flags::TUNER, "tuner"),
    (Flags::AUDIO, "audio"),
    (Flags::RADIO, "radio"),
    (Flags::MODULATOR, "modulator"),
    (Flags::SDR_CAPTURE, "sdr_capture"),
    (Flags::EXT_PIX_FORMAT, "ext_pix_format"),
    (Flags::SDR_OUTPUT, "sdr_output"),
    (Flags::META_CAPTURE, "meta_capture"),
    (Flags::READ_WRITE, "read_write"),
    (Flags::ASYNC_IO, "async_io"),
    (Flags::STREAMING, "streaming"),
    (Flags::META_OUTPUT, "meta_output"),
    (Flags::TOUCH, "touch"),
];

/// The snake_case names of the set capability bits, in bit order.
pub fn capability_names(bits: u32) -> Vec<String> {
    let flags = Flags::from(bits);
    CAP_NAMES
        .iter()
        .filter(|(f, _)| flags.contains(*f))
        .map(|(_, n)| n.to_string())
        .collect()
}

/// A node is a camera when its own capabilities include single-planar video capture and it
/// is not a touch sensor (touch nodes report VIDEO_CAPTURE | TOUCH). Multi-planar-only
/// capture nodes are not handled yet (docs/cameras.md).
pub fn is_capture(device_caps: u32) -> bool {
    let f = Flags::from(device_caps);
    f.contains(Flags::VIDEO_CAPTURE) && !f.contains(Flags::TOUCH)
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_string()
}

/// `VIDIOC_QUERYCAP` done by hand: v4l's `query_caps` panics on non-UTF-8 card names and
/// ignores drivers that leave `device_caps` unset.
fn query_caps(dev: &v4l::Device) -> io::Result<(DeviceInfo, u32)> {
    let mut cap: v4l::v4l_sys::v4l2_capability = unsafe { std::mem::zeroed() };
    unsafe {
        v4l::v4l2::ioctl(
            dev.handle().fd(),
            v4l::v4l2::vidioc::VIDIOC_QUERYCAP,
            &mut cap as *mut _ as *mut std::os::raw::c_void,
        )?;
    }
    let caps = if cap.capabilities & Flags::DEVICE_CAPS.bits() != 0 {
        cap.device_caps
    } else {
        cap.capabilities
    };
    Ok((
        DeviceInfo {
            driver: c_string(&cap.driver),
            card: c_string(&cap.card),
            bus_info: c_string(&cap.bus_info),
            capabilities: capability_names(caps),
        },
        caps,
    ))
}

/// Opens `path` and probes it. Blocking.
pub fn probe(path: &Path) -> Result<Probe, ProbeError> {
    let dev = v4l::Device::with_path(path).map_err(ProbeError::Io)?;
    let (info, caps) = query_caps(&dev).map_err(ProbeError::Io)?;
    if !is_capture(caps) {
        return Err(ProbeError::NotCapture(info));
    }
    let modes = enumerate_modes(&dev);
    let current = Capture::format(&dev).ok().map(|f| (f.width, f.height));
    let current_fps = Capture::params(&dev)
        .ok()
        .and_then(|p| interval_to_fps(p.interval.numerator, p.interval.denominator));
    Ok(Probe {
        info,
        modes,
        current,
        current_fps,
    })
}

fn enumerate_modes(dev: &v4l::Device) -> Vec<Mode> {
    let mut modes = Vec::new();
    let formats = dev.enum_formats().unwrap_or_default();
    for fmt in formats {
        let fourcc = fmt.fourcc;
        let format = fourcc_text(&fourcc.repr);
        let sizes: Vec<(u32, u32)> = match dev.enum_framesizes(fourcc) {
            Ok(list) => {
                let mut out = BTreeSet::new();
                for fs in list {
                    match fs.size {
                        FrameSizeEnum::Discrete(d) => {
                            out.insert((d.width, d.height));
                        }
                        FrameSizeEnum::Stepwise(s) => {
                            out.extend(stepwise_sizes(&SizeRange {
                                min_width: s.min_width,
                                max_width: s.max_width,
                                step_width: s.step_width,
                                min_height: s.min_height,
                                max_height: s.max_height,
                                step_height: s.step_height,
                            }));
                        }
                    }
                }
                out.into_iter().collect()
            }
            // Drivers without ENUM_FRAMESIZES: the current size is the only one we know.
            Err(_) => Capture::format(dev)
                .ok()
                .filter(|f| f.fourcc == fourcc)
                .map(|f| vec![(f.width, f.height)])
                .unwrap_or_default(),
        };
        for (width, height) in sizes {
            let mut intervals = Vec::new();
            if let Ok(list) = dev.enum_frameintervals(fourcc, width, height) {
                for iv in list {
                    intervals.push(match iv.interval {
                        FrameIntervalEnum::Discrete(f) => Interval::Discrete(f.numerator, f.denominator),
                        FrameIntervalEnum::Stepwise(s) => Interval::Range {
                            min: (s.min.numerator, s.min.denominator),
                            max: (s.max.numerator, s.max.denominator),
                        },
                    });
                }
            }
            modes.push(Mode {
                format: format.clone(),
                width,
                height,
                fps: flatten_intervals(&intervals),
            });
        }
    }
    modes
}

/// FourCC bytes as text, as `v4l2-ctl` prints them: trailing spaces trimmed (`"Y10 "` →
/// `"Y10"`), big-endian variants (bit 31 set) suffixed `-BE` (`"AR15-BE"`, `"Y16 -BE"`).
pub fn fourcc_text(repr: &[u8; 4]) -> String {
    let mut bytes = *repr;
    let big_endian = bytes[3] & 0x80 != 0;
    bytes[3] &= 0x7f;
    let s = bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect::<String>();
    if big_endian {
        format!("{s}-BE")
    } else {
        s.trim_end().to_string()
    }
}

/// A stepwise or continuous frame-size range (`V4L2_FRMSIZE_TYPE_STEPWISE/CONTINUOUS`;
/// continuous has steps of 1).
#[derive(Clone, Copy, Debug)]
pub struct SizeRange {
    pub min_width: u32,
    pub max_width: u32,
    pub step_width: u32,
    pub min_height: u32,
    pub max_height: u32,
    pub step_height: u32,
}

/// Sizes clients commonly ask for; a range reports those it contains, plus min and max.
pub const COMMON_SIZES: &[(u32, u32)] = &[
    (160, 120),
    (320, 180),
    (320, 240),
    (640, 360),
    (640, 480),
    (800, 600),
    (1024, 576),
    (1024, 768),
    (1280, 720),
    (1280, 960),
    (1280, 1024),
    (1600, 1200),
    (1920, 1080),
    (2560, 1440),
    (3840, 2160),
    (4096, 2160),
];

/// Flattens a size range: min, max, and every common size reachable on the step grid.
pub fn stepwise_sizes(r: &SizeRange) -> Vec<(u32, u32)> {
    let on_grid = |v: u32, min: u32, max: u32, step: u32| v >= min && v <= max && (v - min) % step.max(1) == 0;
    let mut out = BTreeSet::new();
    if r.min_width > r.max_width || r.min_height > r.max_height || r.max_width == 0 || r.max_height == 0 {
        return Vec::new();
    }
    out.insert((r.min_width, r.min_height));
    out.insert((r.max_width, r.max_height));
    for &(w, h) in COMMON_SIZES {
        if on_grid(w, r.min_width, r.max_width, r.step_width) && on_grid(h, r.min_height, r.max_height, r.step_height) {
            out.insert((w, h));
        }
    }
    out.into_iter().collect()
}

/// A frame interval as the driver reports it: seconds per frame as numerator/denominator.
#[derive(Clone, Copy, Debug)]
pub enum Interval {
    Discrete(u32, u32),
    /// Stepwise or continuous: the shortest (`min`) and longest (`max`) interval.
    Range {
        min: (u32, u32),
        max: (u32, u32),
    },
}

/// Frame rates clients commonly ask for; an interval range reports those it contains, plus
/// its ends.
pub const COMMON_FPS: &[u32] = &[1, 5, 10, 15, 20, 24, 25, 30, 50, 60, 90, 120];

/// `num/den` seconds per frame → whole frames per second (29.97 → 30); `None` for 0 or
/// nonsense.
pub fn interval_to_fps(num: u32, den: u32) -> Option<u32> {
    if num == 0 || den == 0 {
        return None;
    }
    let fps = (den as f64 / num as f64).round() as u32;
    (fps > 0).then_some(fps)
}

/// Every interval flattened to unique whole fps, highest first.
pub fn flatten_intervals(intervals: &[Interval]) -> Vec<u32> {
    let mut out = BTreeSet::new();
    for iv in intervals {
        match *iv {
            Interval::Discrete(n, d) => out.extend(interval_to_fps(n, d)),
            Interval::Range { min, max } => {
                // The shortest interval is the highest rate.
                let (Some(hi), Some(lo)) = (interval_to_fps(min.0, min.1), interval_to_fps(max.0, max.1)) else {
                    continue;
                };
                let (lo, hi) = (lo.min(hi), lo.max(hi));
                out.insert(hi);
                out.insert(lo);
                out.extend(COMMON_FPS.iter().copied().filter(|f| (lo..=hi).contains(f)));
            }
        }
    }
    out.into_iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discrete_intervals_round_and_dedupe() {
        let iv = [
            Interval::Discrete(1, 30),
            Interval::Discrete(1001, 30000),
            Interval::Discrete(1, 15),
            Interval::Discrete(2, 5),
            Interval::Discrete(0, 1),
        ];
        // 1/30 and 1001/30000 both round to 30; 2/5 s = 2.5 fps rounds to 3.
        assert_eq!(flatten_intervals(&iv), vec![30, 15, 3]);
    }

    #[test]
    fn stepwise_and_continuous_intervals_give_ends_and_common_rates() {
        // 1/60 s .. 1 s: 60 fps down to 1 fps.
        let iv = [Interval::Range {
            min: (1, 60),
            max: (1, 1),
        }];
        assert_eq!(flatten_intervals(&iv), vec![60, 50, 30, 25, 24, 20, 15, 10, 5, 1]);
        // An odd range keeps its ends: 1/45 .. 1/7.
        let iv = [Interval::Range {
            min: (1, 45),
            max: (1, 7),
        }];
        assert_eq!(flatten_intervals(&iv), vec![45, 30, 25, 24, 20, 15, 10, 7]);
    }

    #[test]
    fn stepwise_sizes_keep_ends_and_aligned_common_sizes() {
        let r = SizeRange {
            min_width: 320,
            max_width: 1920,
            step_width: 16,
            min_height: 240,
            max_height: 1080,
            step_height: 8,
        };
        let s = stepwise_sizes(&r);
        assert_eq!(s.first(), Some(&(320, 240)));
        assert!(s.contains(&(1920, 1080)) && s.contains(&(1280, 720)) && s.contains(&(640, 480)));
        // 320x180 is below min height; 3840x2160 above max.
        assert!(!s.contains(&(320, 180)) && !s.contains(&(3840, 2160)));
        // 1024x576: (1024-320)%16 == 0 and (576-240)%8 == 0 → kept; 1600x1200 above max height.
        assert!(s.contains(&(1024, 576)));
        assert!(!s.contains(&(1600, 1200)));
        // A grid that misses common sizes keeps only the ends.
        let odd = SizeRange {
            min_width: 101,
            max_width: 1001,
            step_width: 300,
            min_height: 101,
            max_height: 1001,
            step_height: 300,
        };
        assert_eq!(stepwise_sizes(&odd), vec![(101, 101), (1001, 1001)]);
    }

    #[test]
    fn continuous_sizes_are_step_one() {
        let r = SizeRange {
            min_width: 48,
            max_width: 4096,
            step_width: 1,
            min_height: 32,
            max_height: 2304,
            step_height: 1,
        };
        let s = stepwise_sizes(&r);
        assert_eq!(s.first(), Some(&(48, 32)));
        assert_eq!(s.last(), Some(&(4096, 2304)));
        assert!(s.contains(&(3840, 2160)) && s.contains(&(160, 120)));
        assert!(s.contains(&(4096, 2160)));
        // Degenerate ranges give nothing rather than nonsense.
        let bad = SizeRange {
            min_width: 10,
            max_width: 5,
            ..r
        };
        assert!(stepwise_sizes(&bad).is_empty());
    }

    #[test]
    fn capture_capability_decides() {
        // vivid capture node: VIDEO_CAPTURE | READ_WRITE | STREAMING | EXT_PIX_FORMAT
        let capture = 0x0000_0001 | 0x0100_0000 | 0x0400_0000 | 0x0020_0000;
        assert!(is_capture(capture));
        assert_eq!(
            capability_names(capture),
            vec!["video_capture", "ext_pix_format", "read_write", "streaming"]
        );
        // UVC metadata node, radio, VBI, SDR, touch (touch sets VIDEO_CAPTURE too).
        for caps in [
            0x0080_0000 | 0x0400_0000,
            0x0004_0000 | 0x0001_0000,
            0x10,
            0x0010_0000,
            0x1000_0000 | 0x1 | 0x0400_0000,
        ] {
            assert!(!is_capture(caps), "{caps:#x}");
        }
        assert_eq!(fourcc_text(b"Y10 "), "Y10");
        assert_eq!(fourcc_text(b"MJPG"), "MJPG");
        assert_eq!(fourcc_text(&[b'A', b'R', b'1', b'5' | 0x80]), "AR15-BE");
        assert_eq!(fourcc_text(&[b'Y', b'1', b'6', b' ' | 0x80]), "Y16 -BE");
    }
}
