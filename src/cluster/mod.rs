//! Access to the cluster. The kubeconfig ([`kubeconfig`]) or the in-cluster service account
//! gives a client; the namespace is the `namespace` input, else the context's, else the
//! service account's, else `default`. Every request the client sends is bounded (connect
//! 10 s, an answer within 30 s; callers bound it further by their deadline, see [`api`]),
//! names itself `kubeship/<version>`, and every credential in the configuration is registered
//! for redaction before anything can print it.
//!
//! An EKS, GKE or AKS exec plugin that is not installed, and the `cluster` input, are the
//! [`cloud`] module's: it mints the token, and a layer around kube's client sends it.

pub mod access;
pub mod api;
pub mod client;
pub mod cloud;
pub mod kubeconfig;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use api::{ApiError, call};

/// Why the cluster cannot be used from this configuration. All are exit 2: nothing was sent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{source_} is not a usable kubeconfig: {}. Give the kubeconfig file's YAML, or base64 of it",
        .detail.trim_end_matches('.')
    )]
    Kubeconfig { source_: String, detail: String },
    #[error("{variable} names {paths}, which {problem}: {hint}")]
    KubeconfigPath {
        variable: &'static str,
        paths: String,
        problem: &'static str,
        hint: &'static str,
    },
    #[error(
        "no cluster credentials: give the kubeconfig input, set KUBECONFIG, or run in a pod with a service account"
    )]
    Missing,
    #[error("{source_} {problem}: set the context input to one of: {available}")]
    Context { source_: String, problem: String, available: String },
    #[error(
        "the kubeconfig authenticates with the exec plugin {command:?}, which is not on PATH and \
         which kubeship cannot stand in for (it does for aws eks get-token, aws-iam-authenticator, \
         gke-gcloud-auth-plugin and kubelogin). kubeship's image holds no other program: give a \
         kubeconfig with a token instead (one a step before made, e.g. with kubectl create \
         token), or, with docker run, mount a static build of the plugin and put it on PATH"
    )]
    ExecPluginMissing { command: String },
    /// The cloud login that stands in for an exec plugin or serves the `cluster` input: exit 2
    /// for its configuration, exit 4 when the cloud refused or could not be reached.
    #[error(transparent)]
    Cloud(#[from] cloud::Error),
    #[error("the in-cluster service account cannot be used: {0}")]
    InCluster(String),
    #[error("the kubeconfig's cluster settings cannot be used: {0}")]
    Client(String),
    /// Exit 4: the credentials could not be obtained (an exec plugin failed).
    #[error("{0}")]
    Authentication(String),
}

impl Error {
    /// Exit 2 for configuration; exit 4 when authenticating failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Authentication(_) => 4,
            Self::Cloud(e) => e.exit_code(),
            _ => 2,
        }
    }
}

/// Where the kubeconfig comes from, as the inputs and environment say.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// The `kubeconfig` input: it holds credentials, so its `Debug` is redacted.
    pub kubeconfig: Option<secrecy::SecretString>,
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
    /// `https://host:port`, for messages.
    pub server: String,
    /// Who kubeship authenticated as, when it minted a cloud token itself.
    pub identity: Option<cloud::IdentityCell>,
}

/// No answer to a request within this is a failure (the contract's "Bounded, always").
pub const ANSWER_WITHIN: Duration = Duration::from_secs(30);
const CONNECT_WITHIN: Duration = Duration::from_secs(10);
const USER_AGENT: &str = concat!("kubeship/", env!("CARGO_PKG_VERSION"));

/// The part of the cluster's configuration that is on this machine: the kubeconfig (or the
/// in-cluster files) read and checked, and its secrets masked. `None` under the `cluster`
/// input, where the cloud describes the cluster during [`connect`].
pub struct Configured {
    config: Option<kube::Config>,
    /// To be said once, as warnings: `insecure-skip-tls-verify`, a token over plain HTTP.
    pub warnings: Vec<String>,
}

/// Reads the configuration. Sends nothing, so a kubeconfig mistake is reported before any
/// request, and its secrets are masked before anything is printed.
///
/// # Errors
/// Configuration errors (exit 2).
pub async fn configure(access: &Access) -> Result<Configured, Error> {
    crate::tls::install_crypto_provider();
    if access.cloud.cluster.is_some() {
        // The cloud gives an https endpoint and its CA.
        return Ok(Configured { config: None, warnings: Vec::new() });
    }
    let config = configured(access).await?;
    // A plugin that is neither installed nor stood in for is a configuration mistake.
    if let Some(exec) = &config.auth_info.exec
        && let Some(command) = &exec.command
        && !on_path(command)
        && cloud::recognise(command, exec.args.as_deref().unwrap_or_default()).is_none()
    {
        return Err(Error::ExecPluginMissing { command: command.clone() });
    }
    Ok(Configured { warnings: risks(&config), config: Some(config) })
}

/// Builds the client. Sends nothing to the cluster; a cloud login mints its first token here
/// (and the `cluster` input asks the cloud where the cluster is), and an installed exec plugin
/// runs, within `limit`.
///
/// # Errors
/// Every [`Error`]: a cloud's refusal (exit 4), a client that cannot be built.
pub async fn connect(
    access: &Access,
    Configured { config: local, .. }: Configured,
    limit: Duration,
) -> Result<Cluster, Error> {
    let mut login = None;
    // A cloud login chains requests (an identity token, an exchange, the cluster's
    // description), each bounded on its own; together they get the same `limit`.
    let within = |what: &'static str| {
        move |_| {
            Error::Cloud(cloud::Error::Unreachable {
                service: what.into(),
                detail: format!(
                    "no complete answer within {}s (the run's timeout, at most 30s): check \
                     that the cloud's endpoints are reachable from the runner (a proxy, a \
                     firewall, an endpoint override)",
                    limit.as_secs().max(1)
                ),
            })
        }
    };
    let mut config = match (local, &access.cloud.cluster) {
        (Some(config), _) => config,
        (None, Some(cluster)) => {
            let (located, started) =
                tokio::time::timeout(limit, cloud::for_cluster(cluster, &access.cloud))
                    .await
                    .map_err(within("the cloud login for the cluster input"))??;
            login = Some(started);
            located_config(&located)?
        }
        // Not read by `configure` (which always reads it when there is no `cluster` input).
        (None, None) => configured(access).await?,
    };
    if let Some(exec) = config.auth_info.exec.clone()
        && let Some(command) = exec.command.clone()
        && !on_path(&command)
    {
        let args = exec.args.clone().unwrap_or_default();
        let Some(plugin) = cloud::recognise(&command, &args) else {
            return Err(Error::ExecPluginMissing { command });
        };
        let env: Vec<(String, String)> = exec
            .env
            .iter()
            .flatten()
            .filter_map(|e| Some((e.get("name")?.clone(), e.get("value")?.clone())))
            .collect();
        login = Some(
            tokio::time::timeout(limit, cloud::for_plugin(&plugin, &access.cloud, &env))
                .await
                .map_err(within("the cloud login that stands in for the exec plugin"))??,
        );
        // kube's own exec would run the missing binary: the bearer layer sends the token instead.
        config.auth_info.exec = None;
    }
    if let Some(exec) = config.auth_info.exec.as_mut() {
        // An exec plugin inherits the environment; kubeship's own inputs (the registry
        // password, the kubeconfig) are none of its business.
        exec.drop_env = Some(own_variables());
    }
    finish(access, config, login, limit).await
}

/// The kubeconfig's configuration, or the in-cluster one.
async fn configured(access: &Access) -> Result<kube::Config, Error> {
    Ok(match kubeconfig::load(access)? {
        Some(loaded) => {
            let options = kubeconfig::options(&loaded, access.context.as_deref())?;
            register_secrets(&loaded.kubeconfig);
            let config = kube::Config::from_custom_kubeconfig(loaded.kubeconfig, &options)
                .await
                .map_err(|e| Error::Kubeconfig {
                    source_: loaded.source.clone(),
                    detail: crate::error::render_chain(&e),
                })?;
            // kube reads a CA with no PEM block in it as no CA at all, and every request then
            // fails on an "unknown issuer" that points away from the mistake.
            if config.root_cert.as_ref().is_some_and(Vec::is_empty) {
                return Err(Error::Client(format!(
                    "the certificate-authority(-data) of {} holds no PEM certificate: give the \
                     base64 of the CA's PEM file, as `kubectl config view --raw` shows it",
                    loaded.source
                )));
            }
            config
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
        .map_err(|_| bad("its cluster endpoint is not a URL".into()))?;
    if url.scheme_str() == Some("http") {
        // Only an endpoint override can lead here; the token would travel in the clear.
        crate::log::warn(format_args!(
            "the cloud gave the cluster endpoint {} over plain HTTP: the token is sent \
             unencrypted; check the cloud endpoint settings",
            located.server
        ));
    }
    let mut config = kube::Config::new(url);
    if let Some(pem) = &located.ca_pem {
        let certs = crate::tls::parse_pem_certificates(pem)
            .map_err(|e| bad(format!("the cluster's CA {e}")))?;
        config.root_cert = Some(certs);
    }
    Ok(config)
}

fn server_of(config: &kube::Config) -> String {
    config.cluster_url.to_string().trim_end_matches('/').to_owned()
}

/// What a kubeconfig risks, said before anything is sent: `insecure-skip-tls-verify`, and
/// credentials over plain HTTP.
fn risks(config: &kube::Config) -> Vec<String> {
    let mut warnings = Vec::new();
    if config.accept_invalid_certs {
        warnings.push(
            "the kubeconfig sets insecure-skip-tls-verify: the API server's identity is not checked; \
             give its CA (certificate-authority-data) instead"
                .to_owned(),
        );
    }
    // An exec plugin kubeship stands in for sends a token too.
    let sends_credentials = config.auth_info.token.is_some()
        || config.auth_info.token_file.is_some()
        || config.auth_info.exec.is_some()
        || config.auth_info.password.is_some();
    if config.cluster_url.scheme_str() == Some("http") && sends_credentials {
        // kubectl refuses to send a token over plain HTTP; kube-rs sends it. Say so.
        warnings.push(format!(
            "the kubeconfig sends credentials to {} over plain HTTP, where anyone on the \
             path can read them: use the API server's https address",
            server_of(config)
        ));
    }
    warnings
}

/// The client for `config`, with the cloud login's bearer layer when there is one; an exec
/// plugin gets `limit` to answer.
async fn finish(
    access: &Access,
    mut config: kube::Config,
    login: Option<cloud::Login>,
    limit: Duration,
) -> Result<Cluster, Error> {
    let server = server_of(&config);
    config.connect_timeout = Some(CONNECT_WITHIN);
    config.headers.push((http::header::USER_AGENT, http::HeaderValue::from_static(USER_AGENT)));
    let namespace = access.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    if let Some(login) = &login {
        crate::log::info(&login.note);
    }
    let bearer = cloud::BearerLayer::new(login.as_ref().map(|l| l.cache.clone()));
    // kube runs an installed exec plugin as it builds the client, and waits for it without a
    // limit: on a thread of its own, so that a plugin that hangs (a login prompt no one will
    // answer) is given up on in time, and a signal still ends the run.
    let builder = if config.auth_info.exec.is_none() {
        // Nothing to wait for: no thread for it.
        Ok(Ok(client::builder(config)))
    } else {
        PLUGIN_STARTED.store(true, std::sync::atomic::Ordering::Relaxed);
        let built = tokio::task::spawn_blocking(move || client::builder(config));
        tokio::time::timeout(limit, built).await
    };
    let builder = match builder {
        Err(_) => {
            end_descendants();
            return Err(Error::Authentication(format!(
                "the kubeconfig's exec plugin gave no credentials within {}s (a login that waits \
                 for a person cannot work in CI): give it credentials it can use without one",
                limit.as_secs().max(1)
            )));
        }
        Ok(Err(e)) => return Err(Error::Client(e.to_string())),
        Ok(Ok(built)) => built,
    };
    let client = builder
        .map_err(|e| match &e {
            // kube's error for a failed plugin holds its command line and output.
            kube::Error::Auth(auth) => Error::Authentication(api::auth_failure(auth)),
            other => Error::Client(crate::error::render_chain(other)),
        })?
        .with_layer(&bearer)
        .with_layer(&tower::timeout::TimeoutLayer::new(ANSWER_WITHIN))
        .build();
    let identity = login.map(|l| l.identity);
    Ok(Cluster { client, namespace, server, identity })
}

/// Whether kube may have started an exec plugin (as the client was built, or on a refresh).
static PLUGIN_STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// At the end of a run: ends an exec plugin still running (one given up on, one the run
/// stopped waiting for when the registry failed first or a signal came, one refreshing a
/// token), and what it started. Outside a container it would otherwise outlive the run.
pub fn end_plugins() {
    if PLUGIN_STARTED.load(std::sync::atomic::Ordering::Relaxed) {
        end_descendants();
    }
}

/// Ends the processes this one started, and theirs (kube runs an exec plugin with
/// `Command::output`, which leaves no handle to kill it by).
fn end_descendants() {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else { return };
    let mut parents = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // `pid (comm) state ppid …`: comm may hold spaces and parentheses; ppid comes after
        // the last ')'.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.push((pid, ppid));
        }
    }
    let mut tree = vec![me];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        let children: Vec<u32> = parents
            .iter()
            .filter(|(pid, pp)| *pp == parent && !tree.contains(pid))
            .map(|(pid, _)| *pid)
            .collect();
        tree.extend(children);
        i += 1;
    }
    for pid in tree.into_iter().skip(1) {
        if let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }
}

/// Every credential of the kubeconfig, registered for redaction before anything can print it:
/// the users' tokens, passwords and keys, auth-provider tokens, and every exec plugin's
/// environment values and secret-looking arguments (`--token=…`, `--client-secret x`).
fn register_secrets(kubeconfig: &kube::config::Kubeconfig) {
    use secrecy::ExposeSecret as _;
    for named in &kubeconfig.auth_infos {
        let Some(user) = &named.auth_info else { continue };
        for secret in [&user.token, &user.password, &user.client_key_data].into_iter().flatten() {
            crate::log::secret(secret.expose_secret());
        }
        if let (Some(username), Some(password)) = (&user.username, &user.password) {
            crate::log::basic_credentials(username, password.expose_secret());
        }
        let provider = user.auth_provider.as_ref().map(|p| &p.config);
        for (key, value) in provider.into_iter().flatten() {
            if secret_name(key) {
                crate::log::secret(value);
            }
        }
        let Some(exec) = &user.exec else { continue };
        for env in exec.env.iter().flatten() {
            let name = env.get("name").map_or("", String::as_str);
            match env.get("value") {
                Some(value) if !NOT_SECRET_ENV.contains(&name) => crate::log::secret(value),
                _ => {}
            }
        }
        let mut after_secret_flag = false;
        for arg in exec.args.iter().flatten() {
            match arg.split_once('=') {
                Some((flag, value)) if secret_name(flag) => crate::log::secret(value),
                _ if after_secret_flag => crate::log::secret(arg),
                _ => {}
            }
            after_secret_flag = arg.starts_with('-') && !arg.contains('=') && secret_name(arg);
        }
    }
}

/// Names of settings and flags that hold secrets.
fn secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["token", "secret", "password", "key", "credential"].iter().any(|w| name.contains(w))
}

/// Settings that the clouds' `get-credentials` commands write into an exec plugin's
/// environment and that hold no secret: masking `AWS_PROFILE=default` would star out every
/// `default` in the log. Every other environment value is masked, whatever its name.
/// (Under Actions a mask lasts for the whole job, every later step included.)
const NOT_SECRET_ENV: &[&str] = &[
    "HOME",
    "PATH",
    "KUBECONFIG",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_DEFAULT_OUTPUT",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AAD_LOGIN_METHOD",
    "AAD_SERVICE_PRINCIPAL_CLIENT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_AUTHORITY_HOST",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_CONFIG_DIR",
    "CLOUDSDK_CONFIG",
    "CLOUDSDK_CORE_PROJECT",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "USE_GKE_GCLOUD_AUTH_PLUGIN",
];

/// The variables that hold kubeship's inputs: `INPUT_*` and `KUBESHIP_*`.
fn own_variables() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with("INPUT_") || name.starts_with("KUBESHIP_"))
        .collect()
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

    /// A CA that holds no certificate is a kubeconfig error before any request, not an
    /// "unknown issuer" on the first one.
    #[tokio::test]
    async fn a_ca_without_certificates_is_named() {
        let config = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    \
                      server: https://127.0.0.1:9\n    certificate-authority-data: bm90IGEgY2VydA==\n\
                      users:\n- name: u\n  user:\n    token: t0k3n-value\ncontexts:\n- name: x\n  \
                      context: {cluster: c, user: u}\ncurrent-context: x\n";
        let access = Access { kubeconfig: Some(config.into()), ..Access::default() };
        let e = configure(&access).await.err().expect("refused");
        let text = e.to_string();
        assert!(text.contains("holds no PEM certificate") && text.contains("kubeconfig"), "{text}");
        assert_eq!(e.exit_code(), 2, "{text}");
    }

    /// Exec plugin secrets are registered whatever form they take; ordinary arguments are not.
    #[test]
    fn exec_plugin_secrets_are_registered() {
        let config = kubeconfig::parse(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://x\n\
             users:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      \
             command: helper\n      args: [get-token, --token=arg-s3cret-1, --client-secret, arg-s3cret-2, --region, us-east-1]\n      \
             env:\n      - name: AWS_SECRET_ACCESS_KEY\n        value: env-s3cret-3\n      \
             - name: VENDOR_OPAQUE\n        value: plain-words\n      \
             - name: AWS_PROFILE\n        value: deploy-role\n",
        )
        .expect("parses");
        register_secrets(&config);
        let text = crate::log::redact(
            "arg-s3cret-1 arg-s3cret-2 env-s3cret-3 plain-words us-east-1 get-token deploy-role",
        );
        assert_eq!(text, "*** *** *** *** us-east-1 get-token deploy-role");
    }
}
