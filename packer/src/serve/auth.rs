//! The console's authentication, as plain logic apart from HTTP: the secret (an argon2 password
//! hash or a token file), sessions with their CSRF tokens, the login rate limit, cookie text.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use base64::Engine;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "packer_session";
/// The login form's own CSRF cookie (double submit: the form carries the same value).
pub const LOGIN_COOKIE: &str = "packer_login";

/// 32 random bytes from the OS, base64url: session ids, CSRF tokens, the login token.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the OS random source");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Compares without an early exit, so the time taken says nothing about where they differ.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An argon2id PHC string for `password` (a fresh random salt, the crate's default cost).
pub fn hash_password(password: &str) -> Result<String> {
    Ok(Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?
        .to_string())
}

/// What a login is checked against.
pub enum Secret {
    /// `[serve] password_hash`.
    Hash(String),
    /// The token in the token file.
    Token(String),
}

impl Secret {
    /// Checks a `[serve] password_hash` parses, so a typo fails at start, not at every login.
    pub fn from_hash(phc: &str) -> Result<Secret> {
        PasswordHash::new(phc).map_err(|e| {
            anyhow::anyhow!(
                "[serve] password_hash is not an argon2 PHC string ({e}); make one with `packer serve --hash-password`"
            )
        })?;
        Ok(Secret::Hash(phc.to_string()))
    }

    /// Whether `given` is the password (or the token). Slow on purpose for a hash: run it off the
    /// async threads.
    pub fn check(&self, given: &str) -> bool {
        match self {
            Secret::Hash(phc) => PasswordHash::new(phc)
                .map(|h| Argon2::default().verify_password(given.as_bytes(), &h).is_ok())
                .unwrap_or(false),
            Secret::Token(t) => same(t, given.trim()),
        }
    }
}

/// Reads the token file, or creates it (mode 0600, never following a link) with a new token.
/// Returns the token and whether it was created. A token file readable by others is refused.
pub fn token_file(path: &Path) -> Result<(String, bool)> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    match fs::OpenOptions::new().read(true).custom_flags(nofollow).open(path) {
        Ok(f) => {
            let mode = f.metadata().with_context(|| format!("reading {}", path.display()))?.mode();
            if mode & 0o077 != 0 {
                bail!(
                    "{} is readable by others (mode {:04o}): chmod 600 it, or delete it for a new token",
                    path.display(),
                    mode & 0o7777
                );
            }
            let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let token = text.trim().to_string();
            if token.len() < 16 {
                bail!(
                    "{} holds no token (fewer than 16 characters); delete it and start again for a new one",
                    path.display()
                );
            }
            Ok((token, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = random_token();
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(nofollow)
                .open(path)
                .with_context(|| format!("creating the console token file {}", path.display()))?;
            f.write_all(format!("{token}\n").as_bytes())
                .and_then(|_| f.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok((token, true))
        }
        Err(e) => Err(e).with_context(|| format!("opening {}", path.display())),
    }
}

/// One logged-in browser.
pub struct Session {
    /// Every POST must carry it.
    pub csrf: String,
    /// The session ends then, whatever happens.
    pub expires: Instant,
    /// Messages for the next page (the outcome of an action), each ok or not.
    pub flash: Vec<(bool, String)>,
}

/// The sessions in memory: a restart logs everyone out, which is fine for a console.
pub struct Sessions {
    map: HashMap<String, Session>,
    ttl: Duration,
}

impl Sessions {
    /// Sessions that last `ttl`.
    pub fn new(ttl: Duration) -> Sessions {
        Sessions { map: HashMap::new(), ttl }
    }

    /// A new session; returns its id (the cookie's value).
    pub fn create(&mut self, now: Instant) -> String {
        self.map.retain(|_, s| s.expires > now);
        let id = random_token();
        self.map.insert(id.clone(), Session { csrf: random_token(), expires: now + self.ttl, flash: Vec::new() });
        id
    }

    /// The live session of `id`.
    pub fn get(&mut self, id: &str, now: Instant) -> Option<&mut Session> {
        if self.map.get(id).is_some_and(|s| s.expires <= now) {
            self.map.remove(id);
        }
        self.map.get_mut(id)
    }

    /// Logs out.
    pub fn remove(&mut self, id: &str) {
        self.map.remove(id);
    }
}

/// Failed logins per client address: after `max` failures within `window` the address must
/// wait until the window since its first failure has passed. A success clears its record.
pub struct RateLimit {
    max: u32,
    window: Duration,
    failures: HashMap<IpAddr, (Instant, u32)>,
}

impl RateLimit {
    /// `max` failures per `window`.
    pub fn new(max: u32, window: Duration) -> RateLimit {
        RateLimit { max, window, failures: HashMap::new() }
    }

    /// Ok when `ip` may try now; else how long it must wait.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        match self.failures.get(&ip) {
            Some(&(first, _)) if now.duration_since(first) >= self.window => {
                self.failures.remove(&ip);
                Ok(())
            }
            Some(&(first, n)) if n >= self.max => Err(self.window - now.duration_since(first)),
            _ => Ok(()),
        }
    }

    /// A wrong password from `ip`.
    pub fn failed(&mut self, ip: IpAddr, now: Instant) {
        // Forget windows that are over, so many addresses (an IPv6 prefix) cannot grow the map.
        let window = self.window;
        self.failures.retain(|_, (first, _)| now.duration_since(*first) < window);
        let e = self.failures.entry(ip).or_insert((now, 0));
        e.1 += 1;
    }

    /// A right one.
    pub fn succeeded(&mut self, ip: IpAddr) {
        self.failures.remove(&ip);
    }
}

/// The value of cookie `name` in a Cookie header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').filter_map(|kv| kv.trim().split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// A Set-Cookie value: HttpOnly (no script reads it), Secure (never sent over plain HTTP except
/// to loopback, which browsers treat as secure), SameSite=Strict (no other site's page can
/// make the browser send it), Path=/; `max_age` None for a cookie that ends with the browser,
/// Some(0) to delete it.
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>) -> String {
    let age = max_age.map(|a| format!("; Max-Age={a}")).unwrap_or_default();
    format!("{name}={value}; HttpOnly; Secure; SameSite=Strict; Path=/{age}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The right password passes, a wrong one and a garbled hash do not; the PHC string never
    /// contains the password.
    #[test]
    fn password_hash_round_trip() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$") && !phc.contains("correct horse"));
        let s = Secret::from_hash(&phc).unwrap();
        assert!(s.check("correct horse"));
        assert!(!s.check("correct hors"));
        assert!(Secret::from_hash("plaintext").is_err());
        assert!(Secret::Token("abc".into()).check("abc\n") && !Secret::Token("abc".into()).check("abd"));
    }

    /// Created 0600 on first use with a fresh token, read back the same afterwards; a file others
    /// may read is refused.
    #[test]
    fn token_file_is_private_and_stable() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("console.token");
        let (tok, created) = token_file(&p).unwrap();
        assert!(created && tok.len() >= 40);
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(token_file(&p).unwrap(), (tok, false));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(token_file(&p).unwrap_err().to_string().contains("readable by others"));
    }

    /// Five failures lock an address out for the rest of the window, not another address; the
    /// window passing or a success clears it.
    #[test]
    fn rate_limit_locks_out_after_max_failures() {
        let mut r = RateLimit::new(5, Duration::from_secs(300));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for i in 0..5 {
            assert!(r.check(a, t0 + Duration::from_secs(i)).is_ok());
            r.failed(a, t0 + Duration::from_secs(i));
        }
        let wait = r.check(a, t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(290));
        assert!(r.check(b, t0 + Duration::from_secs(10)).is_ok());
        assert!(r.check(a, t0 + Duration::from_secs(300)).is_ok());
        r.failed(a, t0 + Duration::from_secs(301));
        r.succeeded(a);
        assert!(r.check(a, t0 + Duration::from_secs(302)).is_ok());
    }

    /// Sessions expire; ids and CSRF tokens are distinct random values.
    #[test]
    fn sessions_expire_and_are_unique() {
        let mut s = Sessions::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let a = s.create(t0);
        let b = s.create(t0);
        assert_ne!(a, b);
        let csrf = s.get(&a, t0).unwrap().csrf.clone();
        assert_ne!(csrf, a);
        assert!(s.get(&a, t0 + Duration::from_secs(61)).is_none());
        s.remove(&b);
        assert!(s.get(&b, t0).is_none());
    }

    /// Cookie parsing finds the named one among others; Set-Cookie carries every safety flag.
    #[test]
    fn cookies() {
        assert_eq!(cookie("a=1; packer_session=xyz; b=2", SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie("a=1", SESSION_COOKIE), None);
        let c = set_cookie(SESSION_COOKIE, "v", None);
        for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
            assert!(c.contains(flag), "{c}");
        }
        assert!(set_cookie(SESSION_COOKIE, "", Some(0)).ends_with("Max-Age=0"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
