//! Managed clusters without binaries: the EKS, GKE and AKS tokens that the `aws`,
//! `aws-iam-authenticator`, `gke-gcloud-auth-plugin` and `kubelogin` exec plugins print, minted
//! in process when the plugin is not on `PATH` (the scratch image has none of them), from the
//! credentials CI login steps leave in the environment or from GitHub's OIDC token. A plugin
//! that is installed runs as before; an unknown one that is missing stays an error.
//!
//! Also the `cluster` input (`eks:<region>/<name>`, `gke:<project>/<location>/<name>`,
//! `aks:<subscription>/<resource-group>/<name>`): the endpoint and CA from the cloud's API with
//! the same credentials, and no kubeconfig at all.
//!
//! The token reaches kube through [`cache::BearerLayer`], outside kube's own client stack;
//! [`explain_denial`] says who kubeship authenticated as and what to grant, for 401 and 403.
//! Every request follows [`http`]'s rules (https, or plain http to loopback only; bounded).

pub mod aws;
pub mod azure;
pub mod cache;
pub mod gcp;
pub mod github_oidc;
pub mod http;
mod login;
mod plugin;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub use cache::{BearerLayer, Cache};
pub use login::{Login, for_cluster, for_plugin};
pub use plugin::{Recognised, recognise};

/// Why a cloud login failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Exit 2: the configuration cannot work; nothing was sent.
    #[error("{0}")]
    Config(String),
    /// Exit 4: the cloud refused.
    #[error("{service} refused: {}.{advice}", .detail.trim_end_matches('.'))]
    Refused { service: String, detail: String, advice: String },
    /// Exit 4: no complete answer.
    #[error("{service} could not be reached: {detail}")]
    Unreachable { service: String, detail: String },
    /// Exit 4: an answer kubeship cannot use.
    #[error("{service} answered, but {detail}")]
    Answer { service: String, detail: String },
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => 2,
            _ => 4,
        }
    }
}

/// The environment variables the cloud logins read. `Debug` lists names only: many of the
/// values are secrets.
#[derive(Clone, Default)]
pub struct Env(BTreeMap<String, String>);

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

const PREFIXES: &[&str] = &[
    "AWS_",
    "AZURE_",
    "AAD_",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "CLOUDSDK_API_ENDPOINT_OVERRIDES_",
    "ACTIONS_ID_TOKEN_REQUEST_",
];

impl Env {
    /// The cloud variables among `vars`, and `GITHUB_WORKSPACE`.
    pub fn from_vars<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let keep = |k: &str| k == "GITHUB_WORKSPACE" || PREFIXES.iter().any(|p| k.starts_with(p));
        Self(
            vars.into_iter()
                .filter(|(k, _)| keep(k.as_ref()))
                .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
                .collect(),
        )
    }

    /// A non-empty value, trimmed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// This environment with the exec plugin's own `env` entries on top (as the plugin would see it).
    pub fn with(&self, extra: &[(String, String)]) -> Self {
        let mut merged = self.clone();
        merged.0.extend(extra.iter().cloned());
        merged
    }
}

/// An AWS region's shape: `us-west-2`, `eu-central-1`, `us-gov-west-1`, `cn-north-1`.
fn aws_region(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let letters = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
    let Some((number, words)) = parts.split_last() else { return false };
    parts.len() >= 3
        && parts[0].len() == 2
        && words.iter().all(letters)
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// A GUID: `8-4-4-4-12` hex digits (Azure subscriptions, tenants, applications).
pub fn guid(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A managed cluster named by the `cluster` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterRef {
    Eks { region: String, name: String },
    Gke { project: String, location: String, name: String },
    Aks { subscription: String, group: String, name: String },
}

impl ClusterRef {
    /// `eks:<region>/<name>`, `gke:<project>/<location>/<name>`, `aks:<subscription>/<resource-group>/<name>`.
    ///
    /// # Errors
    /// Why the text is not one of those.
    pub fn parse(text: &str) -> Result<Self, String> {
        const FORMS: &str = "eks:<region>/<name>, gke:<project>/<location>/<name> or \
                             aks:<subscription>/<resource-group>/<name>";
        let text = text.trim();
        // The two other ways users name a cluster: its ARN, and its endpoint.
        if let Some(rest) = text.strip_prefix("arn:aws") {
            let fields: Vec<&str> = rest.split(':').collect();
            if let [_, "eks", region, _, resource] = fields[..]
                && let Some(name) = resource.strip_prefix("cluster/")
            {
                return Err(format!("is an EKS cluster's ARN: write eks:{region}/{name}"));
            }
        }
        if text.starts_with("https://") || text.starts_with("http://") {
            return Err(format!("is a URL; name the cluster instead: {FORMS}"));
        }
        let (cloud, rest) = text.split_once(':').ok_or(format!("is not {FORMS}"))?;
        if rest.starts_with("arn:") || rest.starts_with("http") {
            return Self::parse(rest);
        }
        let parts: Vec<&str> = rest.split('/').map(str::trim).collect();
        let valid = |p: &&str| {
            !p.is_empty()
                && !p.chars().all(|c| c == '.')
                && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.()".contains(c))
        };
        if let Some(bad) = parts.iter().find(|p| !valid(p)) {
            return Err(format!(
                "has an empty or malformed part {:?} (letters, digits, - _ . ( ) only)",
                crate::untrusted::short(bad, 80)
            ));
        }
        let owned = |i: usize| parts[i].to_owned();
        match (cloud.to_ascii_lowercase().as_str(), parts.len()) {
            ("eks", 2) if !aws_region(parts[0]) && aws_region(parts[1]) => {
                Err(format!("has the region second: write eks:{}/{}", parts[1], parts[0]))
            }
            ("eks", 2) if !aws_region(parts[0]) => Err(format!(
                "names {:?} as the region, which is not an AWS region (us-west-2, eu-central-1; \
                 a region, not a zone)",
                parts[0]
            )),
            ("eks", 2) => Ok(Self::Eks { region: owned(0), name: owned(1) }),
            ("aks", 3) if !guid(parts[0]) => Err(format!(
                "names {:?} as the subscription, which is not a subscription id (a GUID, \
                 00000000-0000-0000-0000-000000000000)",
                parts[0]
            )),
            ("gke", 3) => Ok(Self::Gke { project: owned(0), location: owned(1), name: owned(2) }),
            ("aks", 3) => Ok(Self::Aks { subscription: owned(0), group: owned(1), name: owned(2) }),
            ("eks", _) => Err("is not eks:<region>/<name>".into()),
            ("gke", _) => Err("is not gke:<project>/<location>/<name>".into()),
            ("aks", _) => Err("is not aks:<subscription>/<resource-group>/<name>".into()),
            _ => Err("names no known cloud: use eks:, gke: or aks:".into()),
        }
    }
}

/// The cloud inputs and environment.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The `cluster` input.
    pub cluster: Option<ClusterRef>,
    /// The `aws-role-arn` input.
    pub aws_role_arn: Option<String>,
    pub gcp: gcp::Inputs,
    pub azure: azure::Inputs,
    pub env: Env,
}

/// Where a cluster named by the `cluster` input is.
#[derive(Debug, Clone)]
pub struct Located {
    pub server: String,
    pub ca_pem: Option<String>,
}

/// Who kubeship authenticated as, and the cloud that decides what to grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub who: String,
    cloud: &'static str,
}

impl Identity {
    pub fn eks(who: &str) -> Self {
        Self { who: who.to_owned(), cloud: "EKS" }
    }
    pub fn gke(who: &str) -> Self {
        Self { who: who.to_owned(), cloud: "GKE" }
    }
    pub fn aks(who: &str) -> Self {
        Self { who: who.to_owned(), cloud: "AKS" }
    }

    /// What a 401 (the cluster does not know the identity) or 403 (it may not act) calls for.
    pub fn explain(&self, status: u16) -> String {
        let who = &self.who;
        let grant = match (self.cloud, status) {
            ("EKS", 401) => "the cluster maps no Kubernetes user to it: add an EKS access entry for \
                             its role (aws eks create-access-entry --principal-arn <role ARN>) or an \
                             aws-auth ConfigMap mapping"
                .to_owned(),
            ("EKS", _) => "associate an EKS access policy with its access entry (for example \
                           AmazonEKSEditPolicy scoped to the namespace), or bind the Role from the \
                           README to its Kubernetes user or group"
                .to_owned(),
            ("GKE", 401) => "GKE did not accept the Google token: check that the account belongs to \
                             the cluster's project (or is granted there) and the Kubernetes Engine \
                             API is enabled"
                .to_owned(),
            ("GKE", _) => "grant it roles/container.developer on the project (gcloud projects \
                           add-iam-policy-binding <project> --member=serviceAccount:<email> \
                           --role=roles/container.developer), or bind the Role from the README to it"
                .to_owned(),
            ("AKS", 401) => "AKS did not accept the Entra token: check the server id (--server-id, \
                             6dae42f8-4368-4678-94ff-3960e28e3630 for AKS-managed Entra ID) and that \
                             the cluster uses Entra ID"
                .to_owned(),
            _ => "give it an AKS role assignment on the cluster (az role assignment create \
                  --assignee <client id> --role \"Azure Kubernetes Service RBAC Writer\" --scope \
                  <cluster id>), or bind the Role from the README to its object id"
                .to_owned(),
        };
        format!("kubeship authenticated to {} as {who}; {grant}", self.cloud)
    }
}

/// The identity of this run's cloud login, filled in as the login learns it (an assumed
/// role's ARN arrives with its credentials).
#[derive(Clone, Default)]
pub struct IdentityCell(Arc<Mutex<Option<Identity>>>);

impl IdentityCell {
    pub fn set(&self, identity: Identity) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(identity);
    }

    pub fn get(&self) -> Option<Identity> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// The login in use, for [`explain_denial`]: one cluster per run.
static ACTIVE: Mutex<Option<IdentityCell>> = Mutex::new(None);

/// Makes `cell` the identity that [`explain_denial`] reports.
pub fn activate(cell: &IdentityCell) {
    *ACTIVE.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(cell.clone());
}

/// For a 401 or 403 from the API server: who kubeship authenticated as and what to grant, when
/// kubeship minted the token itself.
pub fn explain_denial(status: u16) -> Option<String> {
    let active = ACTIVE.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()?;
    active.get().map(|identity| identity.explain(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `cluster` input's three forms, and what is refused.
    #[test]
    fn cluster_refs() {
        assert_eq!(
            ClusterRef::parse("eks:us-west-2/prod").unwrap(),
            ClusterRef::Eks { region: "us-west-2".into(), name: "prod".into() }
        );
        assert_eq!(
            ClusterRef::parse("gke:acme-prod/europe-west1/main").unwrap(),
            ClusterRef::Gke {
                project: "acme-prod".into(),
                location: "europe-west1".into(),
                name: "main".into()
            }
        );
        assert!(matches!(
            ClusterRef::parse("aks:00000000-1111-2222-3333-444444444444/rg.prod/aks1"),
            Ok(ClusterRef::Aks { .. })
        ));
        for bad in ["prod", "eks:prod", "gke:a/b", "aks:a//c", "doks:a/b", "eks:a/b c", "eks:../x"]
        {
            assert!(ClusterRef::parse(bad).is_err(), "{bad}");
        }
        // The usual mistakes get the form to write.
        let said = |text: &str| ClusterRef::parse(text).unwrap_err();
        assert_eq!(
            said("arn:aws:eks:us-west-2:123456789012:cluster/prod"),
            "is an EKS cluster's ARN: write eks:us-west-2/prod"
        );
        assert!(said("https://ABC.gr7.us-west-2.eks.amazonaws.com").starts_with("is a URL"));
        assert_eq!(said("eks:prod/us-west-2"), "has the region second: write eks:us-west-2/prod");
        assert!(said("eks:us-west-2/pr od").contains("\"pr od\""));
        assert!(said("eks:us-west-2a/prod").contains("not an AWS region"));
        assert!(said("eks:US-WEST-2/prod").contains("not an AWS region"));
        assert!(said("eks:arn:aws:eks:us-west-2:123456789012:cluster/prod").contains("write eks:"));
        assert!(said("aks:not-a-guid/rg/name").contains("not a subscription id"));
        assert_eq!(
            ClusterRef::parse("eks: us-west-2/prod-2"),
            Ok(ClusterRef::Eks { region: "us-west-2".into(), name: "prod-2".into() })
        );
    }

    /// The environment keeps only cloud variables, and never prints a value.
    #[test]
    fn env_keeps_cloud_variables_and_hides_values() {
        let env = Env::from_vars([
            ("AWS_SECRET_ACCESS_KEY", "very-secret"),
            ("HOME", "/root"),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "tok"),
            ("AZURE_CLIENT_ID", " "),
        ]);
        assert_eq!(env.get("AWS_SECRET_ACCESS_KEY"), Some("very-secret"));
        assert_eq!(env.get("HOME"), None);
        assert_eq!(env.get("AZURE_CLIENT_ID"), None);
        let printed = format!("{env:?}");
        assert!(
            printed.contains("AWS_SECRET_ACCESS_KEY") && !printed.contains("very-secret"),
            "{printed}"
        );
    }

    /// Each cloud's 401 and 403 name the identity and a grant in the cloud's own terms.
    #[test]
    fn denials_explain_themselves() {
        let eks = Identity::eks("arn:aws:iam::1:role/deploy");
        assert!(
            eks.explain(401).contains("access entry") && eks.explain(401).contains("role/deploy")
        );
        assert!(
            Identity::gke("the service account d@p.iam.gserviceaccount.com")
                .explain(403)
                .contains("roles/container.developer")
        );
        assert!(Identity::aks("the Entra application x").explain(403).contains("role assignment"));
    }
}
