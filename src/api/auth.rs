//! Authentication and authorisation: roles, HS256 JWTs, hashed API keys, rate limits.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use jwt::{SignWithKey, VerifyWithKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};
use subtle::ConstantTimeEq;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
    pub fn permissions(self) -> &'static [&'static str] {
        match self {
            Role::Viewer => &["view"],
            Role::Operator => &["view", "control"],
            Role::Admin => &["view", "control", "admin"],
        }
    }
}

/// Claims of our HS256 tokens (api.md §3).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub user_id: String,
    pub role: String,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, PartialEq)]
pub enum AuthError {
    Invalid(&'static str),
    Expired,
    /// Genuine (signed, unexpired) but its role grants nothing here.
    UnknownRole,
}

/// Mints and verifies HS256 JWTs with the configured secret.
pub struct JwtKey(Hmac<Sha256>);

impl JwtKey {
    pub fn new(secret: &[u8]) -> JwtKey {
        JwtKey(Hmac::new_from_slice(secret).expect("HMAC accepts keys of any length"))
    }

    pub fn mint(&self, user_id: &str, role: Role, ttl: Duration, now_unix: i64) -> String {
        let claims = Claims {
            user_id: user_id.into(),
            role: role.as_str().into(),
            iat: now_unix,
            exp: now_unix + ttl.as_secs() as i64,
        };
        claims.sign_with_key(&self.0).expect("serialising claims cannot fail")
    }

    /// Verifies signature, algorithm (HS256 only), claims and expiry. The signature is
    /// checked first; then each claim on its own, so a genuine token that lacks a claim is
    /// told apart from a forged one (and names the claim).
    pub fn verify(&self, token: &str, now_unix: i64) -> Result<(Claims, Role), AuthError> {
        let token: jwt::Token<jwt::Header, serde_json::Map<String, serde_json::Value>, _> = token
            .verify_with_key(&self.0)
            .map_err(|_| AuthError::Invalid("invalid token signature or format"))?;
        let c = token.claims();
        let user_id = match c.get("user_id") {
            None => return Err(AuthError::Invalid("token lacks the user_id claim")),
            Some(serde_json::Value::String(u)) if !u.is_empty() => u.clone(),
            Some(_) => return Err(AuthError::Invalid("token claim user_id must be a non-empty string")),
        };
        let role = match c.get("role") {
            None => return Err(AuthError::Invalid("token lacks the role claim")),
            Some(serde_json::Value::String(r)) => r.clone(),
            Some(_) => return Err(AuthError::Invalid("token claim role must be a string")),
        };
        let iat = numeric_date(c, "iat").map_err(|missing| {
            AuthError::Invalid(if missing {
                "token lacks the iat claim"
            } else {
                "token claim iat must be a number (Unix seconds)"
            })
        })?;
        let exp = numeric_date(c, "exp").map_err(|missing| {
            AuthError::Invalid(if missing {
                "token lacks the exp claim"
            } else {
                "token claim exp must be a number (Unix seconds)"
            })
        })?;
        if iat > now_unix.saturating_add(IAT_SKEW_SECS) {
            return Err(AuthError::Invalid(
                "token iat is in the future (beyond the allowed 60 s clock skew)",
            ));
        }
        if exp <= now_unix {
            return Err(AuthError::Expired);
        }
        let parsed = Role::parse(&role).ok_or(AuthError::UnknownRole)?;
        Ok((
            Claims {
                user_id,
                role,
                iat,
                exp,
            },
            parsed,
        ))
    }
}

/// How far in the future a token's `iat` may be (clocks of the issuer and of this board
/// differ a little); beyond it the token is refused.
pub const IAT_SKEW_SECS: i64 = 60;

/// A NumericDate claim as whole Unix seconds; `Err(true)` when absent, `Err(false)` when
/// not a number.
fn numeric_date(c: &serde_json::Map<String, serde_json::Value>, name: &str) -> Result<i64, bool> {
    match c.get(name) {
        None => Err(true),
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.floor() as i64))
            .ok_or(false),
        Some(_) => Err(false),
    }
}

/// Why a credential was refused.
#[derive(Debug)]
pub enum CredentialError {
    /// Bad, unknown, revoked or expired: the client's fault (-32001 / HTTP 401).
    Rejected(&'static str),
    /// The API-key store could not be read: the server's fault (-32603 / HTTP 500).
    Store(String),
    /// A genuine credential whose role is none of viewer/operator/admin: it cannot
    /// authenticate a connection (-32001) and gets HTTP 403 on downloads.
    Forbidden(&'static str),
}

/// The one verification of a presented credential (JWT or API key), shared by the
/// JSON-RPC `authenticate` method and the HTTP file downloads so they cannot drift.
/// Blocking (the API-key store is a file): call it on the blocking pool.
pub fn verify_credential(
    jwt: &JwtKey,
    keys: &ApiKeyStore,
    token: &str,
    now_unix: i64,
) -> Result<super::Identity, CredentialError> {
    use super::{AuthMethod, Identity};
    if looks_like_api_key(token) {
        match keys.verify(token, now_unix) {
            Ok(Some(rec)) => Ok(Identity {
                user_id: format!("apikey:{}", rec.name),
                role: rec.role,
                method: AuthMethod::ApiKey { key_id: rec.id },
                expires_at: rec.expires_at,
                session_id: random_token(12),
            }),
            Ok(None) => Err(CredentialError::Rejected("unknown, revoked or expired API key")),
            Err(e) => Err(CredentialError::Store(e.0)),
        }
    } else {
        match jwt.verify(token, now_unix) {
            Ok((claims, role)) => Ok(Identity {
                user_id: claims.user_id,
                role,
                method: AuthMethod::Jwt,
                expires_at: Some(claims.exp),
                session_id: random_token(12),
            }),
            Err(AuthError::Expired) => Err(CredentialError::Rejected("token expired")),
            Err(AuthError::Invalid(why)) => Err(CredentialError::Rejected(why)),
            Err(AuthError::UnknownRole) => Err(CredentialError::Forbidden(
                "token role must be viewer, operator or admin",
            )),
        }
    }
}

/// Random bytes as base64url text (`n` bytes of entropy).
pub fn random_token(n: usize) -> String {
    let mut buf = vec![0u8; n];
    getrandom::getrandom(&mut buf).expect("the OS random source is available");
    URL_SAFE_NO_PAD.encode(buf)
}

pub const API_KEY_PREFIX: &str = "csk_";

/// `csk_` + 43 base64url characters (32 random bytes).
pub fn looks_like_api_key(s: &str) -> bool {
    s.strip_prefix(API_KEY_PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

fn hash_key(plain: &str) -> String {
    Sha256::digest(plain.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One stored API key. Only the SHA-256 of the key is kept: keys carry 256 random bits, so
/// a fast hash is enough (no password stretching needed).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub hash: String,
    /// First characters of the key, to recognise it in `keys list`.
    pub hint: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl ApiKeyRecord {
    pub fn is_active(&self, now_unix: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.map_or(true, |e| e > now_unix)
    }
}

#[derive(Default)]
struct StoreCache {
    /// The last reload failed (unreadable or corrupt file).
    broken: bool,
    stamp: Option<(SystemTime, u64)>,
    keys: Vec<ApiKeyRecord>,
}

/// How often the running service looks at the API-key file (a revoked key stops working,
/// calls and events, within this time).
pub const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// The API-key file (JSON, mode 0600), re-read when it changes on disk, so keys created or
/// revoked by the CLI apply to a running service.
pub struct ApiKeyStore {
    path: PathBuf,
    cache: Mutex<StoreCache>,
}

#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl ApiKeyStore {
    pub fn new(path: &Path) -> ApiKeyStore {
        ApiKeyStore {
            path: path.to_path_buf(),
            cache: Mutex::new(StoreCache::default()),
        }
    }

    fn refresh<'a>(&self, cache: &'a mut StoreCache) -> Result<&'a mut StoreCache, StoreError> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                cache.stamp = None;
                cache.keys.clear();
                return Ok(cache);
            }
            Err(e) => return Err(StoreError(format!("cannot read API key store: {e}"))),
        };
        let stamp = (meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len());
        if cache.stamp != Some(stamp) {
            if meta.permissions().mode() & 0o077 != 0 {
                log::warn!(
                    "API key store {} is readable by group/others; expected mode 0600",
                    self.path.display()
                );
            }
            let text = std::fs::read_to_string(&self.path)
                .map_err(|e| StoreError(format!("cannot read API key store: {e}")))?;
            cache.keys = if text.trim().is_empty() {
                Vec::new()
            } else {
                serde_json::from_str(&text).map_err(|e| StoreError(format!("API key store is corrupt: {e}")))?
            };
            cache.stamp = Some(stamp);
        }
        Ok(cache)
    }

    /// Finds an active key by its plain text, comparing hashes in constant time.
    pub fn verify(&self, plain: &str, now_unix: i64) -> Result<Option<ApiKeyRecord>, StoreError> {
        let presented = hash_key(plain);
        let mut cache = self.cache.lock().unwrap();
        let cache = self.refresh(&mut cache)?;
        let mut found = None;
        for k in &cache.keys {
            if bool::from(k.hash.as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(k.clone());
            }
        }
        Ok(found.filter(|k| k.is_active(now_unix)))
    }

    /// Whether key `id` is active, from memory: no file-system work, so sessions may ask on
    /// every call and every event. The cache follows the file through [`ApiKeyStore::reload`],
    /// which the service runs on the blocking pool every [`RELOAD_EVERY`]; a broken store
    /// counts as "no key is active".
    pub fn is_active(&self, id: &str, now_unix: i64) -> bool {
        let cache = self.cache.lock().unwrap();
        !cache.broken && cache.keys.iter().any(|k| k.id == id && k.is_active(now_unix))
    }

    /// Re-reads the file if it changed (blocking: run it on the blocking pool).
    pub fn reload(&self) {
        let mut cache = self.cache.lock().unwrap();
        let broken = self.refresh(&mut cache).is_err();
        cache.broken = broken;
    }

    pub fn list(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let mut cache = self.cache.lock().unwrap();
        Ok(self.refresh(&mut cache)?.keys.clone())
    }

    /// Creates a key; returns its record and the plain key (shown once, never stored).
    pub fn create(
        &self,
        name: &str,
        role: Role,
        ttl: Option<Duration>,
        now_unix: i64,
    ) -> Result<(ApiKeyRecord, String), StoreError> {
        let plain = format!("{API_KEY_PREFIX}{}", random_token(32));
        let record = ApiKeyRecord {
            id: format!("key_{}", &random_token(6)),
            name: name.to_string(),
            role,
            hash: hash_key(&plain),
            hint: plain[..8].to_string(),
            created_at: now_unix,
            expires_at: ttl.map(|t| now_unix + t.as_secs() as i64),
            revoked_at: None,
        };
        self.update(|keys| {
            keys.push(record.clone());
            Ok(())
        })?;
        Ok((record, plain))
    }

    pub fn revoke(&self, id: &str, now_unix: i64) -> Result<ApiKeyRecord, StoreError> {
        let mut out = None;
        self.update(|keys| {
            let k = keys
                .iter_mut()
                .find(|k| k.id == id)
                .ok_or_else(|| StoreError(format!("no API key with id {id}")))?;
            if k.revoked_at.is_none() {
                k.revoked_at = Some(now_unix);
            }
            out = Some(k.clone());
            Ok(())
        })?;
        Ok(out.expect("set by update"))
    }

    /// Revokes `id` and creates a replacement with the same name, role and lifetime.
    pub fn rotate(&self, id: &str, now_unix: i64) -> Result<(ApiKeyRecord, String), StoreError> {
        let old = self
            .list()?
            .into_iter()
            .find(|k| k.id == id)
            .ok_or_else(|| StoreError(format!("no API key with id {id}")))?;
        if old.revoked_at.is_some() {
            return Err(StoreError(format!("API key {id} is already revoked")));
        }
        let ttl = old
            .expires_at
            .map(|e| Duration::from_secs((e - old.created_at).max(0) as u64));
        let created = self.create(&old.name, old.role, ttl, now_unix)?;
        self.revoke(id, now_unix)?;
        Ok(created)
    }

    /// Read-modify-write with an atomic replace; the file is created 0600.
    fn update(&self, f: impl FnOnce(&mut Vec<ApiKeyRecord>) -> Result<(), StoreError>) -> Result<(), StoreError> {
        let mut cache = self.cache.lock().unwrap();
        let cache = self.refresh(&mut cache)?;
        let mut keys = cache.keys.clone();
        f(&mut keys)?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
        }
        let text = serde_json::to_string_pretty(&keys).expect("records serialise");
        crate::state_file::write(&self.path, text.as_bytes(), crate::state_file::Mode::Private)
            .map_err(|e| StoreError(format!("cannot write API key store: {e}")))?;
        cache.stamp = None; // re-read on next access
        Ok(())
    }
}

/// Token bucket: `rate` requests per second, `burst` at once.
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: u32, burst: u32) -> TokenBucket {
        TokenBucket {
            rate: rate as f64,
            burst: burst as f64,
            tokens: burst as f64,
            last: Instant::now(),
        }
    }

    /// Takes one token, or says how long to wait for one.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

/// Failed credential checks per client address in a sliding minute, wherever credentials
/// are checked (RPC `authenticate`, batch entries, HTTP downloads). Only *failures* are
/// throttled: a valid credential is always accepted, so one misconfigured client cannot lock
/// out the others behind the same address. Counting and deciding happen under one lock, so
/// parallel connections and batch entries cannot overtake each other. Bounded: at most
/// `MAX_TRACKED` addresses are remembered (the stalest are forgotten first).
pub struct AuthFailureLimiter {
    per_minute: usize,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

const MAX_TRACKED: usize = 10_000;

impl AuthFailureLimiter {
    pub fn new(per_minute: u32) -> AuthFailureLimiter {
        AuthFailureLimiter {
            per_minute: per_minute as usize,
            window: Duration::from_secs(60),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one failed check from `ip`. `Err(retry_after)` when this failure is over the
    /// address's budget for the window: the caller answers -32040 / HTTP 429 instead of
    /// -32001 / 401. Failures over the budget keep the window sliding.
    pub fn record_failure(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut map = self.failures.lock().unwrap();
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            let window = self.window;
            map.retain(|_, q| q.back().is_some_and(|t| now.saturating_duration_since(*t) < window));
            if map.len() >= MAX_TRACKED {
                if let Some(victim) = map.iter().min_by_key(|(_, q)| q.back().copied()).map(|(k, _)| *k) {
                    map.remove(&victim);
                }
            }
        }
        let q = map.entry(ip).or_default();
        while q
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        let over = q.len() >= self.per_minute;
        q.push_back(now);
        while q.len() > self.per_minute.max(1) {
            q.pop_front();
        }
        if over {
            let oldest = *q.front().expect("non-empty");
            return Err(self
                .window
                .saturating_sub(now.saturating_duration_since(oldest))
                .max(Duration::from_millis(1)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_round_trip_expiry_and_tamper() {
        let key = JwtKey::new(b"0123456789abcdef0123456789abcdef");
        let t = key.mint("alice", Role::Operator, Duration::from_secs(60), 1000);
        let (claims, role) = key.verify(&t, 1010).unwrap();
        assert_eq!(
            (claims.user_id.as_str(), role, claims.exp),
            ("alice", Role::Operator, 1060)
        );
        assert_eq!(key.verify(&t, 1060).unwrap_err(), AuthError::Expired);
        let other = JwtKey::new(b"another-secret-another-secret-xx");
        assert!(matches!(other.verify(&t, 1010), Err(AuthError::Invalid(_))));
        let mut tampered = t.clone();
        tampered.push('x');
        assert!(key.verify(&tampered, 1010).is_err());
        // a genuine token with a role we do not know is told apart from a bad one
        let guest = Claims {
            user_id: "x".into(),
            role: "guest".into(),
            iat: 1000,
            exp: 2000,
        }
        .sign_with_key(&key.0)
        .unwrap();
        assert_eq!(key.verify(&guest, 1010).unwrap_err(), AuthError::UnknownRole);
        assert_eq!(
            other.verify(&guest, 1010).unwrap_err(),
            AuthError::Invalid("invalid token signature or format")
        );
        // a genuine token that lacks a claim says which one
        let mut no_iat = serde_json::Map::new();
        no_iat.insert("user_id".into(), "x".into());
        no_iat.insert("role".into(), "viewer".into());
        no_iat.insert("exp".into(), 2000.into());
        let no_iat = no_iat.sign_with_key(&key.0).unwrap();
        assert_eq!(
            key.verify(&no_iat, 1010).unwrap_err(),
            AuthError::Invalid("token lacks the iat claim")
        );
        // iat in the future: tolerated within the clock skew, refused beyond it
        let early = key.mint("bob", Role::Viewer, Duration::from_secs(600), 1000 + IAT_SKEW_SECS);
        assert!(key.verify(&early, 1000).is_ok());
        let future = key.mint("bob", Role::Viewer, Duration::from_secs(600), 1001 + IAT_SKEW_SECS);
        assert!(matches!(key.verify(&future, 1000), Err(AuthError::Invalid(w)) if w.contains("iat")));
        // alg=none tokens are refused
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            t.split('.').nth(1).unwrap()
        );
        assert!(key.verify(&none, 1010).is_err());
    }

    #[test]
    fn api_keys_hashed_0600_revocable_rotatable() {
        let dir = std::env::temp_dir().join(format!("csk-test-{}", random_token(6)));
        let path = dir.join("keys.json");
        let store = ApiKeyStore::new(&path);
        let (rec, plain) = store.create("gcs", Role::Operator, None, 100).unwrap();
        assert!(looks_like_api_key(&plain), "{plain}");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&plain[4..]), "plain key must not be stored");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(store.verify(&plain, 101).unwrap().unwrap().id, rec.id);
        assert!(store.verify("csk_wrong", 101).unwrap().is_none());
        let (rec2, plain2) = store.rotate(&rec.id, 102).unwrap();
        assert!(store.verify(&plain, 103).unwrap().is_none());
        assert_eq!(store.verify(&plain2, 103).unwrap().unwrap().id, rec2.id);
        // another process (the CLI) revoking is seen through the file
        ApiKeyStore::new(&path).revoke(&rec2.id, 104).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(store.verify(&plain2, 105).unwrap().is_none());
        let (_, exp) = store
            .create("tmp", Role::Viewer, Some(Duration::from_secs(10)), 200)
            .unwrap();
        assert!(store.verify(&exp, 205).unwrap().is_some());
        assert!(store.verify(&exp, 210).unwrap().is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn token_bucket_and_failure_limiter() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 2);
        assert!(b.take(t0).is_ok() && b.take(t0).is_ok());
        assert!(b.take(t0).is_err());
        assert!(b.take(t0 + Duration::from_millis(150)).is_ok());
        let l = AuthFailureLimiter::new(5);
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        for _ in 0..5 {
            assert!(l.record_failure(ip, t0).is_ok());
        }
        assert!(
            l.record_failure(ip, t0).is_err(),
            "the 6th failure in a minute is throttled"
        );
        assert!(l.record_failure("10.1.2.4".parse().unwrap(), t0).is_ok());
        assert!(l.record_failure(ip, t0 + Duration::from_secs(61)).is_ok());
    }
}
