//! The one HTTP client of the cloud module, and the rules every cloud request follows:
//!
//! - `https` always; plain `http` only to a loopback address (`127.0.0.0/8`, `::1`,
//!   `localhost`: test servers and local emulators) and to the Azure instance metadata
//!   service (`169.254.169.254`, plain HTTP by design and reachable only from the VM itself).
//!   An endpoint override that breaks this rule is a configuration error, before anything is sent.
//! - Bounded: connect within 10 s, the whole answer within 30 s, bodies read up to a cap.
//! - No redirects: a token service that redirects would take the credentials elsewhere.
//! - Cloud text is untrusted: an error body is quoted short, control characters replaced,
//!   and every secret the request carried is cut out of it before anyone sees it.

use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

use super::Error;

/// Connect timeout of every cloud request (the contract's "Bounded, always").
const CONNECT: Duration = Duration::from_secs(10);
/// Deadline of the whole exchange, body included.
const ANSWER: Duration = Duration::from_secs(30);
/// The largest answer read: token answers are a few KiB, an AKS kubeconfig some tens.
const MAX_BODY: usize = 512 * 1024;
/// How much of an error body is quoted.
const QUOTED: usize = 300;

/// A client for the cloud's token and cluster services.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
}

/// A complete answer, read within the caps.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl Http {
    /// A client trusting the public roots and `extra_ca` (DER, e.g. `AWS_CA_BUNDLE`).
    ///
    /// # Errors
    /// [`Error::Config`] when the extra CA cannot be used.
    pub fn new(extra_ca: &[Vec<u8>]) -> Result<Self, Error> {
        let tls = crate::tls::client_config(extra_ca).map_err(Error::Config)?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("kubeship/", env!("CARGO_PKG_VERSION")))
            .tls_backend_preconfigured(tls)
            .dns_resolver(std::sync::Arc::new(crate::dns::Resolver))
            .connect_timeout(CONNECT)
            .timeout(ANSWER)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config(format!("the HTTP client cannot be built: {e}")))?;
        Ok(Self { client })
    }

    pub fn request(&self, method: reqwest::Method, url: reqwest::Url) -> reqwest::RequestBuilder {
        self.client.request(method, url)
    }

    /// Sends `request` to `service` (named in messages) and reads the answer within the caps.
    /// `secrets` are what the request carried: they are cut out of anything quoted.
    ///
    /// # Errors
    /// [`Error::Unreachable`] when no complete answer came.
    pub async fn send(
        &self,
        service: &str,
        request: reqwest::RequestBuilder,
        secrets: &[&SecretString],
    ) -> Result<Answer, Error> {
        let unreachable = |detail: String| Error::Unreachable {
            service: service.to_owned(),
            detail: redact(&detail, secrets),
        };
        let mut response =
            request.send().await.map_err(|e| unreachable(crate::error::render_chain(&e)))?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY {
                        return Err(unreachable(format!(
                            "the answer (HTTP {status}) is larger than {} KiB",
                            MAX_BODY / 1024
                        )));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(unreachable(crate::error::render_chain(&e))),
            }
        }
        Ok(Answer { status, body })
    }
}

/// An OAuth2 token answer (`access_token`, `expires_in`: Google's token endpoints, Entra's),
/// or its `error` and `error_description` as a refusal.
///
/// # Errors
/// [`Error::Refused`] quoting the service's error, with `advice`.
pub fn oauth_token(
    service: &str,
    answer: &Answer,
    secrets: &[&SecretString],
    advice: &str,
) -> Result<super::cache::Token, Error> {
    #[derive(serde::Deserialize)]
    struct Body {
        access_token: Option<String>,
        expires_in: Option<u64>,
        error: Option<String>,
        error_description: Option<String>,
    }
    let body = serde_json::from_slice::<Body>(&answer.body).ok();
    match body {
        Some(Body { access_token: Some(token), expires_in, .. }) if answer.ok() => {
            crate::log::secret(&token);
            let lifetime = Duration::from_secs(expires_in.unwrap_or(3600));
            Ok(super::cache::Token::lasting(SecretString::from(token), lifetime))
        }
        Some(Body { error: Some(error), error_description, .. }) => Err(Error::Refused {
            service: service.into(),
            detail: untrusted(
                format!(
                    "HTTP {}: {error}: {}",
                    answer.status,
                    error_description.unwrap_or_default()
                )
                .as_bytes(),
                secrets,
            ),
            advice: advice.into(),
        }),
        // A success kubeship cannot read may still carry a token: never quoted.
        _ if answer.ok() => Err(Error::Answer {
            service: service.into(),
            detail: format!(
                "its HTTP {} answer is not an OAuth2 token answer (no access_token, or a field \
                 of the wrong type)",
                answer.status
            ),
        }),
        _ => Err(Error::Refused {
            service: service.into(),
            detail: format!(
                "HTTP {}: {}",
                answer.status,
                untrusted(&scrub_credentials(&answer.body), secrets)
            ),
            advice: advice.into(),
        }),
    }
}

/// A JSON body with the values of its token, secret and assertion fields (at any depth)
/// replaced by `***`; any other body as it is.
fn scrub_credentials(body: &[u8]) -> Vec<u8> {
    fn scrub(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map.iter_mut() {
                    let key = key.to_ascii_lowercase();
                    if ["token", "secret", "assertion", "password"].iter().any(|w| key.contains(w))
                    {
                        *value = serde_json::Value::String("***".into());
                    } else {
                        scrub(value);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(scrub),
            _ => {}
        }
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(mut value) => {
            scrub(&mut value);
            serde_json::to_vec(&value).unwrap_or_default()
        }
        Err(_) => body.to_vec(),
    }
}

/// The endpoint `text` (a default or an override from `variable`) as a URL, if the scheme rule
/// above allows it.
///
/// # Errors
/// [`Error::Config`] naming the variable, for a malformed URL or plain HTTP elsewhere.
pub fn endpoint(text: &str, variable: &str) -> Result<reqwest::Url, Error> {
    checked(text, variable, false)
}

/// [`endpoint`] for the instance metadata services (Azure's managed identity, an
/// external-account file's `credential_source`), which also take `http://169.254.169.254`.
///
/// # Errors
/// As [`endpoint`].
pub fn metadata_endpoint(text: &str, variable: &str) -> Result<reqwest::Url, Error> {
    checked(text, variable, true)
}

fn checked(text: &str, variable: &str, metadata: bool) -> Result<reqwest::Url, Error> {
    let url = reqwest::Url::parse(text.trim()).map_err(|e| {
        Error::Config(format!("{variable} is not a URL ({e}): give https://host[:port][/path]"))
    })?;
    if url.scheme() == "https" && url.host().is_some() {
        return Ok(url);
    }
    if url.scheme() == "http" && plain_http_allowed(&url, metadata) {
        return Ok(url);
    }
    Err(Error::Config(format!(
        "{variable} must be an https URL (plain http only for loopback addresses), not {}://{}",
        url.scheme(),
        url.host_str().unwrap_or_default()
    )))
}

fn plain_http_allowed(url: &reqwest::Url, metadata: bool) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => {
            ip.is_loopback() || (metadata && ip.octets() == [169, 254, 169, 254])
        }
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Text from a cloud service, fit to quote: secrets cut out, then made inert by
/// [`crate::untrusted`] (one line, control and deceptive characters replaced), at most
/// [`QUOTED`] characters.
pub fn untrusted(bytes: &[u8], secrets: &[&SecretString]) -> String {
    crate::untrusted::short(redact(&String::from_utf8_lossy(bytes), secrets).trim(), QUOTED)
}

/// `text` with every secret (of 4 characters or more) replaced by `***`.
pub fn redact(text: &str, secrets: &[&SecretString]) -> String {
    let mut text = text.to_owned();
    for secret in secrets {
        let secret = secret.expose_secret();
        if secret.len() >= 4 {
            text = text.replace(secret, "***");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// https anywhere; plain http only on loopback, and the metadata address for metadata.
    #[test]
    fn scheme_rule() {
        for ok in [
            "https://sts.us-east-1.amazonaws.com",
            "http://127.0.0.1:8080/x",
            "http://localhost:1",
            "http://[::1]:9",
        ] {
            assert!(endpoint(ok, "V").is_ok(), "{ok}");
        }
        // The metadata address only where a metadata service is meant.
        assert!(metadata_endpoint("http://169.254.169.254/metadata", "V").is_ok());
        assert!(
            endpoint("http://169.254.169.254/metadata", "ACTIONS_ID_TOKEN_REQUEST_URL").is_err()
        );
        for bad in ["http://sts.amazonaws.com", "ftp://x", "not a url", "http://10.0.0.1"] {
            let e = endpoint(bad, "AWS_ENDPOINT_URL_STS").unwrap_err().to_string();
            assert!(e.contains("AWS_ENDPOINT_URL_STS"), "{e}");
        }
    }

    /// A token answer that does not parse is never quoted; an error body's token fields are
    /// starred out.
    #[test]
    fn unreadable_token_answers_quote_no_token() {
        let answer = |status: u16, body: &str| Answer { status, body: body.as_bytes().to_vec() };
        let body =
            r#"{"token_type":"Bearer","access_token":"eyJREALTOKEN123","expires_in":"soon"}"#;
        let e = oauth_token("Entra ID", &answer(200, body), &[], "").err().unwrap().to_string();
        assert!(!e.contains("eyJREALTOKEN123") && e.contains("not an OAuth2 token answer"), "{e}");
        let body = r#"{"message":"bad","echo":{"access_token":"eyJREALTOKEN123"}}"#;
        let e = oauth_token("Entra ID", &answer(502, body), &[], "").err().unwrap().to_string();
        assert!(!e.contains("eyJREALTOKEN123") && e.contains("bad"), "{e}");
    }

    /// Quoted cloud text is short, single-line and never holds a secret.
    #[test]
    fn untrusted_text_is_cut_and_cleaned() {
        let secret = SecretString::from("s3cr3t-value");
        let body = format!("error\r\n\u{1b}[31m{} {}", "x".repeat(1000), "s3cr3t-value");
        let quoted = untrusted(body.as_bytes(), &[&secret]);
        assert!(
            !quoted.contains('\n') && !quoted.contains('\u{1b}') && !quoted.contains('\r'),
            "{quoted}"
        );
        assert!(quoted.chars().count() <= QUOTED + 1);
        let tail = untrusted(b"denied for s3cr3t-value", &[&secret]);
        assert_eq!(tail, "denied for ***");
    }
}
