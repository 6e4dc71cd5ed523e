//! Stage 3a: access to the cluster. The `kubeconfig` input (YAML or base64 of it), else the
//! `KUBECONFIG` path list, else `~/.kube/config`, else the in-cluster service account; the
//! `context` input picks the context. The namespace is the `namespace` input, else the
//! context's, else the service account's, else `default` (kube's `default_namespace`).
//!
//! An EKS, GKE or AKS exec plugin that is not installed, and the `cluster` input, are the
//! [`cloud`] module's: it mints the token, and a layer around kube's client sends it.

pub mod cloud;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Why the cluster cannot be reached from this configuration: exit 2, nothing was sent to any
/// cluster; but a cloud that refuses kubeship's credentials is exit 4.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{source_} is not a usable kubeconfig: {detail}. Give the kubeconfig file's YAML, or base64 of it"
    )]
    Kubeconfig { source_: String, detail: String },
    #[error(
        "no cluster credentials: give the kubeconfig input, set KUBECONFIG, or run in a pod with a service account"
    )]
    Missing,
    #[error("{source_} has no context {context:?}; it has: {available}")]
    Context { source_: String, context: String, available: String },
    #[error(
        "the kubeconfig authenticates with the exec plugin {command:?}, which is not on PATH and \
         which kubeship cannot stand in for (it does for aws eks get-token, aws-iam-authenticator, \
         gke-gcloud-auth-plugin and kubelogin): install it in the step's image, or use a \
         kubeconfig with a service-account token"
    )]
    ExecPluginMissing { command: String },
    /// The cloud login that stands in for an exec plugin, or serves the `cluster` input.
    #[error(transparent)]
    Cloud(#[from] cloud::Error),
    #[error("the in-cluster service account cannot be used: {0}")]
    InCluster(String),
    #[error("the kubeconfig's cluster settings cannot be used: {0}")]
    Client(String),
}

impl Error {
    /// 2 for configuration, 4 when a cloud refused or could not be reached.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Cloud(e) => e.exit_code(),
            _ => 2,
        }
    }
}

/// Where the kubeconfig comes from, as the inputs and environment say.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// The `kubeconfig` input.
    pub kubeconfig: Option<String>,
    /// The `context` input.
    pub context: Option<String>,
    /// The `namespace` input.
    pub namespace: Option<String>,
    /// `KUBECONFIG`, split.
    pub kubeconfig_paths: Vec<PathBuf>,
    /// `$HOME`, for `~/.kube/config`.
    pub home: Option<PathBuf>,
    /// The `cluster` input, the cloud inputs and the cloud variables of the environment.
    pub cloud: cloud::Settings,
}

/// A client and the namespace the targets live in.
pub struct Cluster {
    pub client: kube::Client,
    pub namespace: String,
    /// Said once, as a warning: `insecure-skip-tls-verify`.
    pub warnings: Vec<String>,
    /// Who kubeship authenticated as, when it minted the token itself.
    pub identity: Option<cloud::IdentityCell>,
}

/// Builds the client. Sends nothing.
///
/// # Errors
/// Every [`Error`]; all are configuration errors.
pub async fn connect(access: &Access) -> Result<Cluster, Error> {
    crate::tls::install_crypto_provider();
    let (mut config, login) = match &access.cloud.cluster {
        Some(cluster) => {
            let (located, login) = cloud::for_cluster(cluster, &access.cloud).await?;
            (located_config(&located)?, Some(login))
        }
        None => (kubeconfig(access).await?, None),
    };
    mask_credentials(&config.auth_info);
    let mut login = login;
    if let Some(exec) = config.auth_info.exec.clone()
        && let Some(command) = exec.command.clone()
        && !on_path(&command)
    {
        let args = exec.args.clone().unwrap_or_default();
        let Some(plugin) = cloud::recognise(&command, &args) else {
            return Err(Error::ExecPluginMissing { command });
        };
        let env = exec_env(&exec);
        login = Some(cloud::for_plugin(&plugin, &access.cloud, &env).await?);
        // kube's own exec would run the missing binary: the layer below sends the token instead.
        config.auth_info.exec = None;
    }
    let mut warnings = Vec::new();
    if config.accept_invalid_certs {
        warnings.push(
            "the kubeconfig sets insecure-skip-tls-verify: the API server's identity is not checked; \
             give its CA (certificate-authority-data) instead"
                .to_owned(),
        );
    }
    let namespace = access.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    let client_error = |e: kube::Error| Error::Client(crate::error::render_chain(&e));
    let (client, identity) = match login {
        Some(login) => {
            crate::log::info(&login.note);
            let layer = cloud::BearerLayer::new(login.cache.clone());
            let client = kube::client::ClientBuilder::try_from(config)
                .map_err(client_error)?
                .with_layer(&layer)
                .build();
            (client, Some(login.identity))
        }
        None => (kube::Client::try_from(config).map_err(client_error)?, None),
    };
    Ok(Cluster { client, namespace, warnings, identity })
}

/// The kubeconfig's configuration (or the in-cluster one), with the `context` input applied.
async fn kubeconfig(access: &Access) -> Result<kube::Config, Error> {
    let options =
        KubeConfigOptions { context: access.context.clone(), ..KubeConfigOptions::default() };
    Ok(match load(access)? {
        Some((source_, kubeconfig)) => {
            if let Some(context) = &access.context
                && !kubeconfig.contexts.iter().any(|c| &c.name == context)
            {
                let available = kubeconfig
                    .contexts
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Error::Context { source_, context: context.clone(), available });
            }
            kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.map_err(|e| {
                Error::Kubeconfig { source_, detail: crate::error::render_chain(&e) }
            })?
        }
        None => kube::Config::incluster().map_err(|e| match e {
            kube::config::InClusterError::ReadEnvironmentVariable(_) => Error::Missing,
            other => Error::InCluster(crate::error::render_chain(&other)),
        })?,
    })
}

/// The configuration of a cluster the cloud described (the `cluster` input).
fn located_config(located: &cloud::Located) -> Result<kube::Config, Error> {
    let bad = |detail: String| cloud::Error::Answer { service: "the cloud".into(), detail };
    let url = located
        .server
        .parse::<http::Uri>()
        .map_err(|_| bad(format!("its cluster endpoint {:?} is not a URL", located.server)))?;
    let mut config = kube::Config::new(url);
    if let Some(pem) = &located.ca_pem {
        let certs = crate::tls::parse_pem_certificates(pem)
            .map_err(|e| bad(format!("the cluster's CA {e}")))?;
        config.root_cert = Some(certs);
    }
    Ok(config)
}

/// The exec plugin's own `env` entries (`name`/`value`).
fn exec_env(exec: &kube::config::ExecConfig) -> Vec<(String, String)> {
    let entries = exec.env.iter().flatten();
    entries.filter_map(|e| Some((e.get("name")?.clone(), e.get("value")?.clone()))).collect()
}

/// Hides the kubeconfig user's secrets from the GitHub log, should any library echo them.
fn mask_credentials(user: &kube::config::AuthInfo) {
    use secrecy::ExposeSecret as _;
    for secret in [&user.token, &user.password, &user.client_key_data].into_iter().flatten() {
        crate::log::mask(secret.expose_secret());
    }
    let provider = user.auth_provider.as_ref().map(|p| &p.config);
    for (key, value) in provider.into_iter().flatten() {
        if key.contains("token") || key.contains("secret") {
            crate::log::mask(value);
        }
    }
}

/// The kubeconfig to use and a name for it in messages; `None` for in-cluster.
fn load(access: &Access) -> Result<Option<(String, Kubeconfig)>, Error> {
    if let Some(text) = &access.kubeconfig {
        let source_ = "the kubeconfig input".to_owned();
        return parse(text)
            .map(|k| Some((source_.clone(), k)))
            .map_err(|detail| Error::Kubeconfig { source_, detail });
    }
    let existing: Vec<&PathBuf> = access.kubeconfig_paths.iter().filter(|p| p.is_file()).collect();
    if !existing.is_empty() {
        let names = existing.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":");
        let source_ = format!("KUBECONFIG ({names})");
        let mut merged = Kubeconfig::default();
        for path in existing {
            let next = read(path)
                .map_err(|detail| Error::Kubeconfig { source_: source_.clone(), detail })?;
            merged = merged.merge(next).map_err(|e| Error::Kubeconfig {
                source_: source_.clone(),
                detail: e.to_string(),
            })?;
        }
        return Ok(Some((source_, merged)));
    }
    if let Some(home) = &access.home {
        let path = home.join(".kube/config");
        if path.is_file() {
            let source_ = path.display().to_string();
            return read(&path)
                .map(|k| Some((source_.clone(), k)))
                .map_err(|detail| Error::Kubeconfig { source_, detail });
        }
    }
    Ok(None)
}

fn read(path: &Path) -> Result<Kubeconfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    parse(&text)
}

/// YAML, or base64 of YAML (what CI secrets usually hold).
pub fn parse(text: &str) -> Result<Kubeconfig, String> {
    let trimmed = text.trim();
    let looks_like_yaml =
        trimmed.contains("apiVersion") || trimmed.contains("clusters") || trimmed.starts_with('{');
    let yaml = if looks_like_yaml {
        trimmed.to_owned()
    } else {
        let compact: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|_| "it is neither kubeconfig YAML nor base64".to_owned())?;
        String::from_utf8(bytes).map_err(|_| "its base64 does not decode to text".to_owned())?
    };
    let kubeconfig = Kubeconfig::from_yaml(&yaml).map_err(|e| crate::error::render_chain(&e))?;
    if kubeconfig.clusters.is_empty() {
        return Err("it has no clusters".into());
    }
    Ok(kubeconfig)
}

fn on_path(command: &str) -> bool {
    if command.contains('/') {
        return Path::new(command).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(command).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n\
        contexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\n    namespace: prod\ncurrent-context: ctx\n\
        users:\n- name: u\n  user:\n    token: t\n";

    /// YAML and base64 of YAML are both taken.
    #[test]
    fn yaml_or_base64() {
        assert!(parse(CONFIG).is_ok());
        let b64 = base64::engine::general_purpose::STANDARD.encode(CONFIG);
        assert!(parse(&b64).is_ok());
        // CI secrets often wrap base64 lines.
        let wrapped: String = b64
            .as_bytes()
            .chunks(60)
            .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
            .collect();
        assert!(parse(&wrapped).is_ok());
    }

    /// Garbage is refused with a reason that never quotes it.
    #[test]
    fn garbage_is_refused() {
        for bad in ["%%% not base64", "aGVsbG8=", "apiVersion: v1\nkind: Config\n"] {
            let e = parse(bad).unwrap_err();
            assert!(!e.contains("%%%"), "{e}");
        }
    }
}
