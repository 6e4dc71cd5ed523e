//! Image pulls as the kubelet (containerd) does them: the reference grammar, and a manifest
//! HEAD with every manifest type, following the registry's anonymous token flow.
//!
//! Only loopback registries are contacted; an image on any other registry is taken as
//! already present on the node (the tests must never reach the network).

use std::time::Duration;

use crate::clock::Instant;

/// Where an image's pull stands.
#[derive(Debug, Clone)]
pub(crate) enum Pull {
    Pending,
    Found(String),
    Failed { reason: &'static str, message: String, at: Instant, retries: u32 },
}

/// The parts of an image reference, or the kubelet's InvalidImageName.
struct Parsed {
    host: String,
    repository: String,
    tag: String,
    digest: Option<String>,
}

/// An image ID (`repo@sha256:…`), or the kubelet's reason and message.
pub type PullResult = Result<String, (&'static str, String)>;

fn parse(image: &str) -> Result<Parsed, (&'static str, String)> {
    let invalid = || {
        (
            "InvalidImageName",
            format!(
                "Failed to apply default image tag \"{image}\": couldn't parse image name \"{image}\": invalid reference format"
            ),
        )
    };
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let (host, path) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (first.to_owned(), rest.to_owned())
        }
        _ => (
            "docker.io".to_owned(),
            if name.contains('/') { name.to_owned() } else { format!("library/{name}") },
        ),
    };
    let (repository, tag) = match path.rsplit_once(':') {
        Some((r, t)) => (r.to_owned(), t.to_owned()),
        None => (path.clone(), "latest".to_owned()),
    };
    // The reference grammar, coarsely: lowercase path components, a word-character tag.
    let path_ok = !repository.is_empty()
        && repository
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b));
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !path_ok || !tag_ok || host.is_empty() {
        return Err(invalid());
    }
    if let Some(d) = digest
        && !(d.starts_with("sha256:") && d.len() == 71)
    {
        return Err(invalid());
    }
    Ok(Parsed { host, repository, tag, digest: digest.map(str::to_owned) })
}

/// The answer without a registry: malformed references, and images on registries the
/// simulator does not contact (taken to be present on the node). `None`: ask the registry.
pub fn locally(image: &str) -> Option<PullResult> {
    let parsed = match parse(image) {
        Ok(p) => p,
        Err(e) => return Some(Err(e)),
    };
    let Parsed { host, repository, digest, .. } = parsed;
    let loopback =
        host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]");
    if loopback {
        return None;
    }
    use sha2::Digest as _;
    let digest = digest.unwrap_or_else(|| {
        let hash = sha2::Sha256::digest(image.as_bytes());
        format!("sha256:{}", hash.iter().map(|b| format!("{b:02x}")).collect::<String>())
    });
    Some(Ok(format!("{host}/{repository}@{digest}")))
}

/// `repo@sha256:…` for an image on a loopback registry, from the registry; `insecure` are
/// the registries (`host:port`) reached over plain HTTP.
pub async fn resolve(client: &reqwest::Client, insecure: &[String], image: &str) -> PullResult {
    let Parsed { host, repository, tag, digest } = parse(image)?;
    let digest = digest.as_deref();
    let scheme = if insecure.contains(&host) { "http" } else { "https" };
    let reference = digest.unwrap_or(&tag);
    let url = format!("{scheme}://{host}/v2/{repository}/manifests/{reference}");
    let pull_error = |what: String| {
        (
            "ErrImagePull",
            format!(
                "rpc error: code = NotFound desc = failed to pull and unpack image \"{host}/{repository}:{tag}\": failed to resolve reference \"{host}/{repository}:{tag}\": {what}"
            ),
        )
    };
    let accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
    match head(client, &url, accept, &repository).await {
        Ok((200, Some(found))) => Ok(format!("{host}/{repository}@{found}")),
        Ok((200, None)) => Err(pull_error("no digest in the registry's answer".into())),
        Ok((404, _)) => Err(pull_error(format!("{host}/{repository}:{tag}: not found"))),
        Ok((401 | 403, _)) => Err((
            "ErrImagePull",
            format!(
                "rpc error: code = Unknown desc = failed to pull and unpack image \"{host}/{repository}:{tag}\": failed to resolve reference \"{host}/{repository}:{tag}\": pull access denied, repository does not exist or may require authorization: authorization failed"
            ),
        )),
        Ok((code, _)) => {
            Err(pull_error(format!("unexpected status from HEAD request to {url}: {code}")))
        }
        Err(e) => Err(pull_error(e)),
    }
}

/// The kubelet's HTTP client: the OS-independent public roots plus `ca` (PEM).
pub fn registry_client(ca: Option<&str>) -> anyhow::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder =
        reqwest::Client::builder().user_agent("containerd/2.1.0").timeout(Duration::from_secs(10));
    if let Some(pem) = ca {
        builder = builder.tls_certs_merge(reqwest::Certificate::from_pem_bundle(pem.as_bytes())?);
    }
    Ok(builder.build()?)
}

/// A manifest HEAD as containerd sends it, following the registry's anonymous token flow:
/// the status and `Docker-Content-Digest`.
async fn head(
    client: &reqwest::Client,
    url: &str,
    accept: &str,
    repository: &str,
) -> Result<(u16, Option<String>), String> {
    let send = |token: Option<String>| {
        let mut request = client.head(url).header("Accept", accept);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let mut response = send(None).await.map_err(|e| format!("dial tcp: {e}"))?;
    let challenge =
        response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if response.status() == 401
        && let Some(challenge) = challenge.filter(|c| c.starts_with("Bearer "))
    {
        let param = |name: &str| {
            challenge
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .map(str::to_owned)
        };
        let realm = param("realm").ok_or("a token challenge without a realm")?;
        let mut query = vec![("scope".to_owned(), format!("repository:{repository}:pull"))];
        if let Some(service) = param("service") {
            query.push(("service".to_owned(), service));
        }
        let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish();
        let body = client
            .get(format!("{realm}?{query}"))
            .send()
            .await
            .map_err(|e| format!("fetching a token: {e}"))?
            .bytes()
            .await
            .map_err(|e| format!("fetching a token: {e}"))?;
        let answer: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| format!("a token answer that is not JSON: {e}"))?;
        let token = answer["token"].as_str().or(answer["access_token"].as_str()).map(str::to_owned);
        response = send(token).await.map_err(|e| format!("dial tcp: {e}"))?;
    }
    let digest = response
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((response.status().as_u16(), digest))
}
