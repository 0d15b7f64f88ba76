//! Still-image work for snapshots, all in-process and blocking (run it on the blocking pool):
//! MJPEG frames made into stand-alone JPEG files (the standard Huffman tables inserted when a
//! camera omits them, as UVC cameras usually do), raw V4L2 frames (YUYV, UYVY, NV12, YU12,
//! RGB...) converted to RGB, area-average downscaling, and JPEG / PNG encoding.

use std::fmt;

/// An image-processing failure (bad frame, unsupported layout, encoder error).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageError(pub String);

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(m: impl Into<String>) -> ImageError {
    ImageError(m.into())
}

/// Output file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Jpg,
    Png,
}

impl ImageFormat {
    pub fn parse(s: &str) -> Option<ImageFormat> {
        match s {
            "jpg" => Some(ImageFormat::Jpg),
            "png" => Some(ImageFormat::Png),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Jpg => "jpg",
            ImageFormat::Png => "png",
        }
    }
    pub fn extension(self) -> &'static str {
        self.as_str()
    }
}

/// An 8-bit RGB image, rows packed (`width * 3` bytes each).
#[derive(Clone, Debug, PartialEq)]
pub struct Rgb {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

/// A captured frame before encoding.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// A compressed JPEG / MJPEG frame as the camera delivered it.
    Jpeg(Vec<u8>),
    Rgb(Rgb),
}

// ---------------------------------------------------------------- JPEG structure

/// Standard Huffman tables of ITU T.81 Annex K.3 (what MJPEG streams without DHT mean).
const DC_LUMA_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const DC_CHROMA_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
const DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const AC_LUMA_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
const AC_LUMA_VALUES: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71, 0x14,
    0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09,
    0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A,
    0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65,
    0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88,
    0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9,
    0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA,
    0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA,
    0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
];
const AC_CHROMA_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
const AC_CHROMA_VALUES: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71, 0x13, 0x22, 0x32,
    0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33, 0x52, 0xF0, 0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16,
    0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18, 0x19, 0x1A, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39,
    0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64,
    0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x82, 0x83, 0x84, 0x85, 0x86,
    0x87, 0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
    0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8,
    0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9,
    0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
];

/// One DHT segment (marker included) holding the four standard tables.
pub fn standard_dht() -> Vec<u8> {
    let tables: [(u8, &[u8; 16], &[u8]); 4] = [
        (0x00, &DC_LUMA_BITS, &DC_VALUES),
        (0x10, &AC_LUMA_BITS, &AC_LUMA_VALUES),
        (0x01, &DC_CHROMA_BITS, &DC_VALUES),
        (0x11, &AC_CHROMA_BITS, &AC_CHROMA_VALUES),
    ];
    let mut body = Vec::new();
    for (class_id, bits, values) in tables {
        body.push(class_id);
        body.extend_from_slice(bits);
        body.extend_from_slice(values);
    }
    let len = (body.len() + 2) as u16;
    let mut out = vec![0xFF, 0xC4];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// What the marker walk found in a JPEG up to its first SOS.
#[derive(Debug, Default, PartialEq)]
pub struct JpegInfo {
    pub width: u32,
    pub height: u32,
    pub has_dht: bool,
    /// Offset of the first SOS marker.
    pub sos_at: usize,
}

/// Walks the markers of a JPEG from SOI to the first SOS.
pub fn jpeg_info(data: &[u8]) -> Result<JpegInfo, ImageError> {
    if data.len() < 4 || data[0] != 0xFF || data[1] != 0xD8 {
        return Err(err("frame is not a JPEG (no SOI marker)"));
    }
    let mut info = JpegInfo::default();
    let mut i = 2;
    loop {
        // skip fill bytes
        while i < data.len() && data[i] == 0xFF && data.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        if i + 4 > data.len() || data[i] != 0xFF {
            return Err(err("truncated or corrupt JPEG header"));
        }
        let marker = data[i + 1];
        if marker == 0xDA {
            info.sos_at = i;
            break;
        }
        if (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            i += 2;
            continue;
        }
        let len = u16::from_be_bytes([data[i + 2], data[i + 3]]) as usize;
        if len < 2 || i + 2 + len > data.len() {
            return Err(err("JPEG segment runs past the end of the frame"));
        }
        match marker {
            0xC4 => info.has_dht = true,
            // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC)
            0xC0..=0xCF if marker != 0xC8 && marker != 0xCC => {
                if len < 7 {
                    return Err(err("short SOF segment"));
                }
                info.height = u16::from_be_bytes([data[i + 5], data[i + 6]]) as u32;
                info.width = u16::from_be_bytes([data[i + 7], data[i + 8]]) as u32;
            }
            _ => {}
        }
        i += 2 + len;
    }
    if info.width == 0 || info.height == 0 {
        return Err(err("JPEG has no frame size (SOF) before its scan"));
    }
    Ok(info)
}

/// Makes an MJPEG frame a stand-alone JPEG file: checks its structure, inserts the standard
/// DHT before the scan when the camera left it out, and cuts driver padding after EOI.
pub fn mjpeg_to_jpeg(frame: &[u8]) -> Result<(Vec<u8>, JpegInfo), ImageError> {
    let info = jpeg_info(frame)?;
    let end = frame
        .windows(2)
        .rposition(|w| w == [0xFF, 0xD9])
        .filter(|&p| p > info.sos_at)
        .ok_or_else(|| err("JPEG frame has no EOI marker (incomplete frame)"))?;
    let frame = &frame[..end + 2];
    if info.has_dht {
        return Ok((frame.to_vec(), info));
    }
    let dht = standard_dht();
    let mut out = Vec::with_capacity(frame.len() + dht.len());
    out.extend_from_slice(&frame[..info.sos_at]);
    out.extend_from_slice(&dht);
    out.extend_from_slice(&frame[info.sos_at..]);
    let info = JpegInfo {
        has_dht: true,
        sos_at: info.sos_at + dht.len(),
        ..info
    };
    Ok((out, info))
}

/// Decodes a (DHT-complete) JPEG to RGB.
pub fn decode_jpeg(jpeg: &[u8]) -> Result<Rgb, ImageError> {
    let mut d = jpeg_decoder::Decoder::new(jpeg);
    let pixels = d.decode().map_err(|e| err(format!("JPEG decode: {e}")))?;
    let meta = d.info().ok_or_else(|| err("JPEG decode: no image info"))?;
    let (w, h) = (meta.width as u32, meta.height as u32);
    let data = match meta.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => pixels,
        jpeg_decoder::PixelFormat::L8 => pixels.iter().flat_map(|&y| [y, y, y]).collect(),
        jpeg_decoder::PixelFormat::L16 => pixels.chunks_exact(2).flat_map(|p| [p[0], p[0], p[0]]).collect(),
        jpeg_decoder::PixelFormat::CMYK32 => pixels
            .chunks_exact(4)
            .flat_map(|p| {
                let k = 255 - p[3] as u32;
                [p[0], p[1], p[2]].map(|c| ((255 - c as u32) * k / 255) as u8)
            })
            .collect(),
    };
    Ok(Rgb {
        width: w,
        height: h,
        data,
    })
}

// ---------------------------------------------------------------- raw frames

#[inline]
fn clamp(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// BT.601 limited range (what V4L2 YUV means unless told otherwise; FFmpeg's default too).
#[inline]
fn yuv_to_rgb(y: u8, u: u8, v: u8, out: &mut [u8]) {
    let c = 298 * (y as i32 - 16);
    let d = u as i32 - 128;
    let e = v as i32 - 128;
    out[0] = clamp((c + 409 * e + 128) >> 8);
    out[1] = clamp((c - 100 * d - 208 * e + 128) >> 8);
    out[2] = clamp((c + 516 * d + 128) >> 8);
}

/// FourCCs [`raw_to_rgb`] converts, in the order tier 0 prefers them after MJPEG.
pub const RAW_FORMATS: [&str; 9] = ["YUYV", "NV12", "YU12", "UYVY", "YVYU", "NV21", "YV12", "RGB3", "BGR3"];

/// Converts one raw frame (`stride` = bytes per line of the first plane) to RGB.
pub fn raw_to_rgb(fourcc: &str, width: u32, height: u32, stride: u32, data: &[u8]) -> Result<Rgb, ImageError> {
    let (w, h) = (width as usize, height as usize);
    if w == 0 || h == 0 || w % 2 != 0 {
        return Err(err(format!("unsupported frame size {width}x{height}")));
    }
    let packed_min = match fourcc {
        "YUYV" | "UYVY" | "YVYU" => w * 2,
        "RGB3" | "BGR3" => w * 3,
        _ => w,
    };
    let stride = (stride as usize).max(packed_min);
    let need = match fourcc {
        "YUYV" | "UYVY" | "YVYU" | "RGB3" | "BGR3" => stride * h,
        "NV12" | "NV21" | "YU12" | "YV12" => stride * h + stride * h.div_ceil(2),
        other => return Err(err(format!("pixel format {other} is not supported for snapshots"))),
    };
    if data.len() < need {
        return Err(err(format!(
            "short {fourcc} frame: {} bytes, {need} expected for {width}x{height}",
            data.len()
        )));
    }
    let mut out = vec![0u8; w * h * 3];
    match fourcc {
        "YUYV" | "UYVY" | "YVYU" => {
            // byte positions of Y0, U, Y1, V in each 4-byte group
            let (y0, u, y1, v) = match fourcc {
                "YUYV" => (0, 1, 2, 3),
                "UYVY" => (1, 0, 3, 2),
                _ => (0, 3, 2, 1),
            };
            for row in 0..h {
                let src = &data[row * stride..row * stride + w * 2];
                let dst = &mut out[row * w * 3..(row + 1) * w * 3];
                for (g, px) in src.chunks_exact(4).zip(dst.chunks_exact_mut(6)) {
                    let (a, b) = px.split_at_mut(3);
                    yuv_to_rgb(g[y0], g[u], g[v], a);
                    yuv_to_rgb(g[y1], g[u], g[v], b);
                }
            }
        }
        "NV12" | "NV21" => {
            let uv_plane = &data[stride * h..];
            let (ui, vi) = if fourcc == "NV12" { (0, 1) } else { (1, 0) };
            for row in 0..h {
                let ys = &data[row * stride..];
                let uvs = &uv_plane[(row / 2) * stride..];
                for col in 0..w {
                    let c = (col / 2) * 2;
                    yuv_to_rgb(ys[col], uvs[c + ui], uvs[c + vi], &mut out[(row * w + col) * 3..]);
                }
            }
        }
        "YU12" | "YV12" => {
            let cstride = stride / 2;
            let ch = h.div_ceil(2);
            let p1 = &data[stride * h..];
            let p2 = &data[stride * h + cstride * ch..];
            let (up, vp) = if fourcc == "YU12" { (p1, p2) } else { (p2, p1) };
            if p2.len() < cstride * ch {
                return Err(err("short planar frame"));
            }
            for row in 0..h {
                for col in 0..w {
                    let ci = (row / 2) * cstride + col / 2;
                    yuv_to_rgb(
                        data[row * stride + col],
                        up[ci],
                        vp[ci],
                        &mut out[(row * w + col) * 3..],
                    );
                }
            }
        }
        _ => {
            let bgr = fourcc == "BGR3";
            for row in 0..h {
                let src = &data[row * stride..row * stride + w * 3];
                let dst = &mut out[row * w * 3..(row + 1) * w * 3];
                if bgr {
                    for (s, d) in src.chunks_exact(3).zip(dst.chunks_exact_mut(3)) {
                        d.copy_from_slice(&[s[2], s[1], s[0]]);
                    }
                } else {
                    dst.copy_from_slice(src);
                }
            }
        }
    }
    Ok(Rgb {
        width,
        height,
        data: out,
    })
}

// ---------------------------------------------------------------- scaling and encoding

/// The size that fits `(w, h)` into the limits keeping the aspect ratio; never upscales.
/// A limit of `None` is no limit.
pub fn fit(w: u32, h: u32, max_w: Option<u32>, max_h: Option<u32>) -> (u32, u32) {
    let mw = max_w.unwrap_or(w).min(w).max(1) as u64;
    let mh = max_h.unwrap_or(h).min(h).max(1) as u64;
    let (w64, h64) = (w as u64, h as u64);
    if mw >= w64 && mh >= h64 {
        return (w, h);
    }
    // the tighter of the two ratios wins
    if mw * h64 <= mh * w64 {
        (mw as u32, ((h64 * mw + w64 / 2) / w64).max(1) as u32)
    } else {
        (((w64 * mh + h64 / 2) / h64).max(1) as u32, mh as u32)
    }
}

/// Area-average downscale (each output pixel is the mean of the source pixels it covers).
pub fn scale(img: &Rgb, tw: u32, th: u32) -> Rgb {
    if tw == img.width && th == img.height {
        return img.clone();
    }
    let (sw, sh) = (img.width as usize, img.height as usize);
    let (tw_, th_) = (tw as usize, th as usize);
    let mut out = vec![0u8; tw_ * th_ * 3];
    for oy in 0..th_ {
        let y0 = oy * sh / th_;
        let y1 = ((oy + 1) * sh / th_).max(y0 + 1).min(sh);
        for ox in 0..tw_ {
            let x0 = ox * sw / tw_;
            let x1 = ((ox + 1) * sw / tw_).max(x0 + 1).min(sw);
            let mut acc = [0u32; 3];
            for y in y0..y1 {
                let row = &img.data[(y * sw + x0) * 3..(y * sw + x1) * 3];
                for p in row.chunks_exact(3) {
                    acc[0] += p[0] as u32;
                    acc[1] += p[1] as u32;
                    acc[2] += p[2] as u32;
                }
            }
            let n = ((y1 - y0) * (x1 - x0)) as u32;
            let o = (oy * tw_ + ox) * 3;
            for c in 0..3 {
                out[o + c] = ((acc[c] + n / 2) / n) as u8;
            }
        }
    }
    Rgb {
        width: tw,
        height: th,
        data: out,
    }
}

pub fn encode_jpeg(img: &Rgb, quality: u8) -> Result<Vec<u8>, ImageError> {
    let (w, h) = (
        u16::try_from(img.width).map_err(|_| err("image too wide for JPEG"))?,
        u16::try_from(img.height).map_err(|_| err("image too tall for JPEG"))?,
    );
    let mut out = Vec::with_capacity(img.data.len() / 8);
    jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100))
        .encode(&img.data, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| err(format!("JPEG encode: {e}")))?;
    Ok(out)
}

pub fn encode_png(img: &Rgb) -> Result<Vec<u8>, ImageError> {
    let mut out = Vec::with_capacity(img.data.len() / 2);
    {
        let mut enc = png::Encoder::new(&mut out, img.width, img.height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        // Fast: snapshots are on the latency path and PNG size matters less than JPEG's.
        enc.set_compression(png::Compression::Fast);
        let mut w = enc.write_header().map_err(|e| err(format!("PNG encode: {e}")))?;
        w.write_image_data(&img.data)
            .map_err(|e| err(format!("PNG encode: {e}")))?;
    }
    Ok(out)
}

/// The encoded file: bytes, width, height.
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Turns a captured frame into the requested file. A JPEG frame that needs neither PNG output
/// nor scaling is written as the camera compressed it (only made complete), without a
/// decode/encode round trip; `quality` then does not apply.
pub fn render(
    frame: Frame,
    format: ImageFormat,
    quality: u8,
    max_w: Option<u32>,
    max_h: Option<u32>,
) -> Result<Encoded, ImageError> {
    let rgb = match frame {
        Frame::Jpeg(data) => {
            let (jpeg, info) = mjpeg_to_jpeg(&data)?;
            let target = fit(info.width, info.height, max_w, max_h);
            if format == ImageFormat::Jpg && target == (info.width, info.height) {
                return Ok(Encoded {
                    bytes: jpeg,
                    width: info.width,
                    height: info.height,
                });
            }
            decode_jpeg(&jpeg)?
        }
        Frame::Rgb(rgb) => rgb,
    };
    let (tw, th) = fit(rgb.width, rgb.height, max_w, max_h);
    let img = scale(&rgb, tw, th);
    let bytes = match format {
        ImageFormat::Jpg => encode_jpeg(&img, quality)?,
        ImageFormat::Png => encode_png(&img)?,
    };
    Ok(Encoded {
        bytes,
        width: tw,
        height: th,
    })
}

/// Parses one binary PPM (`P6`, maxval 255) image as FFmpeg's `-c:v ppm` writes it.
pub fn parse_ppm(data: &[u8]) -> Result<Rgb, ImageError> {
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while i < data.len() && (data[i].is_ascii_whitespace() || data[i] == b'#') {
            if data[i] == b'#' {
                while i < data.len() && data[i] != b'\n' {
                    i += 1;
                }
            } else {
                i += 1;
            }
        }
        let start = i;
        while i < data.len() && !data[i].is_ascii_whitespace() {
            i += 1;
        }
        if start == i {
            return Err(err("truncated PPM header"));
        }
        fields.push(String::from_utf8_lossy(&data[start..i]).to_string());
    }
    i += 1; // the single whitespace after maxval
    let num = |s: &str| s.parse::<u32>().map_err(|_| err("bad PPM header"));
    if fields[0] != "P6" || num(&fields[3])? != 255 {
        return Err(err("not an 8-bit binary PPM"));
    }
    let (w, h) = (num(&fields[1])?, num(&fields[2])?);
    let need = w as usize * h as usize * 3;
    if w == 0 || h == 0 || data.len() < i + need {
        return Err(err("truncated PPM image"));
    }
    Ok(Rgb {
        width: w,
        height: h,
        data: data[i..i + need].to_vec(),
    })
}

/// Mean and standard deviation of all samples (tests and sanity checks: a dark or uniform
/// frame has a tiny deviation).
pub fn stats(data: &[u8]) -> (f64, f64) {
    if data.is_empty() {
        return (0.0, 0.0);
    }
    let n = data.len() as f64;
    let mean = data.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = data.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// `ffmpeg -f lavfi testsrc2` → one frame in `args` output format, on stdout.
    fn ffmpeg_frame(args: &[&str]) -> Vec<u8> {
        let out = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=1",
            ])
            .args(["-frames:v", "1"])
            .args(args)
            .arg("pipe:1")
            .output()
            .expect("ffmpeg is installed (scripts/setup)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// Strips every DHT segment, as UVC cameras send MJPEG.
    fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
        let sos = jpeg_info(jpeg).unwrap().sos_at;
        let mut out = jpeg[..2].to_vec();
        let mut i = 2;
        while i < sos {
            let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
            if jpeg[i + 1] != 0xC4 {
                out.extend_from_slice(&jpeg[i..i + 2 + len]);
            }
            i += 2 + len;
        }
        out.extend_from_slice(&jpeg[sos..]);
        out
    }

    fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (*x as i32 - *y as i32).abs() as f64)
            .sum::<f64>()
            / a.len() as f64
    }

    #[test]
    fn mjpeg_without_dht_becomes_a_decodable_jpeg() {
        // FFmpeg's MJPEG encoder with the standard tables, then the DHT removed: exactly what
        // a UVC camera delivers (vivid has no MJPEG format, so this is the real-frame test).
        let full = ffmpeg_frame(&["-c:v", "mjpeg", "-huffman", "default", "-q:v", "3", "-f", "mjpeg"]);
        let frame = strip_dht(&full);
        assert!(!jpeg_info(&frame).unwrap().has_dht, "DHT stripped");
        assert!(
            jpeg_decoder::Decoder::new(&frame[..]).decode().is_err(),
            "without DHT a decoder refuses the frame"
        );
        // drivers pad buffers after EOI
        let mut padded = frame.clone();
        padded.extend_from_slice(&[0u8; 100]);
        let (fixed, info) = mjpeg_to_jpeg(&padded).unwrap();
        assert_eq!((info.width, info.height, info.has_dht), (320, 240, true));
        assert!(fixed.ends_with(&[0xFF, 0xD9]));
        let rgb = decode_jpeg(&fixed).unwrap();
        let reference = decode_jpeg(&full).unwrap();
        assert_eq!((rgb.width, rgb.height), (320, 240));
        assert_eq!(
            rgb.data, reference.data,
            "the standard tables are the ones the encoder used"
        );
        assert!(stats(&rgb.data).1 > 30.0, "a test pattern, not a flat frame");
        // the render path keeps the camera's bytes for a plain JPEG snapshot
        let e = render(Frame::Jpeg(padded.clone()), ImageFormat::Jpg, 85, None, None).unwrap();
        assert_eq!(e.bytes, fixed);
        let e = render(Frame::Jpeg(padded), ImageFormat::Png, 85, Some(160), None).unwrap();
        assert_eq!((e.width, e.height), (160, 120));
        let mut d = png::Decoder::new(&e.bytes[..]).read_info().unwrap();
        let mut buf = vec![0; d.output_buffer_size()];
        let fi = d.next_frame(&mut buf).unwrap();
        assert_eq!((fi.width, fi.height), (160, 120));
        // incomplete frames are refused
        assert!(mjpeg_to_jpeg(&full[..full.len() / 2]).is_err());
        assert!(mjpeg_to_jpeg(b"not a jpeg").is_err());
    }

    #[test]
    fn raw_formats_match_ffmpeg_conversion() {
        let reference = ffmpeg_frame(&["-pix_fmt", "rgb24", "-f", "rawvideo"]);
        for (fourcc, pix) in [
            ("YUYV", "yuyv422"),
            ("UYVY", "uyvy422"),
            ("YVYU", "yvyu422"),
            ("NV12", "nv12"),
            ("NV21", "nv21"),
            ("YU12", "yuv420p"),
            ("YV12", "yuv420p"),
            ("RGB3", "rgb24"),
            ("BGR3", "bgr24"),
        ] {
            let mut raw = ffmpeg_frame(&["-pix_fmt", pix, "-f", "rawvideo"]);
            if fourcc == "YV12" {
                // swap the U and V planes of the I420 frame
                let (y, c) = (320 * 240, 160 * 120);
                let (u, v) = (raw[y..y + c].to_vec(), raw[y + c..y + 2 * c].to_vec());
                raw[y..y + c].copy_from_slice(&v);
                raw[y + c..].copy_from_slice(&u);
            }
            let stride = match fourcc {
                "YUYV" | "UYVY" | "YVYU" => 640,
                "RGB3" | "BGR3" => 960,
                _ => 320,
            };
            let rgb = raw_to_rgb(fourcc, 320, 240, stride, &raw).unwrap();
            let d = mean_abs_diff(&rgb.data, &reference);
            assert!(d < 4.0, "{fourcc}: mean difference {d} from FFmpeg's conversion");
        }
        assert!(raw_to_rgb("YUYV", 320, 240, 640, &[0; 100]).is_err(), "short frame");
        assert!(raw_to_rgb("H264", 320, 240, 640, &[0; 320 * 240 * 2]).is_err());
    }

    #[test]
    fn fit_keeps_aspect_and_never_upscales() {
        assert_eq!(fit(640, 480, None, None), (640, 480));
        assert_eq!(fit(640, 480, Some(320), None), (320, 240));
        assert_eq!(fit(640, 480, None, Some(120)), (160, 120));
        assert_eq!(fit(640, 480, Some(320), Some(60)), (80, 60));
        assert_eq!(fit(640, 360, Some(2000), Some(2000)), (640, 360));
        assert_eq!(fit(640, 360, Some(1), Some(1)), (1, 1));
    }

    #[test]
    fn scaled_and_encoded_images_decode() {
        let rgb = parse_ppm(&ffmpeg_frame(&["-c:v", "ppm", "-f", "image2pipe"])).unwrap();
        assert_eq!((rgb.width, rgb.height), (320, 240));
        let small = scale(&rgb, 100, 75);
        let jpg = encode_jpeg(&small, 85).unwrap();
        let back = decode_jpeg(&jpg).unwrap();
        assert_eq!((back.width, back.height), (100, 75));
        assert!(mean_abs_diff(&back.data, &small.data) < 12.0);
        let lo = encode_jpeg(&rgb, 10).unwrap();
        let hi = encode_jpeg(&rgb, 95).unwrap();
        assert!(lo.len() < hi.len(), "quality changes the size");
        let png = encode_png(&rgb).unwrap();
        let mut d = png::Decoder::new(&png[..]).read_info().unwrap();
        let mut buf = vec![0; d.output_buffer_size()];
        d.next_frame(&mut buf).unwrap();
        assert_eq!(buf, rgb.data, "PNG is lossless");
    }
}
