//! Stage 1: the inputs. [`raw`] reads the three variable forms of each input as strings;
//! [`Inputs::from_vars`] turns them into checked values, so that every later stage works with
//! types that cannot hold a malformed value. Any error here is exit 2, before a single request.

pub mod parse;
pub mod raw;

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

pub use parse::{Kind, Target};
pub use raw::{INPUTS, InputSpec};

use crate::registry::{ImageRef, reference};

/// An input that cannot be used. Each names the input and the variable it came from.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required input is unset or empty.
    #[error("input {input} is required: set {}", variables_of(input))]
    Missing { input: &'static str },
    /// Two variables of one input disagree.
    #[error("input {input} is set twice with different values, by {first} and {second}: keep one")]
    Conflict { input: &'static str, first: String, second: String },
    /// A value that breaks the input's grammar.
    #[error("input {input} ({variable}): {value:?} {reason}")]
    Invalid { input: &'static str, variable: String, value: String, reason: String },
    /// Inputs that cannot be combined.
    #[error("{0}")]
    Combination(String),
    /// A kubeship bug in the input table.
    #[error("internal error reading inputs: {0}")]
    Internal(String),
}

fn variables_of(input: &str) -> String {
    INPUTS.iter().find(|s| s.name == input).map(|s| s.variables().join(" or ")).unwrap_or_default()
}

/// The registry-facing inputs. The password is a [`SecretString`]: `Debug` redacts it.
#[derive(Debug, Clone)]
pub struct RegistryInputs {
    /// `registry-username` and `registry-password`, both or neither.
    pub credentials: Option<(String, SecretString)>,
    /// `registry-ca`, DER certificates.
    pub extra_ca: Vec<Vec<u8>>,
    pub insecure: bool,
    pub tag_timeout: Duration,
    /// Where the docker config lives: `$DOCKER_CONFIG`, else `~/.docker`.
    pub docker_config_dir: Option<PathBuf>,
}

/// Every input, checked.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub image: ImageRef,
    pub digest: Option<String>,
    pub targets: Vec<Target>,
    pub containers: Vec<String>,
    /// `namespace`, `kubeconfig`, `context`, and where else a kubeconfig may be.
    pub cluster: crate::cluster::Access,
    pub registry: RegistryInputs,
    /// Under GitHub Actions: the run, for the change cause.
    pub github: Option<GithubRun>,
    pub wait: bool,
    pub timeout: Duration,
    pub fail_fast: bool,
    pub max_restarts: u32,
    pub rollback_on_failure: bool,
    pub dry_run: bool,
    /// `$GITHUB_OUTPUT`, `$GITHUB_STEP_SUMMARY`, `dotenv-file` and `results-dir`.
    pub outputs: crate::report::files::Destinations,
}

/// The GitHub Actions run that deploys, named in the change cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubRun {
    /// `owner/repo`.
    pub repository: String,
    /// The commit.
    pub sha: String,
    /// The run's URL.
    pub url: String,
}

/// Longest value kubeship takes for any input but `kubeconfig` and `registry-ca`: a larger
/// one is a mistake (a file pasted into the wrong input), not data.
const MAX_VALUE: usize = 4096;

impl Inputs {
    /// Reads and checks every input from `(variable, value)` pairs: the process environment in
    /// `main`, a literal list in tests. `DOCKER_CONFIG` and `HOME` locate the docker config.
    ///
    /// # Errors
    /// The first [`Error`] found, in the contract's input order.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let vars: Vec<(String, String)> =
            vars.into_iter().map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned())).collect();
        let env = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let (raw, sources) = raw::read(vars.iter().map(|(k, v)| (k, v)))?;
        let invalid = |input: &'static str, value: &str, reason: String| Error::Invalid {
            input,
            variable: sources.get(input).cloned().unwrap_or_default(),
            value: shorten(value),
            reason,
        };
        let text = |input: &'static str, value: Option<String>| -> Result<Option<String>, Error> {
            match value.map(|v| v.trim().to_owned()) {
                Some(v) if v.len() > MAX_VALUE => {
                    Err(invalid(input, &v, format!("is longer than {MAX_VALUE} bytes")))
                }
                Some(v)
                    if v.chars().any(char::is_control)
                        && input != "deployment"
                        && input != "container" =>
                {
                    Err(invalid(input, &v, "contains a control character (a newline?)".into()))
                }
                other => Ok(other),
            }
        };
        let required = |input: &'static str, value: Option<String>| {
            text(input, value)?.ok_or(Error::Missing { input })
        };
        let boolean = |input: &'static str, value: Option<String>, default: bool| {
            text(input, value)?
                .map(|v| parse::boolean(&v).map_err(|r| invalid(input, &v, r)))
                .transpose()
                .map(|b| b.unwrap_or(default))
        };
        let duration = |input: &'static str, value: Option<String>, default: u64| {
            text(input, value)?
                .map(|v| parse::duration(&v).map_err(|r| invalid(input, &v, r)))
                .transpose()
                .map(|d| d.unwrap_or(Duration::from_secs(default)))
        };

        let image_text = required("image", raw.image)?;
        let image =
            ImageRef::parse(&image_text).map_err(|e| invalid("image", &image_text, e.reason))?;
        let digest = text("digest", raw.digest)?
            .map(|d| {
                reference::validate_digest(&d)
                    .map(|()| d.clone())
                    .map_err(|e| invalid("digest", &d, e.reason))
            })
            .transpose()?;
        if let (Some(named), Some(given)) = (image.digest(), &digest)
            && named != given
        {
            return Err(Error::Combination(format!(
                "image names digest {named} and digest is {given}: they must agree; give the \
                 digest in one of the two, or make them the same"
            )));
        }

        let deployment = required("deployment", raw.deployment)?;
        let mut targets = Vec::new();
        for item in parse::list(&deployment) {
            let target = parse::target(&item).map_err(|r| invalid("deployment", &item, r))?;
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
        if targets.is_empty() {
            return Err(invalid("deployment", &deployment, "names no target".into()));
        }
        let mut containers = Vec::new();
        for name in parse::list(&text("container", raw.container)?.unwrap_or_default()) {
            parse::dns_label(&name).map_err(|r| invalid("container", &name, r))?;
            if !containers.contains(&name) {
                containers.push(name);
            }
        }
        let namespace = text("namespace", raw.namespace)?;
        if let Some(ns) = &namespace {
            parse::dns_label(ns).map_err(|r| invalid("namespace", ns, r))?;
        }
        let context = text("context", raw.context)?;
        let cloud_cluster = text("cluster", raw.cluster)?
            .map(|c| {
                crate::cluster::cloud::ClusterRef::parse(&c).map_err(|r| invalid("cluster", &c, r))
            })
            .transpose()?;
        if cloud_cluster.is_some() && (raw.kubeconfig.is_some() || context.is_some()) {
            return Err(Error::Combination(
                "cluster names a managed cluster, and kubeconfig or context names another: give one"
                    .into(),
            ));
        }
        // The cloud inputs' shapes are checked here: a malformed one would otherwise go to the
        // cloud and come back as a refusal that names something else.
        let aws_role_arn = text("aws-role-arn", raw.aws_role_arn)?;
        if let Some(arn) = &aws_role_arn {
            parse::role_arn(arn).map_err(|r| invalid("aws-role-arn", arn, r))?;
        }
        let provider = text("gcp-workload-identity-provider", raw.gcp_workload_identity_provider)?
            .map(|p| {
                parse::workload_identity_provider(&p)
                    .map_err(|r| invalid("gcp-workload-identity-provider", &p, r))
            })
            .transpose()?;
        let service_account = text("gcp-service-account", raw.gcp_service_account)?;
        if let Some(account) = &service_account {
            parse::service_account(account)
                .map_err(|r| invalid("gcp-service-account", account, r))?;
        }
        let client_id = text("azure-client-id", raw.azure_client_id)?;
        if let Some(id) = client_id.as_ref().filter(|id| !crate::cluster::cloud::guid(id)) {
            return Err(invalid(
                "azure-client-id",
                id,
                "is not an application (client) id: a GUID, as the Entra ID app registration \
                 shows it"
                    .into(),
            ));
        }
        let tenant_id = text("azure-tenant-id", raw.azure_tenant_id)?;
        if let Some(id) =
            tenant_id.as_ref().filter(|id| !crate::cluster::cloud::guid(id) && !id.contains('.'))
        {
            return Err(invalid(
                "azure-tenant-id",
                id,
                "is not a tenant: a GUID or the tenant's domain (contoso.onmicrosoft.com)".into(),
            ));
        }
        let cloud = crate::cluster::cloud::Settings {
            cluster: cloud_cluster,
            aws_role_arn,
            gcp: crate::cluster::cloud::gcp::Inputs {
                workload_identity_provider: provider,
                service_account,
            },
            azure: crate::cluster::cloud::azure::Inputs { client_id, tenant_id },
            env: crate::cluster::cloud::Env::from_vars(vars.iter().map(|(k, v)| (k, v))),
        };

        let username = text("registry-username", raw.registry_username)?;
        let password = raw.registry_password.filter(|p| !p.expose_secret().is_empty());
        let credentials = match (username, password) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(Error::Combination(
                    "registry-username is set but registry-password is not: give both, or neither \
                     to use the docker config"
                        .into(),
                ));
            }
            (None, Some(_)) => {
                return Err(Error::Combination(
                    "registry-password is set but registry-username is not: give both (any user \
                     name works for token-only registries such as GHCR)"
                        .into(),
                ));
            }
        };
        let extra_ca = match raw.registry_ca.filter(|c| !c.trim().is_empty()) {
            None => Vec::new(),
            Some(ca) => read_ca(&ca).map_err(|r| invalid("registry-ca", &ca, r))?,
        };
        let docker_config_dir =
            env("DOCKER_CONFIG").filter(|d| !d.is_empty()).map(PathBuf::from).or_else(|| {
                env("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".docker"))
            });

        let max_restarts = match text("max-restarts", raw.max_restarts)? {
            None => 2,
            Some(v) => v.parse::<u32>().map_err(|_| {
                invalid("max-restarts", &v, "is not a whole number of restarts (0 or more)".into())
            })?,
        };
        let path = |input: &'static str, value: Option<String>| -> Result<Option<PathBuf>, Error> {
            Ok(text(input, value)?.map(PathBuf::from))
        };

        let home = env("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        let kubeconfig_paths = env("KUBECONFIG")
            .map(|list| list.split(':').filter(|p| !p.is_empty()).map(PathBuf::from).collect())
            .unwrap_or_default();
        let github = match (env("GITHUB_REPOSITORY"), env("GITHUB_SHA"), env("GITHUB_RUN_ID")) {
            (Some(repository), Some(sha), Some(run)) if !repository.is_empty() => {
                let server =
                    env("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into());
                let url = format!("{server}/{repository}/actions/runs/{run}");
                Some(GithubRun { repository, sha, url })
            }
            _ => None,
        };
        Ok(Self {
            image,
            digest,
            targets,
            containers,
            cluster: crate::cluster::Access {
                kubeconfig: raw.kubeconfig.filter(|k| !k.expose_secret().trim().is_empty()),
                context,
                namespace,
                kubeconfig_paths,
                home,
                cloud,
            },
            github,
            registry: RegistryInputs {
                credentials,
                extra_ca,
                insecure: boolean("insecure-registry", raw.insecure_registry, false)?,
                tag_timeout: duration("tag-timeout", raw.tag_timeout, 60)?,
                docker_config_dir,
            },
            wait: boolean("wait", raw.wait, true)?,
            timeout: duration("timeout", raw.timeout, 300)?,
            fail_fast: boolean("fail-fast", raw.fail_fast, true)?,
            max_restarts,
            rollback_on_failure: boolean("rollback-on-failure", raw.rollback_on_failure, false)?,
            dry_run: boolean("dry-run", raw.dry_run, false)?,
            outputs: crate::report::files::Destinations {
                github_output: env("GITHUB_OUTPUT").filter(|p| !p.is_empty()).map(PathBuf::from),
                step_summary: env("GITHUB_STEP_SUMMARY")
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from),
                dotenv_file: path("dotenv-file", raw.dotenv_file)?,
                results_dir: path("results-dir", raw.results_dir)?,
            },
        })
    }
}

/// `registry-ca` is PEM content, or a path to a PEM file.
fn read_ca(value: &str) -> Result<Vec<Vec<u8>>, String> {
    if value.contains("-----BEGIN") {
        return crate::tls::parse_pem_certificates(value);
    }
    let path = value.trim();
    let pem = std::fs::read_to_string(path)
        .map_err(|e| format!("is neither PEM content nor a readable file ({e})"))?;
    crate::tls::parse_pem_certificates(&pem).map_err(|r| format!("names a file that {r}"))
}

/// Values are quoted in messages; a pasted file would drown the message, and a secret might
/// sit in a long value, so only the start is shown.
fn shorten(value: &str) -> String {
    const SHOWN: usize = 80;
    if value.chars().count() <= SHOWN {
        return value.to_owned();
    }
    let start: String = value.chars().take(SHOWN).collect();
    format!("{start}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(vars: &[(&str, &str)]) -> Result<Inputs, Error> {
        Inputs::from_vars(vars.iter().copied())
    }

    const MINIMAL: [(&str, &str); 2] =
        [("INPUT_IMAGE", "ghcr.io/acme/api:v1"), ("INPUT_DEPLOYMENT", "api")];

    /// The contract's defaults apply when only the required inputs are given.
    #[test]
    fn defaults_of_the_contract() {
        let i = inputs(&MINIMAL).expect("valid");
        assert_eq!(i.registry.tag_timeout, Duration::from_secs(60));
        assert_eq!(i.timeout, Duration::from_secs(300));
        assert!(
            i.wait && i.fail_fast && !i.rollback_on_failure && !i.dry_run && !i.registry.insecure
        );
        assert_eq!(i.max_restarts, 2);
        assert_eq!(i.targets, [Target { kind: Kind::Deployment, name: "api".into() }]);
        assert!(i.containers.is_empty() && i.cluster.namespace.is_none() && i.digest.is_none());
    }

    /// Missing required inputs name every variable that would set them.
    #[test]
    fn missing_inputs_name_their_variables() {
        let e = inputs(&[("INPUT_DEPLOYMENT", "api")]).unwrap_err().to_string();
        assert!(e.contains("INPUT_IMAGE") && e.contains("KUBESHIP_IMAGE"), "{e}");
        let e =
            inputs(&[("INPUT_IMAGE", "a:1"), ("INPUT_DEPLOYMENT", "")]).unwrap_err().to_string();
        assert!(e.contains("deployment is required"), "{e}");
    }

    /// Malformed values are exit-2 errors naming the input and the variable it came from.
    #[test]
    fn invalid_values_name_input_and_variable() {
        let cases: &[(&str, &str, &str)] = &[
            ("INPUT_IMAGE", "Ghcr.io/Acme:v1", "lowercase"),
            ("INPUT_DIGEST", "sha256:123", "hex digits"),
            ("INPUT_TAG-TIMEOUT", "5x", "not a duration"),
            ("KUBESHIP_TIMEOUT", "0", "longer than zero"),
            ("INPUT_WAIT", "maybe", "not a boolean"),
            ("INPUT_INSECURE_REGISTRY", "2", "not a boolean"),
            ("INPUT_MAX-RESTARTS", "-1", "whole number"),
            ("INPUT_NAMESPACE", "Prod", "not a valid name"),
            ("INPUT_CONTAINER", "app,Web", "not a valid name"),
            ("INPUT_REGISTRY-CA", "/nonexistent/ca.pem", "neither PEM"),
            (
                "INPUT_REGISTRY-CA",
                "-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----",
                "X.509",
            ),
            ("INPUT_CONTEXT", "a\u{7}b", "control character"),
            ("INPUT_AWS-ROLE-ARN", "deploy", "not an IAM role's ARN"),
            ("INPUT_AWS-ROLE-ARN", "arn:aws:iam::123:role/deploy", "12-digit account"),
            ("INPUT_GCP-WORKLOAD-IDENTITY-PROVIDER", "github/acme", "project number"),
            (
                "INPUT_GCP-WORKLOAD-IDENTITY-PROVIDER",
                "projects/acme-prod/locations/global/workloadIdentityPools/gh/providers/gh",
                "not its name",
            ),
            ("INPUT_GCP-SERVICE-ACCOUNT", "deployer", "e-mail address"),
            ("INPUT_CLUSTER", "eks:prod/us-west-2", "write eks:us-west-2/prod"),
            ("INPUT_AZURE-CLIENT-ID", "my-app", "a GUID"),
            ("INPUT_AZURE-TENANT-ID", "contoso", "tenant's domain"),
        ];
        for &(var, value, why) in cases {
            let mut vars = MINIMAL.to_vec();
            vars.retain(|(k, _)| !var.ends_with(&k[6..]));
            vars.push((var, value));
            let e = inputs(&vars).expect_err(var).to_string();
            assert!(e.contains(var) && e.contains(why), "{var}={value:?}: {e}");
        }
    }

    /// Targets are deduplicated, kinds resolved, bad entries quoted.
    #[test]
    fn target_lists() {
        let mut vars = MINIMAL.to_vec();
        vars[1] = ("INPUT_DEPLOYMENT", "api, sts/db\nds/agent,api");
        let i = inputs(&vars).expect("valid");
        let kinds: Vec<Kind> = i.targets.iter().map(|t| t.kind).collect();
        assert_eq!(kinds, [Kind::Deployment, Kind::StatefulSet, Kind::DaemonSet]);
        vars[1] = ("INPUT_DEPLOYMENT", " , ");
        assert!(inputs(&vars).unwrap_err().to_string().contains("names no target"));
        vars[1] = ("INPUT_DEPLOYMENT", "cronjob/x");
        assert!(inputs(&vars).unwrap_err().to_string().contains("cronjob"));
    }

    /// Credentials come in pairs.
    #[test]
    fn credentials_come_in_pairs() {
        let mut vars = MINIMAL.to_vec();
        vars.push(("INPUT_REGISTRY-USERNAME", "bob"));
        assert!(inputs(&vars).unwrap_err().to_string().contains("registry-password is not"));
        vars.push(("INPUT_REGISTRY-PASSWORD", "pw"));
        let i = inputs(&vars).expect("valid");
        let (user, password) = i.registry.credentials.expect("credentials");
        assert_eq!((user.as_str(), password.expose_secret()), ("bob", "pw"));
    }

    /// No Debug of the inputs shows the registry password or the kubeconfig.
    #[test]
    fn debug_hides_the_secrets() {
        let mut vars = MINIMAL.to_vec();
        vars.push(("INPUT_REGISTRY-USERNAME", "bob"));
        vars.push(("INPUT_REGISTRY-PASSWORD", "hunter2-s3cret"));
        vars.push(("INPUT_KUBECONFIG", "apiVersion: v1\nusers:\n- user:\n    token: kube-t0ken\n"));
        let i = inputs(&vars).expect("valid");
        for shown in [format!("{i:?}"), format!("{i:#?}"), format!("{:?}", i.registry)] {
            assert!(!shown.contains("hunter2") && !shown.contains("kube-t0ken"), "{shown}");
            assert!(shown.contains("bob"), "the rest is still shown: {shown}");
        }
        assert!(!format!("{:?}", i.cluster).contains("kube-t0ken"));
        let (raw, _) = raw::read(vars.iter().copied()).expect("reads");
        let raw = format!("{raw:?}");
        assert!(!raw.contains("hunter2") && !raw.contains("kube-t0ken"), "{raw}");
    }

    /// An image pinned by digest and a different digest input are an input conflict (exit 2),
    /// found before any request; the same digest twice is fine.
    #[test]
    fn image_digest_and_digest_input_must_agree() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let image = format!("ghcr.io/acme/api@{a}");
        let vars = |digest: &str| {
            vec![
                ("INPUT_IMAGE", image.clone()),
                ("INPUT_DEPLOYMENT", "api".into()),
                ("INPUT_DIGEST", digest.to_owned()),
            ]
        };
        let error = Inputs::from_vars(vars(&b)).expect_err("conflict");
        assert!(matches!(error, Error::Combination(_)), "{error:?}");
        let text = error.to_string();
        assert!(text.contains(&a) && text.contains(&b), "{text}");
        assert!(Inputs::from_vars(vars(&a)).is_ok());
    }

    /// The docker config directory: DOCKER_CONFIG, else ~/.docker.
    #[test]
    fn docker_config_location() {
        let mut vars = MINIMAL.to_vec();
        vars.push(("HOME", "/home/ci"));
        assert_eq!(
            inputs(&vars).expect("ok").registry.docker_config_dir,
            Some("/home/ci/.docker".into())
        );
        vars.push(("DOCKER_CONFIG", "/cfg"));
        assert_eq!(inputs(&vars).expect("ok").registry.docker_config_dir, Some("/cfg".into()));
    }

    /// The cloud inputs: `cluster` parsed, never with a kubeconfig; the cloud variables kept
    /// for the logins without their values ever printed.
    #[test]
    fn cloud_inputs() {
        let mut vars = MINIMAL.to_vec();
        vars.extend([
            ("INPUT_CLUSTER", "eks:us-west-2/prod"),
            ("INPUT_AWS-ROLE-ARN", "arn:aws:iam::123456789012:role/deploy"),
            ("AWS_SECRET_ACCESS_KEY", "super-secret-key-value"),
            ("UNRELATED", "x"),
        ]);
        let i = inputs(&vars).expect("valid");
        assert_eq!(
            i.cluster.cloud.cluster,
            Some(crate::cluster::cloud::ClusterRef::Eks {
                region: "us-west-2".into(),
                name: "prod".into()
            })
        );
        assert_eq!(
            i.cluster.cloud.env.get("AWS_SECRET_ACCESS_KEY"),
            Some("super-secret-key-value")
        );
        assert!(!format!("{i:?}").contains("super-secret-key-value"));
        // A provider's full resource name is taken without its prefix.
        vars.push((
            "INPUT_GCP-WORKLOAD-IDENTITY-PROVIDER",
            "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/p/providers/g",
        ));
        let i = inputs(&vars).expect("valid");
        assert_eq!(
            i.cluster.cloud.gcp.workload_identity_provider.as_deref(),
            Some("projects/123/locations/global/workloadIdentityPools/p/providers/g")
        );
        vars.push(("INPUT_KUBECONFIG", "apiVersion: v1"));
        assert!(inputs(&vars).unwrap_err().to_string().contains("give one"));
        let mut vars = MINIMAL.to_vec();
        vars.push(("INPUT_CLUSTER", "eks:prod"));
        let e = inputs(&vars).unwrap_err().to_string();
        assert!(e.contains("INPUT_CLUSTER") && e.contains("eks:<region>/<name>"), "{e}");
    }

    /// A huge value is refused and only its start is quoted.
    #[test]
    fn huge_values_are_refused_and_shortened() {
        let mut vars = MINIMAL.to_vec();
        let huge = "a".repeat(10_000);
        vars.push(("INPUT_CONTEXT", &huge));
        let e = inputs(&vars).unwrap_err().to_string();
        assert!(e.contains("longer than 4096") && e.len() < 400, "{e}");
    }
}
