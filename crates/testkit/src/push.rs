//! Putting real images into a registry: the distribution push protocol over HTTP for any
//! manifest kind (an index or list needs its children pushed first), and `umoci` + `skopeo`
//! for images built and copied by the tools users run.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use sha2::Digest as _;

use crate::registry::hex_of;
use crate::run;

/// Gives the `Authorization` header for pushing to a repository.
pub type AuthFn = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The four manifest kinds a tag can point to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    OciManifest,
    DockerManifest,
    OciIndex,
    DockerList,
}

impl Kind {
    pub const ALL: [Kind; 4] =
        [Kind::OciManifest, Kind::DockerManifest, Kind::OciIndex, Kind::DockerList];

    pub fn media_type(self) -> &'static str {
        match self {
            Kind::OciManifest => OCI_MANIFEST,
            Kind::DockerManifest => DOCKER_MANIFEST,
            Kind::OciIndex => OCI_INDEX,
            Kind::DockerList => DOCKER_LIST,
        }
    }
}

/// What a push stored.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// sha256 of the exact manifest bytes sent (the index's, for an index).
    pub digest: String,
    pub media_type: &'static str,
    /// Digests of the platform manifests, for an index or list.
    pub children: Vec<String>,
}

/// Pushes to one registry.
pub struct Pusher {
    client: reqwest::blocking::Client,
    base: String,
    auth: Option<AuthFn>,
}

impl Pusher {
    pub(crate) fn new(
        host: &str,
        ca_pem: Option<&str>,
        auth: Option<AuthFn>,
    ) -> anyhow::Result<Self> {
        crate::install_crypto_provider();
        let mut builder = reqwest::blocking::Client::builder();
        let base = match ca_pem {
            Some(pem) => {
                builder =
                    builder.tls_certs_only(reqwest::Certificate::from_pem_bundle(pem.as_bytes())?);
                format!("https://{host}")
            }
            None => format!("http://{host}"),
        };
        Ok(Self { client: builder.build()?, base, auth })
    }

    fn authorized(
        &self,
        request: reqwest::blocking::RequestBuilder,
        repo: &str,
    ) -> reqwest::blocking::RequestBuilder {
        match self.auth.as_ref().and_then(|f| f(repo)) {
            Some(value) => request.header("Authorization", value),
            None => request,
        }
    }

    /// Uploads a blob in one request; returns its digest.
    pub fn blob(&self, repo: &str, data: &[u8]) -> anyhow::Result<String> {
        let digest = sha256(data);
        let start = self
            .authorized(self.client.post(format!("{}/v2/{repo}/blobs/uploads/", self.base)), repo)
            .send()?;
        anyhow::ensure!(start.status().as_u16() == 202, "starting an upload: {}", start.status());
        let location = start
            .headers()
            .get("Location")
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| anyhow::anyhow!("no upload location"))?;
        let location = if location.starts_with("http") {
            location.to_owned()
        } else {
            format!("{}{location}", self.base)
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let done = self
            .authorized(self.client.put(format!("{location}{separator}digest={digest}")), repo)
            .header("Content-Type", "application/octet-stream")
            .body(data.to_vec())
            .send()?;
        anyhow::ensure!(done.status().as_u16() == 201, "finishing an upload: {}", done.status());
        Ok(digest)
    }

    /// Stores a manifest under a tag or digest; returns the sha256 of the bytes sent.
    pub fn manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> anyhow::Result<String> {
        let response = self
            .authorized(
                self.client.put(format!("{}/v2/{repo}/manifests/{reference}", self.base)),
                repo,
            )
            .header("Content-Type", media_type)
            .body(body.to_vec())
            .send()?;
        let status = response.status();
        anyhow::ensure!(
            status.as_u16() == 201,
            "pushing manifest {repo}:{reference}: {status} {}",
            response.text()?
        );
        Ok(sha256(body))
    }

    /// Pushes an image of `kind` under `repo:tag`. `salt` makes its content, and so its
    /// digest, unique.
    pub fn image(&self, repo: &str, tag: &str, kind: Kind, salt: &str) -> anyhow::Result<Pushed> {
        let docker = matches!(kind, Kind::DockerManifest | Kind::DockerList);
        match kind {
            Kind::OciManifest | Kind::DockerManifest => {
                let body = self.platform_manifest(repo, docker, "amd64", salt)?;
                let digest = self.manifest(repo, tag, kind.media_type(), &body)?;
                Ok(Pushed { digest, media_type: kind.media_type(), children: Vec::new() })
            }
            Kind::OciIndex | Kind::DockerList => {
                let child_type = if docker { DOCKER_MANIFEST } else { OCI_MANIFEST };
                let mut entries = Vec::new();
                let mut children = Vec::new();
                for arch in ["amd64", "arm64"] {
                    let body = self.platform_manifest(repo, docker, arch, salt)?;
                    let digest = self.manifest(repo, &sha256(&body), child_type, &body)?;
                    entries.push(serde_json::json!({
                        "mediaType": child_type, "digest": digest, "size": body.len(),
                        "platform": {"architecture": arch, "os": "linux"}
                    }));
                    children.push(digest);
                }
                let index = serde_json::json!({"schemaVersion": 2, "mediaType": kind.media_type(), "manifests": entries});
                let body = serde_json::to_vec_pretty(&index)?;
                let digest = self.manifest(repo, tag, kind.media_type(), &body)?;
                Ok(Pushed { digest, media_type: kind.media_type(), children })
            }
        }
    }

    fn platform_manifest(
        &self,
        repo: &str,
        docker: bool,
        arch: &str,
        salt: &str,
    ) -> anyhow::Result<Vec<u8>> {
        let layer = format!("layer of {repo} {arch} {salt}").into_bytes();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"Labels": {"salt": salt}},
            "rootfs": {"type": "layers", "diff_ids": [sha256(&layer)]}
        }))?;
        let config_digest = self.blob(repo, &config)?;
        let layer_digest = self.blob(repo, &layer)?;
        let (manifest_type, config_type, layer_type) = if docker {
            (
                DOCKER_MANIFEST,
                "application/vnd.docker.container.image.v1+json",
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
            )
        } else {
            (
                OCI_MANIFEST,
                "application/vnd.oci.image.config.v1+json",
                "application/vnd.oci.image.layer.v1.tar",
            )
        };
        Ok(serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": manifest_type,
            "config": {"mediaType": config_type, "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": layer_type, "digest": layer_digest, "size": layer.len()}]
        }))?)
    }
}

/// Builds an OCI image with umoci (one layer holding a file whose content is `salt`) and
/// copies it to `docker://host/repo:tag` with skopeo; `docker_format` converts it to a Docker
/// v2 manifest on the way, as `skopeo copy --format v2s2` does.
pub fn with_skopeo(
    work: &Path,
    destination: &str,
    salt: &str,
    docker_format: bool,
    extra_skopeo_args: &[&str],
) -> anyhow::Result<()> {
    let layout = work.join("layout");
    if !layout.exists() {
        run(Command::new("umoci").arg("init").arg("--layout").arg(&layout))?;
    }
    let image = format!("{}:{salt}", layout.display());
    run(Command::new("umoci").args(["new", "--image", &image]))?;
    let file = work.join(format!("salt-{salt}"));
    std::fs::write(&file, salt)?;
    run(Command::new("umoci").args(["insert", "--image", &image]).arg(&file).arg("/salt"))?;
    let mut copy = Command::new("skopeo");
    copy.args(["copy", "--quiet", "--insecure-policy", "--retry-times", "0"]);
    if docker_format {
        copy.args(["--format", "v2s2"]);
    }
    copy.args(extra_skopeo_args).arg(format!("oci:{image}")).arg(format!("docker://{destination}"));
    run(&mut copy)?;
    Ok(())
}

pub(crate) fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex_of(&sha2::Sha256::digest(data)))
}
