//! `Behaviour::create_error` on the real control plane: a ValidatingAdmissionPolicy (CEL, in
//! the API server) that refuses to create pods running the image, so the ReplicaSet
//! controller meets a real refusal (FailedCreate, ReplicaFailure). The API server's message is
//! `pods "…" is forbidden: ValidatingAdmissionPolicy '…' with binding '…' denied request:
//! <create_error>`; kubesim's is `<create_error>` alone.

use std::time::Duration;

use serde_json::json;
use sha2::Digest as _;

use super::client::Client;

const POLICIES: &str = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies";
const BINDINGS: &str = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings";

/// A CEL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The CEL expression that holds for pods the policy lets through: those not running
/// `image`, or (with `label`) not labelled so.
pub fn expression(image: &str, label: Option<(&str, &str)>) -> String {
    let runs = format!("object.spec.containers.exists(c, c.image == {})", literal(image));
    match label {
        None => format!("!({runs})"),
        Some((k, v)) => format!(
            "!(has(object.metadata.labels) && {k} in object.metadata.labels && \
             object.metadata.labels[{k}] == {v} && {runs})",
            k = literal(k),
            v = literal(v),
        ),
    }
}

/// Refuses pods of `image` (and `label`) with `message`, and returns once the API server
/// enforces it (a dry-run create in `probe_namespace` is refused).
pub fn deny(
    api: &Client,
    image: &str,
    label: Option<(&str, &str)>,
    message: &str,
    probe_namespace: &str,
) -> anyhow::Result<()> {
    let key = format!("{image}\n{label:?}");
    let hash = sha2::Sha256::digest(key.as_bytes());
    let name = format!(
        "kubeship-deny-{}",
        hash[..6].iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let policy = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {"failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE"], "resources": ["pods"]}]},
            "validations": [{"expression": expression(image, label), "message": message}]}});
    let binding = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"]}});
    // A new message for the same image replaces the policy.
    let _ = api.delete(&format!("{POLICIES}/{name}"));
    api.post(POLICIES, &policy).map_err(super::api_error)?;
    api.ensure(BINDINGS, &binding).map_err(super::api_error)?;
    let mut labels = serde_json::Map::new();
    if let Some((k, v)) = label {
        labels.insert(k.to_owned(), json!(v));
    }
    let probe = json!({"metadata": {"generateName": "kubeship-probe-", "labels": labels},
        "spec": {"containers": [{"name": "probe", "image": image}]}});
    let pods = format!("/api/v1/namespaces/{probe_namespace}/pods?dryRun=All");
    super::start::wait("the admission policy", Duration::from_secs(30), &mut [], || {
        api.post(&pods, &probe).is_err_and(|e| super::message(&e).contains(message))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_quote_their_strings() {
        assert_eq!(
            expression("127.0.0.1:5000/a@sha256:ab", None),
            "!(object.spec.containers.exists(c, c.image == '127.0.0.1:5000/a@sha256:ab'))"
        );
        let e = expression("x'y", Some(("app", "api")));
        assert!(e.contains("c.image == 'x\\'y'"), "{e}");
        assert!(e.contains("object.metadata.labels['app'] == 'api'"), "{e}");
    }
}
