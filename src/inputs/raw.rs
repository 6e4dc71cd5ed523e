//! The inputs exactly as the environment gives them: every declared input, from whichever of
//! its three variables is set, as a string. No validation happens here beyond the rule that two
//! variables for one input must not disagree.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Error;

/// One declared input: the single list that `--help`, the validation and the action.yml
/// test all read, so they cannot drift apart.
#[derive(Debug, Clone, Copy)]
pub struct InputSpec {
    /// Kebab-case name, as in `with:` and the contract.
    pub name: &'static str,
    /// Default, as the contract states it ("" when there is none).
    pub default: &'static str,
    /// Whether a run without it is an input error.
    pub required: bool,
    /// One line for `--help` and action.yml.
    pub description: &'static str,
}

/// Every input: the contract's, in its order, then the cloud inputs the README documents as
/// additions.
pub const INPUTS: &[InputSpec] = &[
    spec("image", "", true, "Image to deploy: registry/repository:tag, or …@sha256:<hex>."),
    spec("digest", "", false, "Digest the tag must resolve to (e.g. the build step's digest)."),
    spec(
        "deployment",
        "",
        true,
        "Targets: name, deployment/name, statefulset/name, daemonset/name (comma or newline separated).",
    ),
    spec(
        "container",
        "",
        false,
        "Container names to update. Default: those running the image's repository.",
    ),
    spec(
        "namespace",
        "",
        false,
        "Namespace. Default: the kubeconfig context's, else in-cluster, else default.",
    ),
    spec(
        "kubeconfig",
        "",
        false,
        "Kubeconfig content, as YAML or base64. Default: KUBECONFIG, ~/.kube/config, in-cluster.",
    ),
    spec("context", "", false, "Kubeconfig context to use."),
    spec(
        "registry-username",
        "",
        false,
        "Registry user name. Default: the docker config, else anonymous.",
    ),
    spec("registry-password", "", false, "Registry password or token."),
    spec(
        "registry-ca",
        "",
        false,
        "Extra CA for the registry: PEM content or a path to a PEM file.",
    ),
    spec("insecure-registry", "false", false, "Allow plain HTTP to the registry."),
    spec("tag-timeout", "60s", false, "How long to keep asking for a tag that is not there yet."),
    spec("wait", "true", false, "Wait for the rollout."),
    spec("timeout", "5m", false, "Deadline for the rollout wait."),
    spec("fail-fast", "true", false, "Fail before the deadline when the new pods cannot start."),
    spec(
        "max-restarts",
        "2",
        false,
        "Under fail-fast, container restarts above this are a failure.",
    ),
    spec(
        "rollback-on-failure",
        "false",
        false,
        "On failure, put back the previous images and wait for that rollout.",
    ),
    spec(
        "dry-run",
        "false",
        false,
        "Resolve, check and send the patch with dryRun=All; change nothing.",
    ),
    spec(
        "dotenv-file",
        "",
        false,
        "Also write the outputs to this file as a GitLab dotenv report.",
    ),
    spec("results-dir", "", false, "Also write each output to <dir>/<name> (Tekton results)."),
    spec(
        "cluster",
        "",
        false,
        "A managed cluster instead of a kubeconfig: eks:<region>/<name>, gke:<project>/<location>/<name> or aks:<subscription>/<resource-group>/<name>.",
    ),
    spec(
        "aws-role-arn",
        "",
        false,
        "IAM role to assume with GitHub's OIDC token (needs id-token: write), for EKS.",
    ),
    spec(
        "gcp-workload-identity-provider",
        "",
        false,
        "Workload identity provider (projects/<n>/locations/global/workloadIdentityPools/<pool>/providers/<id>) for GitHub's OIDC token, for GKE.",
    ),
    spec(
        "gcp-service-account",
        "",
        false,
        "Service account to impersonate after the token exchange, for GKE.",
    ),
    spec(
        "azure-client-id",
        "",
        false,
        "Entra ID application to log in as with GitHub's OIDC token, for AKS.",
    ),
    spec("azure-tenant-id", "", false, "Entra ID tenant of azure-client-id."),
];

const fn spec(
    name: &'static str,
    default: &'static str,
    required: bool,
    description: &'static str,
) -> InputSpec {
    InputSpec { name, default, required, description }
}

impl InputSpec {
    /// The variables this input is read from, in the contract's order: the runner's
    /// hyphenated form, the underscore form (when it differs), the `KUBESHIP_` form.
    pub fn variables(&self) -> Vec<String> {
        let upper = self.name.to_ascii_uppercase();
        let snake = upper.replace('-', "_");
        let mut variables = vec![format!("INPUT_{upper}")];
        if snake != upper {
            variables.push(format!("INPUT_{snake}"));
        }
        variables.push(format!("KUBESHIP_{snake}"));
        variables
    }
}

/// Every input as a string, `None` when unset or empty (the runner sets every declared input,
/// empty when the workflow did not give it).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawInputs {
    pub image: Option<String>,
    pub digest: Option<String>,
    pub deployment: Option<String>,
    pub container: Option<String>,
    pub namespace: Option<String>,
    pub kubeconfig: Option<secrecy::SecretString>,
    pub context: Option<String>,
    pub registry_username: Option<String>,
    pub registry_password: Option<secrecy::SecretString>,
    pub registry_ca: Option<String>,
    pub insecure_registry: Option<String>,
    pub tag_timeout: Option<String>,
    pub wait: Option<String>,
    pub timeout: Option<String>,
    pub fail_fast: Option<String>,
    pub max_restarts: Option<String>,
    pub rollback_on_failure: Option<String>,
    pub dry_run: Option<String>,
    pub dotenv_file: Option<String>,
    pub results_dir: Option<String>,
    pub cluster: Option<String>,
    pub aws_role_arn: Option<String>,
    pub gcp_workload_identity_provider: Option<String>,
    pub gcp_service_account: Option<String>,
    pub azure_client_id: Option<String>,
    pub azure_tenant_id: Option<String>,
}

/// Which variable each input was read from, for messages that name it.
pub type Sources = BTreeMap<&'static str, String>;

/// Reads the inputs from `(variable, value)` pairs (the process environment in `main`, a
/// literal list in tests).
///
/// # Errors
/// [`Error::Conflict`] when two variables of one input hold different non-empty values.
pub fn read<I, K, V>(vars: I) -> Result<(RawInputs, Sources), Error>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let vars: BTreeMap<String, String> =
        vars.into_iter().map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned())).collect();
    let mut merged: Vec<(String, String)> = Vec::new();
    let mut sources = Sources::new();
    for input in INPUTS {
        let mut found: Option<(String, &str)> = None;
        for variable in input.variables() {
            let Some(value) = vars.get(&variable).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            match &found {
                None => found = Some((variable, value)),
                Some((first, first_value)) if first_value.trim() != value.trim() => {
                    return Err(Error::Conflict {
                        input: input.name,
                        first: first.clone(),
                        second: variable,
                    });
                }
                Some(_) => {}
            }
        }
        if let Some((variable, value)) = found {
            merged.push((input.name.to_owned(), value.to_owned()));
            sources.insert(input.name, variable);
        }
    }
    // envy lowercases keys and matches them against the kebab-case field names.
    let raw =
        envy::from_iter::<_, RawInputs>(merged).map_err(|e| Error::Internal(e.to_string()))?;
    Ok((raw, sources))
}

/// Variables that look meant for kubeship but name no input (`KUBESHIP_TIMEOUTS`,
/// `INPUT_NAMESPACES`), each with the input it most likely meant: a warning, since such a
/// variable is otherwise ignored without a word.
pub fn unknown<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    /// Variables kubeship reads that are not inputs.
    const OTHERS: [&str; 1] = ["KUBESHIP_DEBUG"];
    let known: Vec<String> = INPUTS.iter().flat_map(InputSpec::variables).collect();
    let mut warnings = Vec::new();
    for name in names {
        let Some(rest) = name.strip_prefix("KUBESHIP_").or_else(|| name.strip_prefix("INPUT_"))
        else {
            continue;
        };
        if known.iter().any(|k| k == name) || OTHERS.contains(&name) {
            continue;
        }
        let wanted = rest.to_ascii_lowercase().replace('_', "-");
        let closest = INPUTS
            .iter()
            .map(|i| (distance(&wanted, i.name), i))
            .min_by_key(|(d, _)| *d)
            .filter(|(d, _)| *d <= 3);
        let prefix = if name.starts_with("KUBESHIP_") { "KUBESHIP_" } else { "INPUT_" };
        let shown = crate::untrusted::short(name, 80);
        warnings.push(match closest {
            Some((_, input)) => format!(
                "{shown} is not a kubeship input and is ignored: did you mean {prefix}{}?",
                input.name.to_ascii_uppercase().replace('-', "_")
            ),
            None => format!("{shown} is not a kubeship input and is ignored (see kubeship --help)"),
        });
    }
    warnings
}

/// Levenshtein distance, for suggestions.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb)).min(row[j] + 1).min(current + 1);
            previous = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A misspelled variable is named with the input it most likely meant; known ones and
    /// unrelated ones are not.
    #[test]
    fn misspelled_variables_are_named() {
        let warnings = unknown([
            "KUBESHIP_TIMEOUTS",
            "INPUT_NAMESPACES",
            "KUBESHIP_TIMEOUT",
            "INPUT_TAG-TIMEOUT",
            "KUBESHIP_DEBUG",
            "HOME",
            "KUBESHIP_XYZZY_FROBNICATE",
        ]);
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(
            warnings[0].contains("KUBESHIP_TIMEOUTS") && warnings[0].contains("KUBESHIP_TIMEOUT?"),
            "{warnings:?}"
        );
        assert!(warnings[1].contains("did you mean INPUT_NAMESPACE?"), "{warnings:?}");
        assert!(warnings[2].contains("--help"), "{warnings:?}");
    }

    /// The runner's hyphenated form, the underscore form and the KUBESHIP_ form all reach the
    /// same input.
    #[test]
    fn each_variable_form_sets_the_input() {
        for var in ["INPUT_TAG-TIMEOUT", "INPUT_TAG_TIMEOUT", "KUBESHIP_TAG_TIMEOUT"] {
            let (raw, sources) = read([(var, "90s")]).expect("reads");
            assert_eq!(raw.tag_timeout.as_deref(), Some("90s"), "{var}");
            assert_eq!(sources["tag-timeout"], var);
        }
    }

    /// An empty value counts as unset, so the runner's empty defaults never conflict.
    #[test]
    fn empty_values_are_unset_and_do_not_conflict() {
        let (raw, _) =
            read([("INPUT_TAG-TIMEOUT", ""), ("KUBESHIP_TAG_TIMEOUT", "5m")]).expect("reads");
        assert_eq!(raw.tag_timeout.as_deref(), Some("5m"));
        let (raw, _) = read([("INPUT_IMAGE", "  ")]).expect("reads");
        assert_eq!(raw.image, None);
    }

    /// Two variables with different values are a conflict that names both.
    #[test]
    fn conflicting_variables_name_both() {
        let err = read([("INPUT_IMAGE", "a:1"), ("KUBESHIP_IMAGE", "a:2")]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("INPUT_IMAGE") && text.contains("KUBESHIP_IMAGE"), "{text}");
    }

    /// The same value twice is not a conflict.
    #[test]
    fn agreeing_variables_are_fine() {
        let (raw, _) = read([("INPUT_IMAGE", "a:1"), ("KUBESHIP_IMAGE", "a:1")]).expect("reads");
        assert_eq!(raw.image.as_deref(), Some("a:1"));
    }

    /// Variables that are not inputs are ignored, whatever they hold.
    #[test]
    fn unrelated_variables_are_ignored() {
        let (raw, sources) = read([("INPUT_NOT-AN-INPUT", "x"), ("PATH", "/bin")]).expect("reads");
        assert!(raw.image.is_none() && sources.is_empty());
    }
}
