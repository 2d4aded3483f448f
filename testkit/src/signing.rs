//! Request identity: a restate-server holding an Ed25519 private key signs
//! every request it sends to the endpoint, and an endpoint built with the
//! matching public key (`publickeyv1_…`) refuses requests not signed by it.
//! Needed as soon as the endpoint is reachable beyond loopback.
//!
//! [`SigningKeys::generate`] makes a pair for a local server; in production
//! generate the key once (`openssl genpkey -algorithm ed25519`), give the
//! PEM file to restate-server (`request-identity-private-key-pem-file`) and
//! the public key to the endpoint (`procreg serve --identity-key`, or
//! [`bind_services`](crate::bind_services) users call the SDK's
//! `Builder::identity_key`).

use std::fmt;
use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;

/// The environment variable restate-server reads the private key file from.
pub const SERVER_KEY_ENV: &str = "RESTATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE";

/// An Ed25519 key pair for request identity.
pub struct SigningKeys {
    private_pem: String,
    public_key: String,
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the private half.
        f.debug_struct("SigningKeys")
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

impl SigningKeys {
    /// A fresh pair from the system's secure random source.
    pub fn generate() -> Result<Self, String> {
        let document = Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new())
            .map_err(|_| "generating an Ed25519 key failed".to_owned())?;
        let pair = Ed25519KeyPair::from_pkcs8(document.as_ref())
            .map_err(|_| "reading the generated Ed25519 key failed".to_owned())?;
        let public = bs58::encode(pair.public_key().as_ref()).into_string();
        let body = base64::engine::general_purpose::STANDARD.encode(document.as_ref());
        let mut private_pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            private_pem.push_str(&String::from_utf8_lossy(line));
            private_pem.push('\n');
        }
        private_pem.push_str("-----END PRIVATE KEY-----\n");
        Ok(Self {
            private_pem,
            public_key: format!("publickeyv1_{public}"),
        })
    }

    /// The key the endpoint verifies with (`publickeyv1_…`).
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// Writes the private key as PEM to `path`, readable by its owner only.
    pub fn write_private_pem(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        file.write_all(self.private_pem.as_bytes())
    }
}
