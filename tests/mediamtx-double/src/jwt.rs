//! `authMethod: jwt` as MediaMTX v1.20.1 runs it (internal/auth manager.go and
//! jwt_claims.go, golang-jwt/jwt v5.3.1, MicahParks/keyfunc v3): the JWKS at `authJWTJWKS`
//! is fetched (pinned with `authJWTJWKSFingerprint` over https) on first use and again
//! when an hour has passed or `/v3/auth/jwks/refresh` was called; tokens are verified
//! with openssl (RS*, PS*, ES*, EdDSA, HS* with `oct` keys) and their claims checked
//! (`exp`, `nbf`, `authJWTIssuer`, `authJWTAudience`); the `authJWTClaimKey` claim holds
//! the permissions. Texts are golang-jwt's.

use base64::Engine;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Public};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{RsaPssSaltlen, Signer, Verifier};
use serde_json::{Map, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// manager.go: maxInboundBodySize and jwksRefreshPeriod.
const MAX_JWKS_SIZE: usize = 128 * 1024;
const REFRESH_PERIOD: Duration = Duration::from_secs(60 * 60);

#[derive(Clone)]
enum KeyMaterial {
    Rsa(PKey<Public>),
    Ec(PKey<Public>),
    Ed25519(PKey<Public>),
    Oct(Vec<u8>),
}

#[derive(Clone)]
struct Jwk {
    kid: String,
    alg: String,
    key: KeyMaterial,
}

struct Cache {
    /// the auth settings whose change makes MediaMTX create a new auth manager
    identity: Vec<Value>,
    fetched: Option<Instant>,
    keys: Arc<Vec<Jwk>>,
}

/// The key set of a double's auth manager (its auth is stateless otherwise).
#[derive(Default)]
pub struct KeySet(Mutex<Option<Cache>>);

fn gs<'a>(g: &'a Map<String, Value>, k: &str) -> &'a str {
    g.get(k).and_then(|v| v.as_str()).unwrap_or("")
}

/// core.go closeAuthManager: these settings make a new manager (with an empty key set).
fn identity(g: &Map<String, Value>) -> Vec<Value> {
    crate::servers::values(g, &crate::servers::AUTH_FIELDS)
}

/// Called on every authentication: a change of the auth settings drops the key set, as
/// MediaMTX's new auth manager starts without one.
pub fn observe(ks: &KeySet, g: &Map<String, Value>) {
    let mut cache = ks.0.lock().unwrap();
    if cache.as_ref().is_some_and(|c| c.identity != identity(g)) {
        *cache = None;
    }
}

/// RefreshJWTJWKS: the next authentication fetches the key set again.
pub fn refresh(ks: &KeySet) {
    if let Some(c) = ks.0.lock().unwrap().as_mut() {
        c.fetched = None;
    }
}

/// pullJWTJWKS: the cached keys, fetched again after an hour (or a refresh).
fn pull_jwks(ks: &KeySet, g: &Map<String, Value>) -> Result<Arc<Vec<Jwk>>, String> {
    let id = identity(g);
    // the fetch runs under the lock, as in MediaMTX (requests wait for it)
    let mut cache = ks.0.lock().unwrap();
    if let Some(c) = cache.as_ref().filter(|c| c.identity == id) {
        if c.fetched.is_some_and(|t| t.elapsed() < REFRESH_PERIOD) {
            return Ok(c.keys.clone());
        }
    }
    let res = crate::http_client::request(
        "Get",
        gs(g, "authJWTJWKS"),
        None,
        gs(g, "authJWTJWKSFingerprint"),
        crate::conf::duration_of(g, "readTimeout"),
        MAX_JWKS_SIZE,
    )?;
    // json.Decoder.Decode: the first JSON value of the (size-limited) body, any status
    let keys = Arc::new(parse_jwks(&res.body, res.over_limit)?);
    *cache = Some(Cache {
        identity: id,
        fetched: Some(Instant::now()),
        keys: keys.clone(),
    });
    Ok(keys)
}

fn b64url(s: &str) -> Result<Vec<u8>, String> {
    // Go's base64.RawURLEncoding (not strict: trailing bits may be set)
    let cfg = base64::engine::GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone);
    base64::engine::GeneralPurpose::new(&base64::alphabet::URL_SAFE, cfg)
        .decode(s)
        .map_err(|e| match e {
            base64::DecodeError::InvalidByte(i, _) => format!("illegal base64 data at input byte {}", i),
            base64::DecodeError::InvalidLastSymbol(i, _) => format!("illegal base64 data at input byte {}", i),
            _ => format!("illegal base64 data at input byte {}", s.len()),
        })
}

/// The first JSON value of a byte string (json.Decoder.Decode), with Go's texts.
fn first_json_value(b: &[u8], over_limit: bool) -> Result<Value, String> {
    let mut it = serde_json::Deserializer::from_slice(b).into_iter::<Value>();
    match it.next() {
        Some(Ok(v)) => Ok(v),
        _ if over_limit => Err("size exceeds maximum allowed".into()),
        None => Err("EOF".into()),
        Some(Err(e)) if e.is_eof() => Err("unexpected EOF".into()),
        Some(Err(_)) => Err(crate::gojson::check_valid(b)
            .err()
            .unwrap_or_else(|| "invalid JSON".into())),
    }
}

/// keyfunc.NewJWKSetJSON: every key must be usable.
fn parse_jwks(body: &[u8], over_limit: bool) -> Result<Vec<Jwk>, String> {
    let v = first_json_value(body, over_limit)?;
    let fail = |e: String| {
        format!(
            "failed to create a slice of JWK from JWKSMarshal: {}\nfailed keyfunc: could not create JWK Set storage",
            e
        )
    };
    let keys = match &v {
        Value::Object(o) => match o.get("keys") {
            Some(Value::Array(a)) => a.clone(),
            None | Some(Value::Null) => vec![],
            Some(_) => {
                return Err(
                    "json: cannot unmarshal into Go struct field JWKSMarshal.keys\nfailed keyfunc: could not unmarshal raw JWK Set JSON"
                        .into(),
                )
            }
        },
        Value::Null => vec![],
        _ => {
            return Err(
                "json: cannot unmarshal into Go value of type jwkset.JWKSMarshal\nfailed keyfunc: could not unmarshal raw JWK Set JSON"
                    .into(),
            )
        }
    };
    keys.iter().map(|k| parse_jwk(k).map_err(fail)).collect()
}

fn parse_jwk(k: &Value) -> Result<Jwk, String> {
    let s = |n: &str| k.get(n).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let bytes = |n: &str| -> Result<Vec<u8>, String> {
        let v = s(n);
        if v.is_empty() {
            return Err(format!("missing parameter {:?}", n));
        }
        b64url(&v).map_err(|e| format!("parameter {:?}: {}", n, e))
    };
    let ossl = |e: openssl::error::ErrorStack| e.to_string();
    let key = match s("kty").as_str() {
        "RSA" => {
            let (n, e) = (bytes("n")?, bytes("e")?);
            // bounded: a client never controls the key set, but keep verification cheap
            if n.len() > 2048 || e.len() > 8 {
                return Err("unsupported RSA key size".into());
            }
            let rsa = Rsa::from_public_components(
                BigNum::from_slice(&n).map_err(ossl)?,
                BigNum::from_slice(&e).map_err(ossl)?,
            )
            .map_err(ossl)?;
            KeyMaterial::Rsa(PKey::from_rsa(rsa).map_err(ossl)?)
        }
        "EC" => {
            let nid = match s("crv").as_str() {
                "P-256" => Nid::X9_62_PRIME256V1,
                "P-384" => Nid::SECP384R1,
                "P-521" => Nid::SECP521R1,
                c => return Err(format!("unsupported curve {:?}", c)),
            };
            let group = EcGroup::from_curve_name(nid).map_err(ossl)?;
            let x = BigNum::from_slice(&bytes("x")?).map_err(ossl)?;
            let y = BigNum::from_slice(&bytes("y")?).map_err(ossl)?;
            let ec = EcKey::from_public_key_affine_coordinates(&group, &x, &y).map_err(ossl)?;
            KeyMaterial::Ec(PKey::from_ec_key(ec).map_err(ossl)?)
        }
        "OKP" if s("crv") == "Ed25519" => {
            let x = bytes("x")?;
            KeyMaterial::Ed25519(PKey::public_key_from_raw_bytes(&x, Id::ED25519).map_err(ossl)?)
        }
        "oct" => KeyMaterial::Oct(bytes("k")?),
        t => return Err(format!("unsupported key type {:?}", t)),
    };
    Ok(Jwk {
        kid: s("kid"),
        alg: s("alg"),
        key,
    })
}

/// The JWT's verified claims that MediaMTX uses.
struct Claims {
    permissions: Vec<Value>,
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// jwt.ParseWithClaims with jwtClaims, keyfunc's key lookup and the validator.
fn parse(token: &str, keys: &[Jwk], g: &Map<String, Value>) -> Result<Claims, String> {
    let malformed = |m: &str, e: String| format!("token is malformed: {}: {}", m, e);
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err("token is malformed: token contains an invalid number of segments".into());
    }
    let hb = b64url(parts[0]).map_err(|e| malformed("could not base64 decode header", e))?;
    let header =
        decode_object(&hb, "map[string]interface {}").map_err(|e| malformed("could not JSON decode header", e))?;
    let cb = b64url(parts[1]).map_err(|e| malformed("could not base64 decode claim", e))?;
    let (registered, permissions) =
        decode_claims(&cb, gs(g, "authJWTClaimKey")).map_err(|e| malformed("could not JSON decode claim", e))?;
    let alg = match header.get("alg") {
        Some(Value::String(a)) => a.clone(),
        _ => return Err("token is unverifiable: signing method (alg) is unspecified".into()),
    };
    let method = Method::of(&alg).ok_or("token is unverifiable: signing method (alg) is unavailable")?;
    let sig = b64url(parts[2]).map_err(|e| malformed("could not base64 decode signature", e))?;

    // keyfunc: the key named by `kid`, else every key
    let keyfunc_err = |e: &str| format!("token is unverifiable: error while executing keyfunc: {}", e);
    let candidates: Vec<&Jwk> = match header.get("kid") {
        None => keys.iter().collect(),
        Some(Value::String(kid)) => {
            // jwkset memory storage: the last key written with this ID
            let Some(k) = keys.iter().rev().find(|k| &k.kid == kid) else {
                return Err(keyfunc_err(&format!(
                    "key not found: kid {:?}\nfailed keyfunc: could not read JWK from storage",
                    kid
                )));
            };
            if !k.alg.is_empty() && k.alg != alg {
                return Err(keyfunc_err(&format!(
                    "failed keyfunc: JWK \"alg\" parameter value {:?} does not match token \"alg\" parameter value {:?}",
                    k.alg, alg
                )));
            }
            vec![k]
        }
        Some(_) => {
            return Err(keyfunc_err(
                "failed keyfunc: could not convert kid in JWT header to string",
            ))
        }
    };
    if candidates.is_empty() {
        return Err("token is unverifiable: keyfunc returned empty verification key set".into());
    }
    let signed = format!("{}.{}", parts[0], parts[1]);
    let mut last = Ok(());
    for k in candidates {
        last = method.verify(signed.as_bytes(), &sig, &k.key);
        if last.is_ok() {
            break;
        }
    }
    last.map_err(|e| format!("token signature is invalid: {}", e))?;

    validate_claims(&registered, g).map_err(|e| format!("token has invalid claims: {}", e))?;
    Ok(Claims { permissions })
}

/// json.Unmarshal of an object into a map (null = empty).
fn decode_object(b: &[u8], go_type: &str) -> Result<Map<String, Value>, String> {
    crate::gojson::check_valid(b)?;
    match serde_json::from_slice::<Value>(b).map_err(|e| e.to_string())? {
        Value::Object(o) => Ok(o),
        Value::Null => Ok(Map::new()),
        v => Err(format!(
            "json: cannot unmarshal {} into Go value of type {}",
            kind_of(&v),
            go_type
        )),
    }
}

/// The registered claims the validator checks (seconds since the epoch).
#[derive(Default)]
struct Registered {
    exp: Option<f64>,
    nbf: Option<f64>,
    iss: String,
    aud: Vec<String>,
}

/// jwtClaims.UnmarshalJSON: RegisteredClaims, then the permissions claim (an array, or a
/// string holding one) decoded like jsonwrapper.
fn decode_claims(b: &[u8], key: &str) -> Result<(Registered, Vec<Value>), String> {
    let m = decode_object(b, "jwt.RegisteredClaims")?;
    let mut r = Registered::default();
    for k in ["iss", "sub", "jti"] {
        match m.get(k) {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(v) => {
                return Err(format!(
                    "json: cannot unmarshal {} into Go struct field RegisteredClaims.{} of type string",
                    kind_of(v),
                    k
                ))
            }
        }
    }
    r.iss = gs(&m, "iss").to_string();
    let date = |k: &str| -> Result<Option<f64>, String> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            // a JSON string holding a number is accepted by json.Number
            Some(Value::String(s)) if s.parse::<f64>().is_ok() => Ok(s.parse().ok()),
            Some(v) => Err(format!(
                "could not parse NumericData: json: cannot unmarshal {} into Go value of type json.Number",
                kind_of(v)
            )),
        }
    };
    r.exp = date("exp")?;
    r.nbf = date("nbf")?;
    date("iat")?;
    r.aud = match m.get("aud") {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(String::from).ok_or("invalid type for claim".to_string()))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("invalid type for claim".into()),
    };
    let raw = m
        .get(key)
        .ok_or_else(|| format!("claim '{}' not found inside JWT", key))?;
    let perms = match decode_permissions(raw) {
        Ok(p) => p,
        Err(_) => {
            let Value::String(s) = raw else {
                return Err(format!(
                    "json: cannot unmarshal {} into Go value of type string",
                    kind_of(raw)
                ));
            };
            crate::gojson::check_valid(s.as_bytes())?;
            decode_permissions(&serde_json::from_str(s).map_err(|e| e.to_string())?)?
        }
    };
    Ok((r, perms))
}

/// jsonwrapper.Unmarshal into []conf.AuthInternalUserPermission.
fn decode_permissions(v: &Value) -> Result<Vec<Value>, String> {
    let arr = match v {
        Value::Array(a) => a,
        Value::Null => return Err("cannot set slice to nil".into()),
        v => {
            return Err(format!(
                "json: cannot unmarshal {} into Go value of type []json.RawMessage",
                kind_of(v)
            ))
        }
    };
    let mut out = Vec::new();
    for (i, e) in arr.iter().enumerate() {
        let Value::Object(o) = e else {
            return Err(format!(
                "json: cannot unmarshal {} into Go value of type map[string]json.RawMessage",
                kind_of(e)
            ));
        };
        if let Some(k) = o.keys().find(|k| *k != "action" && *k != "path") {
            return Err(format!("json: unknown field \"[{}].{}\"", i, k));
        }
        for k in ["action", "path"] {
            match o.get(k) {
                None | Some(Value::Null) | Some(Value::String(_)) => {}
                Some(v) => {
                    return Err(format!(
                        "json: cannot unmarshal {} into Go value of type string",
                        kind_of(v)
                    ))
                }
            }
        }
        let action = gs(o, "action");
        if o.get("action").is_some_and(|a| !a.is_null())
            && !["publish", "read", "playback", "api", "metrics", "pprof"].contains(&action)
        {
            return Err(format!("invalid auth action: '{}'", action));
        }
        out.push(serde_json::json!({"action": action, "path": gs(o, "path")}));
    }
    Ok(out)
}

/// jwt.Validator.Validate: exp and nbf always, iss/aud when configured; errors joined.
fn validate_claims(r: &Registered, g: &Map<String, Value>) -> Result<(), String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let mut errs: Vec<String> = Vec::new();
    if r.exp.is_some_and(|exp| now >= exp) {
        errs.push("token is expired".into());
    }
    if r.nbf.is_some_and(|nbf| now < nbf) {
        errs.push("token is not valid yet".into());
    }
    let aud = gs(g, "authJWTAudience");
    if !aud.is_empty() {
        if r.aud.is_empty() || (r.aud.len() == 1 && r.aud[0].is_empty()) {
            errs.push("token is missing required claim: aud claim is required".into());
        } else if !r.aud.iter().any(|a| a == aud) {
            errs.push("token has invalid audience".into());
        }
    }
    let iss = gs(g, "authJWTIssuer");
    if !iss.is_empty() {
        if r.iss.is_empty() {
            errs.push("token is missing required claim: iss claim is required".into());
        } else if r.iss != iss {
            errs.push("token has invalid issuer".into());
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join(", "))
    }
}

/// The signing methods golang-jwt registers.
enum Method {
    Rsa(MessageDigest),
    RsaPss(MessageDigest),
    Ecdsa(MessageDigest, usize),
    EdDsa,
    Hmac(MessageDigest),
    None,
}

impl Method {
    fn of(alg: &str) -> Option<Method> {
        let (s256, s384, s512) = (
            MessageDigest::sha256(),
            MessageDigest::sha384(),
            MessageDigest::sha512(),
        );
        Some(match alg {
            "RS256" => Method::Rsa(s256),
            "RS384" => Method::Rsa(s384),
            "RS512" => Method::Rsa(s512),
            "PS256" => Method::RsaPss(s256),
            "PS384" => Method::RsaPss(s384),
            "PS512" => Method::RsaPss(s512),
            "ES256" => Method::Ecdsa(s256, 32),
            "ES384" => Method::Ecdsa(s384, 48),
            "ES512" => Method::Ecdsa(s512, 66),
            "EdDSA" | "Ed25519" => Method::EdDsa,
            "HS256" => Method::Hmac(s256),
            "HS384" => Method::Hmac(s384),
            "HS512" => Method::Hmac(s512),
            "none" => Method::None,
            _ => return None,
        })
    }

    /// SigningMethod.Verify with golang-jwt's error texts.
    fn verify(&self, signed: &[u8], sig: &[u8], key: &KeyMaterial) -> Result<(), String> {
        let ok = |r: Result<bool, openssl::error::ErrorStack>| r.unwrap_or(false);
        match (self, key) {
            (Method::Rsa(md), KeyMaterial::Rsa(k)) => {
                let good = Verifier::new(*md, k)
                    .is_ok_and(|mut v| v.set_rsa_padding(Padding::PKCS1).is_ok() && ok(v.verify_oneshot(sig, signed)));
                good.then_some(()).ok_or("crypto/rsa: verification error".into())
            }
            (Method::Rsa(_), _) => Err("key is of invalid type: RSA verify expects *rsa.PublicKey".into()),
            (Method::RsaPss(md), KeyMaterial::Rsa(k)) => {
                let good = Verifier::new(*md, k).is_ok_and(|mut v| {
                    v.set_rsa_padding(Padding::PKCS1_PSS).is_ok()
                        && v.set_rsa_mgf1_md(*md).is_ok()
                        // rsa.PSSSaltLengthAuto
                        && v.set_rsa_pss_saltlen(RsaPssSaltlen::custom(-2)).is_ok()
                        && ok(v.verify_oneshot(sig, signed))
                });
                good.then_some(()).ok_or("crypto/rsa: verification error".into())
            }
            (Method::RsaPss(_), _) => Err("key is of invalid type: RSA-PSS verify expects *rsa.PublicKey".into()),
            (Method::Ecdsa(md, size), KeyMaterial::Ec(k)) => {
                let good = sig.len() == 2 * size
                    && (|| -> Result<bool, openssl::error::ErrorStack> {
                        let der = EcdsaSig::from_private_components(
                            BigNum::from_slice(&sig[..*size])?,
                            BigNum::from_slice(&sig[*size..])?,
                        )?
                        .to_der()?;
                        Verifier::new(*md, k)?.verify_oneshot(&der, signed)
                    })()
                    .unwrap_or(false);
                good.then_some(()).ok_or("crypto/ecdsa: verification error".into())
            }
            (Method::Ecdsa(..), _) => Err("key is of invalid type: ECDSA verify expects *ecdsa.PublicKey".into()),
            (Method::EdDsa, KeyMaterial::Ed25519(k)) => {
                let good = Verifier::new_without_digest(k).is_ok_and(|mut v| ok(v.verify_oneshot(sig, signed)));
                good.then_some(()).ok_or("ed25519: verification error".into())
            }
            (Method::EdDsa, _) => Err("key is of invalid type: Ed25519 verify expects ed25519.PublicKey".into()),
            (Method::Hmac(md), KeyMaterial::Oct(secret)) => {
                let mac = PKey::hmac(secret)
                    .and_then(|k| Signer::new(*md, &k).and_then(|mut s| s.sign_oneshot_to_vec(signed)))
                    .unwrap_or_default();
                let good = !mac.is_empty() && mac.len() == sig.len() && openssl::memcmp::eq(&mac, sig);
                good.then_some(()).ok_or("signature is invalid".into())
            }
            (Method::Hmac(_), _) => Err("key is of invalid type: HMAC verify expects []byte".into()),
            (Method::None, _) => Err("token is unverifiable: 'none' signature type is not allowed".into()),
        }
    }
}

/// authenticateJWT: `authJWTExclude` first, then the key set, the token and its
/// permissions.
pub fn authenticate(ks: &KeySet, g: &Map<String, Value>, action: &str, path: &str, token: &str) -> Result<(), String> {
    let exclude = g
        .get("authJWTExclude")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    if crate::auth::matches_permission(&exclude, action, path) {
        return Ok(());
    }
    let keys = pull_jwks(ks, g)?;
    if token.is_empty() {
        return Err("JWT not provided".into());
    }
    let claims = parse(token, &keys, g)?;
    if !crate::auth::matches_permission(&claims.permissions, action, path) {
        return Err("user doesn't have permission to perform action".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::pkey::Private;
    use serde_json::json;

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    fn token(alg: &str, kid: Option<&str>, claims: &Value, sign: &dyn Fn(&[u8]) -> Vec<u8>) -> String {
        let mut h = json!({"alg": alg, "typ": "JWT"});
        if let Some(k) = kid {
            h["kid"] = json!(k);
        }
        let input = format!(
            "{}.{}",
            b64(h.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = sign(input.as_bytes());
        format!("{}.{}", input, b64(&sig))
    }

    fn signer(key: &PKey<Private>, md: Option<MessageDigest>, pss: bool) -> impl Fn(&[u8]) -> Vec<u8> + '_ {
        move |data| {
            let mut s = match md {
                Some(md) => Signer::new(md, key).unwrap(),
                None => Signer::new_without_digest(key).unwrap(),
            };
            if pss {
                s.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
                s.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH).unwrap();
            }
            s.sign_oneshot_to_vec(data).unwrap()
        }
    }

    fn conf() -> Map<String, Value> {
        json!({"authJWTClaimKey": "mediamtx_permissions"})
            .as_object()
            .unwrap()
            .clone()
    }

    fn perms() -> Value {
        json!({"mediamtx_permissions": [{"action": "read", "path": "cam"}]})
    }

    #[test]
    fn algorithms_and_texts() {
        let rsa = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let ed = PKey::generate_ed25519().unwrap();
        let ec =
            PKey::from_ec_key(EcKey::generate(&EcGroup::from_curve_name(Nid::SECP384R1).unwrap()).unwrap()).unwrap();
        let jwk = |kid: &str, key: KeyMaterial| Jwk {
            kid: kid.into(),
            alg: String::new(),
            key,
        };
        let keys = vec![
            jwk(
                "r",
                KeyMaterial::Rsa(PKey::public_key_from_der(&rsa.public_key_to_der().unwrap()).unwrap()),
            ),
            jwk(
                "e",
                KeyMaterial::Ed25519(PKey::public_key_from_der(&ed.public_key_to_der().unwrap()).unwrap()),
            ),
            jwk(
                "c",
                KeyMaterial::Ec(PKey::public_key_from_der(&ec.public_key_to_der().unwrap()).unwrap()),
            ),
            jwk("h", KeyMaterial::Oct(b"0123456789abcdef0123456789abcdef".to_vec())),
        ];
        let g = conf();
        let ok = |t: &str| parse(t, &keys, &g).map(|c| c.permissions);
        let want = Ok(vec![json!({"action": "read", "path": "cam"})]);

        assert_eq!(
            ok(&token(
                "RS256",
                Some("r"),
                &perms(),
                &signer(&rsa, Some(MessageDigest::sha256()), false)
            )),
            want
        );
        assert_eq!(
            ok(&token(
                "PS384",
                Some("r"),
                &perms(),
                &signer(&rsa, Some(MessageDigest::sha384()), true)
            )),
            want
        );
        assert_eq!(
            ok(&token("EdDSA", Some("e"), &perms(), &signer(&ed, None, false))),
            want
        );
        // no kid: every key is tried
        assert_eq!(ok(&token("EdDSA", None, &perms(), &signer(&ed, None, false))), want);
        let es384 = |d: &[u8]| {
            let der = signer(&ec, Some(MessageDigest::sha384()), false)(d);
            let s = EcdsaSig::from_der(&der).unwrap();
            [s.r().to_vec_padded(48).unwrap(), s.s().to_vec_padded(48).unwrap()].concat()
        };
        assert_eq!(ok(&token("ES384", Some("c"), &perms(), &es384)), want);
        let hs = |d: &[u8]| {
            let k = PKey::hmac(b"0123456789abcdef0123456789abcdef").unwrap();
            Signer::new(MessageDigest::sha512(), &k)
                .unwrap()
                .sign_oneshot_to_vec(d)
                .unwrap()
        };
        assert_eq!(ok(&token("HS512", Some("h"), &perms(), &hs)), want);
        // the permissions as a JSON string
        let as_string = json!({"mediamtx_permissions": "[{\"action\":\"publish\",\"path\":\"\"}]"});
        assert_eq!(
            ok(&token("HS512", Some("h"), &as_string, &hs)),
            Ok(vec![json!({"action": "publish", "path": ""})])
        );

        let err = |t: &str| parse(t, &keys, &g).err().unwrap();
        let rs = signer(&rsa, Some(MessageDigest::sha256()), false);
        assert_eq!(
            err(&token("RS256", Some("e"), &perms(), &rs)),
            "token signature is invalid: key is of invalid type: RSA verify expects *rsa.PublicKey"
        );
        let mut t = token("RS256", Some("r"), &perms(), &rs);
        t.push('A');
        assert_eq!(err(&t), "token signature is invalid: crypto/rsa: verification error");
        assert_eq!(
            err(&token("ES384", Some("c"), &perms(), &|_| vec![1; 10])),
            "token signature is invalid: crypto/ecdsa: verification error"
        );
        assert_eq!(
            err(&token("none", Some("r"), &perms(), &|_| vec![])),
            "token signature is invalid: token is unverifiable: 'none' signature type is not allowed"
        );
        assert_eq!(
            err(&token("XS256", Some("r"), &perms(), &rs)),
            "token is unverifiable: signing method (alg) is unavailable"
        );
        assert_eq!(
            err("a.b"),
            "token is malformed: token contains an invalid number of segments"
        );
        assert_eq!(
            err("a!.b.c"),
            "token is malformed: could not base64 decode header: illegal base64 data at input byte 1"
        );
        assert_eq!(
            err(&token("RS256", Some("r"), &json!({"x": 1}), &rs)),
            "token is malformed: could not JSON decode claim: claim 'mediamtx_permissions' not found inside JWT"
        );
        assert_eq!(
            err(&token(
                "RS256",
                Some("r"),
                &json!({"mediamtx_permissions": [{"action": "fly"}]}),
                &rs
            )),
            // jwtClaims: the array failing, the string fallback's error is the one reported
            "token is malformed: could not JSON decode claim: json: cannot unmarshal array into Go value of type string"
        );
        let mut c = perms();
        c["nbf"] = json!(4102444800u64);
        c["exp"] = json!(1);
        assert_eq!(
            err(&token("RS256", Some("r"), &c, &rs)),
            "token has invalid claims: token is expired, token is not valid yet"
        );
        let mut g2 = conf();
        g2.insert("authJWTAudience".into(), json!("cams"));
        let mut c = perms();
        c["aud"] = json!(["other"]);
        assert_eq!(
            parse(&token("RS256", Some("r"), &c, &rs), &keys, &g2).err().unwrap(),
            "token has invalid claims: token has invalid audience"
        );
        c["aud"] = json!(["other", "cams"]);
        assert!(parse(&token("RS256", Some("r"), &c, &rs), &keys, &g2).is_ok());
    }

    #[test]
    fn key_sets() {
        assert_eq!(parse_jwks(b"", false).err().unwrap(), "EOF");
        assert_eq!(parse_jwks(br#"{"keys":[]} trailing"#, false).unwrap().len(), 0);
        let e = parse_jwks(br#"{"keys":[{"kty":"XYZ"}]}"#, false).err().unwrap();
        assert!(e.ends_with("failed keyfunc: could not create JWK Set storage"), "{}", e);
        assert_eq!(
            parse_jwks(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"a"}]}"#, false).unwrap()[0].kid,
            "a"
        );
    }
}
