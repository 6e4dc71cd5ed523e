//! AKS: kubelogin's workload identity and service principal modes, the managed identity, the
//! `cluster` input with GitHub's OIDC token, and a token renewed during a long wait.

use std::time::Duration;

use kubeship_testkit::cloud::entra::{Config, FakeEntra};
use kubeship_testkit::cloud::github_oidc::{GitHubOidc, SUBJECT};

use super::{World, issuer};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "0d5c3f0e-1111-4a4a-9b9b-123456789abc";
const SERVER_ID: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";
const SECRET: &str = "Xy7~client.secret_value-42";

fn entra(config: Config) -> FakeEntra {
    FakeEntra::start(Config {
        tenant: TENANT.into(),
        client_id: CLIENT.into(),
        resources: vec![SERVER_ID.into(), "https://management.azure.com".into()],
        lifetime: if config.lifetime == 0 { 3600 } else { config.lifetime },
        ..config
    })
    .unwrap()
}

/// A cluster that takes the AKS tokens the fake issued, and only those.
fn world(fake: &FakeEntra) -> World {
    let shared = fake.shared();
    World::start(move |t| shared.issued_for(SERVER_ID).iter().any(|i| i == t))
}

fn kubelogin(w: &World, login: &str) -> String {
    w.exec_kubeconfig(
        "kubelogin",
        &[
            "get-token",
            "--login",
            login,
            "--server-id",
            SERVER_ID,
            "--environment",
            "AzurePublicCloud",
        ],
        &[],
    )
}

/// `kubelogin convert-kubeconfig -l workloadidentity` with the AZURE_* variables of a workload
/// identity: the federated token file is the client assertion.
#[test]
fn workload_identity_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = issuer(dir.path());
    let fake =
        entra(Config { federated: Some((issuer.clone(), SUBJECT.into())), ..Config::default() });
    let w = world(&fake);
    let assertion = issuer.mint("api://AzureADTokenExchange", SUBJECT, 600);
    let run = w.run(&[
        ("INPUT_KUBECONFIG", &kubelogin(&w, "workloadidentity")),
        ("AZURE_CLIENT_ID", CLIENT),
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_FEDERATED_TOKEN_FILE", &w.file("azure-token", &assertion)),
        ("AZURE_AUTHORITY_HOST", &fake.server.url),
        // Left over in the environment: kubelogin's workloadidentity mode does not read it,
        // and neither does kubeship (the fake knows no secret, so using it would fail).
        ("AZURE_CLIENT_SECRET", "stale8Q~secret-from-another-step"),
    ]);
    run.assert_succeeded();
    assert!(
        run.stderr.contains("kubeship mints the AKS token itself (kubelogin is not in the image)"),
        "{}",
        run.stderr
    );
    let mut secrets = fake.shared().issued_for(SERVER_ID);
    secrets.push(assertion);
    run.assert_secret_free(&secrets);
}

/// `--login spn` with the service principal's secret; a wrong secret is Entra's AADSTS error,
/// exit 4, and the secret is in no output.
#[test]
fn service_principal_secret() {
    let fake = entra(Config { client_secret: Some(SECRET.into()), ..Config::default() });
    let w = world(&fake);
    let config = kubelogin(&w, "spn");
    let vars = |secret: &'static str| {
        vec![
            ("INPUT_KUBECONFIG", config.clone()),
            ("AAD_SERVICE_PRINCIPAL_CLIENT_ID", CLIENT.to_owned()),
            ("AAD_SERVICE_PRINCIPAL_CLIENT_SECRET", secret.to_owned()),
            ("AZURE_TENANT_ID", TENANT.to_owned()),
            ("AZURE_AUTHORITY_HOST", fake.server.url.clone()),
        ]
    };
    let owned = vars(SECRET);
    let run = w.run(&owned.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
    run.assert_succeeded();
    run.assert_secret_free(&[SECRET.to_owned()]);
    let owned = vars("not-the-secret-at-all");
    let run = w.run(&owned.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
    assert_eq!(run.code, Some(4), "{}", run.stderr);
    assert!(run.stderr.contains("AADSTS7000215"), "{}", run.stderr);
    run.assert_secret_free(&["not-the-secret-at-all".to_owned()]);
}

/// `--login msi`: the instance metadata service (moved with AZURE_POD_IDENTITY_AUTHORITY_HOST).
#[test]
fn managed_identity() {
    let fake = entra(Config::default());
    let w = world(&fake);
    let run = w.run(&[
        ("INPUT_KUBECONFIG", &kubelogin(&w, "msi")),
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", &fake.server.url),
    ]);
    run.assert_succeeded();
    let imds = fake
        .server
        .requests()
        .into_iter()
        .find(|r| r.path == "/metadata/identity/oauth2/token")
        .unwrap();
    assert_eq!(imds.query_pairs().get("resource").map(String::as_str), Some(SERVER_ID));
}

/// No kubeconfig: `cluster` with `azure-client-id` / `azure-tenant-id` and GitHub's OIDC token
/// (audience api://AzureADTokenExchange) for Resource Manager, then for the cluster's server id.
#[test]
fn github_oidc_and_the_cluster_input() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = issuer(dir.path());
    let github = GitHubOidc::start(issuer.clone(), 300).unwrap();
    let fake = entra(Config { federated: Some((issuer, SUBJECT.into())), ..Config::default() });
    let w = world(&fake);
    fake.shared().set_cluster(
        "0b1f6471-1bf0-4dda-aec3-111122223333/prod-rg/prod-aks",
        &w.sim.url(),
        w.sim.ca_pem().unwrap(),
        SERVER_ID,
    );
    let [(url_var, url), (token_var, token)] = github.env();
    let run = w.run(&[
        ("INPUT_CLUSTER", "aks:0b1f6471-1bf0-4dda-aec3-111122223333/prod-rg/prod-aks"),
        ("INPUT_AZURE-CLIENT-ID", CLIENT),
        ("INPUT_AZURE-TENANT-ID", TENANT),
        ("AZURE_AUTHORITY_HOST", &fake.server.url),
        ("AZURE_RESOURCE_MANAGER_ENDPOINT", &fake.server.url),
        (url_var, &url),
        (token_var, &token),
    ]);
    run.assert_succeeded();
    assert!(run.stderr.contains("kubeship found AKS cluster prod-rg/prod-aks"), "{}", run.stderr);
    assert!(
        github.audiences().iter().all(|a| a == "api://AzureADTokenExchange"),
        "{:?}",
        github.audiences()
    );
    assert_eq!(fake.shared().issued_for("https://management.azure.com").len(), 1);
    let mut secrets = github.minted();
    secrets.push(token);
    secrets.extend(fake.shared().issued_for(SERVER_ID));
    run.assert_secret_free(&secrets);
}

/// Tokens that live two seconds, and a cluster that refuses them after that: a rollout of
/// five seconds whose watches reconnect after each event succeeds only if kubeship renews
/// the token as it goes.
#[test]
fn tokens_are_renewed_during_a_long_wait() {
    let fake =
        entra(Config { client_secret: Some(SECRET.into()), lifetime: 2, ..Config::default() });
    let shared = fake.shared();
    let w = World::start(move |t| shared.fresh(SERVER_ID, t, Duration::from_secs(2)));
    let digest = w.registry.stored_digest("acme/api", "v2").unwrap();
    let pinned = format!("{}/acme/api@{digest}", w.registry.host);
    let slow =
        kubesim::Behaviour { ready_delay: Duration::from_secs(5), ..kubesim::Behaviour::default() };
    w.sim.script(&pinned, slow);
    w.sim
        .set_faults(kubesim::Faults { close_watches_after: Some(1), ..kubesim::Faults::default() });
    let run = w.run(&[
        ("INPUT_KUBECONFIG", &kubelogin(&w, "spn")),
        ("AZURE_CLIENT_ID", CLIENT),
        ("AZURE_CLIENT_SECRET", SECRET),
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_AUTHORITY_HOST", &fake.server.url),
    ]);
    run.assert_succeeded();
    let issued = fake.shared().issued_for(SERVER_ID);
    assert!(issued.len() >= 2, "the token was not renewed: {issued:?}");
    run.assert_secret_free(&issued);
}
