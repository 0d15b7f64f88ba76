//! Geotags: the vehicle position as EXIF GPS tags in a JPEG. No crate for writing EXIF fits
//! Rust 1.75 and this size (kamadak-exif only reads; little_exif needs a newer compiler), and
//! the GPS IFD is small: one APP1 segment with IFD0 → GPS IFD (version, latitude, longitude,
//! altitude), big-endian TIFF. The values are exact: degE7 → degrees, minutes and seconds as
//! rationals with denominator 10^7. Read back by an independent reader in the end-to-end test
//! (`exifread`, tests/mavlink/photos.py).

use super::Position;
use schemars::JsonSchema;
use serde::Serialize;
use std::path::Path;

/// The position a photo was taken at (`take_snapshot` result, `snapshot.taken`), in the
/// contract's names (api.md §12).
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Geotag {
    /// Degrees, WGS84.
    pub lat: f64,
    pub lon: f64,
    /// Metres above mean sea level.
    pub alt_m: f64,
    /// Metres above the vehicle's home.
    pub relative_alt_m: f64,
    /// When the vehicle reported the position (RFC 3339, UTC).
    pub time: String,
}

impl From<&Position> for Geotag {
    fn from(p: &Position) -> Geotag {
        Geotag {
            lat: p.lat as f64 / 1e7,
            lon: p.lon as f64 / 1e7,
            alt_m: p.alt_mm as f64 / 1000.0,
            relative_alt_m: p.relative_alt_mm as f64 / 1000.0,
            time: crate::clock::rfc3339(p.received_at),
        }
    }
}

const E7: u32 = 10_000_000;

/// |value| in degE7 → (degrees, minutes, seconds) rationals.
fn dms(value: i32) -> [(u32, u32); 3] {
    let total = value.unsigned_abs();
    let deg = total / E7;
    let rem_min = (total % E7) as u64 * 60; // minutes × 1e7
    let min = (rem_min / E7 as u64) as u32;
    let sec_num = ((rem_min % E7 as u64) * 60) as u32; // seconds × 1e7 (< 6e8)
    [(deg, 1), (min, 1), (sec_num, E7)]
}

/// The APP1 segment (marker included) carrying the GPS tags of `p`.
pub fn gps_app1(p: &Position) -> Vec<u8> {
    // TIFF (offsets from its start): header 8, IFD0 (1 entry) 18, GPS IFD (7 entries) 90,
    // then the rationals: latitude 24, longitude 24, altitude 8.
    const IFD0: u32 = 8;
    const GPS_IFD: u32 = IFD0 + 2 + 12 + 4;
    const ENTRIES: u16 = 7;
    const DATA: u32 = GPS_IFD + 2 + 12 * ENTRIES as u32 + 4;
    let mut t: Vec<u8> = Vec::with_capacity(200);
    t.extend_from_slice(b"MM\x00\x2a");
    t.extend_from_slice(&IFD0.to_be_bytes());
    let entry = |t: &mut Vec<u8>, tag: u16, typ: u16, count: u32, value: [u8; 4]| {
        t.extend_from_slice(&tag.to_be_bytes());
        t.extend_from_slice(&typ.to_be_bytes());
        t.extend_from_slice(&count.to_be_bytes());
        t.extend_from_slice(&value);
    };
    const BYTE: u16 = 1;
    const ASCII: u16 = 2;
    const LONG: u16 = 4;
    const RATIONAL: u16 = 5;
    // IFD0: GPSInfo pointer
    t.extend_from_slice(&1u16.to_be_bytes());
    entry(&mut t, 0x8825, LONG, 1, GPS_IFD.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    // GPS IFD
    let (lat_ref, lon_ref) = (if p.lat < 0 { b'S' } else { b'N' }, if p.lon < 0 { b'W' } else { b'E' });
    t.extend_from_slice(&ENTRIES.to_be_bytes());
    entry(&mut t, 0x0000, BYTE, 4, [2, 3, 0, 0]);
    entry(&mut t, 0x0001, ASCII, 2, [lat_ref, 0, 0, 0]);
    entry(&mut t, 0x0002, RATIONAL, 3, DATA.to_be_bytes());
    entry(&mut t, 0x0003, ASCII, 2, [lon_ref, 0, 0, 0]);
    entry(&mut t, 0x0004, RATIONAL, 3, (DATA + 24).to_be_bytes());
    entry(&mut t, 0x0005, BYTE, 1, [(p.alt_mm < 0) as u8, 0, 0, 0]);
    entry(&mut t, 0x0006, RATIONAL, 1, (DATA + 48).to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    debug_assert_eq!(t.len() as u32, DATA);
    let alt = (p.alt_mm.unsigned_abs(), 1000);
    for (n, d) in dms(p.lat).into_iter().chain(dms(p.lon)).chain([alt]) {
        t.extend_from_slice(&n.to_be_bytes());
        t.extend_from_slice(&d.to_be_bytes());
    }
    let mut seg = Vec::with_capacity(t.len() + 10);
    seg.extend_from_slice(&[0xFF, 0xE1]);
    seg.extend_from_slice(&((t.len() + 2 + 6) as u16).to_be_bytes());
    seg.extend_from_slice(b"Exif\0\0");
    seg.extend_from_slice(&t);
    seg
}

/// `jpeg` with the GPS segment inserted after SOI (after a JFIF APP0, if any); None when
/// `jpeg` is not a JPEG.
pub fn with_gps(jpeg: &[u8], p: &Position) -> Option<Vec<u8>> {
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut at = 2;
    if jpeg.len() > 6 && jpeg[2] == 0xFF && jpeg[3] == 0xE0 {
        at = 4 + u16::from_be_bytes([jpeg[4], jpeg[5]]) as usize;
        if at > jpeg.len() {
            return None;
        }
    }
    let seg = gps_app1(p);
    let mut out = Vec::with_capacity(jpeg.len() + seg.len());
    out.extend_from_slice(&jpeg[..at]);
    out.extend_from_slice(&seg);
    out.extend_from_slice(&jpeg[at..]);
    Some(out)
}

/// Rewrites the JPEG at `path` with the GPS tags (a temporary beside it, then renamed over
/// it, so a reader never sees half a file); returns the new size.
pub fn tag_file(path: &Path, p: &Position) -> std::io::Result<u64> {
    let bytes = std::fs::read(path)?;
    let tagged = with_gps(&bytes, p).ok_or_else(|| std::io::Error::other("not a JPEG"))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("snapshot");
    let tmp = path.with_file_name(format!(".{name}.exif.tmp"));
    std::fs::write(&tmp, &tagged)?;
    std::fs::rename(&tmp, path)?;
    Ok(tagged.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degrees_minutes_seconds_are_exact() {
        // 47.3977419° = 47° 23' 51.87084"
        assert_eq!(dms(473977419), [(47, 1), (23, 1), (518708400, E7)]);
        assert_eq!(dms(-1225), [(0, 1), (0, 1), (4410000, E7)]); // 0.441"
        let back = |d: [(u32, u32); 3]| d[0].0 as f64 + d[1].0 as f64 / 60.0 + d[2].0 as f64 / d[2].1 as f64 / 3600.0;
        assert!((back(dms(85363479)) - 8.5363479).abs() < 1e-9);
    }

    #[test]
    fn the_segment_goes_after_jfif_and_keeps_the_image() {
        let p = Position {
            lat: -338688000,
            lon: 1512093000,
            alt_mm: -2500,
            relative_alt_mm: 0,
            q: [0.0; 4],
            received_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        let jfif = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0xAA, 0xBB, 0xFF, 0xD9];
        let out = with_gps(&jfif, &p).unwrap();
        assert_eq!(&out[..8], &jfif[..8]);
        assert_eq!(&out[8..10], &[0xFF, 0xE1]);
        assert_eq!(&out[out.len() - 2..], &[0xFF, 0xD9]);
        let seg = gps_app1(&p);
        assert_eq!(u16::from_be_bytes([seg[2], seg[3]]) as usize, seg.len() - 2);
        assert!(seg.windows(2).any(|w| w == b"S\0") && seg.windows(2).any(|w| w == b"E\0"));
        assert!(with_gps(b"GIF89a", &p).is_none());
    }
}
