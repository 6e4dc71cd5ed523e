//! A service-account key file: OAuth2's JWT-bearer grant (RFC 7523) at the file's `token_uri`.
//! The assertion is signed RS256 with the file's key (ring), `kid` naming the key, and claims
//! `iss` (the account), `scope`, `aud` (the token URI), `iat` and `exp` (an hour later), as
//! Google's OAuth2 service-account flow documents them.

use base64::Engine as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use super::{SCOPE, oauth_answer};
use crate::cluster::cloud::Error;
use crate::cluster::cloud::cache::Token;
use crate::cluster::cloud::http::{Http, endpoint};

/// The key, parsed once; `Debug` shows the account only.
pub struct ServiceAccountKey {
    email: String,
    key_id: Option<String>,
    /// ring's key pair never prints its private half.
    key: ring::signature::RsaKeyPair,
    token_uri: reqwest::Url,
    http: Http,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey").field("email", &self.email).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct File {
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

impl ServiceAccountKey {
    /// Parses the file's JSON.
    ///
    /// # Errors
    /// Why the file cannot serve (never quoting the key).
    pub fn parse(text: &str, http: Http) -> Result<Self, String> {
        let file: File =
            serde_json::from_str(text).map_err(|_| "is not a service-account key".to_owned())?;
        let email = file.client_email.ok_or("has no client_email")?;
        let pem = SecretString::from(file.private_key.ok_or("has no private_key")?);
        crate::log::secret(pem.expose_secret());
        let der = match rustls_pemfile::private_key(&mut pem.expose_secret().as_bytes()) {
            Ok(Some(rustls::pki_types::PrivateKeyDer::Pkcs8(der))) => der,
            _ => return Err("has a private_key that is not a PKCS#8 PEM key".into()),
        };
        let key = ring::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .map_err(|_| "has a private_key that is not an RSA key ring accepts".to_owned())?;
        let token_uri =
            file.token_uri.unwrap_or_else(|| "https://oauth2.googleapis.com/token".into());
        let token_uri =
            endpoint(&token_uri, "the key file's token_uri").map_err(|e| e.to_string())?;
        Ok(Self { email, key_id: file.private_key_id, key, token_uri, http })
    }

    pub fn email(&self) -> &str {
        &self.email
    }

    pub fn http(&self) -> &Http {
        &self.http
    }

    /// The signed assertion, issued at `now` (seconds since the epoch).
    ///
    /// # Errors
    /// ring's signing failure.
    pub fn assertion(&self, now: u64) -> Result<SecretString, Error> {
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.key_id {
            header["kid"] = kid.clone().into();
        }
        let claims = serde_json::json!({
            "iss": self.email, "scope": SCOPE, "aud": self.token_uri.as_str(),
            "iat": now, "exp": now + 3600,
        });
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let key = &self.key;
        let mut signature = vec![0; key.public().modulus_len()];
        key.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            signing_input.as_bytes(),
            &mut signature,
        )
        .map_err(|_| Error::Config("the service-account key cannot sign".into()))?;
        Ok(SecretString::from(format!("{signing_input}.{}", b64(&signature))))
    }

    /// An access token for the `cloud-platform` scope.
    ///
    /// # Errors
    /// The token endpoint's refusal and transport errors.
    pub async fn access_token(&self) -> Result<Token, Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let assertion = self.assertion(now)?;
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
            .append_pair("assertion", assertion.expose_secret())
            .finish();
        let request = self
            .http
            .request(reqwest::Method::POST, self.token_uri.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        let service = format!("Google's OAuth2 token endpoint ({})", self.token_uri);
        let answer = self.http.send(&service, request, &[&assertion]).await?;
        oauth_answer(
            &service,
            &answer,
            &[&assertion],
            " The key may be deleted or disabled: create a new key, or use workload identity federation.",
        )
    }
}
