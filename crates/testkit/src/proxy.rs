//! A fault-injecting HTTP proxy in front of a real registry: rules answer chosen requests
//! with 429s, 5xx, extra or missing headers, delays, endless or stalled bodies, and everything
//! else is forwarded. Each request is served on its own thread, so a delayed one holds up no
//! other. It logs each request when it arrives ([`FaultProxy::arrived`]) and again with the
//! status it answered ([`FaultProxy::seen`]).
//!
//! [`TlsFront`] puts TLS in front of any of the test kit's plain servers.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a rule does to a matching request.
#[derive(Debug, Clone)]
pub enum Action {
    /// Answer this instead of forwarding.
    Respond { status: u16, headers: Vec<(String, String)>, body: String },
    /// Forward, then remove this header from the answer.
    StripHeader(String),
    /// Forward, then add these headers to the answer.
    AddHeaders(Vec<(String, String)>),
    /// Wait, then forward.
    Delay(Duration),
    /// Forward to this other upstream (`http://host:port`) instead.
    Forward(String),
    /// Answer `status` with `headers` and a body of `bytes` bytes, sent without a length.
    Flood { status: u16, headers: Vec<(String, String)>, bytes: u64 },
    /// Answer `status` with `headers`, send 64 KiB of white space as the body's start (enough
    /// to get through the server's buffers), then nothing more until the proxy stops or the
    /// client hangs up.
    Stall { status: u16, headers: Vec<(String, String)> },
}

/// Applies `action` to the next `times` requests whose method and path match.
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: Option<&'static str>,
    pub path_contains: String,
    pub times: usize,
    pub action: Action,
}

impl Rule {
    /// A rule for every method.
    pub fn any(path_contains: &str, times: usize, action: Action) -> Self {
        Self { method: None, path_contains: path_contains.into(), times, action }
    }

    /// Answer `status` with `headers` and an empty body.
    pub fn status(
        path_contains: &str,
        times: usize,
        status: u16,
        headers: &[(&str, &str)],
    ) -> Self {
        let headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self::any(path_contains, times, Action::Respond { status, headers, body: String::new() })
    }

    /// The same rule for `method` only.
    pub fn only(self, method: &'static str) -> Self {
        Self { method: Some(method), ..self }
    }
}

/// One request the proxy answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub status: u16,
}

#[derive(Default)]
struct Shared {
    rules: Mutex<Vec<Rule>>,
    arrived: Mutex<Vec<(String, String)>>,
    seen: Mutex<Vec<Seen>>,
    stopped: AtomicBool,
}

/// The proxy, on `127.0.0.1`, stopped on drop.
pub struct FaultProxy {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FaultProxy {
    /// Starts a proxy forwarding to `upstream` (`http://host:port`).
    pub fn start(upstream: &str) -> anyhow::Result<Self> {
        crate::install_crypto_provider();
        let server =
            Arc::new(tiny_http::Server::http("127.0.0.1:0").map_err(|e| anyhow::anyhow!("{e}"))?);
        let shared: Arc<Shared> = Arc::default();
        let client = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let upstream: Arc<str> = upstream.trim_end_matches('/').into();
        let thread = {
            let (server, shared) = (server.clone(), shared.clone());
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    let (client, upstream, shared) =
                        (client.clone(), upstream.clone(), shared.clone());
                    std::thread::spawn(move || serve(request, &client, &upstream, &shared));
                }
            })
        };
        Ok(Self { server, thread: Some(thread), shared })
    }

    /// `127.0.0.1:<port>`, to put in image references.
    pub fn host(&self) -> String {
        self.server.server_addr().to_string()
    }

    /// Adds a rule; earlier rules match first.
    pub fn add(&self, rule: Rule) {
        lock(&self.shared.rules).push(rule);
    }

    /// Every request answered so far, with its status.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.shared.seen).clone()
    }

    /// Method and path of every request received so far, answered or not.
    pub fn arrived(&self) -> Vec<(String, String)> {
        lock(&self.shared.arrived).clone()
    }

    /// Waits (up to `limit`) until `condition` holds for the requests received so far.
    pub fn wait_for(
        &self,
        limit: Duration,
        condition: impl Fn(&[(String, String)]) -> bool,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        while !condition(&self.arrived()) {
            anyhow::ensure!(
                started.elapsed() < limit,
                "not within {limit:?}: {:?}",
                self.arrived()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A body that never finishes: `start` bytes of white space, then a wait for the proxy to stop.
struct Stalled {
    start: usize,
    shared: Arc<Shared>,
}

impl Read for Stalled {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.start > 0 && !buf.is_empty() {
            let n = buf.len().min(self.start);
            buf[..n].fill(b' ');
            self.start -= n;
            return Ok(n);
        }
        // Bounded, so a forgotten proxy cannot keep a thread for ever.
        let until = Instant::now() + Duration::from_secs(120);
        while !self.shared.stopped.load(Ordering::SeqCst) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(0)
    }
}

fn headers_of(pairs: &[(String, String)]) -> Vec<tiny_http::Header> {
    pairs
        .iter()
        .filter_map(|(k, v)| tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).ok())
        .collect()
}

fn serve(
    mut request: tiny_http::Request,
    client: &reqwest::blocking::Client,
    upstream: &str,
    shared: &Arc<Shared>,
) {
    let method = request.method().to_string();
    let path = request.url().to_owned();
    lock(&shared.arrived).push((method.clone(), path.clone()));
    let authorization = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .map(|h| h.value.as_str().to_owned());
    let action = {
        let mut rules = lock(&shared.rules);
        rules
            .iter_mut()
            .find(|r| {
                r.times > 0
                    && r.method.is_none_or(|m| m == method)
                    && path.contains(&r.path_contains)
            })
            .map(|r| {
                r.times -= 1;
                r.action.clone()
            })
    };
    let record = |status: u16| {
        lock(&shared.seen).push(Seen {
            method: method.clone(),
            path: path.clone(),
            authorization: authorization.clone(),
            status,
        });
    };

    match &action {
        Some(Action::Respond { status, headers, body }) => {
            record(*status);
            let mut response =
                tiny_http::Response::from_string(body.clone()).with_status_code(*status);
            for h in headers_of(headers) {
                response.add_header(h);
            }
            let _ = request.respond(response);
            return;
        }
        Some(Action::Flood { status, headers, bytes }) => {
            record(*status);
            let body = std::io::repeat(b'x').take(*bytes);
            let response =
                tiny_http::Response::new((*status).into(), headers_of(headers), body, None, None);
            let _ = request.respond(response);
            return;
        }
        Some(Action::Stall { status, headers }) => {
            record(*status);
            let body = Stalled { start: 64 << 10, shared: shared.clone() };
            let response =
                tiny_http::Response::new((*status).into(), headers_of(headers), body, None, None);
            let _ = request.respond(response);
            return;
        }
        Some(Action::Delay(delay)) => std::thread::sleep(*delay),
        _ => {}
    }

    let mut body = Vec::new();
    let _ = request.as_reader().read_to_end(&mut body);
    let Ok(reqwest_method) = reqwest::Method::from_bytes(method.as_bytes()) else { return };
    let upstream = match &action {
        Some(Action::Forward(other)) => other.trim_end_matches('/'),
        _ => upstream,
    };
    let mut forward = client.request(reqwest_method, format!("{upstream}{path}")).body(body);
    for h in request.headers() {
        let name = h.field.as_str().as_str();
        if !matches!(name.to_ascii_lowercase().as_str(), "host" | "content-length" | "connection") {
            forward = forward.header(name, h.value.as_str());
        }
    }
    let answer = match forward.send() {
        Ok(answer) => answer,
        Err(e) => {
            record(502);
            let _ = request
                .respond(tiny_http::Response::from_string(e.to_string()).with_status_code(502));
            return;
        }
    };
    let status = answer.status().as_u16();
    let mut headers: Vec<(String, String)> = answer
        .headers()
        .iter()
        .filter(|(k, _)| {
            !matches!(k.as_str(), "content-length" | "transfer-encoding" | "connection")
        })
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    match &action {
        Some(Action::StripHeader(name)) => headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name)),
        Some(Action::AddHeaders(extra)) => headers.extend(extra.iter().cloned()),
        _ => {}
    }
    let data = answer.bytes().map(|b| b.to_vec()).unwrap_or_default();
    record(status);
    let mut response = tiny_http::Response::from_data(data).with_status_code(status);
    for h in headers_of(&headers) {
        response.add_header(h);
    }
    let _ = request.respond(response);
}

/// TLS in front of a plain server on loopback: each connection's handshake is done with the
/// given certificate, then bytes flow both ways. Stopped on drop.
pub struct TlsFront {
    /// `127.0.0.1:<port>`.
    pub address: SocketAddr,
    stopped: Arc<AtomicBool>,
}

impl TlsFront {
    /// Serves TLS with `certs` (a certificate for `127.0.0.1` and `localhost`), forwarding
    /// the plain bytes to `upstream`.
    pub fn start(upstream: SocketAddr, certs: &crate::certs::ServerCerts) -> anyhow::Result<Self> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        crate::install_crypto_provider();
        let chain =
            CertificateDer::pem_file_iter(&certs.cert_pem)?.collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(&certs.key_pem)?;
        let config = Arc::new(
            rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(chain, key)?,
        );
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let stopped = Arc::new(AtomicBool::new(false));
        let stop = stopped.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let config = config.clone();
                        std::thread::spawn(move || {
                            let _ = relay(stream, upstream, config);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Self { address, stopped })
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
    }
}

/// One connection: the TLS side read and written on this thread, the plain side's answers
/// copied back as they come.
fn relay(
    stream: TcpStream,
    upstream: SocketAddr,
    config: Arc<rustls::ServerConfig>,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(20)))?;
    let mut tls = rustls::StreamOwned::new(rustls::ServerConnection::new(config)?, stream);
    let mut plain = TcpStream::connect(upstream)?;
    plain.set_read_timeout(Some(Duration::from_millis(20)))?;
    let mut buf = [0u8; 16 << 10];
    let idle_limit = Instant::now() + Duration::from_secs(60);
    while Instant::now() < idle_limit {
        match tls.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => plain.write_all(&buf[..n])?,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
        match plain.read(&mut buf) {
            Ok(0) => {
                tls.conn.send_close_notify();
                let _ = tls.flush();
                return Ok(());
            }
            Ok(n) => {
                tls.write_all(&buf[..n])?;
                tls.flush()?;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
