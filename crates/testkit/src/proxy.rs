//! A fault-injecting HTTP proxy in front of a real registry: rules answer chosen requests
//! with 429s, 5xx, extra or missing headers, or delays, and everything else is forwarded.
//! It records every request it saw, before forwarding, so counts are exact.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

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
}

/// One request the proxy received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub status: u16,
}

/// The proxy, on `127.0.0.1`, stopped on drop.
pub struct FaultProxy {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    rules: Arc<Mutex<Vec<Rule>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FaultProxy {
    /// Starts a proxy forwarding to `upstream` (`http://host:port`).
    pub fn start(upstream: &str) -> anyhow::Result<Self> {
        crate::install_crypto_provider();
        let server =
            Arc::new(tiny_http::Server::http("127.0.0.1:0").map_err(|e| anyhow::anyhow!("{e}"))?);
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let client = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let upstream = upstream.trim_end_matches('/').to_owned();
        let thread = {
            let (server, rules, seen) = (server.clone(), rules.clone(), seen.clone());
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    serve(request, &client, &upstream, &rules, &seen);
                }
            })
        };
        Ok(Self { server, thread: Some(thread), rules, seen })
    }

    /// `127.0.0.1:<port>`, to put in image references.
    pub fn host(&self) -> String {
        self.server.server_addr().to_string()
    }

    /// Adds a rule; earlier rules match first.
    pub fn add(&self, rule: Rule) {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).push(rule);
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    mut request: tiny_http::Request,
    client: &reqwest::blocking::Client,
    upstream: &str,
    rules: &Mutex<Vec<Rule>>,
    seen: &Mutex<Vec<Seen>>,
) {
    let method = request.method().to_string();
    let path = request.url().to_owned();
    let header = |name: &str| {
        request
            .headers()
            .iter()
            .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str().to_owned())
    };
    let authorization = header("Authorization");
    let action = {
        let mut rules = rules.lock().unwrap_or_else(|e| e.into_inner());
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
        seen.lock().unwrap_or_else(|e| e.into_inner()).push(Seen {
            method: method.clone(),
            path: path.clone(),
            authorization: authorization.clone(),
            status,
        });
    };

    if let Some(Action::Respond { status, headers, body }) = &action {
        record(*status);
        let mut response = tiny_http::Response::from_string(body.clone()).with_status_code(*status);
        for (k, v) in headers {
            if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
                response.add_header(h);
            }
        }
        let _ = request.respond(response);
        return;
    }
    if let Some(Action::Delay(delay)) = &action {
        std::thread::sleep(*delay);
    }

    let mut body = Vec::new();
    let _ = std::io::Read::read_to_end(request.as_reader(), &mut body);
    let Ok(reqwest_method) = reqwest::Method::from_bytes(method.as_bytes()) else { return };
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
    for (k, v) in headers {
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            response.add_header(h);
        }
    }
    let _ = request.respond(response);
}
