//! The operating system's random source.

use portal_domain::ports::system::Random;
use ring::rand::SecureRandom;

/// Cryptographically secure randomness from the operating system (`ring::rand::SystemRandom`).
#[derive(Debug, Clone)]
pub struct SystemRandom {
    inner: ring::rand::SystemRandom,
}

impl SystemRandom {
    /// A handle on the system random source.
    pub fn new() -> Self {
        Self {
            inner: ring::rand::SystemRandom::new(),
        }
    }
}

impl Default for SystemRandom {
    fn default() -> Self {
        Self::new()
    }
}

impl Random for SystemRandom {
    /// Fills `buf` from the OS.
    ///
    /// # Panics
    /// Only if the operating system cannot provide randomness at all. Continuing with
    /// predictable bytes would silently weaken every token and nonce, so this is treated as
    /// fatal (it does not depend on any input).
    fn fill(&self, buf: &mut [u8]) {
        if self.inner.fill(buf).is_err() {
            panic!("the operating system random source failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portal_domain::ports::system::RandomExt;

    #[test]
    fn produces_distinct_values() {
        let random = SystemRandom::new();
        assert_ne!(random.bytes::<32>(), random.bytes::<32>());
        assert_ne!(random.uuid(), random.uuid());
    }
}
