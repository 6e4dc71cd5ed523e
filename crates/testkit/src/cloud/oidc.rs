//! An OIDC issuer for the tests: RS256 JWTs with `iss`, `sub`, `aud`, `iat`, `exp`, as
//! GitHub's token service (`token.actions.githubusercontent.com`) issues them, and their
//! verification as the clouds' token exchanges do it (signature, issuer, audience, expiry).
//! Also the RSA keys behind it and behind a Google service-account key file.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// An RSA key pair in PEM: the private half PKCS#8, the public half SPKI.
#[derive(Debug, Clone)]
pub struct RsaKey {
    pub private_pem: String,
    pub public_pem: String,
}

impl RsaKey {
    /// A fresh 2048-bit key, made by openssl in `dir` under `name`.
    pub fn generate(dir: &Path, name: &str) -> anyhow::Result<Self> {
        let private = dir.join(format!("{name}.key"));
        crate::run(
            Command::new("openssl")
                .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
                .arg(&private),
        )?;
        let public =
            crate::run(Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&private))?;
        Ok(Self { private_pem: std::fs::read_to_string(&private)?, public_pem: public })
    }
}

/// The claims the tests issue and check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
}

/// An issuer with its key.
#[derive(Clone)]
pub struct Issuer {
    pub url: String,
    key: RsaKey,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Issuer {
    pub fn new(url: &str, key: RsaKey) -> Self {
        Self { url: url.to_owned(), key }
    }

    /// A token for `audience` and `subject`, valid `lifetime_secs` from now.
    pub fn mint(&self, audience: &str, subject: &str, lifetime_secs: u64) -> String {
        let claims = Claims {
            iss: self.url.clone(),
            sub: subject.to_owned(),
            aud: audience.to_owned(),
            iat: now(),
            exp: now() + lifetime_secs,
        };
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(self.key.private_pem.as_bytes())
            .expect("test key");
        jsonwebtoken::encode(&header, &claims, &key).expect("signing")
    }

    /// The claims of `token` if this issuer signed it for `audience` and it has not expired.
    ///
    /// # Errors
    /// Why it is refused.
    pub fn verify(&self, token: &str, audience: &str) -> Result<Claims, String> {
        verify_rs256(token, &self.key.public_pem, Some(&self.url), audience)
    }
}

/// RS256 verification with `public_pem`: signature, `aud`, `exp` (and `iss` when given).
///
/// # Errors
/// jsonwebtoken's reason.
pub fn verify_rs256(
    token: &str,
    public_pem: &str,
    issuer: Option<&str>,
    audience: &str,
) -> Result<Claims, String> {
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.leeway = 0;
    if let Some(issuer) = issuer {
        validation.set_issuer(&[issuer]);
    }
    jsonwebtoken::decode::<Claims>(token, &key, &validation)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}
