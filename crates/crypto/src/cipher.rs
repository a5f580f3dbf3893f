//! AES-256-GCM with a key ring (decisions §5).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portal_domain::model::Ciphertext;
use portal_domain::ports::system::{Cipher, CipherError, EncryptionContext, Random};
use portal_domain::secret::{ExposeSecret, SecretString};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::SecureRandom;
use std::fmt;
use zeroize::Zeroizing;

/// Version prefix of the ciphertext format.
const VERSION: &str = "v1";
/// AES-256 key length.
const KEY_LEN: usize = 32;
/// GCM tag length.
const TAG_LEN: usize = 16;
/// Key id of the key [`AesGcmCipher::ephemeral`] generates.
const EPHEMERAL_KID: &str = "ephemeral";

/// Why a configured key was refused. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Key ids are 1-32 characters of `[A-Za-z0-9_-]` (they are written into every ciphertext).
    #[error("invalid key id (1-32 characters of A-Z a-z 0-9 _ -)")]
    InvalidKeyId,
    /// The key is not exactly 64 hex characters (32 bytes).
    #[error("key {kid} must be 64 hex characters (32 bytes)")]
    NotHex {
        /// The offending key's id.
        kid: String,
    },
    /// The key is all zeros: a placeholder, not a key.
    #[error("key {kid} is all zeros")]
    AllZero {
        /// The offending key's id.
        kid: String,
    },
    /// Two keys share an id, so decryption would be ambiguous.
    #[error("key id {kid} is used twice")]
    DuplicateKeyId {
        /// The duplicated id.
        kid: String,
    },
}

/// One key of the ring. The raw bytes are zeroed on drop; ring's expanded key schedule is
/// built per operation and never kept.
struct KeyEntry {
    kid: String,
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl KeyEntry {
    fn parse(kid: &str, hex_key: &str) -> Result<Self, KeyError> {
        let kid_ok = !kid.is_empty()
            && kid.len() <= 32
            && kid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !kid_ok {
            return Err(KeyError::InvalidKeyId);
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        let hex_key = hex_key.trim();
        if hex_key.len() != KEY_LEN * 2 || hex::decode_to_slice(hex_key, &mut bytes[..]).is_err() {
            return Err(KeyError::NotHex {
                kid: kid.to_owned(),
            });
        }
        Self::from_bytes(kid, bytes)
    }

    fn from_bytes(kid: &str, bytes: Zeroizing<[u8; KEY_LEN]>) -> Result<Self, KeyError> {
        if bytes.iter().all(|&b| b == 0) {
            return Err(KeyError::AllZero {
                kid: kid.to_owned(),
            });
        }
        Ok(Self {
            kid: kid.to_owned(),
            bytes,
        })
    }

    /// ring's key for one operation. Infallible for a 32-byte key.
    fn aead(&self) -> Option<LessSafeKey> {
        UnboundKey::new(&AES_256_GCM, &self.bytes[..])
            .ok()
            .map(LessSafeKey::new)
    }
}

/// AES-256-GCM authenticated encryption with key rotation.
///
/// Encrypts under the current key with a fresh random 96-bit nonce; decrypts with whichever
/// key the ciphertext names. The [`EncryptionContext`]'s AAD binds a ciphertext to its owner
/// and field, so a value copied to another tenant or field does not decrypt.
pub struct AesGcmCipher {
    /// Every usable key; `keys[0]` is the current (encrypting) key.
    keys: Vec<KeyEntry>,
    /// Source of nonces.
    nonces: ring::rand::SystemRandom,
}

impl fmt::Debug for AesGcmCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("AesGcmCipher")
            .field("key_ids", &kids)
            .field("keys", &"[REDACTED]")
            .finish()
    }
}

impl AesGcmCipher {
    /// Builds the ring from hex keys: `current` encrypts and decrypts, `older` only decrypt.
    ///
    /// Each key must be exactly 64 hex characters and not all zeros; key ids must be unique.
    pub fn from_hex_keys(current: (&str, &str), older: &[(&str, &str)]) -> Result<Self, KeyError> {
        let mut keys = Vec::with_capacity(1 + older.len());
        for (kid, hex_key) in std::iter::once(&current).chain(older) {
            let entry = KeyEntry::parse(kid, hex_key)?;
            if keys.iter().any(|k: &KeyEntry| k.kid == entry.kid) {
                return Err(KeyError::DuplicateKeyId {
                    kid: entry.kid.clone(),
                });
            }
            keys.push(entry);
        }
        Ok(Self {
            keys,
            nonces: ring::rand::SystemRandom::new(),
        })
    }

    /// A cipher with one freshly generated key, for the embedded default: what it encrypts
    /// cannot be decrypted after a restart.
    pub fn ephemeral(random: &dyn Random) -> Self {
        let entry = loop {
            let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
            random.fill(&mut bytes[..]);
            if let Ok(entry) = KeyEntry::from_bytes(EPHEMERAL_KID, bytes) {
                break entry;
            }
        };
        Self {
            keys: vec![entry],
            nonces: ring::rand::SystemRandom::new(),
        }
    }

    /// The id of the key new ciphertexts are written with.
    pub fn current_key_id(&self) -> &str {
        self.keys.first().map_or("", |k| k.kid.as_str())
    }
}

impl Cipher for AesGcmCipher {
    /// # Panics
    /// Only if the operating system cannot provide a nonce (reusing or guessing one would
    /// break GCM), or on a key ring broken by construction (impossible through the
    /// constructors).
    fn encrypt(&self, plaintext: &SecretString, context: &EncryptionContext) -> Ciphertext {
        let (Some(entry), Some(key)) = (
            self.keys.first(),
            self.keys.first().and_then(KeyEntry::aead),
        ) else {
            panic!("AesGcmCipher has no usable current key");
        };
        let mut nonce = [0u8; NONCE_LEN];
        if self.nonces.fill(&mut nonce).is_err() {
            panic!("the operating system random source failed");
        }
        let plain = plaintext.expose_secret().as_bytes();
        let mut out = Zeroizing::new(Vec::with_capacity(NONCE_LEN + plain.len() + TAG_LEN));
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let aad = context.aad();
        let mut body = out.split_off(NONCE_LEN);
        if key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad),
                &mut body,
            )
            .is_err()
        {
            // Only for plaintexts beyond GCM's 64 GiB limit.
            panic!("AES-GCM refused to seal the plaintext");
        }
        out.extend_from_slice(&body);
        Ciphertext(format!(
            "{VERSION}.{}.{}",
            entry.kid,
            URL_SAFE_NO_PAD.encode(&out[..])
        ))
    }

    fn decrypt(
        &self,
        ciphertext: &Ciphertext,
        context: &EncryptionContext,
    ) -> Result<SecretString, CipherError> {
        let mut parts = ciphertext.0.splitn(3, '.');
        let (Some(VERSION), Some(kid), Some(data)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(CipherError::Malformed);
        };
        let raw = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(data)
                .map_err(|_| CipherError::Malformed)?,
        );
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(CipherError::Malformed);
        }
        let entry = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(CipherError::UnknownKey)?;
        let key = entry.aead().ok_or(CipherError::Rejected)?;
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CipherError::Malformed)?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let aad = context.aad();
        let plain = key
            .open_in_place(nonce, Aad::from(&aad), &mut buf)
            .map_err(|_| CipherError::Rejected)?;
        let text = std::str::from_utf8(plain).map_err(|_| CipherError::Rejected)?;
        Ok(SecretString::from(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SystemRandom;
    use portal_domain::model::{TenantId, UserId};
    use portal_domain::secret::secret;

    const K1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const K2: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";

    fn ctx(tenant: TenantId) -> EncryptionContext {
        EncryptionContext::tenant(tenant, "genesys.clientSecret")
    }

    fn cipher() -> AesGcmCipher {
        AesGcmCipher::from_hex_keys(("k1", K1), &[]).unwrap()
    }

    #[test]
    fn round_trip_with_the_documented_format() {
        let c = cipher();
        let t = TenantId::new_random();
        let ct = c.encrypt(&secret("s3cr3t-value"), &ctx(t));
        assert!(ct.0.starts_with("v1.k1."), "{}", ct.0);
        assert!(!ct.0.contains("s3cr3t"));
        let pt = c.decrypt(&ct, &ctx(t)).unwrap();
        assert_eq!(pt.expose_secret(), "s3cr3t-value");
        // Empty secrets round-trip too.
        let empty = c.encrypt(&secret(""), &ctx(t));
        assert_eq!(c.decrypt(&empty, &ctx(t)).unwrap().expose_secret(), "");
    }

    #[test]
    fn tampered_ciphertext_is_rejected() {
        let c = cipher();
        let t = TenantId::new_random();
        let ct = c.encrypt(&secret("value"), &ctx(t));
        let prefix = "v1.k1.";
        let mut raw = URL_SAFE_NO_PAD.decode(&ct.0[prefix.len()..]).unwrap();
        for i in [0, NONCE_LEN, raw.len() - 1] {
            raw[i] ^= 1;
            let bad = Ciphertext(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(&raw)));
            assert_eq!(c.decrypt(&bad, &ctx(t)).err(), Some(CipherError::Rejected));
            raw[i] ^= 1;
        }
        let truncated = Ciphertext(ct.0[..ct.0.len() - 4].to_owned());
        assert!(c.decrypt(&truncated, &ctx(t)).is_err());
    }

    #[test]
    fn ciphertext_moved_to_another_context_is_rejected() {
        let c = cipher();
        let t = TenantId::new_random();
        let ct = c.encrypt(&secret("value"), &ctx(t));
        let other_tenant = ctx(TenantId::new_random());
        let other_field = EncryptionContext::tenant(t, "whatsapp.systemUserToken");
        let user = EncryptionContext::user(&UserId::parse("u1").unwrap(), "genesys.clientSecret");
        for other in [other_tenant, other_field, user] {
            assert_eq!(c.decrypt(&ct, &other).err(), Some(CipherError::Rejected));
        }
    }

    #[test]
    fn wrong_key_with_the_same_id_is_rejected() {
        let t = TenantId::new_random();
        let ct = cipher().encrypt(&secret("value"), &ctx(t));
        let other = AesGcmCipher::from_hex_keys(("k1", K2), &[]).unwrap();
        assert_eq!(
            other.decrypt(&ct, &ctx(t)).err(),
            Some(CipherError::Rejected)
        );
    }

    #[test]
    fn unknown_key_id_and_malformed_input_are_refused() {
        let t = TenantId::new_random();
        let ct = cipher().encrypt(&secret("value"), &ctx(t));
        let other = AesGcmCipher::from_hex_keys(("k2", K2), &[]).unwrap();
        assert_eq!(
            other.decrypt(&ct, &ctx(t)).err(),
            Some(CipherError::UnknownKey)
        );
        let c = cipher();
        for bad in [
            "",
            "v1",
            "v1.k1",
            "v2.k1.AAAA",
            "v1.k1.!!!",
            "v1.k1.AAAA",
            "plain text",
        ] {
            assert_eq!(
                c.decrypt(&Ciphertext(bad.to_owned()), &ctx(t)).err(),
                Some(CipherError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn rotation_keeps_old_ciphertexts_readable_and_encrypts_with_the_new_key() {
        let t = TenantId::new_random();
        let old = cipher().encrypt(&secret("old"), &ctx(t));
        let rotated = AesGcmCipher::from_hex_keys(("k2", K2), &[("k1", K1)]).unwrap();
        assert_eq!(rotated.current_key_id(), "k2");
        assert_eq!(
            rotated.decrypt(&old, &ctx(t)).unwrap().expose_secret(),
            "old"
        );
        let new = rotated.encrypt(&secret("new"), &ctx(t));
        assert!(new.0.starts_with("v1.k2."));
        assert_eq!(
            rotated.decrypt(&new, &ctx(t)).unwrap().expose_secret(),
            "new"
        );
        // The retired-key-only instance cannot read the new value.
        assert_eq!(
            cipher().decrypt(&new, &ctx(t)).err(),
            Some(CipherError::UnknownKey)
        );
    }

    #[test]
    fn encrypting_twice_gives_different_ciphertexts() {
        let c = cipher();
        let t = TenantId::new_random();
        let a = c.encrypt(&secret("same"), &ctx(t));
        let b = c.encrypt(&secret("same"), &ctx(t));
        assert_ne!(a, b);
        assert_eq!(c.decrypt(&a, &ctx(t)).unwrap().expose_secret(), "same");
        assert_eq!(c.decrypt(&b, &ctx(t)).unwrap().expose_secret(), "same");
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        let zero = "0".repeat(64);
        type Case<'a> = ((&'a str, &'a str), &'a [(&'a str, &'a str)]);
        let cases: [Case<'_>; 7] = [
            (("k1", &K1[..62]), &[]),
            (
                (
                    "k1",
                    "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                ),
                &[],
            ),
            (("k1", ""), &[]),
            (("k1", &zero), &[]),
            (("k1", K1), &[("k0", "abc")]),
            (("", K1), &[]),
            (("k1", K1), &[("k1", K2)]),
        ];
        for (current, older) in cases {
            let err = AesGcmCipher::from_hex_keys(current, older).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(
                !shown.contains(&K1[..16]) && !shown.contains(&K2[..16]),
                "{shown}"
            );
        }
        assert_eq!(
            AesGcmCipher::from_hex_keys(("k1", &zero), &[]).unwrap_err(),
            KeyError::AllZero { kid: "k1".into() }
        );
        assert_eq!(
            AesGcmCipher::from_hex_keys(("k.1", K1), &[]).unwrap_err(),
            KeyError::InvalidKeyId
        );
    }

    #[test]
    fn debug_redacts_keys_and_ephemeral_cipher_works() {
        let c = AesGcmCipher::from_hex_keys(("k1", K1), &[("k0", K2)]).unwrap();
        let shown = format!("{c:?}");
        assert!(shown.contains("k1") && shown.contains("[REDACTED]"));
        assert!(!shown.contains(&K1[..8]) && !shown.contains("0, 1, 2"));

        let e = AesGcmCipher::ephemeral(&SystemRandom::new());
        let t = TenantId::new_random();
        let ct = e.encrypt(&secret("x"), &ctx(t));
        assert_eq!(e.decrypt(&ct, &ctx(t)).unwrap().expose_secret(), "x");
        let e2 = AesGcmCipher::ephemeral(&SystemRandom::new());
        assert_eq!(e2.decrypt(&ct, &ctx(t)).err(), Some(CipherError::Rejected));
    }
}
