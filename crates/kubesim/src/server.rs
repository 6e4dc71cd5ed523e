//! HTTP/1.1 on 127.0.0.1: routes requests to the API verbs, streams watches as chunked
//! newline-delimited JSON, and applies the injected faults.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::api::{self, PatchType, Target};
use crate::resources;
use crate::status::{self, ApiError, Body as ErrorBody};
use crate::{Logged, Shared};

type Body = BoxBody<Bytes, Infallible>;

fn full(code: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() =
        hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

fn json(code: u16, value: &Value) -> Response<Body> {
    full(code, "application/json", value.to_string())
}

fn error(e: ApiError) -> Response<Body> {
    let mut response = match &e.body {
        ErrorBody::Status(v) => json(e.code, v),
        ErrorBody::Text(t) => full(e.code, "text/plain; charset=utf-8", t.clone()),
    };
    for (k, v) in &e.headers {
        if let Ok(value) = v.parse() {
            response.headers_mut().insert(*k, value);
        }
    }
    response
}

/// Serves one request.
pub async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let query_text = request.uri().query().unwrap_or_default().to_owned();
    let header = |name: hyper::header::HeaderName| {
        request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    };
    let content_type = header(hyper::header::CONTENT_TYPE).unwrap_or_default();
    let accept = header(hyper::header::ACCEPT).unwrap_or_default();
    let authorization = header(hyper::header::AUTHORIZATION);
    let user_agent = header(hyper::header::USER_AGENT);
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let query = api::parse_query(&query_text);
    shared.log(Logged {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        content_type: content_type.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
        user_agent,
    });

    let bearer = authorization.as_deref().and_then(|a| a.strip_prefix("Bearer "));
    let authenticated = match (&shared.options.authenticate, &shared.options.token) {
        (Some(check), _) => bearer.is_some_and(|t| (check.0)(t)),
        (None, Some(token)) => bearer == Some(token.as_str()),
        (None, None) => true,
    };
    if !authenticated {
        return Ok(error(status::unauthorized()));
    }
    let target = api::parse_path(&path);
    let verb = verb(&method, &target, &query);
    let name = target.as_ref().and_then(|t| t.name.as_deref());
    let dry_run = query.get("dryRun").is_some_and(|d| d == "All");
    if let Some(response) =
        shared.fault_for(verb, target.as_ref().map(|t| t.resource), name, dry_run).await
    {
        return Ok(error(response));
    }
    let as_table = crate::table::wants_table(&accept);
    let request = Parts {
        method: &method,
        path: &path,
        query: &query,
        content_type: &content_type,
        body: &body,
        as_table,
    };
    let response = route(&shared, target, &request).await;
    if matches!(method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") {
        shared.wake.notify_one();
    }
    Ok(response)
}

/// The RBAC verb of a request.
fn verb(
    method: &str,
    target: &Option<Target>,
    query: &std::collections::BTreeMap<String, String>,
) -> &'static str {
    let named = target.as_ref().is_some_and(|t| t.name.is_some());
    match method {
        "GET" if query.get("watch").is_some_and(|w| w == "true" || w == "1") => "watch",
        "GET" if named => "get",
        "GET" => "list",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "unknown",
    }
}

/// What the router needs of a request.
struct Parts<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a std::collections::BTreeMap<String, String>,
    content_type: &'a str,
    body: &'a [u8],
    /// The client asked for server-side printing (`as=Table`).
    as_table: bool,
}

async fn route(
    shared: &Arc<Shared>,
    target: Option<Target>,
    request: &Parts<'_>,
) -> Response<Body> {
    let Parts { method, path, query, content_type, body, as_table } = *request;
    match (method, path) {
        ("GET", "/version") => return json(200, &resources::version()),
        ("GET", "/api") => return json(200, &resources::core_versions()),
        ("GET", "/apis") => return json(200, &resources::groups()),
        ("GET", "/healthz" | "/readyz" | "/livez") => return full(200, "text/plain", "ok"),
        ("GET", "/openapi/v3") => return json(200, &resources::openapi_root()),
        _ => {}
    }
    if method == "GET" {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let listed = match parts.as_slice() {
            ["api", version] => resources::resource_list("", version),
            ["apis", group, version] => resources::resource_list(group, version),
            ["openapi", "v3", "api", version] => resources::openapi_document("", version),
            ["openapi", "v3", "apis", group, version] => {
                resources::openapi_document(group, version)
            }
            _ => None,
        };
        if let Some(list) = listed {
            return json(200, &list);
        }
    }
    let Some(target) = target else {
        return error(status::no_route(path));
    };
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All");
    let include = crate::table::Include::from_query(query.get("includeObject").map(String::as_str));
    let result = match (method, target.name.is_some(), target.subresource.as_deref()) {
        ("GET", true, Some("log")) => {
            let state = shared.lock();
            return match crate::controllers::pods::logs(&state, &target, query) {
                Ok(text) => full(200, "text/plain", text),
                Err(e) => error(e),
            };
        }
        ("GET", true, None) if as_table => api::get(&shared.lock(), &target).map(|o| {
            let metadata = json!({"resourceVersion": o["metadata"]["resourceVersion"]});
            ok(crate::table::table(shared.clock.now(), &target.resource, &[o], metadata, include))
        }),
        ("GET", true, _) => api::get(&shared.lock(), &target).map(ok),
        ("GET", false, None) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            return watch(shared.clone(), target, query.clone());
        }
        ("GET", false, None) => api::list(&shared.lock(), &target, query).map(|list| {
            if as_table {
                let items = list["items"].as_array().cloned().unwrap_or_default();
                let metadata = list["metadata"].clone();
                ok(crate::table::table(
                    shared.clock.now(),
                    &target.resource,
                    &items,
                    metadata,
                    include,
                ))
            } else {
                ok(list)
            }
        }),
        // Protobuf and CBOR bodies are refused as the server refuses a type it does not serve,
        // so clients fall back to JSON.
        ("POST" | "PUT", _, _)
            if !content_type.is_empty() && !content_type.starts_with("application/json") =>
        {
            Err(status::unsupported_body(content_type))
        }
        ("POST", false, None) => match serde_json::from_slice::<Value>(body) {
            Ok(object) => {
                let mut state = shared.lock();
                api::create(shared, &mut state, &target, object, dry_run).map(|created| {
                    if !dry_run {
                        let manager = query.get("fieldManager").map_or("unknown", String::as_str);
                        state.fields.updated(&target.resource, None, &created, manager);
                    }
                    (201, created)
                })
            }
            Err(e) => Err(status::bad_request(format!("error decoding body: {e}"))),
        },
        ("PATCH", true, _) => PatchType::from_content_type(content_type)
            .and_then(|kind| api::patch(shared, &mut shared.lock(), &target, kind, body, query)),
        ("PUT", true, sub) => match serde_json::from_slice::<Value>(body) {
            Ok(object) => {
                let mut state = shared.lock();
                let name = target.name.clone().unwrap_or_default();
                let ns = target.namespace.clone().unwrap_or_default();
                match state.store.get(&target.resource, &ns, &name).cloned() {
                    None => Err(status::not_found(&target.resource, &name)),
                    Some(current) => {
                        let rv =
                            object.pointer("/metadata/resourceVersion").and_then(Value::as_str);
                        if rv.is_some_and(|rv| {
                            Some(rv) != current["metadata"]["resourceVersion"].as_str()
                        }) {
                            Err(status::conflict(&target.resource, &name))
                        } else {
                            let mut updated = object.clone();
                            if sub == Some("status") {
                                updated = current.clone();
                                updated["status"] = object["status"].clone();
                            } else {
                                updated["status"] = current["status"].clone();
                            }
                            api::update(
                                shared,
                                &mut state,
                                &target.resource,
                                &current,
                                updated,
                                dry_run,
                            )
                            .map(ok)
                        }
                    }
                }
            }
            Err(e) => Err(status::bad_request(format!("error decoding body: {e}"))),
        },
        ("DELETE", true, None) => crate::deletion::DeleteOptions::from_request(query, body)
            .and_then(|options| {
                crate::deletion::delete(shared, &mut shared.lock(), &target, &options)
            }),
        (verb, ..) => Err(status::method_not_allowed(verb)),
    };
    match result {
        Ok((code, object)) => json(code, &object),
        Err(e) => error(e),
    }
}

fn ok(object: Value) -> (u16, Value) {
    (200, object)
}

/// The sending side of one watch.
struct WatchStream {
    tx: mpsc::Sender<Bytes>,
    target: Target,
    filter: api::Filter,
    /// The last resourceVersion sent.
    last: u64,
    /// The last resourceVersion looked at, sent or not: what a bookmark can promise.
    seen: u64,
    sent: usize,
    /// Fault injection: end the stream after this many events.
    close_after: Option<usize>,
}

impl WatchStream {
    /// Sends a line; false when the client has gone.
    async fn line(&self, line: String) -> bool {
        self.tx.send(Bytes::from(line)).await.is_ok()
    }

    /// Sends a store event that belongs to this watch; false when the watch should end.
    async fn event(&mut self, event: &crate::store::Event) -> bool {
        self.seen = self.seen.max(event.rv);
        if event.rv <= self.last {
            return true;
        }
        let Some((change, object)) = api::watch_event(event, &self.target, &self.filter) else {
            return true;
        };
        self.last = event.rv;
        if !self.line(api::event_line(change.as_str(), &object)).await {
            return false;
        }
        self.sent += 1;
        self.close_after.is_none_or(|n| self.sent < n)
    }
}

/// A chunked watch stream: initial events, then changes, until `timeoutSeconds`.
fn watch(
    shared: Arc<Shared>,
    target: Target,
    query: std::collections::BTreeMap<String, String>,
) -> Response<Body> {
    let (start, filter, mut receiver, backlog) = {
        let state = shared.lock();
        let start = match api::watch_start(&state, &target, &query) {
            Ok(start) => start,
            // The watch cache answers a too-old version inside a 200 stream.
            Err(e) if e.code == 410 => {
                let ErrorBody::Status(status) = e.body else { return error(e) };
                return full(200, "application/json", api::event_line("ERROR", &status));
            }
            Err(e) => return error(e),
        };
        let filter = match api::Filter::from_query(&query) {
            Ok(f) => f,
            Err(e) => return error(e),
        };
        // Subscribe and read the backlog under one lock: no write can fall between them.
        let receiver = state.store.subscribe();
        let backlog = state.store.since(start.from).unwrap_or_default();
        (start, filter, receiver, backlog)
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let bookmarks = query.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let close_after = shared.watch_close_after();
    let (tx, rx) = mpsc::channel::<Bytes>(4096);
    let mut out = WatchStream {
        tx,
        target,
        filter,
        last: start.from,
        seen: start.from,
        sent: 0,
        close_after,
    };
    let bookmark_every = shared.options.bookmark_interval;
    tokio::spawn(async move {
        for object in &start.initial {
            if !out.line(api::event_line("ADDED", object)).await {
                return;
            }
        }
        if start.initial_events_end
            && bookmarks
            && !out.line(api::bookmark_line(&out.target.resource, start.from, true)).await
        {
            return;
        }
        for event in &backlog {
            if !out.event(event).await {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + bookmark_every, bookmark_every);
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = ticks.tick(), if bookmarks => {
                    if !out.line(api::bookmark_line(&out.target.resource, out.seen, false)).await {
                        return;
                    }
                }
                _ = out.tx.closed() => return,
                received = receiver.recv() => match received {
                    Ok(event) => {
                        if !out.event(&event).await {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let e = status::expired(out.last, out.last + 1);
                        if let ErrorBody::Status(s) = e.body {
                            let _ = out.line(api::event_line("ERROR", &s)).await;
                        }
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), rx))
    });
    let mut response = Response::new(StreamBody::new(stream).boxed());
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
