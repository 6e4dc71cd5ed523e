//! How kubeship talks HTTP to a registry and its token service, with every wait and every read
//! bounded: connect within 10 s, each answer (body included) within 30 s or the time left,
//! bodies read up to a cap. Failures are sorted here: a certificate problem, a registry that
//! speaks plain HTTP where HTTPS was expected (or the reverse), and a host that does not
//! exist are final; the rest, a name server that failed to answer among them, are worth
//! another attempt.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::error::Error;
use super::text;
use super::{Failure, Registry};
use crate::dns;

/// Longest wait for a TCP connection (and TLS handshake).
pub const CONNECT: Duration = Duration::from_secs(10);
/// Longest wait for one whole answer.
pub const ANSWER: Duration = Duration::from_secs(30);
/// Even the last attempt before the deadline gets this long, so a tag-timeout shorter than a
/// round trip does not fail without having asked.
pub const FLOOR: Duration = Duration::from_secs(2);
/// Largest manifest kubeship reads: distribution refuses to store one above 4 MiB.
pub const MANIFEST_CAP: usize = 4 << 20;
/// Largest token-service answer: tokens are a few KiB at most.
pub const TOKEN_CAP: usize = 256 << 10;
/// How much of an error body is read for its message.
pub const ERROR_CAP: usize = 4 << 10;
/// How long a probe for the other protocol may take.
const PROBE: Duration = Duration::from_secs(3);

const USER_AGENT: &str = concat!("kubeship/", env!("CARGO_PKG_VERSION"));

/// The two clients of one resolution: `http` follows redirects (never from HTTPS down to
/// plain HTTP; reqwest drops `Authorization` on any change of origin), `direct` follows none
/// and carries credentials to token services, whose POST bodies a redirect would resend.
pub struct Clients {
    pub http: reqwest::Client,
    pub direct: reqwest::Client,
}

/// Builds the clients, trusting the public roots and `extra_ca`.
///
/// # Errors
/// The reason, when the CA cannot be used or the client cannot be built.
pub fn clients(extra_ca: &[Vec<u8>]) -> Result<Clients, String> {
    let tls = crate::tls::client_config(extra_ca)?;
    let build = |policy: reqwest::redirect::Policy| {
        reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .tls_backend_preconfigured(tls.clone())
            .dns_resolver(std::sync::Arc::new(crate::dns::Resolver))
            .connect_timeout(CONNECT)
            .timeout(ANSWER)
            .redirect(policy)
            .build()
            .map_err(|e| e.to_string())
    };
    let no_downgrade = reqwest::redirect::Policy::custom(|attempt| {
        let downgrade = attempt.url().scheme() == "http"
            && attempt.previous().last().is_some_and(|p| p.scheme() == "https");
        if downgrade {
            attempt.error("a redirect from HTTPS to plain HTTP")
        } else if attempt.previous().len() > 5 {
            attempt.error("more than 5 redirects")
        } else {
            attempt.follow()
        }
    });
    Ok(Clients { http: build(no_downgrade)?, direct: build(reqwest::redirect::Policy::none())? })
}

/// Why a body could not be read whole.
pub enum ReadError {
    /// Longer than the cap (by `Content-Length`, or once the cap was passed).
    TooLarge,
    /// The connection failed or the answer's time ran out mid-body.
    Failed(reqwest::Error),
}

/// The whole body, if it is at most `cap` bytes.
pub async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, ReadError> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Failed)? {
        if body.len() + chunk.len() > cap {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The start of an error body, for its message: at most [`ERROR_CAP`] bytes, and nothing when
/// the body does not come (its status alone says enough).
pub async fn read_error_body(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    let read = async {
        while let Ok(Some(chunk)) = response.chunk().await {
            let room = ERROR_CAP - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() == ERROR_CAP {
                break;
            }
        }
    };
    // A few seconds: the status already arrived, the body only explains it.
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    body
}

impl Registry {
    /// How long the next answer may take: 30 s, or the time left before the deadline.
    pub(super) fn answer_timeout(&self) -> Duration {
        answer_timeout(self.deadline, Instant::now())
    }

    /// Sends `request` with the answer's timeout.
    pub(super) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Failure> {
        let timeout = self.answer_timeout();
        self.last_timeout.set(timeout);
        match request.timeout(timeout).send().await {
            Ok(response) => Ok(response),
            Err(error) => Err(self.transport_failure(error).await),
        }
    }

    /// A body read failure, as a failure of `what` ("a manifest", "a token answer from …").
    pub(super) async fn read_failure(&self, error: ReadError, what: &str, cap: usize) -> Failure {
        match error {
            ReadError::TooLarge => Failure::Fatal(self.protocol(format!(
                "with {what} larger than {} KiB, which no registry sends",
                cap >> 10
            ))),
            ReadError::Failed(e) if e.is_timeout() => Failure::Retry {
                reason: format!("{what} did not arrive whole within {}", self.last_timeout.shown()),
                after: None,
            },
            ReadError::Failed(e) => self.transport_failure(e).await,
        }
    }

    /// Connection-level failures: certificate problems, the wrong protocol and unknown hosts
    /// are final; the rest are retried.
    pub(super) async fn transport_failure(&self, error: reqwest::Error) -> Failure {
        let registry = self.image.registry().to_owned();
        if let Some(tls) = tls_failure(&error) {
            // "HTTP/1.1 400 …" read as a TLS record: the server answered in plain HTTP.
            if matches!(
                tls,
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)
            ) {
                return Failure::Fatal(Error::PlainHttp { registry });
            }
            let hint = if self.options.extra_ca.is_empty() {
                "the registry's certificate is not signed by a public CA: give its CA as \
                 registry-ca (PEM content or a path)"
            } else {
                "the registry's certificate does not chain to registry-ca or the public roots, or \
                 names another host: give the CA that signed it"
            };
            return Failure::Fatal(Error::Tls {
                registry,
                detail: text::clean(&tls.to_string(), text::QUOTED),
                hint,
            });
        }
        // A TLS answer (an alert record) to a plain HTTP request does not parse as HTTP.
        if self.options.insecure && unparseable_answer(&error) && self.speaks_https().await {
            return Failure::Fatal(Error::SpeaksHttps { registry });
        }
        let reason = text::clean(&crate::error::render_chain(&error), 2 * text::QUOTED);
        // A name that does not resolve is a typo far more often than a DNS outage, and no
        // amount of waiting fixes a typo. A name server that failed to answer is an outage.
        if let Some(lookup) = causes(&error).find_map(|e| e.downcast_ref::<dns::LookupError>()) {
            if lookup.is_temporary() {
                return Failure::Retry { reason: lookup.to_string(), after: None };
            }
            return Failure::Fatal(Error::UnknownHost { registry, detail: reason });
        }
        if error.is_timeout() {
            return Failure::Retry {
                reason: format!("no answer within {}", self.last_timeout.shown()),
                after: None,
            };
        }
        Failure::Retry { reason, after: None }
    }

    /// Whether the registry's host answers HTTPS: a TLS handshake that gets as far as the
    /// certificate (trusted or not) says it does.
    pub(super) async fn speaks_https(&self) -> bool {
        let url = format!("https://{}/v2/", self.image.api_host());
        match self.clients.direct.get(url).timeout(PROBE).send().await {
            Ok(_) => true,
            Err(error) => tls_failure(&error).is_some_and(|tls| {
                !matches!(
                    tls,
                    rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)
                )
            }),
        }
    }
}

/// The timeout of the latest request, for messages about it (a request's error does not
/// carry its timeout). Atomic, so a resolution's future stays `Send`.
#[derive(Default)]
pub struct LastTimeout(AtomicU64);

impl LastTimeout {
    fn set(&self, timeout: Duration) {
        self.0.store(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// `30s`, `2.5s`.
    fn shown(&self) -> String {
        let secs = Duration::from_millis(self.0.load(Ordering::Relaxed)).as_secs_f64();
        if (secs - secs.round()).abs() < 0.05 {
            format!("{secs:.0}s")
        } else {
            format!("{secs:.1}s")
        }
    }
}

/// 30 s, or the time left before `deadline`, never less than [`FLOOR`].
pub fn answer_timeout(deadline: Instant, now: Instant) -> Duration {
    deadline.saturating_duration_since(now).min(ANSWER).max(FLOOR)
}

/// The rustls error behind a reqwest error, if the handshake failed.
fn tls_failure(error: &reqwest::Error) -> Option<&rustls::Error> {
    causes(error).find_map(|e| e.downcast_ref::<rustls::Error>())
}

/// Whether the server answered with something that is not HTTP.
fn unparseable_answer(error: &reqwest::Error) -> bool {
    causes(error).any(|e| e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_parse))
}

/// The error and its causes. `io::Error::source()` skips the error it wraps (and hyper nests
/// io::Errors), so each wrapped error is visited explicitly.
fn causes<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |current| {
        match current.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each answer gets 30 s, or what is left, but never less than the floor.
    #[test]
    fn answer_timeouts() {
        let now = Instant::now();
        assert_eq!(answer_timeout(now + Duration::from_secs(300), now), ANSWER);
        assert_eq!(answer_timeout(now + Duration::from_secs(7), now), Duration::from_secs(7));
        assert_eq!(answer_timeout(now, now), FLOOR);
        assert_eq!(answer_timeout(now, now + Duration::from_secs(5)), FLOOR);
    }
}
