//! Host names to addresses, for every connection kubeship makes (registry, API server, cloud
//! services), as glibc's resolver finds them: the container's `/etc/resolv.conf` (its search
//! list however long, `ndots`, `timeout`, `attempts`) and `/etc/hosts`.
//!
//! In process rather than through the C library, because the image's static binary links
//! musl, whose `getaddrinfo` differs where users' names depend on it: it gives a name with
//! `ndots` dots or more no search list, drops a `search` line over 255 characters, and stops
//! at the first search domain whose server fails. The settings are read once, when a name
//! first needs resolving; an IP address never gets here.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::{Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RecordType};
use hickory_resolver::system_conf::parse_resolv_conf;
use hickory_resolver::{Hosts, TokioResolver};

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
    /// The addresses of `host`, with `port`: from `/etc/hosts` first, then from DNS for each
    /// name of the search list in glibc's order, the first that has addresses.
    ///
    /// # Errors
    /// [`LookupError`]: `Unanswered` when some name went unanswered and none had addresses
    /// (glibc's `EAI_AGAIN`), `NotFound` when every name was answered without addresses.
    pub async fn lookup(self, host: &str, port: u16) -> Result<Vec<SocketAddr>, LookupError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let system = shared();
        let Ok(name) = Name::from_str_relaxed(host) else {
            let detail = "not a valid host name".to_owned();
            return Err(LookupError::NotFound { host: host.to_owned(), detail });
        };
        let with_port = |ips: Vec<IpAddr>| ips.into_iter().map(|ip| SocketAddr::new(ip, port));
        // /etc/hosts answers for the name as given before any name server is asked, as
        // glibc's "files" source does: a pod's hostAliases or `--add-host` win over DNS.
        let pinned = system.pinned_in_hosts(&name);
        if !pinned.is_empty() {
            return Ok(with_port(pinned).collect());
        }
        let asked = tokio::time::timeout(WITHIN, system.ask(host, &name));
        let found = asked.await.unwrap_or_else(|_| {
            Err(LookupError::Unanswered {
                host: host.to_owned(),
                detail: format!("no reply within {}s", WITHIN.as_secs()),
            })
        })?;
        Ok(with_port(found).collect())
    }
}

/// How long a lookup may take: less than the connections' 10 s connect timeout, so that a
/// silent name server is named as the cause rather than the server kubeship was connecting to.
const WITHIN: Duration = Duration::from_secs(8);
/// How long one name of the search list may take, so that a silent search domain still
/// leaves time to ask for the name as it is.
const EACH: Duration = Duration::from_secs(4);

/// The system's settings and the resolver built from them.
struct System {
    resolver: TokioResolver,
    hosts: Hosts,
    /// The search list: resolv.conf's `search` (or `domain`) line.
    search: Vec<Name>,
    ndots: usize,
}

impl System {
    /// The addresses of the first name of the search list that has some.
    async fn ask(&self, host: &str, name: &Name) -> Result<Vec<IpAddr>, LookupError> {
        let not_found = |detail: &str| LookupError::NotFound {
            host: host.to_owned(),
            detail: detail.to_owned(),
        };
        let (mut unanswered, mut last) = (None, None);
        // glibc's res_search ends the search list at a domain that got no reply (SERVFAIL
        // goes on), and still asks for the name as it is.
        let mut searching = true;
        for (candidate, as_is) in self.candidates(name) {
            if !searching && !as_is {
                continue;
            }
            let answer = tokio::time::timeout(EACH, self.resolver.lookup_ip(candidate)).await;
            match answer {
                Ok(Ok(found)) if found.iter().next().is_some() => {
                    return Ok(found.iter().collect());
                }
                Ok(Ok(_)) => last = Some(not_found("no address records")),
                Ok(Err(error)) => {
                    let silent = !matches!(error, NetError::Dns(_));
                    let error = classify(host, &error);
                    if error.is_temporary() {
                        unanswered.get_or_insert(error);
                        searching &= as_is || !silent;
                    } else {
                        last = Some(error);
                    }
                }
                Err(_) => {
                    let detail = format!("no reply within {}s", EACH.as_secs());
                    unanswered
                        .get_or_insert(LookupError::Unanswered { host: host.to_owned(), detail });
                    searching &= as_is;
                }
            }
        }
        Err(unanswered.or(last).unwrap_or_else(|| not_found("no name to ask for")))
    }

    /// The addresses /etc/hosts gives the name.
    fn pinned_in_hosts(&self, name: &Name) -> Vec<IpAddr> {
        [RecordType::A, RecordType::AAAA]
            .into_iter()
            .filter_map(|kind| self.hosts.lookup_static_host(&Query::query(name.clone(), kind)))
            .flat_map(|found| {
                found.answers().iter().filter_map(|r| r.data.ip_addr()).collect::<Vec<_>>()
            })
            .collect()
    }

    /// The names to ask for, in glibc's order (`res_search`): a name ending in a dot as it is;
    /// a name with at least `ndots` dots as it is first, then with each search domain; a
    /// shorter one with each search domain first, then as it is.
    /// Each with whether it is the name as it is.
    fn candidates(&self, name: &Name) -> Vec<(Name, bool)> {
        let mut absolute = name.clone();
        absolute.set_fqdn(true);
        let absolute = std::iter::once((absolute, true));
        if name.is_fqdn() {
            return absolute.collect();
        }
        let searched = self
            .search
            .iter()
            .filter_map(|domain| Some((name.clone().append_domain(domain).ok()?, false)));
        let dots = usize::from(name.num_labels()).saturating_sub(1);
        if dots >= self.ndots {
            absolute.chain(searched).collect()
        } else {
            searched.chain(absolute).collect()
        }
    }
}

/// The one resolver, built on first use from the system's settings. Its name-server
/// connections live on the runtime of the first lookup: kubeship runs one.
fn shared() -> &'static System {
    static SHARED: OnceLock<System> = OnceLock::new();
    SHARED.get_or_init(|| {
        let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let (config, mut options) = settings(&text);
        let search = if config.search().is_empty() {
            config.domain().cloned().into_iter().collect()
        } else {
            config.search().to_vec()
        };
        let ndots = options.ndots;
        // The search list is applied here (`System::candidates`), in glibc's order.
        options.use_hosts_file = ResolveHosts::Never;
        let config = ResolverConfig::from_parts(None, Vec::new(), config.name_servers().to_vec());
        let resolver =
            TokioResolver::builder_with_config(config, Default::default()).with_options(options);
        let resolver = resolver.build().unwrap_or_else(|_| {
            let local = NameServerConfig::udp_and_tcp(Ipv4Addr::LOCALHOST.into());
            let config = ResolverConfig::from_parts(None, Vec::new(), vec![local]);
            TokioResolver::builder_with_config(config, Default::default())
                .build()
                .unwrap_or_else(|_| unreachable!("a resolver for one loopback server builds"))
        });
        let hosts = Hosts::from_system().unwrap_or_default();
        System { resolver, hosts, search, ndots }
    })
}

/// resolv.conf's settings as glibc reads them: a search domain that is not a valid name is
/// left out rather than the whole file, and without a `nameserver` line the server is the
/// one on this host (127.0.0.1), with the file's search list and options kept.
fn settings(text: &str) -> (ResolverConfig, ResolverOpts) {
    let usable: String = text
        .lines()
        .map(|line| {
            let mut words = line.split_whitespace();
            match words.next() {
                Some(keyword @ ("search" | "domain")) => {
                    let valid = words.filter(|w| Name::from_str_relaxed(*w).is_ok());
                    std::iter::once(keyword).chain(valid).collect::<Vec<_>>().join(" ")
                }
                _ => line.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let has_server = usable.lines().any(|l| l.split_whitespace().next() == Some("nameserver"));
    let usable = if has_server { usable } else { format!("{usable}\nnameserver 127.0.0.1\n") };
    parse_resolv_conf(&usable).unwrap_or_else(|_| {
        let local = NameServerConfig::udp_and_tcp(Ipv4Addr::LOCALHOST.into());
        (ResolverConfig::from_parts(None, Vec::new(), vec![local]), ResolverOpts::default())
    })
}

/// Which [`LookupError`] an answer from the resolver is, said in words (the resolver's own
/// text is a debug dump of the query).
fn classify(host: &str, error: &NetError) -> LookupError {
    let host = host.to_owned();
    match error {
        NetError::Dns(DnsError::NoRecordsFound(none)) => {
            let detail = if none.response_code == ResponseCode::NXDomain {
                "no such name"
            } else {
                "no address records"
            };
            LookupError::NotFound { host, detail: detail.to_owned() }
        }
        NetError::Dns(DnsError::ResponseCode(code)) => {
            LookupError::Unanswered { host, detail: format!("it answered {}", code.to_str()) }
        }
        NetError::Timeout => LookupError::Unanswered { host, detail: "no reply".to_owned() },
        other => LookupError::Unanswered {
            host,
            detail: crate::untrusted::short(&other.to_string(), 200),
        },
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

    fn names(list: &[&str]) -> Vec<Name> {
        list.iter().map(|n| Name::from_str_relaxed(*n).unwrap()).collect()
    }

    /// The search list in glibc's order, by the name's dots against `ndots`.
    #[test]
    fn candidates_follow_glibc() {
        let (config, options) =
            settings("nameserver 127.0.0.2\nsearch a.test b.test\noptions ndots:2\n");
        let system = System {
            resolver: TokioResolver::builder_with_config(config.clone(), Default::default())
                .build()
                .unwrap(),
            hosts: Hosts::default(),
            search: config.search().to_vec(),
            ndots: options.ndots,
        };
        let of = |name: &str| {
            let candidates = system.candidates(&Name::from_str_relaxed(name).unwrap());
            let as_is: Vec<_> = candidates.iter().filter(|(_, as_is)| *as_is).collect();
            assert_eq!(as_is.len(), 1, "{candidates:?}");
            assert_eq!(as_is[0].0.to_string().trim_end_matches('.'), name.trim_end_matches('.'));
            candidates.into_iter().map(|(name, _)| name).collect::<Vec<_>>()
        };
        assert_eq!(of("reg"), names(&["reg.a.test.", "reg.b.test.", "reg."]));
        assert_eq!(of("reg.corp"), names(&["reg.corp.a.test.", "reg.corp.b.test.", "reg.corp."]));
        assert_eq!(of("r.e.g"), names(&["r.e.g.", "r.e.g.a.test.", "r.e.g.b.test."]));
        assert_eq!(of("reg.corp."), names(&["reg.corp."]));
    }

    /// A search domain that is not a name is left out, not the whole file; without a
    /// `nameserver` line the server is 127.0.0.1 and the rest of the file still counts.
    #[test]
    fn resolv_conf_is_read_as_glibc_reads_it() {
        let long = "x".repeat(70);
        let (config, options) = settings(&format!(
            "nameserver 127.0.0.2\nsearch ci.internal {long}.example\noptions ndots:5 attempts:1\n"
        ));
        assert_eq!(config.search(), names(&["ci.internal"]).as_slice());
        assert_eq!(config.name_servers()[0].ip, IpAddr::from([127, 0, 0, 2]));
        assert_eq!((options.ndots, options.attempts), (5, 1));
        let (config, options) = settings("search ci.internal\noptions ndots:5\n");
        assert_eq!(config.search(), names(&["ci.internal"]).as_slice());
        assert_eq!(config.name_servers()[0].ip, IpAddr::from(Ipv4Addr::LOCALHOST));
        assert_eq!(options.ndots, 5);
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
