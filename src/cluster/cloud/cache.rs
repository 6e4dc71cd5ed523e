//! The minted token, shared by every request, and the tower layer that puts it in
//! `Authorization: Bearer`. The token is minted again before it expires (a margin of a minute,
//! as kube's own exec refresh, or half the lifetime of a shorter-lived token); requests that
//! arrive during a refresh wait for it. A failed refresh fails those requests with the cloud's
//! error (exit 4 where the run reports it) and the next request tries again.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use secrecy::{ExposeSecret as _, SecretString};
use tokio::time::Instant;

use super::Error;

/// A bearer token and when it stops working.
pub struct Token {
    pub secret: SecretString,
    pub expires: Instant,
}

impl Token {
    /// A token that lives `lifetime` from now.
    pub fn lasting(secret: SecretString, lifetime: Duration) -> Self {
        Self { secret, expires: Instant::now() + lifetime }
    }
}

/// Something that mints tokens: one per cloud.
pub trait Mint: Send + Sync {
    fn mint(&self) -> BoxFuture<'_, Result<Token, Error>>;
}

struct Current {
    token: Token,
    minted: Instant,
}

/// The shared token: minted on first use, again before it expires.
pub struct Cache {
    source: Box<dyn Mint>,
    current: tokio::sync::Mutex<Option<Current>>,
}

/// The most a token is renewed ahead of its expiry (kube-client's exec refresh uses the same).
const MARGIN: Duration = Duration::from_secs(60);

impl Cache {
    pub fn new(source: Box<dyn Mint>) -> Self {
        Self { source, current: tokio::sync::Mutex::new(None) }
    }

    /// The token, minted now if there is none or it is about to expire. Callers that come
    /// while a mint is under way wait for it (the lock is held across the mint).
    ///
    /// # Errors
    /// The mint's [`Error`]; nothing is cached then.
    pub async fn token(&self) -> Result<SecretString, Error> {
        let mut current = self.current.lock().await;
        if let Some(c) = current.as_ref()
            && fresh(c.minted, c.token.expires, Instant::now())
        {
            return Ok(c.token.secret.clone());
        }
        let token = self.source.mint().await?;
        crate::log::secret(token.secret.expose_secret());
        let secret = token.secret.clone();
        *current = Some(Current { token, minted: Instant::now() });
        Ok(secret)
    }
}

/// Whether a token minted at `minted` and expiring at `expires` is still good to send at
/// `now`: it must outlive the margin, which is a minute or half its lifetime if that is less.
fn fresh(minted: Instant, expires: Instant, now: Instant) -> bool {
    let margin = MARGIN.min(expires.saturating_duration_since(minted) / 2);
    now + margin < expires
}

/// The layer for `kube::client::ClientBuilder::with_layer`; without a cache it passes requests
/// through untouched (kube's own credentials apply).
#[derive(Clone)]
pub struct BearerLayer {
    cache: Option<Arc<Cache>>,
}

impl BearerLayer {
    pub fn new(cache: Option<Arc<Cache>>) -> Self {
        Self { cache }
    }
}

impl<S> tower::Layer<S> for BearerLayer {
    type Service = Bearer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Bearer { inner, cache: self.cache.clone(), pending: None, ready: None }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The service: the token is fetched while the service is polled for readiness (kube's client
/// stack is a boxed, non-`Clone` service driven by a buffer, which calls `poll_ready` then
/// `call`), and set on the request in `call`. A failed fetch fails that one request, in `call`:
/// an error from `poll_ready` would fail the buffer, and every later request, for good.
pub struct Bearer<S> {
    inner: S,
    cache: Option<Arc<Cache>>,
    pending: Option<BoxFuture<'static, Result<SecretString, Error>>>,
    ready: Option<Result<SecretString, Error>>,
}

impl<S, B> tower::Service<http::Request<B>> for Bearer<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if let Some(cache) = &self.cache
            && self.ready.is_none()
        {
            let cache = cache.clone();
            let pending =
                self.pending.get_or_insert_with(|| Box::pin(async move { cache.token().await }));
            match pending.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(result) => {
                    self.pending = None;
                    self.ready = Some(result);
                }
            }
        }
        if matches!(self.ready, Some(Err(_))) {
            // `call` answers with the error without using the inner service.
            return Poll::Ready(Ok(()));
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if self.cache.is_none() {
            let future = self.inner.call(request);
            return Box::pin(async move { future.await.map_err(Into::into) });
        }
        let token = match self.ready.take() {
            Some(Ok(token)) => token,
            Some(Err(e)) => return Box::pin(std::future::ready(Err(e.into()))),
            None => {
                return Box::pin(std::future::ready(Err(
                    "kubeship's bearer layer was called before it was ready".into(),
                )));
            }
        };
        let value = http::HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()));
        match value {
            Ok(mut value) => {
                value.set_sensitive(true);
                request.headers_mut().insert(http::header::AUTHORIZATION, value);
            }
            Err(_) => {
                return Box::pin(std::future::ready(Err(Error::Answer {
                    service: "the token service".into(),
                    detail: "the token it gave cannot be sent in an HTTP header".into(),
                }
                .into())));
            }
        }
        let future = self.inner.call(request);
        Box::pin(async move { future.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting {
        minted: Arc<AtomicUsize>,
        lifetime: Duration,
        fail: bool,
    }

    impl Mint for Counting {
        fn mint(&self) -> BoxFuture<'_, Result<Token, Error>> {
            Box::pin(async move {
                let n = self.minted.fetch_add(1, Ordering::SeqCst) + 1;
                // A mint takes time: callers that arrive meanwhile must wait, not mint again.
                tokio::time::sleep(Duration::from_secs(1)).await;
                if self.fail {
                    return Err(Error::Refused {
                        service: "test".into(),
                        detail: "no".into(),
                        advice: String::new(),
                    });
                }
                Ok(Token::lasting(SecretString::from(format!("token-{n}")), self.lifetime))
            })
        }
    }

    fn cache(lifetime: Duration, fail: bool) -> (Arc<Cache>, Arc<AtomicUsize>) {
        let minted = Arc::new(AtomicUsize::new(0));
        let source = Counting { minted: minted.clone(), lifetime, fail };
        (Arc::new(Cache::new(Box::new(source))), minted)
    }

    /// The EKS token lives 14 minutes: reused until a minute before, then minted again.
    #[tokio::test(start_paused = true)]
    async fn refreshes_a_minute_before_expiry() {
        let (cache, minted) = cache(Duration::from_secs(14 * 60), false);
        assert_eq!(cache.token().await.unwrap().expose_secret(), "token-1");
        tokio::time::advance(Duration::from_secs(12 * 60)).await;
        assert_eq!(cache.token().await.unwrap().expose_secret(), "token-1");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(cache.token().await.unwrap().expose_secret(), "token-2");
        assert_eq!(minted.load(Ordering::SeqCst), 2);
    }

    /// A short-lived token (GitHub's assertion, a test server's) is renewed at half its life.
    #[tokio::test(start_paused = true)]
    async fn short_lived_tokens_renew_at_half_life() {
        let (cache, _) = cache(Duration::from_secs(20), false);
        assert_eq!(cache.token().await.unwrap().expose_secret(), "token-1");
        tokio::time::advance(Duration::from_secs(8)).await;
        assert_eq!(cache.token().await.unwrap().expose_secret(), "token-1");
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(cache.token().await.unwrap().expose_secret(), "token-2");
    }

    /// Requests during a mint wait for it and share its token.
    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_share_one_mint() {
        let (cache, minted) = cache(Duration::from_secs(900), false);
        let all = futures_util::future::join_all((0..8).map(|_| cache.token())).await;
        assert!(all.iter().all(|t| t.as_ref().unwrap().expose_secret() == "token-1"));
        assert_eq!(minted.load(Ordering::SeqCst), 1);
    }

    /// A failed mint is an error for that request and is tried again by the next.
    #[tokio::test(start_paused = true)]
    async fn failures_are_not_cached() {
        let (cache, minted) = cache(Duration::from_secs(900), true);
        assert!(cache.token().await.is_err());
        assert!(cache.token().await.is_err());
        assert_eq!(minted.load(Ordering::SeqCst), 2);
    }

    /// The layer sets the header, and a failed mint fails the request without the inner
    /// service being called.
    #[tokio::test(start_paused = true)]
    async fn layer_sets_the_header() {
        use tower::{Layer as _, Service as _};
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let inner = tower_test_service(move |r: http::Request<()>| {
            record.lock().unwrap().push(r.headers().get("authorization").cloned());
        });
        let (good, _) = cache(Duration::from_secs(900), false);
        let mut service = BearerLayer::new(Some(good)).layer(inner.clone());
        std::future::poll_fn(|cx| service.poll_ready(cx)).await.unwrap();
        service.call(http::Request::new(())).await.unwrap();
        let header = seen.lock().unwrap()[0].clone().unwrap();
        assert_eq!(header.to_str().unwrap(), "Bearer token-1");
        assert!(header.is_sensitive());

        let (bad, _) = cache(Duration::from_secs(900), true);
        let mut service = BearerLayer::new(Some(bad)).layer(inner);
        std::future::poll_fn(|cx| service.poll_ready(cx)).await.unwrap();
        assert!(service.call(http::Request::new(())).await.is_err());
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    /// A service that records each request and answers at once.
    fn tower_test_service<F: Fn(http::Request<()>) + Clone>(f: F) -> TestService<F> {
        TestService(f)
    }

    #[derive(Clone)]
    struct TestService<F>(F);

    impl<F: Fn(http::Request<()>)> tower::Service<http::Request<()>> for TestService<F> {
        type Response = ();
        type Error = BoxError;
        type Future = std::future::Ready<Result<(), BoxError>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, request: http::Request<()>) -> Self::Future {
            (self.0)(request);
            std::future::ready(Ok(()))
        }
    }
}
