//! The kubelet's HTTPS endpoint on the fake nodes, for what the API server proxies to a
//! kubelet: `GET /containerLogs/<namespace>/<pod>/<container>` (`pods/log`), answered from
//! the kubelet model's scripted log lines. kwok's node stages publish its port as the nodes'
//! `daemonEndpoints.kubeletEndpoint.Port`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use kubesim::kubelet::logs::LogQuery;

use super::kubelet::Agent;

/// Serves `listener` until the runtime ends.
pub async fn serve(
    agent: Arc<Agent>,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let acceptor = acceptor.clone();
        let agent = agent.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else { return };
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let response = answer(&agent, request.uri().path(), request.uri().query());
                    async move { Ok::<_, Infallible>(response) }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(agent: &Agent, path: &str, query: Option<&str>) -> Response<Full<Bytes>> {
    let reply = |code: StatusCode, text: String| {
        let mut response = Response::new(Full::new(Bytes::from(text)));
        *response.status_mut() = code;
        response
            .headers_mut()
            .insert("content-type", hyper::header::HeaderValue::from_static("text/plain"));
        response
    };
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ["containerLogs", namespace, pod, container] = parts.as_slice() else {
        return reply(StatusCode::NOT_FOUND, format!("404 page not found: {path}\n"));
    };
    let Some(pod_object) = agent.pod(namespace, pod) else {
        return reply(StatusCode::NOT_FOUND, format!("pod \"{pod}\" not found\n"));
    };
    let query: BTreeMap<String, String> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let request = LogQuery {
        container: Some((*container).to_owned()),
        previous: query.get("previous").is_some_and(|p| p == "true"),
        tail_lines: query.get("tailLines").and_then(|t| t.parse().ok()),
    };
    match agent.container_logs(&pod_object, &request) {
        Ok(text) => reply(StatusCode::OK, text),
        Err(message) => reply(StatusCode::BAD_REQUEST, message),
    }
}
