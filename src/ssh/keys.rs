//! The server's host key and the keys let in. The host key is made once
//! and kept in the data dir (mode 0600), so clients' `known_hosts` entries
//! stay valid across restarts; `--ephemeral` makes one in memory. The keys
//! let in come from an OpenSSH `authorized_keys` file: each line's comment,
//! up to any `@`, names its user, checked by the nick rules; a line without
//! a usable key or name is skipped, with its line number in the log.

use std::path::{Path, PathBuf};

use russh::keys::{HashAlg, PrivateKey, PublicKey, ssh_key};

/// The host key's file name in the data dir.
pub const HOST_KEY_FILE: &str = "ssh_host_ed25519_key";
/// The authorized keys' file name in the data dir.
pub const AUTHORIZED_KEYS_FILE: &str = "authorized_keys";

/// Why the SSH server cannot start; each is one line naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The host key file exists but is not an OpenSSH private key.
    #[error("cannot read the SSH host key {path}: {reason} (move it away to make a new one)")]
    HostKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The host key could not be written.
    #[error("cannot write the SSH host key {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The authorized keys exist but cannot be read.
    #[error(
        "cannot read the SSH authorized keys {path}: {reason} (it must be a file the node's user can read)"
    )]
    Authorized {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No key may log in.
    #[error(
        "no SSH key may log in: {path} is missing or has no key; add a line such as \
         `ssh-ed25519 AAAA… alice@laptop` (the comment up to `@` is the user's name)"
    )]
    NoKeys {
        /// The file looked at.
        path: PathBuf,
    },
}

/// The host key in `dir` (made there if missing), or a fresh one in
/// memory when `dir` is None.
pub fn host_key(dir: Option<&Path>) -> Result<PrivateKey, KeyError> {
    let Some(dir) = dir else {
        return Ok(fresh());
    };
    let path = dir.join(HOST_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => PrivateKey::from_openssh(text).map_err(|e| KeyError::HostKey {
            path,
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = fresh();
            key.to_openssh(ssh_key::LineEnding::LF)
                .map_err(|e| e.to_string())
                .and_then(|text| {
                    crate::identity::write_private(&path, text.as_bytes())
                        .map_err(|e| e.to_string())
                })
                .map_err(|reason| KeyError::Write { path, reason })?;
            Ok(key)
        }
        Err(e) => Err(KeyError::HostKey {
            path,
            reason: e.to_string(),
        }),
    }
}

/// A new ed25519 key from the system's randomness.
fn fresh() -> PrivateKey {
    let pair = libp2p::identity::ed25519::Keypair::generate();
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&pair.secret().as_ref()[..32]);
    let key = ssh_key::private::Ed25519Keypair::from_seed(&seed);
    zeroize::Zeroize::zeroize(&mut seed);
    PrivateKey::from(key)
}

/// A key's fingerprint as OpenSSH shows it (`SHA256:…`).
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// A key let in, and its user's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user's name (the key comment up to `@`).
    pub name: String,
    /// The key.
    pub key: PublicKey,
}

/// The users of an `authorized_keys` text, and the lines skipped (line
/// number, why).
pub fn parse_authorized(text: &str) -> (Vec<User>, Vec<(usize, String)>) {
    let (mut users, mut skipped) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let entry = match line.parse::<ssh_key::authorized_keys::Entry>() {
            Ok(entry) => entry,
            Err(e) => {
                skipped.push((i + 1, format!("not a public key ({e})")));
                continue;
            }
        };
        let key = entry.public_key().clone();
        let comment = key.comment().as_str_lossy();
        let name = comment.split('@').next().unwrap_or_default().to_owned();
        if name.is_empty() {
            skipped.push((
                i + 1,
                "no name: end the line with a comment such as alice@laptop".into(),
            ));
            continue;
        }
        if let Err(e) = crate::limits::own_nick(&name) {
            skipped.push((i + 1, e.to_string()));
            continue;
        }
        users.push(User { name, key });
    }
    (users, skipped)
}

/// The file's users (none if it is missing), with a log line per line
/// skipped.
pub fn read_authorized(path: &Path) -> Result<Vec<User>, KeyError> {
    users_in(path, read_file(path)?.as_deref())
}

/// The authorized keys file's bytes; None if it is missing.
pub fn read_file(path: &Path) -> Result<Option<Vec<u8>>, KeyError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(unreadable(path, e.to_string())),
    }
}

/// The users in `bytes`, read from `path` (None: it is missing), with a
/// log line per line skipped.
pub fn users_in(path: &Path, bytes: Option<&[u8]>) -> Result<Vec<User>, KeyError> {
    let Some(bytes) = bytes else {
        return Ok(Vec::new());
    };
    let text = std::str::from_utf8(bytes).map_err(|e| unreadable(path, e.to_string()))?;
    let (users, skipped) = parse_authorized(text);
    for (line, why) in skipped {
        tracing::warn!(path = %path.display(), line, %why, "ssh: authorized key skipped");
    }
    Ok(users)
}

fn unreadable(path: &Path, reason: String) -> KeyError {
    KeyError::Authorized {
        path: path.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(seed: u8, comment: &str) -> String {
        let key = PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[seed; 32]));
        let mut public = key.public_key().clone();
        public.set_comment(comment);
        public.to_openssh().expect("encodes")
    }

    #[test]
    fn names_come_from_comments_and_bad_lines_are_skipped_by_number() {
        let text = format!(
            "# users\n{}\n\n{}\nnot a key at all\n{}\n{}\n{}\n",
            public(1, "alice@laptop"),
            public(2, "bob"),
            public(3, ""),
            public(4, "has space@x"),
            public(5, "carol@work@home"),
        );
        let (users, skipped) = parse_authorized(&text);
        let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob", "carol"]);
        let lines: Vec<usize> = skipped.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, [5, 6, 7], "{skipped:?}");
        assert!(skipped[1].1.contains("no name"), "{skipped:?}");
    }

    #[test]
    fn a_missing_file_lets_no_one_in_and_an_unreadable_one_says_why() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("authorized_keys");
        assert!(
            read_authorized(&missing)
                .expect("missing is no keys")
                .is_empty()
        );
        // What Docker makes of a bind mount whose file is missing.
        std::fs::create_dir(&missing).expect("dir");
        let e = read_authorized(&missing).expect_err("a directory");
        assert!(
            e.to_string()
                .starts_with("cannot read the SSH authorized keys"),
            "{e}"
        );
        std::fs::remove_dir(&missing).expect("rmdir");
        std::fs::write(&missing, public(1, "alice@laptop")).expect("write");
        let users = read_authorized(&missing).expect("read");
        assert_eq!(users.len(), 1);
    }

    #[test]
    fn the_host_key_is_made_once_with_mode_0600_and_kept() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let first = host_key(Some(dir.path())).expect("made");
        let again = host_key(Some(dir.path())).expect("read");
        assert_eq!(
            fingerprint(first.public_key()),
            fingerprint(again.public_key())
        );
        assert!(fingerprint(first.public_key()).starts_with("SHA256:"));
        let mode = std::fs::metadata(dir.path().join(HOST_KEY_FILE))
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let fresh = host_key(None).expect("in memory");
        assert_ne!(
            fingerprint(fresh.public_key()),
            fingerprint(first.public_key())
        );
        std::fs::write(dir.path().join(HOST_KEY_FILE), "garbage").expect("write");
        let err = host_key(Some(dir.path())).expect_err("refused");
        assert!(err.to_string().contains("move it away"), "{err}");
    }
}
