//! The node's ed25519 identity: kept in the data dir so the peer id survives
//! restarts, or made fresh in memory for an ephemeral node.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use libp2p::identity::Keypair;

/// File name of the key inside the data dir.
pub const KEY_FILE: &str = "identity.key";

/// Why the identity could not be loaded or stored.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// No data dir was given and the platform has none.
    #[error("no data dir: pass --data-dir DIR, or --ephemeral to keep nothing on disk")]
    NoDataDir,
    /// The data dir or key file could not be read or written.
    #[error("data dir {path}: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The key file is not a key.
    #[error("{path} is not a p2p-chat identity key; move it aside to make a new identity")]
    Corrupt {
        /// The key file.
        path: PathBuf,
    },
}

/// The default data dir of this platform (`$XDG_DATA_HOME/p2p-chat`).
pub fn default_data_dir() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("p2p-chat"))
}

/// Loads the key from `dir`, creating the dir (0700) and a new key (0600)
/// the first time.
pub fn load_or_create(dir: &Path) -> Result<Keypair, IdentityError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| IdentityError::Io { path, source }
    };
    create_private_dir(dir).map_err(io(dir))?;
    let path = dir.join(KEY_FILE);
    match fs::read(&path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes)
            .map_err(|_| IdentityError::Corrupt { path: path.clone() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key
                .to_protobuf_encoding()
                .map_err(|_| IdentityError::Corrupt { path: path.clone() })?;
            write_private(&path, &bytes).map_err(io(&path))?;
            Ok(key)
        }
        Err(e) => Err(io(&path)(e)),
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    // A probe write, so an unwritable dir fails now with its name, not later.
    let probe = dir.join(".write-test");
    fs::write(&probe, b"")?;
    fs::remove_file(&probe)
}

/// Writes `bytes` to `path` with mode 0600, whole or not at all.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = opts.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_peer_id_after_reload_and_private_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = load_or_create(dir.path()).expect("create");
        let b = load_or_create(dir.path()).expect("reload");
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(KEY_FILE))
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn corrupt_key_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(KEY_FILE), b"garbage").expect("write");
        let err = load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains(KEY_FILE), "{err}");
    }
}
