//! Starting the control plane: certificates and files, then each component with its ready
//! check, in dependency order (etcd, kube-apiserver, then the controller manager, scheduler,
//! kwok and the kubelet agent together). Ports come from below the kernel's ephemeral range,
//! so the components' own outgoing connections cannot take them between choice and bind; a
//! start that still loses a port race to another process is tried again.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kubesim::Resource;
use serde_json::{Value, json};

use super::client::{self, Client, Credentials, path};
use super::process::{Process, Spawner};
use super::{ControlPlane, Options, TOKEN_USER, components, kubelet, kubelet_server, kwok, pki};

const fn core(kind: &'static str, plural: &'static str, namespaced: bool) -> Resource {
    Resource {
        group: "",
        version: "v1",
        kind,
        plural,
        singular: "",
        namespaced,
        short_names: &[],
        subresources: &[],
    }
}

const fn rbac(kind: &'static str, plural: &'static str, namespaced: bool) -> Resource {
    Resource { group: "rbac.authorization.k8s.io", ..core(kind, plural, namespaced) }
}

pub const SERVICE_ACCOUNTS: Resource = core("ServiceAccount", "serviceaccounts", true);
const NAMESPACES: Resource = core("Namespace", "namespaces", false);
const NODES: Resource = core("Node", "nodes", false);
const CLUSTER_ROLES: Resource = rbac("ClusterRole", "clusterroles", false);
const CLUSTER_ROLE_BINDINGS: Resource = rbac("ClusterRoleBinding", "clusterrolebindings", false);

/// The namespace made at start to see the controllers work; admission probes run in it.
pub const READY_NAMESPACE: &str = "kubeship-ready";

const DIR_PREFIX: &str = "kubeship-controlplane-";

/// Removes the directories of control planes whose test process has ended: a shared one
/// lives in a static, which is never dropped.
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(DIR_PREFIX).and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A port nothing listens on, below the ephemeral range (outgoing connections never take it).
fn free_port() -> anyhow::Result<u16> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(32768);
    let (from, to) = if low > 12000 { (10000, low) } else { (40000, 60000) };
    for _ in 0..200 {
        let random = u16::from_le_bytes(random_bytes::<2>()?);
        let port = from + random % (to - from);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no free port between {from} and {to}")
}

fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    use std::io::Read as _;
    let mut buf = [0u8; N];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

fn random_hex() -> anyhow::Result<String> {
    Ok(random_bytes::<24>()?.iter().map(|b| format!("{b:02x}")).collect())
}

/// Polls `ready` until it holds, failing early with the log of a process that exited.
pub fn wait(
    what: &str,
    timeout: Duration,
    processes: &mut [Process],
    mut ready: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return Ok(());
        }
        for p in processes.iter_mut() {
            p.check()?;
        }
        anyhow::ensure!(Instant::now() < deadline, "{what} was not ready after {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Creates namespace `name` and waits for its `default` service account.
pub fn create_namespace(
    api: &Client,
    name: &str,
    processes: &mut [Process],
    timeout: Duration,
) -> anyhow::Result<()> {
    api.ensure(&path(&NAMESPACES, None, None), &json!({"metadata": {"name": name}}))
        .map_err(super::api_error)?;
    let account = path(&SERVICE_ACCOUNTS, Some(name), Some("default"));
    wait(&format!("the default service account of namespace {name}"), timeout, processes, || {
        api.get(&account).is_ok()
    })
}

/// Creates a fake node (kwok takes it) and waits until it is Ready and untainted.
pub fn add_node(
    api: &Client,
    node: &kubesim::Node,
    processes: &mut [Process],
    timeout: Duration,
) -> anyhow::Result<()> {
    api.ensure(&path(&NODES, None, None), &kwok::node(node)).map_err(super::api_error)?;
    let at = path(&NODES, None, Some(&node.name));
    wait(&format!("node {}", node.name), timeout, processes, || {
        api.get(&at).is_ok_and(|n| node_ready(&n))
    })
}

pub fn start(options: Options) -> anyhow::Result<ControlPlane> {
    crate::install_crypto_provider();
    sweep_stale();
    let mut attempt = 1;
    loop {
        match try_start(&options) {
            Err(e) if attempt < 3 && format!("{e:#}").contains("address already in use") => {
                eprintln!("control plane: a port was taken meanwhile, starting again ({e:#})");
                attempt += 1;
            }
            result => return result,
        }
    }
}

fn try_start(options: &Options) -> anyhow::Result<ControlPlane> {
    let began = Instant::now();
    let bin = match options.binaries.clone() {
        Some(dir) => dir,
        None => super::binaries()?.ok_or_else(|| {
            anyhow::anyhow!("the control plane is not built: run scripts/controlplane")
        })?,
    };
    let dir = tempfile::Builder::new()
        .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
        .tempdir()?;
    let d = dir.path();
    let ca = pki::Ca::new()?;
    std::fs::write(d.join("ca.crt"), &ca.cert_pem)?;
    let serving = ca.server(
        "kube-apiserver",
        &["127.0.0.1", "localhost", "10.96.0.1", "kubernetes", "kubernetes.default"],
    )?;
    pki::write(d, "apiserver", &serving)?;
    let (sa_key, sa_pub) = pki::signing_key()?;
    std::fs::write(d.join("sa.key"), sa_key)?;
    std::fs::write(d.join("sa.pub"), sa_pub)?;
    let admin = ca.client("kubeship-admin", &["system:masters"])?;
    let token = random_hex()?;
    std::fs::write(
        d.join("tokens.csv"),
        format!("{token},{TOKEN_USER},{TOKEN_USER},\"kubeship:ci\"\n"),
    )?;
    if let Some(webhook) = &options.token_webhook {
        std::fs::write(d.join("token-webhook.kubeconfig"), webhook)?;
    }
    std::fs::write(d.join("audit-policy.yaml"), components::AUDIT_POLICY)?;

    let spawner = Spawner::new()?;
    let mut processes = Vec::new();
    let log = |name: &str| d.join(format!("{name}.log"));

    let (etcd_port, peer_port) = (free_port()?, free_port()?);
    let args = components::etcd(d, etcd_port, peer_port);
    processes.push(spawner.spawn("etcd", &bin.join("etcd"), &args, &log("etcd"))?);
    let plain = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build()?;
    wait("etcd", Duration::from_secs(30), &mut processes, || {
        plain
            .get(format!("http://127.0.0.1:{etcd_port}/health"))
            .send()
            .and_then(|r| r.text())
            .is_ok_and(|t| t.contains("\"health\":\"true\""))
    })?;

    let port = free_port()?;
    let url = format!("https://127.0.0.1:{port}");
    let args = components::apiserver(d, port, etcd_port, options.token_webhook.is_some());
    let apiserver = spawner.spawn(
        "kube-apiserver",
        &bin.join("kube-apiserver"),
        &args,
        &log("kube-apiserver"),
    )?;
    processes.push(apiserver);
    let api = Client::new(&url, &ca.cert_pem, Credentials::Certificate(&admin))?;
    wait("kube-apiserver", Duration::from_secs(90), &mut processes, || {
        api.get_text("/readyz").is_ok_and(|(code, _)| code == 200)
    })?;

    // Each component has a client certificate of its own.
    let kubeconfig_for = |name: &str, user: &str, groups: &[&str]| -> anyhow::Result<_> {
        let pair = ca.client(user, groups)?;
        let text =
            client::kubeconfig(&url, &ca.cert_pem, user, Credentials::Certificate(&pair), None);
        let file = d.join(format!("{name}.kubeconfig"));
        std::fs::write(&file, text)?;
        Ok(file)
    };
    let kcm_port = free_port()?;
    let kubeconfig = kubeconfig_for("kcm", "system:kube-controller-manager", &[])?;
    let args = components::controller_manager(d, kcm_port, &kubeconfig);
    let kcm = &bin.join("kube-controller-manager");
    processes.push(spawner.spawn(
        "kube-controller-manager",
        kcm,
        &args,
        &log("kube-controller-manager"),
    )?);

    let scheduler_port = free_port()?;
    let kubeconfig = kubeconfig_for("scheduler", "system:kube-scheduler", &[])?;
    std::fs::write(d.join("scheduler.yaml"), components::scheduler_config(&kubeconfig))?;
    let args = components::scheduler(&d.join("scheduler.yaml"), scheduler_port);
    let scheduler = &bin.join("kube-scheduler");
    processes.push(spawner.spawn("kube-scheduler", scheduler, &args, &log("kube-scheduler"))?);

    // The kubelet agent's endpoint, bound now so kwok's stages can name its port.
    let kubelet_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    kubelet_listener.set_nonblocking(true)?;
    std::fs::write(d.join("kwok.yaml"), kwok::config(kubelet_listener.local_addr()?.port()))?;
    let kubeconfig = kubeconfig_for("kwok", "kwok-controller", &["system:masters"])?;
    let args = vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--config={}", d.join("kwok.yaml").display()),
    ];
    processes.push(spawner.spawn("kwok", &bin.join("kwok"), &args, &log("kwok"))?);

    let node_names: Vec<String> = options.nodes.iter().map(|n| n.name.clone()).collect();
    for node in &options.nodes {
        api.ensure(&path(&NODES, None, None), &kwok::node(node)).map_err(super::api_error)?;
    }
    grant_token_user(&api)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("controlplane-kubelet")
        .enable_all()
        .build()?;
    let agent =
        Arc::new(kubelet::Agent::new(node_names.iter().cloned().collect(), options.termination));
    let agent_kubeconfig = client::kubeconfig(
        &url,
        &ca.cert_pem,
        "kubeship-kubelet",
        Credentials::Certificate(&ca.client("kubeship-kubelet", &["system:masters"])?),
        None,
    );
    let tls = Arc::new(pki::server_config(&ca, &["127.0.0.1", "localhost"])?);
    runtime.block_on(async {
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&agent_kubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
        let client = kube::Client::try_from(config)?;
        tokio::spawn(kubelet::run(agent.clone(), client));
        let listener = tokio::net::TcpListener::from_std(kubelet_listener)?;
        tokio::spawn(kubelet_server::serve(agent.clone(), listener, tls));
        anyhow::Ok(())
    })?;

    // Ready: the controller manager's and the scheduler's health, every node Ready and
    // untainted, and a namespace that gets its default service account.
    let insecure = reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(2))
        .build()?;
    for (name, port) in [("kube-controller-manager", kcm_port), ("kube-scheduler", scheduler_port)]
    {
        wait(name, Duration::from_secs(60), &mut processes, || {
            insecure
                .get(format!("https://127.0.0.1:{port}/healthz"))
                .send()
                .is_ok_and(|r| r.status().is_success())
        })?;
    }
    for node in &options.nodes {
        add_node(&api, node, &mut processes, Duration::from_secs(60))?;
    }
    create_namespace(&api, READY_NAMESPACE, &mut processes, Duration::from_secs(60))?;

    let startup = began.elapsed();
    let rss: u64 = processes.iter().filter_map(Process::rss_kib).sum();
    eprintln!(
        "control plane ready in {:.1} s at {url} ({} nodes, {} MB resident; logs in {})",
        startup.as_secs_f64(),
        node_names.len(),
        rss / 1024,
        d.display()
    );
    Ok(ControlPlane {
        processes,
        runtime: Some(runtime),
        agent,
        spawner,
        url,
        ca_pem: ca.cert_pem.clone(),
        admin,
        token,
        api,
        startup,
        dir,
    })
}

fn node_ready(node: &Value) -> bool {
    node["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        && node["spec"]["taints"].as_array().is_none_or(|t| t.is_empty())
}

/// The README's least-privilege rules for kubeship, granted to the token user everywhere:
/// every scenario run as that user proves the README's Role is enough.
fn grant_token_user(api: &Client) -> anyhow::Result<()> {
    let role = json!({"metadata": {"name": "kubeship"}, "rules": super::readme_role()?["rules"]});
    api.ensure(&path(&CLUSTER_ROLES, None, None), &role).map_err(super::api_error)?;
    let binding = json!({"metadata": {"name": "kubeship-ci"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kubeship"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": TOKEN_USER}]});
    api.ensure(&path(&CLUSTER_ROLE_BINDINGS, None, None), &binding).map_err(super::api_error)?;
    Ok(())
}
