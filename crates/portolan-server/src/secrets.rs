//! Secrets at rest: values the server must read back in clear (a webhook's signing secret) are
//! encrypted with AES-256-GCM under the installation's master key before they reach the store.
//!
//! Stored form: `v1:<key id>:<nonce>:<ciphertext>` (base64, no padding), a fresh random 96-bit
//! nonce per encryption, and associated data binding the ciphertext to its row (a webhook's is
//! `webhook:<org>:<identifier>`), so a ciphertext copied to another row does not decrypt. The
//! key id (the first 8 bytes of the key's SHA-256, hex) lets start-up notice a wrong key before
//! any request needs it, and keeps the format open to key rotation.
//!
//! The master key comes from `PORTOLAN_SECRETS_KEY` / `PORTOLAN_SECRETS_KEY_FILE` or, on the
//! embedded SQLite database only, from `<data_dir>/secrets.key`, generated on first start
//! (`portolan-cli`). It is never logged: `Debug` shows the key id only.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use sha2::{Digest, Sha256};

/// The installation's master key for secrets at rest.
#[derive(Clone)]
pub struct SecretsKey {
    key: [u8; 32],
    id: String,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretsKey {{ id: {}, key: [redacted] }}", self.id)
    }
}

/// Why a stored secret could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error(
        "the secret was encrypted with master key {stored}, but this server's PORTOLAN_SECRETS_KEY is key {current}"
    )]
    WrongKey { stored: String, current: String },
    #[error("the stored secret is not in the v1:<key id>:<nonce>:<ciphertext> form")]
    Malformed,
    #[error("the stored secret does not decrypt (it was altered or belongs to another row)")]
    Tampered,
}

impl SecretsKey {
    /// A key from 32 bytes.
    pub fn from_bytes(key: [u8; 32]) -> Self {
        let id = crate::auth::hex(&Sha256::digest(key)[..8]);
        SecretsKey { key, id }
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        Self::from_bytes(crate::auth::random_bytes::<32>())
    }

    /// Parse the base64 (standard or URL-safe, padding optional) of exactly 32 bytes.
    pub fn from_base64(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bytes = STANDARD
            .decode(s)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s))
            .or_else(|_| B64.decode(s.trim_end_matches('=')))
            .map_err(|_| "is not base64".to_string())?;
        let key: [u8; 32] =
            bytes.try_into().map_err(|b: Vec<u8>| format!("decodes to {} bytes; it must be 32 bytes", b.len()))?;
        Ok(Self::from_bytes(key))
    }

    /// The key as standard base64 (to write a new key file).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.key)
    }

    /// The key's id: first 8 bytes of its SHA-256, hex. Safe to show.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> Aes256Gcm {
        // A 32-byte slice is always a valid AES-256 key.
        Aes256Gcm::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!("32-byte key"))
    }

    /// Encrypt `plaintext`, bound to `aad` (the row it belongs to).
    pub fn encrypt(&self, plaintext: &str, aad: &str) -> String {
        let nonce_bytes = crate::auth::random_bytes::<12>();
        let nonce = Nonce::from(nonce_bytes);
        let ct = self
            .cipher()
            .encrypt(&nonce, Payload { msg: plaintext.as_bytes(), aad: aad.as_bytes() })
            .unwrap_or_else(|_| unreachable!("AES-GCM encryption of a short message cannot fail"));
        format!("v1:{}:{}:{}", self.id, B64.encode(nonce_bytes), B64.encode(ct))
    }

    /// Decrypt a value [`encrypt`](Self::encrypt) produced with the same `aad`.
    pub fn decrypt(&self, stored: &str, aad: &str) -> Result<String, SecretError> {
        let mut parts = stored.split(':');
        let (Some("v1"), Some(id), Some(nonce), Some(ct), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SecretError::Malformed);
        };
        if id != self.id {
            return Err(SecretError::WrongKey { stored: id.to_string(), current: self.id.clone() });
        }
        let nonce: [u8; 12] = B64.decode(nonce).ok().and_then(|n| n.try_into().ok()).ok_or(SecretError::Malformed)?;
        let ct = B64.decode(ct).map_err(|_| SecretError::Malformed)?;
        let pt = self
            .cipher()
            .decrypt(&Nonce::from(nonce), Payload { msg: &ct, aad: aad.as_bytes() })
            .map_err(|_| SecretError::Tampered)?;
        String::from_utf8(pt).map_err(|_| SecretError::Tampered)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_round_trips_only_with_its_key_and_row() {
        let k = SecretsKey::generate();
        let c1 = k.encrypt("s3cret", "webhook:org_a:gh");
        let c2 = k.encrypt("s3cret", "webhook:org_a:gh");
        assert_ne!(c1, c2, "a fresh nonce each time");
        assert!(!c1.contains("s3cret"));
        assert!(c1.starts_with(&format!("v1:{}:", k.id())));
        assert_eq!(k.decrypt(&c1, "webhook:org_a:gh").unwrap(), "s3cret");
        assert_eq!(k.decrypt(&c1, "webhook:org_b:gh"), Err(SecretError::Tampered), "bound to its row");
        let other = SecretsKey::generate();
        assert!(matches!(other.decrypt(&c1, "webhook:org_a:gh"), Err(SecretError::WrongKey { .. })));
        // One bit of the ciphertext flipped (in the bytes, not in the base64 text: a changed last
        // base64 character can make the text undecodable, which is `Malformed`, not `Tampered`).
        let (head, ct) = c1.rsplit_once(':').unwrap();
        let mut bytes = B64.decode(ct).unwrap();
        bytes[0] ^= 1;
        let flipped = format!("{head}:{}", B64.encode(&bytes));
        assert_eq!(k.decrypt(&flipped, "webhook:org_a:gh"), Err(SecretError::Tampered));
        assert_eq!(k.decrypt("plain", "x"), Err(SecretError::Malformed));
    }

    #[test]
    fn keys_parse_from_base64_of_32_bytes_and_never_print() {
        let k = SecretsKey::generate();
        let again = SecretsKey::from_base64(&k.to_base64()).unwrap();
        assert_eq!(again.id(), k.id());
        assert!(SecretsKey::from_base64("c2hvcnQ=").unwrap_err().contains("32 bytes"));
        assert!(SecretsKey::from_base64("not base64!!").is_err());
        assert!(!format!("{k:?}").contains(&k.to_base64()));
    }
}
