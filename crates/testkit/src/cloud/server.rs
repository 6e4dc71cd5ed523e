//! A small HTTP/1.1 server on `127.0.0.1` for the fake cloud services: plain or TLS (rustls,
//! with a certificate from [`crate::certs`]), one thread per connection, `Connection: close`
//! after each answer, every request recorded. Each service is a handler: a function from the
//! request to the answer, which checks what it receives as the real service would.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::certs::ServerCerts;

/// One request as received.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The path, percent-decoding left to the handler.
    pub path: String,
    /// The raw query string (without `?`).
    pub query: String,
    /// Header names lowercased.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// The query's pairs, decoded.
    pub fn query_pairs(&self) -> BTreeMap<String, String> {
        form_urlencoded::parse(self.query.as_bytes()).into_owned().collect()
    }

    /// The body as form pairs, decoded.
    pub fn form(&self) -> BTreeMap<String, String> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self { status, content_type: "application/json", body: value.to_string().into_bytes() }
    }

    pub fn xml(status: u16, text: String) -> Self {
        Self { status, content_type: "text/xml", body: text.into_bytes() }
    }
}

pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// The server; stopped on drop.
pub struct Server {
    pub url: String,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    port: u16,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `handler` over plain HTTP.
    pub fn http(handler: Handler) -> anyhow::Result<Self> {
        Self::start(handler, None)
    }

    /// Serves `handler` over HTTPS with `certs`.
    pub fn https(handler: Handler, certs: &ServerCerts) -> anyhow::Result<Self> {
        crate::install_crypto_provider();
        let chain = rustls_pemfile::certs(&mut std::fs::read(&certs.cert_pem)?.as_slice())
            .collect::<Result<Vec<_>, _>>()?;
        let key = rustls_pemfile::private_key(&mut std::fs::read(&certs.key_pem)?.as_slice())?
            .ok_or_else(|| anyhow::anyhow!("no key in {}", certs.key_pem.display()))?;
        let config =
            rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(chain, key)?;
        Self::start(handler, Some(Arc::new(config)))
    }

    fn start(handler: Handler, tls: Option<Arc<rustls::ServerConfig>>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, stopping) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (handler, log, tls) = (handler.clone(), log.clone(), tls.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &handler, &log, tls);
                });
            }
        });
        Ok(Self {
            url: format!("{scheme}://127.0.0.1:{port}"),
            requests,
            stop,
            port,
            thread: Some(thread),
        })
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    handler: &Handler,
    log: &Mutex<Vec<Request>>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> anyhow::Result<()> {
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    match tls {
        Some(config) => {
            let connection = rustls::ServerConnection::new(config)?;
            let mut stream = rustls::StreamOwned::new(connection, stream);
            exchange(&mut stream, handler, log)
        }
        None => {
            let mut stream = stream;
            exchange(&mut stream, handler, log)
        }
    }
}

/// Reads one request (headers, then `Content-Length` bytes), answers, closes.
fn exchange<S: Read + Write>(
    stream: &mut S,
    handler: &Handler,
    log: &Mutex<Vec<Request>>,
) -> anyhow::Result<()> {
    let mut reader = BufReader::new(&mut *stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let length: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length.min(1 << 20)];
    reader.read_exact(&mut body)?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (target, String::new()),
    };
    let request = Request { method, path, query, headers, body };
    log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(request.clone());
    let response = handler(&request);
    let head = format!(
        "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    );
    drop(reader);
    stream.write_all(head.as_bytes())?;
    stream.write_all(&response.body)?;
    stream.flush()?;
    Ok(())
}
