//! kubeship's main job on this machine, end to end: a real registry (Debian's
//! docker-registry) with two images pushed, a simulated cluster (kubesim) whose Deployment
//! `shop` runs the first, then kubeship run exactly as the GitHub runner runs a Docker action
//! (every declared input as a hyphenated `INPUT_` variable, `$GITHUB_OUTPUT` and
//! `$GITHUB_STEP_SUMMARY` files). A second run ships an image whose pods are OOMKilled, and
//! fails fast with the cause. Run it with `scripts/demo`.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use kubeship::inputs::INPUTS;
use kubeship_testkit::push::Kind;
use kubeship_testkit::{Registry, Setup};
use kubesim::{Behaviour, Options, Simulator, resources};

fn main() -> anyhow::Result<()> {
    let registry = Registry::start(Setup::Anonymous).context("starting docker-registry")?;
    let pusher = registry.pusher()?;
    for tag in ["v1", "v2", "v3"] {
        pusher.image("acme/shop", tag, Kind::OciIndex, tag)?;
    }
    let image = |tag: &str| format!("{}/acme/shop:{tag}", registry.host);
    let sim = Simulator::start(Options {
        insecure_registries: vec![registry.host.clone()],
        ..Options::default()
    })?;
    let oom = registry.stored_digest("acme/shop", "v3")?;
    sim.script(
        &format!("{}/acme/shop@{oom}", registry.host),
        Behaviour {
            // It crashes a moment after each start, before its readiness probe would pass.
            crash: Some((Duration::from_millis(500), "OOMKilled".into(), 137)),
            ready_delay: Duration::from_secs(10),
            logs: vec!["loading catalogue".into(), "allocating 2 GiB cache".into()],
            ..Behaviour::default()
        },
    );
    sim.create(
        &resources::DEPLOYMENTS,
        serde_json::json!({"metadata": {"name": "shop", "namespace": "default"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "shop"}},
                "template": {"metadata": {"labels": {"app": "shop"}},
                    "spec": {"containers": [{"name": "shop", "image": image("v1")}]}}}}),
    )
    .map_err(|e| anyhow::anyhow!("creating the Deployment: {e:?}"))?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = sim.kubeconfig(None);
    println!("registry   http://{}  (acme/shop:v1, :v2, :v3 pushed)", registry.host);
    println!("cluster    {}  (Deployment shop, 3 replicas of acme/shop:v1)\n", sim.url());

    for (tag, title) in [("v2", "ship v2"), ("v3", "ship v3, whose pods are OOMKilled")] {
        println!("──── {title} ────────────────────────────────────────────");
        let output_file = dir.path().join(format!("set_output_{tag}"));
        let summary_file = dir.path().join(format!("step_summary_{tag}"));
        std::fs::write(&output_file, "")?;
        std::fs::write(&summary_file, "")?;
        let given = [
            ("image", image(tag)),
            ("deployment", "shop".to_owned()),
            ("kubeconfig", kubeconfig.clone()),
            ("insecure-registry", "true".to_owned()),
            ("timeout", "2m".to_owned()),
        ];
        let mut command = Command::new(kubeship_binary()?);
        command.env_clear().env("PATH", "/usr/bin:/bin");
        for spec in INPUTS {
            let value = given
                .iter()
                .find(|(name, _)| *name == spec.name)
                .map_or(spec.default, |(_, v)| v.as_str());
            command.env(format!("INPUT_{}", spec.name.to_uppercase()), value);
        }
        let status = command
            .env("GITHUB_ACTIONS", "true")
            .env("CI", "true")
            .env("GITHUB_OUTPUT", &output_file)
            .env("GITHUB_STEP_SUMMARY", &summary_file)
            .env("GITHUB_REPOSITORY", "acme/shop")
            .env("GITHUB_SHA", "4b825dc642cb6eb9a060e54bf8d69288fbee4904")
            .env("GITHUB_SERVER_URL", "https://github.com")
            .env("GITHUB_RUN_ID", "1")
            .stdout(std::process::Stdio::null())
            .status()
            .context("running kubeship")?;
        println!("\nexit code {}\n\n$GITHUB_OUTPUT:", status.code().unwrap_or(-1));
        let written = std::fs::read_to_string(&output_file)?;
        let outputs = kubeship_testkit::github::parse_output(&written)
            .map_err(|e| anyhow::anyhow!("the runner would refuse $GITHUB_OUTPUT: {e}"))?;
        for (name, value) in outputs {
            if name != "result" {
                println!("  {name} = {value}");
            }
        }
        println!("\n$GITHUB_STEP_SUMMARY:\n{}", std::fs::read_to_string(&summary_file)?);
    }
    Ok(())
}

/// The kubeship binary beside this example (`cargo build --bin kubeship --example demo`).
fn kubeship_binary() -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    let binary = exe
        .parent()
        .and_then(std::path::Path::parent)
        .map(|dir| dir.join("kubeship"))
        .context("locating the kubeship binary")?;
    if !binary.is_file() {
        bail!("{} is missing: run scripts/demo", binary.display());
    }
    Ok(binary)
}
