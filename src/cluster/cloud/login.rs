//! From what the kubeconfig or the `cluster` input names to a running login: the minter behind
//! a shared [`Cache`], the identity it reports, and the one log line saying kubeship mints the
//! token itself. The first token is minted here, so a refused credential ends the run before
//! the registry is asked anything.

use std::sync::Arc;

use super::cache::{Cache, Mint};
use super::{ClusterRef, Error, IdentityCell, Located, Recognised, Settings, aws, azure, gcp};

/// A cloud login in place of an exec plugin.
pub struct Login {
    pub cache: Arc<Cache>,
    pub identity: IdentityCell,
    /// "kubeship mints the EKS token itself (aws is not in the image)".
    pub note: String,
}

impl Login {
    async fn start(
        source: Box<dyn Mint>,
        identity: IdentityCell,
        note: String,
    ) -> Result<Self, Error> {
        let cache = Arc::new(Cache::new(source));
        cache.token().await?;
        super::activate(&identity);
        Ok(Self { cache, identity, note })
    }
}

/// The minter for a recognised plugin, with `exec_env` (the kubeconfig's `env` for it) over
/// the process environment.
fn minter(
    plugin: &Recognised,
    settings: &Settings,
    exec_env: &[(String, String)],
    identity: &IdentityCell,
) -> Result<Box<dyn Mint>, Error> {
    let env = settings.env.with(exec_env);
    Ok(match plugin {
        Recognised::Eks { plugin, .. } => {
            let region = aws::region(plugin.region.as_deref(), &env);
            let chain = aws::Chain::new(
                &env,
                region.as_deref(),
                plugin.role_arn.clone(),
                settings.aws_role_arn.as_deref(),
                identity.clone(),
            )?;
            Box::new(aws::EksToken { chain, cluster: plugin.cluster.clone(), region })
        }
        Recognised::Gke => Box::new(gcp::Google::new(&env, &settings.gcp, identity)?),
        Recognised::Aks(plugin) => {
            let server_id =
                plugin.server_id.clone().unwrap_or_else(|| azure::AKS_SERVER_ID.to_owned());
            let scope = format!("{}/.default", server_id.trim_end_matches('/'));
            Box::new(azure::Entra::new(&env, &settings.azure, plugin, scope, identity)?)
        }
    })
}

/// Stands in for `plugin`.
///
/// # Errors
/// [`Error::Config`] for missing or unusable credentials; the cloud's refusal of the first mint.
pub async fn for_plugin(
    plugin: &Recognised,
    settings: &Settings,
    exec_env: &[(String, String)],
) -> Result<Login, Error> {
    let identity = IdentityCell::default();
    let source = minter(plugin, settings, exec_env, &identity)?;
    let note = format!(
        "kubeship mints the {} token itself ({} is not in the image)",
        plugin.cloud(),
        plugin.command()
    );
    Login::start(source, identity, note).await
}

/// The `cluster` input: where the cluster is, and the login for it.
///
/// # Errors
/// As [`for_plugin`], and the cloud's refusal to describe the cluster.
pub async fn for_cluster(
    cluster: &ClusterRef,
    settings: &Settings,
) -> Result<(Located, Login), Error> {
    let identity = IdentityCell::default();
    let env = &settings.env;
    match cluster {
        ClusterRef::Eks { region, name } => {
            let chain = aws::Chain::new(
                env,
                Some(region),
                None,
                settings.aws_role_arn.as_deref(),
                identity.clone(),
            )?;
            let located = aws::eks::describe(&chain, env, region, name).await?;
            let minter =
                aws::EksToken { chain, cluster: name.clone(), region: Some(region.clone()) };
            let note =
                format!("kubeship found EKS cluster {name} in {region} and mints its token itself");
            Ok((located, Login::start(Box::new(minter), identity, note).await?))
        }
        ClusterRef::Gke { project, location, name } => {
            let google = gcp::Google::new(env, &settings.gcp, &identity)?;
            let located = gcp::describe(&google, env, project, location, name).await?;
            let note = format!(
                "kubeship found GKE cluster {project}/{location}/{name} and mints its token itself"
            );
            Ok((located, Login::start(Box::new(google), identity, note).await?))
        }
        ClusterRef::Aks { subscription, group, name } => {
            let none = azure::Plugin::default();
            let arm =
                azure::Entra::new(env, &settings.azure, &none, azure::ARM_SCOPE.into(), &identity)?;
            let text = azure::cluster_kubeconfig(&arm, env, subscription, group, name).await?;
            let (located, server_id) = read_aks_kubeconfig(&text)?;
            let plugin = azure::Plugin { server_id: Some(server_id), ..azure::Plugin::default() };
            let scope =
                format!("{}/.default", plugin.server_id.as_deref().unwrap_or(azure::AKS_SERVER_ID));
            let entra = arm.with_scope(&scope);
            let note = format!(
                "kubeship found AKS cluster {group}/{name} and mints its Entra ID token itself"
            );
            Ok((located, Login::start(Box::new(entra), identity, note).await?))
        }
    }
}

/// The server, CA and kubelogin server id of the kubeconfig Resource Manager returns.
fn read_aks_kubeconfig(text: &str) -> Result<(Located, String), Error> {
    use base64::Engine as _;
    let unusable = |detail: &str| Error::Answer {
        service: "Azure Resource Manager".into(),
        detail: format!("the cluster's kubeconfig {detail}"),
    };
    let kubeconfig =
        kube::config::Kubeconfig::from_yaml(text).map_err(|_| unusable("does not parse"))?;
    let cluster = kubeconfig
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| unusable("has no cluster"))?;
    let server = cluster.server.clone().ok_or_else(|| unusable("has no server"))?;
    let ca_pem = cluster
        .certificate_authority_data
        .as_deref()
        .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d.trim()).ok())
        .and_then(|pem| String::from_utf8(pem).ok());
    let server_id = kubeconfig
        .auth_infos
        .iter()
        .filter_map(|a| a.auth_info.as_ref()?.exec.as_ref())
        .find_map(|exec| {
            let args = exec.args.clone().unwrap_or_default();
            match super::recognise(exec.command.as_deref()?, &args)? {
                Recognised::Aks(plugin) => plugin.server_id,
                _ => None,
            }
        })
        .unwrap_or_else(|| azure::AKS_SERVER_ID.to_owned());
    Ok((Located { server, ca_pem }, server_id))
}
