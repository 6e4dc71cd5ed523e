//! GKE: a service-account key, the external-account file google-github-actions/auth writes
//! (found under the container's workspace), the `gcp-*` inputs with the `cluster` input.

use std::collections::BTreeMap;

use kubeship_testkit::cloud::github_oidc::GitHubOidc;
use kubeship_testkit::cloud::google::{Config, FakeGoogle};
use kubeship_testkit::cloud::oidc::RsaKey;
use serde_json::json;

use super::{World, issuer};

const ACCOUNT: &str = "deployer@acme-prod.iam.gserviceaccount.com";
const PROVIDER: &str =
    "projects/123456789/locations/global/workloadIdentityPools/github/providers/acme";

/// A cluster that takes exactly the access tokens the fake issued.
fn world(google: &FakeGoogle) -> World {
    let issued = google.access_tokens.clone();
    World::start(move |t| issued.lock().unwrap().iter().any(|i| i == t))
}

/// A service-account key file: the JWT-bearer grant, verified with the key's public half.
#[test]
fn service_account_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = RsaKey::generate(dir.path(), "sa").unwrap();
    let mut keys = BTreeMap::new();
    keys.insert(ACCOUNT.to_owned(), key.public_pem.clone());
    let google = FakeGoogle::start(Config { keys, lifetime: 3600, ..Config::default() }).unwrap();
    let w = world(&google);
    let file = json!({"type": "service_account", "project_id": "acme-prod", "private_key_id": "k1",
        "private_key": key.private_pem, "client_email": ACCOUNT, "client_id": "1",
        "token_uri": format!("{}/token", google.server.url)});
    let path = w.file("key.json", &file.to_string());
    let config = w.exec_kubeconfig("gke-gcloud-auth-plugin", &[], &[]);
    let run = w.run(&[("INPUT_KUBECONFIG", &config), ("GOOGLE_APPLICATION_CREDENTIALS", &path)]);
    run.assert_succeeded();
    assert!(
        run.stderr.contains(
            "kubeship mints the GKE token itself (gke-gcloud-auth-plugin is not in the image)"
        ),
        "{}",
        run.stderr
    );
    let mut secrets: Vec<String> =
        key.private_pem.lines().filter(|l| !l.starts_with("-----")).map(str::to_owned).collect();
    secrets.extend(google.access_tokens());
    run.assert_secret_free(&secrets);
    // A key the endpoint does not know is refused: exit 4 with Google's words.
    let other = RsaKey::generate(dir.path(), "other").unwrap();
    let mut forged = file.clone();
    forged["private_key"] = other.private_pem.into();
    let path = w.file("forged.json", &forged.to_string());
    let run = w.run(&[("INPUT_KUBECONFIG", &config), ("GOOGLE_APPLICATION_CREDENTIALS", &path)]);
    assert_eq!(run.code, Some(4), "{}", run.stderr);
    assert!(run.stderr.contains("invalid_grant"), "{}", run.stderr);
}

/// The file google-github-actions/auth writes into the workspace, named by the runner's path:
/// the subject token from GitHub (its URL and header in the file), the STS exchange, the
/// impersonation of the service account.
#[test]
fn external_account_file_from_the_auth_action() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = issuer(dir.path());
    let github = GitHubOidc::start(issuer.clone(), 300).unwrap();
    let audience = format!("//iam.googleapis.com/{PROVIDER}");
    let token_audience = format!("https://iam.googleapis.com/{PROVIDER}");
    let google = FakeGoogle::start(Config {
        provider: Some((audience.clone(), token_audience.clone())),
        issuer: Some(issuer),
        impersonable: vec![ACCOUNT.into()],
        lifetime: 3600,
        ..Config::default()
    })
    .unwrap();
    let w = world(&google);
    let [(_, request_url), (_, request_token)] = github.env();
    let file = json!({"type": "external_account", "audience": audience,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("{}/v1/token", google.server.url),
        "service_account_impersonation_url": format!("{}/v1/projects/-/serviceAccounts/{ACCOUNT}:generateAccessToken", google.server.url),
        "credential_source": {"url": format!("{request_url}&audience={token_audience}"),
            "headers": {"Authorization": format!("Bearer {request_token}")},
            "format": {"type": "json", "subject_token_field_name": "value"}}});
    let workspace = w.dir.path().join("workspace");
    std::fs::create_dir(&workspace).unwrap();
    std::fs::write(workspace.join("gha-creds-8f2a.json"), file.to_string()).unwrap();
    let config = w.exec_kubeconfig("gke-gcloud-auth-plugin", &[], &[]);
    let run = w.run(&[
        ("INPUT_KUBECONFIG", &config),
        ("GOOGLE_APPLICATION_CREDENTIALS", "/home/runner/work/app/app/gha-creds-8f2a.json"),
        ("GITHUB_WORKSPACE", workspace.to_str().unwrap()),
    ]);
    run.assert_succeeded();
    assert_eq!(github.audiences(), [token_audience]);
    let paths: Vec<String> = google.server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/v1/token".to_owned(),
            format!("/v1/projects/-/serviceAccounts/{ACCOUNT}:generateAccessToken")
        ]
    );
    let mut secrets = github.minted();
    secrets.push(request_token);
    secrets.extend(google.access_tokens());
    run.assert_secret_free(&secrets);
}

/// No kubeconfig and no auth step: the `gcp-*` inputs and `cluster`, with gcloud's endpoint
/// overrides; GKE `clusters.get` gives the endpoint and CA. An account the principal may not
/// impersonate is exit 4 with IAM's words and the grant to add.
#[test]
fn inputs_and_the_cluster_input() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = issuer(dir.path());
    let github = GitHubOidc::start(issuer.clone(), 300).unwrap();
    let google = FakeGoogle::start(Config {
        provider: Some((
            format!("//iam.googleapis.com/{PROVIDER}"),
            format!("https://iam.googleapis.com/{PROVIDER}"),
        )),
        issuer: Some(issuer),
        impersonable: vec![ACCOUNT.into()],
        lifetime: 3600,
        ..Config::default()
    })
    .unwrap();
    let w = world(&google);
    let endpoint = w.sim.url().trim_start_matches("https://").to_owned();
    google.config.lock().unwrap().clusters.insert(
        "acme-prod/europe-west1/main".into(),
        (endpoint, w.sim.ca_pem().unwrap().to_owned()),
    );
    let [(url_var, url), (token_var, token)] = github.env();
    let base = google.server.url.clone();
    let vars = |account: &'static str| {
        vec![
            ("INPUT_CLUSTER", "gke:acme-prod/europe-west1/main".to_owned()),
            ("INPUT_GCP-WORKLOAD-IDENTITY-PROVIDER", PROVIDER.to_owned()),
            ("INPUT_GCP-SERVICE-ACCOUNT", account.to_owned()),
            ("CLOUDSDK_API_ENDPOINT_OVERRIDES_STS", base.clone()),
            ("CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS", base.clone()),
            ("CLOUDSDK_API_ENDPOINT_OVERRIDES_CONTAINER", format!("{base}/")),
            (url_var, url.clone()),
            (token_var, token.clone()),
        ]
    };
    let as_refs =
        |v: &[(&'static str, String)]| v.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
    let owned = as_refs(&vars(ACCOUNT));
    let run = w.run(&owned.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
    run.assert_succeeded();
    assert!(
        run.stderr.contains("kubeship found GKE cluster acme-prod/europe-west1/main"),
        "{}",
        run.stderr
    );
    assert!(
        google
            .server
            .requests()
            .iter()
            .any(|r| r.path == "/v1/projects/acme-prod/locations/europe-west1/clusters/main")
    );

    let owned = as_refs(&vars("intruder@acme-prod.iam.gserviceaccount.com"));
    let run = w.run(&owned.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
    assert_eq!(run.code, Some(4), "{}", run.stderr);
    assert!(
        run.stderr.contains("iam.serviceAccounts.getAccessToken")
            && run.stderr.contains("roles/iam.workloadIdentityUser"),
        "{}",
        run.stderr
    );
}
