//! EKS, GKE and AKS logins end to end: the kubeship binary, with no exec plugin on `PATH`,
//! against kubesim (which lets in only the tokens the cloud fakes issued, or, for EKS, the
//! tokens the verifier accepts) and the test kit's fake token services, which check what they
//! receive. Every secret of a run must be absent from everything it writes.

mod aks;
mod eks;
mod gke;
mod real;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kubeship_testkit::cloud::oidc::{Issuer, RsaKey};
use kubeship_testkit::push::Kind;
use kubeship_testkit::{Registry, Setup};
use kubesim::{Authenticator, Options, Simulator, resources};
use serde_json::json;

/// A registry with `acme/api:v1` and `:v2`, and a cluster whose Deployment `prod/api` runs v1,
/// letting in the bearer tokens `check` accepts.
pub struct World {
    pub registry: Registry,
    pub sim: Simulator,
    pub dir: tempfile::TempDir,
    /// Every bearer token the cluster was shown.
    pub seen: Arc<Mutex<Vec<String>>>,
}

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub outputs: BTreeMap<String, String>,
    /// `$GITHUB_OUTPUT` and `$GITHUB_STEP_SUMMARY` as written.
    pub files: String,
}

impl World {
    pub fn start(check: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        let registry = Registry::start(Setup::Anonymous).unwrap();
        let pusher = registry.pusher().unwrap();
        pusher.image("acme/api", "v1", Kind::OciManifest, "one").unwrap();
        pusher.image("acme/api", "v2", Kind::OciManifest, "two").unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let authenticate = Authenticator(Arc::new(move |token: &str| {
            log.lock().unwrap().push(token.to_owned());
            check(token)
        }));
        let sim = Simulator::start(Options {
            tls: true,
            authenticate: Some(authenticate),
            insecure_registries: vec![registry.host.clone()],
            ..Options::default()
        })
        .unwrap();
        sim.create(&resources::NAMESPACES, json!({"metadata": {"name": "prod"}})).unwrap();
        let image = format!("{}/acme/api:v1", registry.host);
        let d = json!({"metadata": {"name": "api", "namespace": "prod"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "api"}},
                "template": {"metadata": {"labels": {"app": "api"}},
                    "spec": {"containers": [{"name": "app", "image": image}]}}}});
        sim.create(&resources::DEPLOYMENTS, d).unwrap();
        for _ in 0..200 {
            sim.settle();
            let d = sim.get(&resources::DEPLOYMENTS, "prod", "api").unwrap();
            if d["status"]["availableReplicas"] == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        Self { registry, sim, dir, seen }
    }

    pub fn image(&self) -> String {
        format!("{}/acme/api:v2", self.registry.host)
    }

    /// The cluster's kubeconfig with its user running `command args` (with `env`).
    pub fn exec_kubeconfig(&self, command: &str, args: &[&str], env: &[(&str, &str)]) -> String {
        let args = args.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", ");
        let mut user = format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: {command}\n      args: [{args}]\n      interactiveMode: Never\n"
        );
        if !env.is_empty() {
            user.push_str("      env:\n");
            for (name, value) in env {
                user.push_str(&format!("      - name: {name}\n        value: \"{value}\"\n"));
            }
        }
        let config = self.sim.kubeconfig(Some("prod"));
        assert!(config.ends_with("  user:\n    {}\n"), "{config}");
        format!("{}{user}", config.trim_end_matches("    {}\n"))
    }

    /// Runs kubeship as the GitHub runner runs the action (outputs, summary, annotations),
    /// with an empty `PATH` (no plugin), the v2 image on `api`, and `vars`.
    pub fn run(&self, vars: &[(&str, &str)]) -> Run {
        let output = self.dir.path().join("output");
        let summary = self.dir.path().join("summary");
        let _ = std::fs::remove_file(&output);
        let _ = std::fs::remove_file(&summary);
        let mut command = Command::new(env!("CARGO_BIN_EXE_kubeship"));
        command
            .env_clear()
            .env("PATH", self.dir.path().join("bin"))
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("INPUT_IMAGE", self.image())
            .env("INPUT_DEPLOYMENT", "api")
            .env("INPUT_NAMESPACE", "prod")
            .env("INPUT_INSECURE-REGISTRY", "true")
            .env("INPUT_TIMEOUT", "30s")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in vars {
            command.env(k, v);
        }
        let out = command.output().unwrap();
        let text = std::fs::read_to_string(&output).unwrap_or_default();
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            outputs: kubeship_testkit::github::parse_output(&text)
                .unwrap_or_default()
                .into_iter()
                .collect(),
            files: format!("{text}\n{}", std::fs::read_to_string(&summary).unwrap_or_default()),
        }
    }

    /// The tokens the cluster was shown.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// A file in the test's directory.
    pub fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

impl Run {
    /// Succeeded and pinned the v2 digest.
    pub fn assert_succeeded(&self) {
        assert_eq!(self.code, Some(0), "{}", self.stderr);
        assert_eq!(
            self.outputs.get("status").map(String::as_str),
            Some("succeeded"),
            "{}",
            self.stderr
        );
    }

    /// No secret in standard output, standard error (but in the runner's `::add-mask::`
    /// commands), `$GITHUB_OUTPUT` or the step summary.
    pub fn assert_secret_free(&self, secrets: &[String]) {
        for secret in secrets.iter().filter(|s| s.len() >= 8) {
            assert!(!self.stdout.contains(secret.as_str()), "a secret in stdout: {}", self.stdout);
            assert!(!self.files.contains(secret.as_str()), "a secret in the outputs or summary");
            let leaked: Vec<&str> = self
                .stderr
                .lines()
                .filter(|l| l.contains(secret.as_str()) && !l.starts_with("::add-mask::"))
                .collect();
            assert!(leaked.is_empty(), "a secret in stderr: {leaked:?}");
        }
    }
}

/// A test issuer (GitHub's, or a cluster's service-account issuer).
pub fn issuer(dir: &std::path::Path) -> Issuer {
    Issuer::new(
        "https://token.actions.githubusercontent.com",
        RsaKey::generate(dir, "issuer").unwrap(),
    )
}
