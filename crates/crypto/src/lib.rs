//! ring-backed adapters of the domain's system ports: [`SystemRandom`] implements
//! [`Random`](portal_domain::ports::system::Random) and [`AesGcmCipher`] implements
//! [`Cipher`](portal_domain::ports::system::Cipher) (AES-256-GCM with key rotation, decisions §5).
//!
//! # Layout
//! - [`SystemRandom`]: the operating system's CSPRNG through `ring::rand`.
//! - [`AesGcmCipher`]: a key ring (key id → 256-bit key), one current key for encryption, every
//!   key usable for decryption. Ciphertexts read `v1.<kid>.<base64url(nonce ‖ ciphertext ‖ tag)>`
//!   and are bound to their [`EncryptionContext`](portal_domain::ports::system::EncryptionContext)
//!   as associated data.
//! - [`KeyError`]: why a configured key was refused. It never contains key material.
//!
//! # Dependencies
//! The domain, ring, base64, hex, secrecy/zeroize and thiserror. No I/O.

mod cipher;
mod random;

pub use cipher::{AesGcmCipher, KeyError};
pub use random::SystemRandom;
