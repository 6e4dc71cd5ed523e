//! Host names to addresses, for every connection kubeship makes (registry, API server, cloud
//! services), as glibc's resolver finds them: the container's `/etc/resolv.conf` (its search
//! list however long, `ndots`, `timeout`, `attempts`) and `/etc/hosts`.
//!
//! In process rather than through the C library, because the image's static binary links
//! musl, whose `getaddrinfo` differs where users' names depend on it: it gives a name with
//! `ndots` dots or more no search list, drops a `search` line over 255 characters, and stops
//! at the first search domain whose server fails. The settings are read once, when a name
//! first needs resolving; an IP address never gets here.

use std::net::SocketAddr;
use std::sync::OnceLock;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::{DnsError, NetError};

/// Why a host has no address.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The name does not exist, or has no address: a typo far more often than an outage.
    #[error("the host {host} does not resolve: {detail}")]
    NotFound { host: String, detail: String },
    /// No name server gave an answer (SERVFAIL, REFUSED, no reply): an outage, worth asking again.
    #[error("the name server could not answer for the host {host}: {detail}")]
    Unanswered { host: String, detail: String },
}

impl LookupError {
    /// Whether asking again later may succeed.
    pub fn is_temporary(&self) -> bool {
        matches!(self, Self::Unanswered { .. })
    }
}

/// The process's resolver; cheap to clone, shares one set of settings and one cache.
#[derive(Clone, Copy, Debug, Default)]
pub struct Resolver;

impl Resolver {
    /// The addresses of `host`, in the resolver's order, with `port`.
    ///
    /// # Errors
    /// [`LookupError`] when the host has no address.
    pub async fn lookup(self, host: &str, port: u16) -> Result<Vec<SocketAddr>, LookupError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let resolver = shared().map_err(|reason| LookupError::Unanswered {
            host: host.to_owned(),
            detail: reason.to_owned(),
        })?;
        let found = resolver.lookup_ip(host).await.map_err(|e| classify(host, &e))?;
        let addrs: Vec<SocketAddr> = found.iter().map(|ip| SocketAddr::new(ip, port)).collect();
        if addrs.is_empty() {
            return Err(LookupError::NotFound {
                host: host.to_owned(),
                detail: "no address records".to_owned(),
            });
        }
        Ok(addrs)
    }
}

/// The one resolver, built on first use from the system's settings; the reason when it
/// cannot be built.
fn shared() -> Result<&'static TokioResolver, &'static str> {
    static SHARED: OnceLock<Result<TokioResolver, String>> = OnceLock::new();
    let built = SHARED.get_or_init(|| {
        let builder = TokioResolver::builder_tokio().unwrap_or_else(|_| {
            // No resolv.conf, or no nameserver in it: glibc then asks a server on this host.
            let local = NameServerConfig::udp_and_tcp(std::net::Ipv4Addr::LOCALHOST.into());
            let config = ResolverConfig::from_parts(None, Vec::new(), vec![local]);
            TokioResolver::builder_with_config(config, Default::default())
                .with_options(ResolverOpts::default())
        });
        builder.build().map_err(|e| format!("the resolver settings cannot be used: {e}"))
    });
    built.as_ref().map_err(String::as_str)
}

/// Which [`LookupError`] an answer from the resolver is.
fn classify(host: &str, error: &NetError) -> LookupError {
    let detail = crate::untrusted::short(&error.to_string(), 200);
    match error {
        NetError::Dns(DnsError::NoRecordsFound(_)) => {
            LookupError::NotFound { host: host.to_owned(), detail }
        }
        _ => LookupError::Unanswered { host: host.to_owned(), detail },
    }
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = *self;
        Box::pin(async move {
            // reqwest sets the port of the URL itself.
            let addrs = resolver.lookup(name.as_str(), 0).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl tower::Service<hyper_util::client::legacy::connect::dns::Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = LookupError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let resolver = *self;
        // hyper's connector sets the port of the URL itself.
        Box::pin(async move { Ok(resolver.lookup(name.as_str(), 0).await?.into_iter()) })
    }
}

#[cfg(test)]
mod tests {
    use hickory_resolver::net::NoRecords;
    use hickory_resolver::proto::op::{Query, ResponseCode};

    use super::*;

    /// A name that does not exist, or has no address, is final; a server that did not answer
    /// is an outage, asked again.
    #[test]
    fn failures_are_told_apart() {
        let none =
            |code| NetError::Dns(DnsError::NoRecordsFound(NoRecords::new(Query::new(), code)));
        for final_answer in [none(ResponseCode::NXDomain), none(ResponseCode::NoError)] {
            let error = classify("reg.example", &final_answer);
            assert!(!error.is_temporary(), "{error}");
            assert!(error.to_string().starts_with("the host reg.example does not resolve"));
        }
        for outage in [
            NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)),
            NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)),
            NetError::Timeout,
        ] {
            let error = classify("reg.example", &outage);
            assert!(error.is_temporary(), "{error}");
            assert!(error.to_string().contains("could not answer for the host reg.example"));
        }
    }

    /// An address needs no name server, bracketed or not.
    #[tokio::test]
    async fn addresses_are_not_looked_up() {
        let v6 = Resolver.lookup("[::1]", 5000).await.unwrap();
        assert_eq!(v6, vec!["[::1]:5000".parse().unwrap()]);
        let v4 = Resolver.lookup("127.0.0.1", 0).await.unwrap();
        assert_eq!(v4, vec!["127.0.0.1:0".parse().unwrap()]);
    }
}
