//! `argon2:` credentials as MediaMTX v1.20.1 reads them (conf.Credential with
//! matthewhartstonge/argon2 v1.5.6): `argon2:$argon2id$v=19$m=..,t=..,p=..$salt$hash`
//! decoded with that library's lenient parser and texts, argon2i/argon2id verified
//! (always as version 0x13, like golang.org/x/crypto/argon2); argon2d never matches.

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;

/// Verification cost the double accepts (the configuration comes from API clients):
/// 256 MiB of memory, 16 passes, 16 lanes.
const MAX_MEMORY_KIB: u32 = 256 * 1024;
const MAX_TIME: u32 = 16;
const MAX_LANES: u32 = 16;

#[derive(Debug, PartialEq)]
enum Mode {
    I,
    Id,
    D,
}

#[derive(Debug)]
pub struct Encoded {
    mode: Mode,
    m: u32,
    t: u32,
    p: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

/// argon2.Error texts.
const INCORRECT_TYPE: &str = "there is no such version of argon2";
const DECODING_FAIL: &str = "decoding failed";

/// The library's byte parser (check/parseUint/skipUntil/readSlice/readRest).
struct Parser<'a> {
    buf: &'a [u8],
    off: usize,
}

impl Parser<'_> {
    /// bytes.Compare of the next bytes with `b` (0 = equal); past the end: 0, not moved.
    fn check(&mut self, b: &[u8]) -> i32 {
        let j = self.off + b.len();
        if j > self.buf.len() {
            return 0;
        }
        let got = &self.buf[self.off..j];
        self.off = j;
        match b.cmp(got) {
            std::cmp::Ordering::Equal => 0,
            std::cmp::Ordering::Less => -1,
            std::cmp::Ordering::Greater => 1,
        }
    }

    fn read_byte(&mut self) -> u8 {
        let b = self.buf.get(self.off).copied().unwrap_or(0);
        if self.off < self.buf.len() {
            self.off += 1;
        }
        b
    }

    /// Decimal digits; an overflow gives 0 and leaves the position.
    fn parse_uint(&mut self, max: u64) -> u64 {
        let mut i = self.off;
        let mut r: u64 = 0;
        while let Some(d) = self.buf.get(i).filter(|d| d.is_ascii_digit()) {
            r = r * 10 + u64::from(d - b'0');
            if r > max {
                return 0;
            }
            i += 1;
        }
        self.off = i;
        r
    }

    fn skip_until(&mut self, delim: u8) {
        if let Some(idx) = self.buf[self.off..].iter().position(|c| *c == delim) {
            self.off += idx + 1;
        }
    }

    fn read_slice(&mut self, delim: u8) -> Option<&[u8]> {
        let idx = self.buf[self.off..].iter().position(|c| *c == delim)?;
        if idx == 0 {
            return None;
        }
        let s = &self.buf[self.off..self.off + idx];
        self.off += idx + 1;
        Some(s)
    }

    fn read_rest(&mut self) -> Option<&[u8]> {
        (self.off < self.buf.len()).then(|| {
            let s = &self.buf[self.off..];
            self.off = self.buf.len();
            s
        })
    }
}

/// argon2.Decode of the text after `argon2:`.
pub fn decode(encoded: &str) -> Result<Encoded, &'static str> {
    let mut pa = Parser {
        buf: encoded.as_bytes(),
        off: 0,
    };
    if pa.check(b"$argon2") != 0 {
        return Err(INCORRECT_TYPE);
    }
    let mode = match (pa.read_byte(), pa.read_byte()) {
        (b'i', b'd') if pa.read_byte() == b'$' => Mode::Id,
        (b'i', b'$') => Mode::I,
        (b'd', _) => Mode::D,
        _ => return Err(INCORRECT_TYPE),
    };
    let mut ok = pa.check(b"v=");
    let v = pa.parse_uint(u32::MAX as u64);
    ok |= pa.check(b"$m=");
    let m = pa.parse_uint(u32::MAX as u64) as u32;
    ok |= pa.check(b",t=");
    let t = pa.parse_uint(u32::MAX as u64) as u32;
    ok |= pa.check(b",p=");
    let p = pa.parse_uint(u8::MAX as u64) as u32;
    pa.skip_until(b'$');
    let s = pa.read_slice(b'$').map(<[u8]>::to_vec);
    let h = pa.read_rest().map(<[u8]>::to_vec);
    let (Some(s), Some(h)) = (s, h) else {
        return Err(DECODING_FAIL);
    };
    if ok != 0 || v == 0 || v > 255 || m == 0 || t == 0 || p == 0 {
        return Err(DECODING_FAIL);
    }
    // base64.RawStdEncoding (not strict)
    let cfg = base64::engine::GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone);
    let raw = base64::engine::GeneralPurpose::new(&base64::alphabet::STANDARD, cfg);
    let (Ok(salt), Ok(hash)) = (raw.decode(&s), raw.decode(&h)) else {
        return Err(DECODING_FAIL);
    };
    if salt.is_empty() || hash.is_empty() {
        return Err(DECODING_FAIL);
    }
    Ok(Encoded {
        mode,
        m,
        t,
        p,
        salt,
        hash,
    })
}

/// argon2.VerifyEncoded(guess, encoded).
pub fn verify(encoded: &str, guess: &str) -> bool {
    let Ok(e) = decode(encoded) else {
        return false;
    };
    let alg = match e.mode {
        Mode::Id => Algorithm::Argon2id,
        Mode::I => Algorithm::Argon2i,
        // "argon2d hashing mode unsupported by go maintainers"
        Mode::D => return false,
    };
    if e.m > MAX_MEMORY_KIB || e.t > MAX_TIME || e.p > MAX_LANES {
        return false;
    }
    let Ok(params) = Params::new(e.m, e.t, e.p, Some(e.hash.len())) else {
        return false;
    };
    let mut out = vec![0u8; e.hash.len()];
    if Argon2::new(alg, Version::V0x13, params)
        .hash_password_into(guess.as_bytes(), &e.salt, &mut out)
        .is_err()
    {
        return false;
    }
    openssl::memcmp::eq(&out, &e.hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made with the reference implementation's CLI (Debian's `argon2` package):
    /// `echo -n testing123 | argon2 SALT -id|-i|-d -t T -m LOG2M -p P -e`.
    const ID: &str = "$argon2id$v=19$m=1024,t=2,p=1$c29tZXNhbHQxMjM0NTY3OA$mmurGOlslO+ebLYRPlcQmDJm0uvwSmYAfZfHZ8ecBKc";
    const I: &str = "$argon2i$v=19$m=256,t=1,p=2$c2FsdHNhbHQ$TguMSlZZVnbM2RMpgj37L++CxjnW6FyvzPWAGbucISE";
    const D: &str = "$argon2d$v=19$m=256,t=1,p=1$c2FsdHNhbHQ$oZ64ksIwHEhAcXtrTAGlmT9AVGQDxBgVHDWEUG5HPzc";

    #[test]
    fn reference_hashes() {
        assert!(verify(ID, "testing123"));
        assert!(!verify(ID, "testing12"));
        assert!(verify(I, "testing123"));
        assert!(!verify(I, "Testing123"));
        // decodes, but Go cannot hash argon2d
        assert!(decode(D).is_ok());
        assert!(!verify(D, "testing123"));
    }

    #[test]
    fn decode_rules() {
        let e = |s: &str| decode(s).err();
        assert_eq!(e("$argon3id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA"), Some(INCORRECT_TYPE));
        assert_eq!(e("$argon2x$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA"), Some(INCORRECT_TYPE));
        assert_eq!(e("$argon2idv=19"), Some(INCORRECT_TYPE));
        assert_eq!(e("$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA"), None);
        assert_eq!(e("$argon2id$v=0$m=1,t=1,p=1$c2FsdA$aGFzaA"), Some(DECODING_FAIL));
        assert_eq!(e("$argon2id$v=256$m=1,t=1,p=1$c2FsdA$aGFzaA"), Some(DECODING_FAIL));
        assert_eq!(e("$argon2id$v=19$m=1,t=1,p=256$c2FsdA$aGFzaA"), Some(DECODING_FAIL));
        assert_eq!(e("$argon2id$v=19$m=1,t=0,p=1$c2FsdA$aGFzaA"), Some(DECODING_FAIL));
        assert_eq!(e("$argon2id$v=19$m=1,t=1,p=1$c2FsdA"), Some(DECODING_FAIL));
        assert_eq!(e("$argon2id$v=19$m=1,t=1,p=1$$aGFzaA"), Some(DECODING_FAIL));
        assert_eq!(e("$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGF!"), Some(DECODING_FAIL));
        assert_eq!(e("$argon2id$v=19$x=1,t=1,p=1$c2FsdA$aGFzaA"), Some(DECODING_FAIL));
        // the library skips anything after p up to the next '$'
        assert_eq!(e("$argon2id$v=19$m=1,t=1,p=1,data=x$c2FsdA$aGFzaA"), None);
        // hostile costs never run
        assert!(!verify("$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$aGFzaA", "x"));
    }
}
