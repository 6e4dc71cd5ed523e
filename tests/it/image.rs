//! The container image, run the way its users run it. Base images cannot be pulled here, so
//! the Dockerfile's build stage is replaced by the static binary scripts/static-binary builds
//! (the Dockerfile's flags); its runtime stage is taken from the Dockerfile as written, built with
//! buildah and run with podman (runc, cgroupfs, host network, vfs storage) against the
//! simulator and a local registry:
//! - as the GitHub runner runs a Docker action: `--workdir /github/workspace`, every declared
//!   input as a hyphenated `INPUT_` variable (empty when not given), `/github/file_commands`
//!   mounted with `GITHUB_OUTPUT` and `GITHUB_STEP_SUMMARY`;
//! - as `docker run` in other CI: `KUBESHIP_` variables and a mounted kubeconfig;
//! - in a pod: the service account's files and `KUBERNETES_SERVICE_HOST`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use kubeship::inputs::INPUTS;

use crate::world::{TOKEN, World, parse_outputs};

const IMAGE: &str = "localhost/kubeship:test";

/// buildah and podman with the settings this machine needs, and the image built once.
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("CONTAINERS_CONF", self.dir.path().join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.dir.path().join("storage.conf"))
            .env("XDG_RUNTIME_DIR", self.dir.path().join("xdg"))
            .env("TMPDIR", self.dir.path().join("tmp"));
        command
    }
}

fn check(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The static binary: the one scripts/test built (`KUBESHIP_STATIC_BINARY`), else built once
/// per test run by scripts/static-binary.
fn static_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Some(built) =
                std::env::var_os("KUBESHIP_STATIC_BINARY").filter(|p| !p.is_empty())
            {
                let built = PathBuf::from(built);
                assert!(
                    built.is_file(),
                    "KUBESHIP_STATIC_BINARY={} is not a file",
                    built.display()
                );
                return built;
            }
            // The script the Dockerfile's flags are kept in step with.
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            let output =
                Command::new(root.join("scripts/static-binary")).output().expect("bash runs");
            check(&output, "static build");
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        })
        .clone()
}

/// The Dockerfile's last stage, with each `COPY --from=<build stage>` taken from this
/// machine instead: the static binary for `/kubeship`, the same path for anything else.
fn runtime_stage(context: &Path) -> String {
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap();
    let start = dockerfile.rfind("\nFROM ").expect("a FROM line") + 1;
    let mut stage = String::new();
    for line in dockerfile[start..].lines() {
        let Some(rest) = line.strip_prefix("COPY --from=") else {
            stage.push_str(line);
            stage.push('\n');
            continue;
        };
        let mut words = rest.split_whitespace().skip(1);
        let (source, destination) = (words.next().unwrap(), words.next().unwrap());
        let local = context.join(source.trim_start_matches('/'));
        std::fs::create_dir_all(local.parent().unwrap()).unwrap();
        let from = if source == "/kubeship" { static_binary() } else { PathBuf::from(source) };
        std::fs::copy(&from, &local).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        stage.push_str(&format!("COPY {} {destination}\n", source.trim_start_matches('/')));
    }
    stage
}

/// Builds the image once per test run.
fn podman() -> &'static Podman {
    static PODMAN: OnceLock<Podman> = OnceLock::new();
    PODMAN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        for sub in ["xdg", "tmp", "context"] {
            std::fs::create_dir_all(path.join(sub)).unwrap();
        }
        std::fs::write(
            path.join("containers.conf"),
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
             netns = \"host\"\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
             runtime = \"runc\"\n",
        )
        .unwrap();
        std::fs::write(
            path.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{0}/run\"\ngraphroot = \"{0}/root\"\n",
                path.display()
            ),
        )
        .unwrap();
        let context = path.join("context");
        std::fs::write(context.join("Containerfile"), runtime_stage(&context)).unwrap();
        let podman = Podman { dir };
        let output = podman
            .command("buildah")
            .args(["bud", "--isolation", "chroot", "-t", IMAGE, "-f"])
            .arg(context.join("Containerfile"))
            .arg(&context)
            .output()
            .expect("buildah runs (scripts/test installs it)");
        check(&output, "buildah bud");
        podman
    })
}

/// `podman run` of the image with `args` before the image name.
fn run(args: &[String]) -> Output {
    podman()
        .command("podman")
        .args(["run", "--rm", "--network", "host"])
        .args(args)
        .arg(IMAGE)
        .output()
        .expect("podman runs (scripts/test installs it)")
}

/// `podman run` with `-v` for each volume and `-e` for each `NAME=value`.
fn run_with(volumes: &[String], env: &[String]) -> Output {
    let mut args = Vec::new();
    for volume in volumes {
        args.extend(["-v".to_owned(), volume.clone()]);
    }
    for variable in env {
        args.extend(["-e".to_owned(), variable.clone()]);
    }
    run(&args)
}

/// The inputs of a plain run of the World's v2 image on `api`, as `KUBESHIP_` variables.
fn kubeship_inputs(w: &World) -> Vec<String> {
    vec![
        format!("KUBESHIP_IMAGE={}", w.image("v2")),
        "KUBESHIP_DEPLOYMENT=api".into(),
        "KUBESHIP_INSECURE_REGISTRY=true".into(),
    ]
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The image: under 15 MB, `/kubeship` as its entrypoint, root, the OCI labels; no shell.
#[test]
fn image_is_small_static_and_shell_free() {
    let p = podman();
    let inspect = p.command("podman").args(["image", "inspect", IMAGE]).output().unwrap();
    check(&inspect, "podman image inspect");
    let info: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let image = &info[0];
    let size = image["Size"].as_u64().unwrap();
    assert!(size < 15 * 1000 * 1000, "the image is {size} bytes");
    assert_eq!(image["Config"]["Entrypoint"], serde_json::json!(["/kubeship"]));
    assert!(image["Config"]["User"].as_str().unwrap_or_default().is_empty(), "{image}");
    for label in ["title", "description", "source", "licenses"] {
        let key = format!("org.opencontainers.image.{label}");
        assert!(image["Config"]["Labels"][&key].is_string(), "no {key}: {image}");
    }
    for shell in ["/bin/sh", "/bin/bash", "/usr/bin/apt-get"] {
        let output = run(&["--entrypoint".into(), shell.into()]);
        assert!(!output.status.success(), "{shell} ran in the image");
    }
    let version = p
        .command("podman")
        .args(["run", "--rm", "--network", "host", IMAGE, "--version"])
        .output()
        .unwrap();
    check(&version, "kubeship --version");
    assert!(text(&version.stdout).starts_with("kubeship "));
}

/// The tests (and the resolution benchmark) measure the binary the image ships: the Dockerfile
/// and scripts/static-binary build with the same flags. The binary is a static position-
/// independent executable (ASLR kept) whose relocations are packed (RELR).
#[test]
fn the_tests_build_the_binary_the_image_ships() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let flags = |file: &str| -> String {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let start = text.find("RUSTFLAGS='").unwrap_or_else(|| panic!("no RUSTFLAGS in {file}"));
        let rest = &text[start + "RUSTFLAGS='".len()..];
        rest[..rest.find('\'').unwrap()].to_owned()
    };
    assert_eq!(flags("Dockerfile"), flags("scripts/static-binary"));
    // readelf comes with the linker cargo uses.
    let readelf = Command::new("readelf")
        .args(["--file-header", "--program-headers", "--dynamic", "--wide"])
        .arg(static_binary())
        .output()
        .unwrap();
    check(&readelf, "readelf");
    let elf = text(&readelf.stdout);
    assert!(elf.contains("DYN (Position-Independent Executable file)"), "{elf}");
    assert!(!elf.contains("INTERP") && !elf.contains("(NEEDED)"), "not static: {elf}");
    assert!(elf.contains("(RELR)"), "relocations are not packed: {elf}");
}

/// As the GitHub runner runs a Docker action: every declared input set (empty when not
/// given), hyphens kept; the file commands mounted; the workspace as the working directory,
/// left untouched.
#[test]
fn runs_as_a_github_docker_action() {
    let w = World::kubesim();
    let host = tempfile::tempdir().unwrap();
    let (workspace, commands) = (host.path().join("workspace"), host.path().join("file_commands"));
    for dir in [&workspace, &commands] {
        std::fs::create_dir(dir).unwrap();
    }
    std::fs::write(commands.join("set_output_1f2e"), "").unwrap();
    std::fs::write(commands.join("step_summary_1f2e"), "").unwrap();
    let kubeconfig = std::fs::read_to_string(w.dir.path().join("kubeconfig")).unwrap();
    let given = [
        ("image", w.image("v2")),
        ("deployment", "deployment/api".to_owned()),
        ("kubeconfig", kubeconfig),
        ("insecure-registry", "true".to_owned()),
    ];
    let mut args: Vec<String> = vec![
        "--workdir".into(),
        "/github/workspace".into(),
        "-v".into(),
        format!("{}:/github/workspace", workspace.display()),
        "-v".into(),
        format!("{}:/github/file_commands", commands.display()),
    ];
    // The runner passes values by name (`-e NAME`); podman reads them from its environment.
    let mut env = Vec::new();
    for spec in INPUTS {
        let value = given
            .iter()
            .find(|(name, _)| *name == spec.name)
            .map_or_else(|| spec.default.to_owned(), |(_, v)| v.clone());
        let name = format!("INPUT_{}", spec.name.to_uppercase());
        args.extend(["-e".into(), name.clone()]);
        env.push((name, value));
    }
    for (name, value) in [
        ("GITHUB_ACTIONS", "true"),
        ("CI", "true"),
        ("GITHUB_OUTPUT", "/github/file_commands/set_output_1f2e"),
        ("GITHUB_STEP_SUMMARY", "/github/file_commands/step_summary_1f2e"),
        ("GITHUB_WORKSPACE", "/github/workspace"),
        ("HOME", "/github/home"),
        ("GITHUB_REPOSITORY", "acme/shop"),
        ("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567"),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_RUN_ID", "42"),
    ] {
        args.extend(["-e".into(), name.into()]);
        env.push((name.into(), value.into()));
    }
    let output = podman()
        .command("podman")
        .args(["run", "--rm", "--network", "host"])
        .args(&args)
        .arg(IMAGE)
        .envs(env)
        .output()
        .unwrap();
    check(&output, "the action");
    let outputs =
        parse_outputs(&std::fs::read_to_string(commands.join("set_output_1f2e")).unwrap());
    assert_eq!(outputs["status"], "succeeded");
    assert_eq!(outputs["image"], w.pinned(&w.v2));
    assert_eq!(outputs["changed"], "true");
    assert_eq!(w.container_image("api"), w.pinned(&w.v2));
    let summary = std::fs::read_to_string(commands.join("step_summary_1f2e")).unwrap();
    assert!(summary.starts_with("### kubeship: succeeded\n"), "{summary}");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("::group::Wait for the rollout"), "{stderr}");
    assert!(stderr.contains(&format!("::add-mask::{TOKEN}")), "{stderr}");
    let cause = &w.sim().get(&kubesim::resources::DEPLOYMENTS, "prod", "api").unwrap()["metadata"]
        ["annotations"]["kubernetes.io/change-cause"];
    assert!(cause.as_str().unwrap().contains("acme/shop@0123456789ab"), "{cause}");
    assert_eq!(std::fs::read_dir(&workspace).unwrap().count(), 0, "wrote into the workspace");
    let last = text(&output.stdout).lines().last().unwrap_or_default().to_owned();
    let result: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(result["status"], "succeeded");
}

/// As `docker run` in any other CI: `KUBESHIP_` variables, a mounted kubeconfig, and the
/// GitLab dotenv report in a mounted directory.
#[test]
fn runs_as_docker_run_with_a_mounted_kubeconfig() {
    let w = World::kubesim();
    let reports = tempfile::tempdir().unwrap();
    let mut env = kubeship_inputs(&w);
    env.extend([
        "KUBECONFIG=/kubeconfig".into(),
        "KUBESHIP_DOTENV_FILE=/reports/deploy.env".into(),
    ]);
    let output = run_with(
        &[
            format!("{}:/kubeconfig:ro", w.dir.path().join("kubeconfig").display()),
            format!("{}:/reports", reports.path().display()),
        ],
        &env,
    );
    check(&output, "docker run style");
    let dotenv = std::fs::read_to_string(reports.path().join("deploy.env")).unwrap();
    assert!(dotenv.contains("KUBESHIP_STATUS=succeeded\n"), "{dotenv}");
    assert!(dotenv.contains(&format!("KUBESHIP_IMAGE={}\n", w.pinned(&w.v2))), "{dotenv}");
    assert_eq!(w.container_image("api"), w.pinned(&w.v2));
}

/// In a pod: no kubeconfig, the service account's token, CA and namespace.
#[test]
fn runs_in_cluster_with_a_service_account() {
    let w = World::kubesim();
    let account = tempfile::tempdir().unwrap();
    std::fs::write(account.path().join("token"), TOKEN).unwrap();
    std::fs::write(account.path().join("ca.crt"), w.sim().ca_pem().unwrap()).unwrap();
    std::fs::write(account.path().join("namespace"), "prod").unwrap();
    let port = w.sim().url().rsplit(':').next().unwrap().to_owned();
    let mut env = kubeship_inputs(&w);
    env.extend([
        "KUBERNETES_SERVICE_HOST=127.0.0.1".into(),
        format!("KUBERNETES_SERVICE_PORT={port}"),
    ]);
    let output = run_with(
        &[format!("{}:/var/run/secrets/kubernetes.io/serviceaccount:ro", account.path().display())],
        &env,
    );
    check(&output, "in-cluster");
    assert_eq!(w.container_image("api"), w.pinned(&w.v2));
    let patch = w.patches().pop().unwrap();
    assert_eq!(patch.path, "/apis/apps/v1/namespaces/prod/deployments/api");
}

/// Names resolve in the image as glibc resolves them, the C library of the user's own tools:
/// from the `resolv.conf` podman writes, a short name through the search list with `ndots:5`
/// (as the kubelet writes it for pods), a dotted name below `ndots` absolute first and then
/// through the search list (`docker run`'s default `ndots:1`), and a search line longer than
/// 255 characters (a pod's namespace domains plus the node's), past a search domain whose
/// name server fails, and after one whose server does not reply. musl's `getaddrinfo` fails the last three; kubeship resolves in process
/// (src/dns.rs). The nameserver is the test's own, on 127.0.0.1:53.
#[test]
fn registry_names_resolve_as_glibc_resolves_them() {
    let w = World::kubesim();
    let port = w.registry.host.rsplit(':').next().unwrap().to_owned();
    let long: Vec<String> = (0..5)
        .map(|i| format!("a-namespace-with-a-long-name-{i}.svc.cluster.local"))
        .chain(["ci.internal".to_owned()])
        .collect();
    assert!(format!("search {}", long.join(" ")).len() > 255);
    let cases: [(&str, Vec<String>, &[&str], &str); 5] = [
        ("registry", vec!["ci.internal".into()], &["ndots:5"], "registry.ci.internal"),
        ("reg.corp", vec!["ci.internal".into()], &[], "reg.corp.ci.internal"),
        ("registry", long, &["ndots:5"], "registry.ci.internal"),
        (
            "registry",
            vec!["broken.internal".into(), "ci.internal".into()],
            &["ndots:5", "attempts:1"],
            "registry.ci.internal",
        ),
        // A search domain whose server never replies ends the search (the next is not
        // waited for); the name as it is is still asked.
        (
            "registry.ci.internal",
            vec!["silent.internal".into(), "more.silent.internal".into()],
            &["ndots:5", "timeout:3", "attempts:1"],
            "registry.ci.internal",
        ),
    ];
    let dns = Nameserver::start(
        &["registry.ci.internal", "reg.corp.ci.internal", "flaky.ci.internal"],
        ("flaky.ci.internal", 4),
    );
    // The image pinned by a run of `tag` from registry host `name`, with these resolver settings.
    let deploy = |name: &str, tag: &str, search: &[String], options: &[&str], extra: &[&str]| {
        let image = format!("{name}:{port}/acme/api");
        let mut args: Vec<String> = vec!["--dns".into(), "127.0.0.1".into()];
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        for domain in search {
            args.extend(["--dns-search".into(), domain.clone()]);
        }
        for option in options {
            args.extend(["--dns-option".into(), (*option).to_owned()]);
        }
        args.extend([
            "-v".into(),
            format!("{}:/kubeconfig:ro", w.dir.path().join("kubeconfig").display()),
        ]);
        for variable in [
            "KUBECONFIG=/kubeconfig".to_owned(),
            format!("KUBESHIP_IMAGE={image}:{tag}"),
            "KUBESHIP_DEPLOYMENT=api".into(),
            "KUBESHIP_CONTAINER=app".into(),
            "KUBESHIP_INSECURE_REGISTRY=true".into(),
        ] {
            args.extend(["-e".into(), variable]);
        }
        (image, run(&args))
    };
    let what = |name: &str, search: &[String], options: &[&str]| {
        format!("{name} with search {search:?} and options {options:?}")
    };
    for (name, search, options, fqdn) in cases {
        let (image, output) = deploy(name, "v2", &search, options, &[]);
        check(&output, &what(name, &search, options));
        assert_eq!(w.container_image("api"), format!("{image}@{}", w.v2));
        let asked = dns.asked();
        assert!(asked.iter().any(|(n, kind)| n == fqdn && *kind == 1), "{fqdn}: {asked:?}");
    }
    // The last case asked the failing search domain first, and went on.
    let asked = dns.asked();
    assert!(asked.iter().any(|(n, _)| n == "registry.broken.internal"), "{asked:?}");
    // /etc/hosts answers before the name server is asked (a pod's hostAliases, --add-host).
    let (search, options) = (vec!["ci.internal".to_owned()], ["ndots:5"]);
    let (image, output) =
        deploy("pinned", "v1", &search, &options, &["--add-host", "pinned:127.0.0.1"]);
    check(&output, &what("pinned", &search, &options));
    assert_eq!(w.container_image("api"), format!("{image}@{}", w.v1));
    let asked = dns.asked();
    assert!(!asked.iter().any(|(n, _)| n.starts_with("pinned")), "{asked:?}");
    // A name server that fails to answer is an outage, asked again within tag-timeout; the
    // run says so, and goes on once it answers.
    let (image, output) = deploy("flaky.ci.internal", "v2", &[], &["attempts:1"], &[]);
    check(&output, &what("flaky.ci.internal", &[], &["attempts:1"]));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("the name server could not answer"), "{stderr}");
    assert_eq!(w.container_image("api"), format!("{image}@{}", w.v2));
    // A name no search domain knows, where one domain's server failed: an outage too, as
    // glibc says (EAI_AGAIN), not a name that does not exist. It fails once tag-timeout is out.
    let search = vec!["broken.internal".to_owned(), "ci.internal".to_owned()];
    let options = ["ndots:5", "attempts:1"];
    let (_, output) =
        deploy("nowhere", "v1", &search, &options, &["-e", "KUBESHIP_TAG_TIMEOUT=2s"]);
    assert_eq!(output.status.code(), Some(3), "{}", what("nowhere", &search, &options));
    let stderr = text(&output.stderr);
    let outage = stderr
        .lines()
        .any(|l| l.contains("the name server could not answer") && l.contains("nowhere"));
    assert!(outage, "{stderr}");
    assert_eq!(w.container_image("api"), format!("{image}@{}", w.v2));
}

/// A nameserver on 127.0.0.1:53 (UDP) that knows some names, all at 127.0.0.1, and records
/// every question it is asked as (name, type). The first `failures` questions about the
/// `flaky` name get SERVFAIL, as from a name server in trouble, and so do all questions about
/// names under `broken.internal`; questions about names under `silent.internal` get no reply.
struct Nameserver {
    asked: std::sync::Arc<std::sync::Mutex<Vec<(String, u16)>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Nameserver {
    fn start(known: &[&str], (flaky, mut failures): (&str, usize)) -> Self {
        use std::sync::atomic::Ordering;
        let socket = std::net::UdpSocket::bind("127.0.0.1:53")
            .expect("the image tests run as root and 127.0.0.1:53 is free");
        socket.set_read_timeout(Some(std::time::Duration::from_millis(50))).unwrap();
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let known: Vec<String> = known.iter().map(|name| (*name).to_owned()).collect();
        let flaky = flaky.to_owned();
        let (log, done) = (asked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !done.load(Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else { continue };
                if let Some((mut answer, question)) = dns_answer(&buf[..n], &known) {
                    let flaky_now = question.0 == flaky && failures > 0;
                    if flaky_now || question.0.ends_with(".broken.internal") {
                        failures -= usize::from(flaky_now);
                        // SERVFAIL, without the A record after the question.
                        if answer[7] == 1 {
                            answer.truncate(answer.len() - 16);
                        }
                        answer[3] = 0x82;
                        answer[7] = 0;
                    }
                    let silent = question.0.ends_with(".silent.internal");
                    log.lock().unwrap().push(question);
                    if !silent {
                        let _ = socket.send_to(&answer, peer);
                    }
                }
            }
        });
        Self { asked, stop }
    }

    fn asked(&self) -> Vec<(String, u16)> {
        self.asked.lock().unwrap().clone()
    }
}

impl Drop for Nameserver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The answer to one DNS query (RFC 1035 §4.1) and its question: each `known` name has the A
/// record 127.0.0.1 and no other; any other name does not exist. None for what is not a query.
fn dns_answer(query: &[u8], known: &[String]) -> Option<(Vec<u8>, (String, u16))> {
    if query.len() < 12 || query[2] & 0x80 != 0 || query[4..6] != [0, 1] {
        return None;
    }
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let kind = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    let question_end = at + 4;
    let name = labels.join(".");
    let found = known.contains(&name);
    let answers = u8::from(found && kind == 1);
    // QR and the client's RD; RA; NXDOMAIN (3) for an unknown name.
    let mut reply =
        vec![query[0], query[1], 0x80 | (query[2] & 0x01), 0x80 | if found { 0 } else { 3 }];
    reply.extend([0, 1, 0, answers, 0, 0, 0, 0]);
    reply.extend_from_slice(query.get(12..question_end)?);
    if answers == 1 {
        // A pointer to the question's name, A, IN, a TTL of 5 s, four bytes of address.
        reply.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 127, 0, 0, 1]);
    }
    Some((reply, (name, kind)))
}
