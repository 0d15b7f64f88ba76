//! SRT wire format (the parts a libsrt caller such as ffmpeg's `srt://` needs from a
//! listener): packet headers, the v4/v5 handshake with its HSREQ/HSRSP, KMREQ/KMRSP and
//! SID extensions, the key material message and the AES-CTR payload cipher.

use openssl::symm::{Cipher, Crypter, Mode};

pub const HEADER_LEN: usize = 16;
/// payload of a live-mode data packet: 7 MPEG-TS packets
pub const LIVE_PAYLOAD: usize = 1316;

pub const CTRL_HANDSHAKE: u16 = 0;
pub const CTRL_KEEPALIVE: u16 = 1;
pub const CTRL_ACK: u16 = 2;
pub const CTRL_NAK: u16 = 3;
pub const CTRL_SHUTDOWN: u16 = 5;
pub const CTRL_ACKACK: u16 = 6;

pub const HS_INDUCTION: u32 = 1;
pub const HS_CONCLUSION: u32 = 0xFFFF_FFFF;
/// handshake type of a rejection: 1000 + reason; MediaMTX rejects with REJ_PEER
pub const REJ_PEER: u32 = 1002;
pub const SRT_MAGIC: u16 = 0x4A17;

const EXT_HSREQ: u16 = 1;
const EXT_HSRSP: u16 = 2;
const EXT_KMREQ: u16 = 3;
const EXT_KMRSP: u16 = 4;
const EXT_SID: u16 = 5;

/// HSREQ flags: TSBPDSND, TSBPDRCV, CRYPT, TLPKTDROP, PERIODICNAK, REXMITFLG
const SRT_FLAGS: u32 = 0x01 | 0x02 | 0x04 | 0x08 | 0x10 | 0x20;
const SRT_VERSION: u32 = 0x0001_0500;
/// SRT's bound of a stream id
const MAX_SID: usize = 512;

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A control packet: (type, type-specific info, timestamp, destination socket, CIF).
pub struct Control<'a> {
    pub kind: u16,
    pub info: u32,
    pub cif: &'a [u8],
}

pub fn dest_socket(b: &[u8]) -> Option<u32> {
    (b.len() >= HEADER_LEN).then(|| be32(b, 12))
}

pub fn parse_control(b: &[u8]) -> Option<Control<'_>> {
    if b.len() < HEADER_LEN || b[0] & 0x80 == 0 {
        return None;
    }
    Some(Control {
        kind: u16::from_be_bytes([b[0], b[1]]) & 0x7FFF,
        info: be32(b, 4),
        cif: &b[HEADER_LEN..],
    })
}

pub fn control(kind: u16, info: u32, ts: u32, dest: u32, cif: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + cif.len());
    v.extend_from_slice(&(0x8000 | kind).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&info.to_be_bytes());
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(&dest.to_be_bytes());
    v.extend_from_slice(cif);
    v
}

/// A data packet: sequence number, key flags (0 clear, 1 even key) and payload.
pub struct Data<'a> {
    pub seq: u32,
    pub kk: u8,
    pub payload: &'a [u8],
}

pub fn parse_data(b: &[u8]) -> Option<Data<'_>> {
    if b.len() < HEADER_LEN || b[0] & 0x80 != 0 {
        return None;
    }
    Some(Data {
        seq: be32(b, 0) & 0x7FFF_FFFF,
        kk: (b[4] >> 3) & 3,
        payload: &b[HEADER_LEN..],
    })
}

/// A single-packet live message (PP=11); `retrans` sets the R flag (REXMITFLG).
pub fn data(seq: u32, msgno: u32, kk: u8, retrans: bool, ts: u32, dest: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + payload.len());
    v.extend_from_slice(&(seq & 0x7FFF_FFFF).to_be_bytes());
    let w = (0b11 << 30) | ((kk as u32 & 3) << 27) | ((retrans as u32) << 26) | (msgno & 0x03FF_FFFF);
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(&dest.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// The handshake CIF (48 bytes) and its extensions.
#[derive(Clone, Debug, Default)]
pub struct Handshake {
    pub version: u32,
    pub encryption: u16,
    pub ext_field: u16,
    pub isn: u32,
    pub mtu: u32,
    pub flow_window: u32,
    pub hs_type: u32,
    pub socket_id: u32,
    pub cookie: u32,
    pub peer_ip: [u8; 16],
    /// HSREQ: (version, flags, receiver delay ms, sender delay ms)
    pub hsreq: Option<(u32, u32, u16, u16)>,
    pub kmreq: Option<Vec<u8>>,
    pub stream_id: Option<String>,
}

impl Handshake {
    pub fn parse(cif: &[u8]) -> Option<Handshake> {
        if cif.len() < 48 {
            return None;
        }
        let mut h = Handshake {
            version: be32(cif, 0),
            encryption: u16::from_be_bytes([cif[4], cif[5]]),
            ext_field: u16::from_be_bytes([cif[6], cif[7]]),
            isn: be32(cif, 8) & 0x7FFF_FFFF,
            mtu: be32(cif, 12),
            flow_window: be32(cif, 16),
            hs_type: be32(cif, 20),
            socket_id: be32(cif, 24),
            cookie: be32(cif, 28),
            ..Default::default()
        };
        h.peer_ip.copy_from_slice(&cif[32..48]);
        let mut rest = &cif[48..];
        while rest.len() >= 4 {
            let kind = u16::from_be_bytes([rest[0], rest[1]]);
            let len = u16::from_be_bytes([rest[2], rest[3]]) as usize * 4;
            let body = rest.get(4..4 + len)?;
            match kind {
                EXT_HSREQ if len >= 12 => {
                    let d = be32(body, 8);
                    h.hsreq = Some((be32(body, 0), be32(body, 4), (d >> 16) as u16, d as u16));
                }
                EXT_KMREQ => h.kmreq = Some(body.to_vec()),
                EXT_SID if len <= MAX_SID => h.stream_id = Some(decode_sid(body)),
                _ => {}
            }
            rest = &rest[4 + len..];
        }
        Some(h)
    }

    pub fn encode(&self, hsrsp: Option<(u16, u16)>, kmrsp: Option<&[u8]>) -> Vec<u8> {
        let mut v = Vec::with_capacity(48 + 16 + kmrsp.map_or(0, |k| k.len() + 4));
        v.extend_from_slice(&self.version.to_be_bytes());
        v.extend_from_slice(&self.encryption.to_be_bytes());
        v.extend_from_slice(&self.ext_field.to_be_bytes());
        v.extend_from_slice(&self.isn.to_be_bytes());
        v.extend_from_slice(&self.mtu.to_be_bytes());
        v.extend_from_slice(&self.flow_window.to_be_bytes());
        v.extend_from_slice(&self.hs_type.to_be_bytes());
        v.extend_from_slice(&self.socket_id.to_be_bytes());
        v.extend_from_slice(&self.cookie.to_be_bytes());
        v.extend_from_slice(&self.peer_ip);
        if let Some((rcv, snd)) = hsrsp {
            v.extend_from_slice(&EXT_HSRSP.to_be_bytes());
            v.extend_from_slice(&3u16.to_be_bytes());
            v.extend_from_slice(&SRT_VERSION.to_be_bytes());
            v.extend_from_slice(&SRT_FLAGS.to_be_bytes());
            v.extend_from_slice(&(((rcv as u32) << 16) | snd as u32).to_be_bytes());
        }
        if let Some(km) = kmrsp {
            v.extend_from_slice(&EXT_KMRSP.to_be_bytes());
            v.extend_from_slice(&((km.len() / 4) as u16).to_be_bytes());
            v.extend_from_slice(km);
        }
        v
    }
}

/// The SID extension holds the string in 32-bit words with their bytes reversed.
fn decode_sid(body: &[u8]) -> String {
    let mut s = Vec::with_capacity(body.len());
    for w in body.chunks(4) {
        s.extend(w.iter().rev());
    }
    while s.last() == Some(&0) {
        s.pop();
    }
    String::from_utf8_lossy(&s).into_owned()
}

/// A key material message (KMREQ): salt and the wrapped SEK(s).
pub struct KeyMaterial {
    /// 1 even, 2 odd, 3 both
    pub kk: u8,
    pub key_len: usize,
    pub salt: Vec<u8>,
    pub wrapped: Vec<u8>,
}

impl KeyMaterial {
    pub fn parse(b: &[u8]) -> Option<KeyMaterial> {
        // version 1, packet type 2 (KM), signature 0x2029, cipher 2 (AES-CTR)
        if b.len() < 16 || b[0] != 0x12 || b[1] != 0x20 || b[2] != 0x29 || b[8] != 2 {
            return None;
        }
        let kk = b[3] & 3;
        let salt_len = b[14] as usize * 4;
        let key_len = b[15] as usize * 4;
        if kk == 0 || !matches!(key_len, 16 | 24 | 32) || salt_len != 16 {
            return None;
        }
        let nkeys = if kk == 3 { 2 } else { 1 };
        let salt = b.get(16..16 + salt_len)?.to_vec();
        let wrapped = b.get(16 + salt_len..16 + salt_len + 8 + nkeys * key_len)?.to_vec();
        Some(KeyMaterial {
            kk,
            key_len,
            salt,
            wrapped,
        })
    }

    /// The SEK unwrapped with the KEK derived from the passphrase (PBKDF2-HMAC-SHA1,
    /// 2048 rounds, the salt's last 8 bytes); None = wrong passphrase (the key wrap's
    /// integrity check fails). With both keys announced, the even one.
    pub fn unwrap_key(&self, passphrase: &str) -> Option<Sek> {
        let mut kek = vec![0u8; self.key_len];
        openssl::pkcs5::pbkdf2_hmac(
            passphrase.as_bytes(),
            &self.salt[8..],
            2048,
            openssl::hash::MessageDigest::sha1(),
            &mut kek,
        )
        .ok()?;
        let key = openssl::aes::AesKey::new_decrypt(&kek).ok()?;
        let mut out = vec![0u8; self.wrapped.len() - 8];
        let mut iv = [0u8; 8];
        iv.copy_from_slice(&[0xA6; 8]);
        openssl::aes::unwrap_key(&key, Some(iv), &mut out, &self.wrapped).ok()?;
        out.truncate(self.key_len);
        Some(Sek {
            key: out,
            salt: self.salt.clone(),
            kk: if self.kk == 2 { 2 } else { 1 },
        })
    }
}

/// A stream encrypting key with its salt and key flag (1 even, 2 odd).
pub struct Sek {
    pub key: Vec<u8>,
    pub salt: Vec<u8>,
    pub kk: u8,
}

/// AES-CTR over a data packet's payload: the IV is the salt's first 14 bytes with the
/// packet's sequence number XORed into bytes 10..14 (the cipher is its own inverse).
pub fn crypt(sek: &Sek, seq: u32, payload: &[u8]) -> Option<Vec<u8>> {
    let cipher = match sek.key.len() {
        16 => Cipher::aes_128_ctr(),
        24 => Cipher::aes_192_ctr(),
        32 => Cipher::aes_256_ctr(),
        _ => return None,
    };
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(&sek.salt[..14]);
    for (i, b) in seq.to_be_bytes().iter().enumerate() {
        iv[10 + i] ^= b;
    }
    let mut c = Crypter::new(cipher, Mode::Encrypt, &sek.key, Some(&iv)).ok()?;
    let mut out = vec![0u8; payload.len() + 16];
    let n = c.update(payload, &mut out).ok()?;
    out.truncate(n);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sid_words_are_byte_reversed() {
        assert_eq!(decode_sid(b"lbup:hsi\0\0ma"), "publish:am");
    }

    #[test]
    fn hostile_bytes_do_not_panic() {
        let mut seed = 0x1234_5678u32;
        for len in 0..400 {
            let b: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (seed >> 16) as u8
                })
                .collect();
            let _ = parse_control(&b);
            let _ = parse_data(&b);
            let _ = Handshake::parse(&b);
            let mut km = b.clone();
            if km.len() >= 16 {
                km[..3].copy_from_slice(&[0x12, 0x20, 0x29]);
                km[8] = 2;
                km[14] = 4;
                km[15] = 4;
            }
            if let Some(k) = KeyMaterial::parse(&km) {
                assert!(k.unwrap_key("passphrase-x").is_none());
            }
        }
    }

    #[test]
    fn key_material_with_the_right_passphrase() {
        // a KMREQ built the way libsrt does: SEK wrapped with the PBKDF2 KEK
        let salt = [7u8; 16];
        let sek = [9u8; 16];
        let mut kek = [0u8; 16];
        openssl::pkcs5::pbkdf2_hmac(
            b"right-pass",
            &salt[8..],
            2048,
            openssl::hash::MessageDigest::sha1(),
            &mut kek,
        )
        .unwrap();
        let key = openssl::aes::AesKey::new_encrypt(&kek).unwrap();
        let mut wrapped = [0u8; 24];
        openssl::aes::wrap_key(&key, None, &mut wrapped, &sek).unwrap();
        let mut km = vec![0x12, 0x20, 0x29, 1, 0, 0, 0, 0, 2, 0, 2, 0, 0, 0, 4, 4];
        km.extend_from_slice(&salt);
        km.extend_from_slice(&wrapped);
        let k = KeyMaterial::parse(&km).unwrap();
        assert!(k.unwrap_key("wrong-pass").is_none());
        let s = k.unwrap_key("right-pass").unwrap();
        assert_eq!((s.key.as_slice(), s.kk), (&sek[..], 1));
        let c = crypt(&s, 42, b"hello").unwrap();
        assert_ne!(c, b"hello");
        assert_eq!(crypt(&s, 42, &c).unwrap(), b"hello");
    }

    #[test]
    fn data_roundtrip() {
        let p = data(5, 1, 1, false, 0, 9, b"xy");
        let d = parse_data(&p).unwrap();
        assert_eq!((d.seq, d.kk, d.payload), (5, 1, &b"xy"[..]));
    }
}
