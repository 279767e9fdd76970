//! Who may query a server: users with argon2 password hashes, and bearer tokens that each stand for
//! one user.
//!
//! A users file holds `name:<argon2id PHC string>` lines (`tidelake serve --hash-password` makes
//! one); a tokens file holds `name:token` lines. A request carries HTTP basic credentials or a
//! bearer token; the user it authenticates as is the only user it may act as (`X-Trino-User`, when
//! sent, must name the same user).
//!
//! A password check runs argon2 whether or not the user exists (an unknown user is checked against
//! a hash of its own), so the answer takes as long either way and says nothing about which users
//! exist; the hash comparison is constant-time. Checks run on blocking threads, two at a time, so a
//! flood of wrong passwords costs at most two cores and never stalls the server's other requests.
//! A right password is remembered for [`REMEMBER`], so a client that sends it with every poll pays
//! for one check, not one per page.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

/// How long a right password is remembered.
pub const REMEMBER: Duration = Duration::from_secs(300);

/// Right passwords remembered at most.
const REMEMBERED: usize = 1024;

/// Who may query a server.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// Users and their argon2 password hashes (PHC strings, see [`hash_password`]).
    pub users: HashMap<String, String>,
    /// The SHA-256 (hex) of each bearer token, and the user it stands for.
    pub tokens: HashMap<String, String>,
}

impl Credentials {
    /// Reads a users file: one `name:<argon2 hash>` per line, as [`hash_password`] writes the hash;
    /// `#` starts a comment.
    pub fn read_users(text: &str, file: &str) -> Result<HashMap<String, String>, String> {
        let mut users = HashMap::new();
        for (n, line) in lines(text) {
            let Some((user, hash)) = line.split_once(':').filter(|(user, _)| !user.is_empty()) else {
                return Err(format!("{file}:{n}: expected `name:<argon2 hash>`"));
            };
            match PasswordHash::new(hash) {
                Ok(parsed) if parsed.algorithm.as_str().starts_with("argon2") => {}
                _ => {
                    return Err(format!(
                        "{file}:{n}: the password of `{user}` is not an argon2 hash (make one with `tidelake serve --hash-password`)"
                    ))
                }
            }
            if users.insert(user.to_string(), hash.to_string()).is_some() {
                return Err(format!("{file}:{n}: `{user}` is listed twice"));
            }
        }
        Ok(users)
    }

    /// Reads a tokens file: one `name:token` per line; `#` starts a comment. Tokens are kept only
    /// as their SHA-256.
    pub fn read_tokens(text: &str, file: &str) -> Result<HashMap<String, String>, String> {
        let mut tokens = HashMap::new();
        for (n, line) in lines(text) {
            let Some((user, token)) = line.split_once(':').filter(|(u, t)| !u.is_empty() && !t.is_empty()) else {
                return Err(format!(
                    "{file}:{n}: expected `name:token` (the user the token stands for, then the token)"
                ));
            };
            if token.len() < 16 {
                return Err(format!("{file}:{n}: the token of `{user}` is shorter than 16 characters"));
            }
            if tokens.insert(token_digest(token), user.to_string()).is_some() {
                return Err(format!("{file}:{n}: this token is listed twice"));
            }
        }
        Ok(tokens)
    }

    /// Whether anyone may come in without credentials.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.tokens.is_empty()
    }
}

fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(n, l)| (n + 1, l.trim())).filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

fn token_digest(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The users-file form of a password: an argon2id hash with a random salt (PHC string).
pub fn hash_password(password: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::Rng::fill(&mut rand::rng(), &mut bytes);
    let salt = SaltString::encode_b64(&bytes).expect("16 bytes make a salt");
    Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2 with default parameters").to_string()
}

/// Refuses to serve a non-loopback address without credentials, or with passwords and tokens in
/// clear text.
pub fn check_exposure(addr: SocketAddr, credentials: &Credentials, tls: bool) -> Result<(), String> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    if credentials.is_empty() {
        return Err(format!(
            "{addr} is reachable from other hosts: give users (--users FILE) or bearer tokens (--tokens FILE), or bind to 127.0.0.1"
        ));
    }
    if !tls {
        return Err(format!(
            "{addr} is reachable from other hosts: passwords and tokens would cross the network in clear text; give --tls-cert and --tls-key, or bind to 127.0.0.1 behind a TLS proxy"
        ));
    }
    Ok(())
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No credentials, or wrong ones.
    Unauthenticated,
    /// Right credentials of one user, asking to act as another.
    NotThatUser {
        /// Who the credentials are.
        authenticated: String,
        /// Whom the request claims to be.
        claimed: String,
    },
}

/// Checks the credentials of requests against [`Credentials`].
pub(crate) struct Authenticator {
    credentials: Credentials,
    /// A hash unknown users are checked against, so they take as long as known ones.
    decoy: String,
    /// Right passwords seen lately: a keyed digest of user and password, and when.
    remembered: Mutex<HashMap<[u8; 32], (String, Instant)>>,
    /// A random key for those digests.
    key: [u8; 32],
    checks: Arc<Semaphore>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("users", &self.credentials.users.len()).finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(credentials: Credentials) -> Self {
        let mut key = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut key);
        let decoy = hash_password(&STANDARD.encode(key));
        Authenticator { credentials, decoy, remembered: Mutex::default(), key, checks: Arc::new(Semaphore::new(2)) }
    }

    pub fn is_open(&self) -> bool {
        self.credentials.is_empty()
    }

    /// The user a request acts as, from its `Authorization` header and the user it claims
    /// (`X-Trino-User`).
    pub async fn authenticate(&self, header: Option<&str>, claimed: Option<&str>) -> Result<String, Refusal> {
        let user = self.who(header.ok_or(Refusal::Unauthenticated)?).await?;
        match claimed {
            Some(claimed) if claimed != user => {
                Err(Refusal::NotThatUser { authenticated: user, claimed: claimed.into() })
            }
            _ => Ok(user),
        }
    }

    async fn who(&self, header: &str) -> Result<String, Refusal> {
        if let Some(token) = header.strip_prefix("Bearer ") {
            return self.credentials.tokens.get(&token_digest(token.trim())).cloned().ok_or(Refusal::Unauthenticated);
        }
        let encoded = header.strip_prefix("Basic ").ok_or(Refusal::Unauthenticated)?;
        let decoded = STANDARD.decode(encoded.trim()).map_err(|_| Refusal::Unauthenticated)?;
        let text = String::from_utf8(decoded).map_err(|_| Refusal::Unauthenticated)?;
        let (user, password) = text.split_once(':').ok_or(Refusal::Unauthenticated)?;
        let seen = self.seen(user, password);
        if let Some((known, at)) = self.remembered.lock().expect("remembered lock").get(&seen) {
            if at.elapsed() < REMEMBER {
                return Ok(known.clone());
            }
        }
        let stored = self.credentials.users.get(user);
        let hash = stored.cloned().unwrap_or_else(|| self.decoy.clone());
        let password = password.to_string();
        let permit = self.checks.clone().acquire_owned().await.map_err(|_| Refusal::Unauthenticated)?;
        let right = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            PasswordHash::new(&hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        })
        .await
        .unwrap_or(false);
        if !(right && stored.is_some()) {
            return Err(Refusal::Unauthenticated);
        }
        let mut remembered = self.remembered.lock().expect("remembered lock");
        if remembered.len() >= REMEMBERED {
            remembered.retain(|_, (_, at)| at.elapsed() < REMEMBER);
            if remembered.len() >= REMEMBERED {
                remembered.clear();
            }
        }
        remembered.insert(seen, (user.to_string(), Instant::now()));
        Ok(user.to_string())
    }

    /// A digest of user and password under the process's random key: what is remembered instead
    /// of the password.
    fn seen(&self, user: &str, password: &str) -> [u8; 32] {
        let mut digest = Sha256::new();
        digest.update(self.key);
        digest.update((user.len() as u64).to_be_bytes());
        digest.update(user.as_bytes());
        digest.update(password.as_bytes());
        digest.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
    }

    #[tokio::test]
    async fn a_password_authenticates_only_its_user_and_a_token_only_its_own() {
        let users = Credentials::read_users(&format!("alice:{}", hash_password("s3cret")), "users").unwrap();
        let tokens = Credentials::read_tokens("bob:tok-0123456789abcdef", "tokens").unwrap();
        let auth = Authenticator::new(Credentials { users, tokens });
        assert_eq!(auth.authenticate(Some(&basic("alice", "s3cret")), None).await, Ok("alice".into()));
        assert_eq!(auth.authenticate(Some(&basic("alice", "s3cret")), Some("alice")).await, Ok("alice".into()));
        // Remembered: the same answer without a second check.
        assert_eq!(auth.authenticate(Some(&basic("alice", "s3cret")), None).await, Ok("alice".into()));
        assert_eq!(auth.authenticate(Some(&basic("alice", "wrong")), None).await, Err(Refusal::Unauthenticated));
        assert_eq!(auth.authenticate(Some(&basic("bob", "s3cret")), None).await, Err(Refusal::Unauthenticated));
        assert_eq!(auth.authenticate(None, Some("alice")).await, Err(Refusal::Unauthenticated));
        let claimed = auth.authenticate(Some(&basic("alice", "s3cret")), Some("bob")).await;
        assert!(matches!(claimed, Err(Refusal::NotThatUser { .. })));
        assert_eq!(auth.authenticate(Some("Bearer tok-0123456789abcdef"), Some("bob")).await, Ok("bob".into()));
        let other = auth.authenticate(Some("Bearer tok-0123456789abcdef"), Some("alice")).await;
        assert!(matches!(other, Err(Refusal::NotThatUser { .. })), "a token may not claim another user");
        assert_eq!(auth.authenticate(Some("Bearer nope-nope-nope-nope"), None).await, Err(Refusal::Unauthenticated));
    }

    #[tokio::test]
    async fn an_unknown_user_takes_as_long_as_a_wrong_password() {
        let users = Credentials::read_users(&format!("alice:{}", hash_password("s3cret")), "users").unwrap();
        let auth = Authenticator::new(Credentials { users, ..Default::default() });
        let time = |user: &'static str| {
            let auth = &auth;
            async move {
                let started = Instant::now();
                assert!(auth.authenticate(Some(&basic(user, "guess")), None).await.is_err());
                started.elapsed()
            }
        };
        let (mut known, mut unknown) = (Duration::MAX, Duration::MAX);
        for _ in 0..3 {
            known = known.min(time("alice").await);
            unknown = unknown.min(time("mallory").await);
        }
        let ratio = unknown.as_secs_f64() / known.as_secs_f64();
        assert!((0.5..2.0).contains(&ratio), "unknown user {unknown:?}, wrong password {known:?}");
    }

    #[test]
    fn files_are_checked_line_by_line() {
        assert!(Credentials::read_users("alice:sha256:ab:cd", "users").unwrap_err().contains("users:1"));
        assert!(Credentials::read_users("# x\n\nalice", "users").unwrap_err().contains("users:3"));
        assert!(Credentials::read_tokens("just-a-token-without-user", "tokens").unwrap_err().contains("tokens:1"));
        assert!(Credentials::read_tokens("bob:short", "tokens").unwrap_err().contains("16 characters"));
        let everywhere = "0.0.0.0:8443".parse().unwrap();
        let tokens = Credentials::read_tokens("bob:tok-0123456789abcdef", "tokens").unwrap();
        let credentials = Credentials { tokens, ..Default::default() };
        assert!(check_exposure(everywhere, &Credentials::default(), true).unwrap_err().contains("--users"));
        assert!(check_exposure(everywhere, &credentials, false).unwrap_err().contains("--tls-cert"));
        assert!(check_exposure(everywhere, &credentials, true).is_ok());
        assert!(check_exposure("127.0.0.1:8080".parse().unwrap(), &Credentials::default(), false).is_ok());
    }
}
