//! Who may query a server: users with passwords, and bearer tokens.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Who may query a server.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// Users and their salted password hashes (see [`hash_password`]).
    pub users: HashMap<String, String>,
    /// Bearer tokens.
    pub tokens: HashSet<String>,
}

impl Credentials {
    /// Reads a users file: one `name:sha256:<salt>:<hex digest>` per line, as [`hash_password`]
    /// writes them; `#` starts a comment.
    pub fn read_users(text: &str, file: &str) -> Result<HashMap<String, String>, String> {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("{file}:{}: expected `name:sha256:salt:digest`", n + 1));
            };
            if hash.split(':').count() != 3 || !hash.starts_with("sha256:") {
                return Err(format!(
                    "{file}:{}: the password of `{user}` is not `sha256:salt:digest` (make one with `tidelake serve --hash-password`)",
                    n + 1
                ));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        Ok(users)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.users.is_empty() && self.tokens.is_empty()
    }

    /// The user a request authenticates as; `None` when its credentials are missing or wrong.
    pub(crate) fn authenticate(&self, header: Option<&str>, claimed_user: Option<&str>) -> Option<String> {
        let header = header?;
        if let Some(token) = header.strip_prefix("Bearer ") {
            return self.tokens.contains(token.trim()).then(|| claimed_user.unwrap_or("token").to_string());
        }
        let decoded = STANDARD.decode(header.strip_prefix("Basic ")?.trim()).ok()?;
        let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
        let stored = self.users.get(user)?;
        let (_, rest) = stored.split_once(':')?;
        let (salt, _) = rest.split_once(':')?;
        (hash_with_salt(password, salt) == *stored).then(|| user.to_string())
    }
}

/// The users-file form of a password: `sha256:<salt>:<hex of sha256(salt + password)>`.
pub fn hash_password(password: &str) -> String {
    hash_with_salt(password, &new_salt())
}

/// Eight bytes from the clock and the process id: not secret, only different per hash.
fn new_salt() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    hex(&Sha256::digest(format!("{nanos}-{}", std::process::id()).as_bytes())[..8])
}

fn hash_with_salt(password: &str, salt: &str) -> String {
    let digest = Sha256::digest(format!("{salt}{password}").as_bytes());
    format!("sha256:{salt}:{}", hex(&digest))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Refuses to serve a non-loopback address without credentials.
pub fn check_exposure(addr: SocketAddr, credentials: &Credentials) -> Result<(), String> {
    if !addr.ip().is_loopback() && credentials.is_empty() {
        return Err(format!(
            "{addr} is reachable from other hosts: give users (--users FILE) or bearer tokens (--tokens FILE), or bind to 127.0.0.1"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hashed_password_authenticates_only_its_user() {
        let line = format!("alice:{}", hash_password("s3cret"));
        let credentials =
            Credentials { users: Credentials::read_users(&line, "users").unwrap(), tokens: HashSet::new() };
        let basic = |u: &str, p: &str| format!("Basic {}", STANDARD.encode(format!("{u}:{p}")));
        assert_eq!(credentials.authenticate(Some(&basic("alice", "s3cret")), None).as_deref(), Some("alice"));
        assert_eq!(credentials.authenticate(Some(&basic("alice", "wrong")), None), None);
        assert_eq!(credentials.authenticate(Some(&basic("bob", "s3cret")), None), None);
        assert_eq!(credentials.authenticate(None, Some("alice")), None);
        assert!(Credentials::read_users("alice:plain", "users").unwrap_err().contains("users:1"));
    }
}
