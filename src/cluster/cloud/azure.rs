//! AKS: the Entra ID token `kubelogin get-token` prints, minted here for the cluster's server id
//! (scope `<server-id>/.default`, client credentials at `<authority>/<tenant>/oauth2/v2.0/token`).
//!
//! Credentials, first found wins: the `azure-client-id` / `azure-tenant-id` inputs (GitHub's
//! OIDC token, audience `api://AzureADTokenExchange`, as the client assertion); a client secret
//! (kubelogin's `--client-secret`, `AAD_SERVICE_PRINCIPAL_CLIENT_SECRET`, `AZURE_CLIENT_SECRET`);
//! `AZURE_FEDERATED_TOKEN_FILE` (read at every renewal); GitHub's OIDC token with
//! `AZURE_CLIENT_ID` / `AZURE_TENANT_ID`. kubelogin's `--login msi` asks the instance metadata
//! service instead. The authority is `AZURE_AUTHORITY_HOST`, else the cloud of `--environment`.

use futures_util::future::BoxFuture;
use secrecy::{ExposeSecret as _, SecretString};

use super::cache::{Mint, Token};
use super::github_oidc::GitHubOidc;
use super::http::{Http, endpoint, metadata_endpoint, oauth_token, untrusted};
use super::{Env, Error, Identity, IdentityCell};

/// The AKS-managed Entra integration's server id, the same for every cluster.
pub const AKS_SERVER_ID: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";
/// Scope of Azure Resource Manager, for the `cluster` input.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";

/// What kubelogin's flags say.
#[derive(Debug, Clone, Default)]
pub struct Plugin {
    pub login: Option<String>,
    pub server_id: Option<String>,
    pub client_id: Option<String>,
    pub tenant_id: Option<String>,
    pub environment: Option<String>,
    pub client_secret: Option<SecretString>,
}

/// The `azure-*` inputs.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub client_id: Option<String>,
    pub tenant_id: Option<String>,
}

enum Assertion {
    Secret(SecretString),
    FederatedFile(String),
    GitHub(GitHubOidc),
}

enum Credential {
    App { authority: reqwest::Url, tenant: String, client_id: String, assertion: Assertion },
    Msi { url: reqwest::Url, client_id: Option<String> },
}

/// Entra tokens for one scope.
pub struct Entra {
    credential: Credential,
    scope: String,
    http: Http,
}

fn authority(env: &Env, environment: Option<&str>) -> Result<reqwest::Url, Error> {
    if let Some(host) = env.get("AZURE_AUTHORITY_HOST") {
        return endpoint(host, "AZURE_AUTHORITY_HOST");
    }
    let host = match environment.map(str::to_ascii_lowercase).as_deref() {
        Some("azurechinacloud") => "https://login.chinacloudapi.cn/",
        Some("azureusgovernmentcloud") => "https://login.microsoftonline.us/",
        _ => "https://login.microsoftonline.com/",
    };
    endpoint(host, "the Entra authority")
}

impl Entra {
    /// Credentials for `scope` from the inputs, kubelogin's flags and the environment. Sends nothing.
    ///
    /// # Errors
    /// [`Error::Config`] when nothing identifies an application.
    pub fn new(
        env: &Env,
        inputs: &Inputs,
        plugin: &Plugin,
        scope: String,
        identity: &IdentityCell,
    ) -> Result<Self, Error> {
        let http = Http::new(&[])?;
        let login = plugin.login.as_deref().unwrap_or("");
        // kubelogin's --client-id names the app to log in as only in these modes; in the
        // interactive ones it is the public client of the Azure CLI.
        let own_client = matches!(login, "spn" | "workloadidentity" | "msi");
        let plugin_client = plugin.client_id.as_deref().filter(|_| own_client);
        if login == "msi" && inputs.client_id.is_none() {
            let base =
                env.get("AZURE_POD_IDENTITY_AUTHORITY_HOST").unwrap_or("http://169.254.169.254/");
            let base = metadata_endpoint(base, "AZURE_POD_IDENTITY_AUTHORITY_HOST")?;
            let url = base
                .join("metadata/identity/oauth2/token")
                .map_err(|e| Error::Config(e.to_string()))?;
            let client_id = plugin_client.map(str::to_owned);
            identity.set(Identity::aks(&match &client_id {
                Some(id) => format!("the managed identity with client id {id}"),
                None => "the VM's system-assigned managed identity".into(),
            }));
            return Ok(Self { credential: Credential::Msi { url, client_id }, scope, http });
        }
        let client_id = inputs
            .client_id
            .as_deref()
            .or(plugin_client)
            .or_else(|| env.get("AAD_SERVICE_PRINCIPAL_CLIENT_ID").filter(|_| login == "spn"))
            .or_else(|| env.get("AZURE_CLIENT_ID"));
        let tenant = inputs
            .tenant_id
            .as_deref()
            .or(plugin.tenant_id.as_deref())
            .or_else(|| env.get("AZURE_TENANT_ID"));
        let (Some(client_id), Some(tenant)) = (client_id, tenant) else {
            return Err(Error::Config(
                "no Entra ID application to log in as: give azure-client-id and azure-tenant-id \
                 (with `permissions: id-token: write`), or set AZURE_CLIENT_ID and AZURE_TENANT_ID \
                 with AZURE_FEDERATED_TOKEN_FILE or AZURE_CLIENT_SECRET"
                    .into(),
            ));
        };
        let github = || GitHubOidc::from_env(env);
        let secret = plugin
            .client_secret
            .clone()
            .or_else(|| env.get("AAD_SERVICE_PRINCIPAL_CLIENT_SECRET").map(SecretString::from))
            .or_else(|| env.get("AZURE_CLIENT_SECRET").map(SecretString::from));
        // kubelogin's workloadidentity mode reads the federated token file alone; a client
        // secret left in the environment must not win over it.
        let federated = env.get("AZURE_FEDERATED_TOKEN_FILE");
        let assertion = if inputs.client_id.is_some() {
            Assertion::GitHub(github()?.ok_or_else(|| {
                Error::Config(
                    "azure-client-id is set but GitHub's OIDC token is not available: give the job \
                     `permissions: id-token: write`"
                        .into(),
                )
            })?)
        } else if let (Some(path), "workloadidentity") = (federated, login) {
            Assertion::FederatedFile(path.to_owned())
        } else if let Some(secret) = secret {
            crate::log::secret(secret.expose_secret());
            Assertion::Secret(secret)
        } else if let Some(path) = federated {
            Assertion::FederatedFile(path.to_owned())
        } else if let Some(oidc) = github()? {
            Assertion::GitHub(oidc)
        } else {
            return Err(Error::Config(format!(
                "no credential for the Entra ID application {client_id}: set AZURE_FEDERATED_TOKEN_FILE \
                 or AZURE_CLIENT_SECRET, or give the job `permissions: id-token: write` for GitHub's token"
            )));
        };
        identity
            .set(Identity::aks(&format!("the Entra application {client_id} (tenant {tenant})")));
        Ok(Self {
            credential: Credential::App {
                authority: authority(env, plugin.environment.as_deref())?,
                tenant: tenant.to_owned(),
                client_id: client_id.to_owned(),
                assertion,
            },
            scope,
            http,
        })
    }

    /// The same credentials for another scope (Resource Manager, for the `cluster` input).
    pub fn with_scope(&self, scope: &str) -> Self {
        let credential = match &self.credential {
            Credential::App { authority, tenant, client_id, assertion } => Credential::App {
                authority: authority.clone(),
                tenant: tenant.clone(),
                client_id: client_id.clone(),
                assertion: match assertion {
                    Assertion::Secret(s) => Assertion::Secret(s.clone()),
                    Assertion::FederatedFile(p) => Assertion::FederatedFile(p.clone()),
                    Assertion::GitHub(g) => Assertion::GitHub(g.clone()),
                },
            },
            Credential::Msi { url, client_id } => {
                Credential::Msi { url: url.clone(), client_id: client_id.clone() }
            }
        };
        Self { credential, scope: scope.to_owned(), http: self.http.clone() }
    }

    pub fn http(&self) -> &Http {
        &self.http
    }

    /// A token for the scope.
    ///
    /// # Errors
    /// Entra's refusal and transport errors.
    pub async fn access_token(&self) -> Result<Token, Error> {
        match &self.credential {
            Credential::Msi { url, client_id } => self.msi(url, client_id.as_deref()).await,
            Credential::App { authority, tenant, client_id, assertion } => {
                let mut url = authority.clone();
                url.path_segments_mut()
                    .map_err(|()| Error::Config("AZURE_AUTHORITY_HOST cannot take a path".into()))?
                    .pop_if_empty()
                    .extend([tenant.as_str(), "oauth2", "v2.0", "token"]);
                // The client's proof: its secret, or an assertion (a federated token).
                let (secret, is_assertion) = match assertion {
                    Assertion::Secret(secret) => (secret.clone(), false),
                    Assertion::FederatedFile(path) => {
                        // Off the runtime thread: the file may be a pipe that never ends.
                        let token = tokio::fs::read_to_string(path).await.map_err(|e| {
                            Error::Config(format!(
                                "AZURE_FEDERATED_TOKEN_FILE ({path}) cannot be read: {e}"
                            ))
                        })?;
                        crate::log::secret(token.trim());
                        (SecretString::from(token.trim()), true)
                    }
                    Assertion::GitHub(oidc) => {
                        (oidc.token(&self.http, "api://AzureADTokenExchange").await?, true)
                    }
                };
                // The serializer is not Send: it must be gone before the next await.
                let body = {
                    let mut form = form_urlencoded::Serializer::new(String::new());
                    form.append_pair("client_id", client_id)
                        .append_pair("scope", &self.scope)
                        .append_pair("grant_type", "client_credentials");
                    if is_assertion {
                        form.append_pair(
                            "client_assertion_type",
                            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                        )
                        .append_pair("client_assertion", secret.expose_secret());
                    } else {
                        form.append_pair("client_secret", secret.expose_secret());
                    }
                    form.finish()
                };
                let request = self
                    .http
                    .request(reqwest::Method::POST, url.clone())
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body);
                let service = format!("Entra ID ({url})");
                let answer = self.http.send(&service, request, &[&secret]).await?;
                oauth_token(
                    &service,
                    &answer,
                    &[&secret],
                    &format!(
                        " Check the application {client_id}: its secret, or a federated credential \
                         whose issuer, subject and audience (api://AzureADTokenExchange) match this job."
                    ),
                )
            }
        }
    }

    async fn msi(&self, url: &reqwest::Url, client_id: Option<&str>) -> Result<Token, Error> {
        let mut url = url.clone();
        let resource = self.scope.trim_end_matches("/.default");
        url.query_pairs_mut()
            .append_pair("api-version", "2018-02-01")
            .append_pair("resource", resource);
        if let Some(id) = client_id {
            url.query_pairs_mut().append_pair("client_id", id);
        }
        let service = "the instance metadata service (managed identity)";
        let request = self.http.request(reqwest::Method::GET, url).header("metadata", "true");
        let answer = self.http.send(service, request, &[]).await?;
        let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        let token = body["access_token"].as_str().filter(|_| answer.ok());
        let Some(token) = token else {
            return Err(Error::Refused {
                service: service.into(),
                detail: format!("HTTP {}: {}", answer.status, untrusted(&answer.body, &[])),
                advice: " Run on an Azure VM with a managed identity, or use another --login."
                    .into(),
            });
        };
        crate::log::secret(token);
        // IMDS gives expires_in as a string.
        let seconds = body["expires_in"]
            .as_u64()
            .or_else(|| body["expires_in"].as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(3600);
        Ok(Token::lasting(SecretString::from(token), std::time::Duration::from_secs(seconds)))
    }
}

impl Mint for Entra {
    fn mint(&self) -> BoxFuture<'_, Result<Token, Error>> {
        Box::pin(self.access_token())
    }
}

/// The `cluster` input `aks:<subscription>/<resource-group>/<name>`: Resource Manager's
/// `listClusterUserCredential` (`format=exec`), the kubeconfig it returns (server, CA, and the
/// server id in its kubelogin flags). `AZURE_RESOURCE_MANAGER_ENDPOINT` moves Resource Manager
/// (Azure's SDKs set it in code; there is no common variable).
///
/// # Errors
/// Resource Manager's refusal, a kubeconfig that does not parse.
pub async fn cluster_kubeconfig(
    arm: &Entra,
    env: &Env,
    subscription: &str,
    group: &str,
    name: &str,
) -> Result<String, Error> {
    use base64::Engine as _;
    let base =
        env.get("AZURE_RESOURCE_MANAGER_ENDPOINT").unwrap_or("https://management.azure.com/");
    let mut url = endpoint(base, "AZURE_RESOURCE_MANAGER_ENDPOINT")?;
    url.path_segments_mut()
        .map_err(|()| Error::Config("AZURE_RESOURCE_MANAGER_ENDPOINT cannot take a path".into()))?
        .pop_if_empty()
        .extend([
            "subscriptions",
            subscription,
            "resourceGroups",
            group,
            "providers",
            "Microsoft.ContainerService",
            "managedClusters",
            name,
            "listClusterUserCredential",
        ]);
    url.query_pairs_mut().append_pair("api-version", "2024-05-01").append_pair("format", "exec");
    let service = format!("Azure Resource Manager ({})", url.origin().ascii_serialization());
    let token = arm.access_token().await?.secret;
    let request = arm
        .http()
        .request(reqwest::Method::POST, url)
        .header("authorization", format!("Bearer {}", token.expose_secret()))
        .header("content-length", "0");
    let answer = arm.http().send(&service, request, &[&token]).await?;
    if !answer.ok() {
        let message = serde_json::from_slice::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&answer.body).into_owned());
        return Err(Error::Refused {
            service,
            detail: format!(
                "listClusterUserCredential {subscription}/{group}/{name}: HTTP {}: {}",
                answer.status,
                untrusted(message.as_bytes(), &[&token])
            ),
            advice: " The identity needs the Azure Kubernetes Service Cluster User Role on the \
                     cluster; check the cluster input."
                .into(),
        });
    }
    let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    body["kubeconfigs"][0]["value"]
        .as_str()
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| Error::Answer {
            service,
            detail: "its answer has no kubeconfigs[0].value".into(),
        })
}
