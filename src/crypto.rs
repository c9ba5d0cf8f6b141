//! Room encryption: a key derived once per join from the passphrase with
//! Argon2id, and AES-256-GCM sealing of each message with associated data
//! that binds it to its room, sender, id and time. Pure; no I/O.

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, AeadCore, OsRng, Payload},
};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Lowercase hex digits of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0xf)]])
        .map(char::from)
        .collect()
}

/// A secret string (a passphrase): never shown by `Debug`, zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(Zeroizing::new(s.into()))
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Argon2id cost: RFC 9106's second recommended option (t=3, 64 MiB, p=4).
pub const ARGON2_T: u32 = 3;
/// Argon2id memory in KiB.
pub const ARGON2_M_KIB: u32 = 64 * 1024;
/// Argon2id lanes.
pub const ARGON2_P: u32 = 4;
const NONCE_LEN: usize = 12;

/// Why sealing or opening failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The passphrase is empty.
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    /// Key derivation failed (parameters or memory).
    #[error("key derivation failed: {0}")]
    Derive(String),
    /// The message was sealed with another key.
    #[error("sealed with another key")]
    WrongKey,
    /// The ciphertext, nonce, tag or associated data was altered.
    #[error("authentication failed")]
    Tampered,
    /// The sealed fields are not valid base64 or have the wrong length.
    #[error("malformed sealed body")]
    Malformed,
}

/// The sealed body of an encrypted room message, as it travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// Short id of the key (hex), to tell "wrong passphrase" from tampering.
    pub key_id: String,
    /// 96-bit random nonce, base64.
    pub nonce: String,
    /// Ciphertext and tag, base64.
    pub ciphertext: String,
}

/// What a sealed message is bound to: moving it to another room or sender,
/// or changing its id or time, makes it fail to open.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// The envelope's schema version.
    pub version: u8,
    /// The room's topic (a hash of its name).
    pub topic: &'a str,
    /// The author's peer id.
    pub from: &'a str,
    /// The message id.
    pub id: &'a str,
    /// The author's timestamp.
    pub ts: u64,
}

impl Binding<'_> {
    fn associated_data(&self) -> Vec<u8> {
        let mut ad = Vec::with_capacity(96 + self.topic.len() + self.from.len() + self.id.len());
        ad.extend_from_slice(b"p2p-chat/sealed/v1\0");
        ad.push(self.version);
        for field in [self.topic, self.from, self.id] {
            ad.extend_from_slice(&(field.len() as u32).to_be_bytes());
            ad.extend_from_slice(field.as_bytes());
        }
        ad.extend_from_slice(&self.ts.to_be_bytes());
        ad
    }
}

/// A room's key. Held in memory only; zeroized when dropped.
pub struct RoomKey {
    key: Zeroizing<[u8; 32]>,
    id: String,
}

impl std::fmt::Debug for RoomKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The salt of a room: derived from its name with a domain-separation label.
fn salt(room: &str) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"p2p-chat/room-salt/v1\0");
    h.update(room.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize()[..16]);
    out
}

impl RoomKey {
    /// Derives the key of `room` from `passphrase` with Argon2id. Slow on
    /// purpose (hundreds of ms): call it once per join, off the async runtime.
    pub fn derive(passphrase: &str, room: &str) -> Result<RoomKey, CryptoError> {
        if passphrase.is_empty() {
            return Err(CryptoError::EmptyPassphrase);
        }
        let params = Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, Some(32))
            .map_err(|e| CryptoError::Derive(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut key = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase.as_bytes(), &salt(room), key.as_mut())
            .map_err(|e| CryptoError::Derive(e.to_string()))?;
        Ok(RoomKey::from_bytes(key))
    }

    fn from_bytes(key: Zeroizing<[u8; 32]>) -> RoomKey {
        let mut h = Sha256::new();
        h.update(b"p2p-chat/key-id/v1\0");
        h.update(key.as_ref());
        let id = hex(&h.finalize()[..6]);
        RoomKey { key, id }
    }

    /// The key's short public id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.key.as_ref().into())
    }

    /// Encrypts `plaintext` under a fresh random nonce, bound to `binding`.
    pub fn seal(&self, binding: &Binding<'_>, plaintext: &[u8]) -> Sealed {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = binding.associated_data();
        // Encryption only fails for plaintexts of many GiB.
        let ciphertext = self
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        Sealed {
            key_id: self.id.clone(),
            nonce: B64.encode(nonce),
            ciphertext: B64.encode(ciphertext),
        }
    }

    /// Decrypts and authenticates a sealed body.
    pub fn open(
        &self,
        binding: &Binding<'_>,
        sealed: &Sealed,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.key_id != self.id {
            return Err(CryptoError::WrongKey);
        }
        let nonce = B64
            .decode(&sealed.nonce)
            .map_err(|_| CryptoError::Malformed)?;
        if nonce.len() != NONCE_LEN {
            return Err(CryptoError::Malformed);
        }
        let ciphertext = B64
            .decode(&sealed.ciphertext)
            .map_err(|_| CryptoError::Malformed)?;
        let aad = binding.associated_data();
        self.cipher()
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Tampered)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn test_key(byte: u8) -> RoomKey {
        RoomKey::from_bytes(Zeroizing::new([byte; 32]))
    }

    const B: Binding<'static> = Binding {
        version: 1,
        topic: "p2p-chat/room/ab",
        from: "12D3KooWx",
        id: "01ABC",
        ts: 42,
    };

    #[test]
    fn round_trip_and_fresh_nonces() {
        let key = test_key(7);
        let a = key.seal(&B, b"hello");
        let b = key.seal(&B, b"hello");
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
        assert_eq!(key.open(&B, &a).expect("opens").as_slice(), b"hello");
    }

    #[test]
    fn wrong_key_is_told_apart_from_tampering() {
        let sealed = test_key(1).seal(&B, b"hello");
        assert_eq!(test_key(2).open(&B, &sealed), Err(CryptoError::WrongKey));
        let mut forged = test_key(2).seal(&B, b"hello");
        forged.key_id = sealed.key_id.clone();
        assert_eq!(test_key(1).open(&B, &forged), Err(CryptoError::Tampered));
    }

    #[test]
    fn derivation_is_deterministic_per_room_and_passphrase() {
        let a = RoomKey::derive("correct horse", "lobby").expect("derive");
        let b = RoomKey::derive("correct horse", "lobby").expect("derive");
        let other_room = RoomKey::derive("correct horse", "dev").expect("derive");
        let other_pass = RoomKey::derive("battery staple", "lobby").expect("derive");
        assert_eq!(a.id(), b.id());
        assert_ne!(a.id(), other_room.id());
        assert_ne!(a.id(), other_pass.id());
        assert_eq!(
            RoomKey::derive("", "lobby").err(),
            Some(CryptoError::EmptyPassphrase)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn any_flipped_bit_fails(which in 0usize..2, byte in 0usize..64, bit in 0u8..8) {
            let key = test_key(9);
            let sealed = key.seal(&B, b"a message of some length");
            let mut nonce = B64.decode(&sealed.nonce).expect("b64");
            let mut ct = B64.decode(&sealed.ciphertext).expect("b64");
            let target = if which == 0 { &mut nonce } else { &mut ct };
            let i = byte % target.len();
            target[i] ^= 1 << bit;
            let flipped = Sealed { key_id: sealed.key_id.clone(), nonce: B64.encode(&nonce), ciphertext: B64.encode(&ct) };
            prop_assert_eq!(key.open(&B, &flipped), Err(CryptoError::Tampered));
        }

        #[test]
        fn any_changed_binding_fails(field in 0usize..4, text in "[a-z]{1,12}", ts in any::<u64>()) {
            let key = test_key(3);
            let sealed = key.seal(&B, b"bound");
            let mut b = B;
            let changed_topic = format!("{}{text}", B.topic);
            let changed_from = format!("{}{text}", B.from);
            let changed_id = format!("{}{text}", B.id);
            match field {
                0 => b.topic = &changed_topic,
                1 => b.from = &changed_from,
                2 => b.id = &changed_id,
                _ => b.ts = if ts == B.ts { ts + 1 } else { ts },
            }
            prop_assert_eq!(key.open(&b, &sealed), Err(CryptoError::Tampered));
        }
    }
}
