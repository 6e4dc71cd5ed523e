//! Debian's `docker-registry` (distribution 2.8) as a child process on `127.0.0.1`, in the
//! three setups kubeship must handle: anonymous over HTTP, htpasswd over TLS with a test CA,
//! and token auth against [`TokenServer`]. Its access log tells what it received.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::Digest as _;

use crate::certs::{self, ServerCerts};
use crate::push::{AuthFn, Pusher};
use crate::run;
use crate::token::TokenServer;

/// How the registry authenticates.
pub enum Setup<'a> {
    /// Plain HTTP, no authentication.
    Anonymous,
    /// TLS with a generated CA, and one htpasswd (bcrypt) user.
    Htpasswd { user: &'a str, password: &'a str },
    /// Plain HTTP, token auth issued by this server.
    Token(&'a TokenServer),
}

/// One request in the registry's access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// A running registry, killed on drop.
pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:<port>`.
    pub host: String,
    pub tls: Option<ServerCerts>,
    log: Arc<Mutex<Vec<Request>>>,
    push_auth: Option<AuthFn>,
}

impl Registry {
    /// Starts a registry and waits until it listens.
    pub fn start(setup: Setup<'_>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        let mut auth = String::new();
        let mut tls_config = String::new();
        let mut tls = None;
        let mut push_auth: Option<AuthFn> = None;
        match setup {
            Setup::Anonymous => {}
            Setup::Htpasswd { user, password } => {
                let file = root.join("htpasswd");
                run(Command::new("htpasswd").args(["-Bbc"]).arg(&file).args([user, password]))?;
                auth = format!(
                    "auth: {{htpasswd: {{realm: basic-realm, path: {}}}}}\n",
                    file.display()
                );
                let certs = certs::server(root)?;
                tls_config = format!(
                    ", tls: {{certificate: {}, key: {}}}",
                    certs.cert_pem.display(),
                    certs.key_pem.display()
                );
                tls = Some(certs);
                let basic = format!("Basic {}", b64(&format!("{user}:{password}")));
                push_auth = Some(Arc::new(move |_: &str| Some(basic.clone())));
            }
            Setup::Token(server) => {
                auth = format!(
                    "auth: {{token: {{realm: {}, service: {}, issuer: {}, rootcertbundle: {}}}}}\n",
                    server.realm(),
                    server.service,
                    server.issuer,
                    server.signing_cert().display()
                );
                let mint = server.minter();
                push_auth = Some(Arc::new(move |repo: &str| {
                    mint("pusher", repo, vec!["pull".into(), "push".into()])
                        .ok()
                        .map(|t| format!("Bearer {t}"))
                }));
            }
        }
        let config = root.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: info, formatter: text}}\n\
                 storage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\n\
                 http: {{addr: 127.0.0.1:0, secret: test-only{tls_config}}}\n{auth}",
                root.join("data").display()
            ),
        )?;
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!(
                    "docker-registry could not start ({e}): install the docker-registry package"
                )
            })?;

        // The access log (stdout) records each request; the application log (stderr) says
        // where it listens.
        let log = Arc::new(Mutex::new(Vec::new()));
        if let Some(stdout) = child.stdout.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(request) = parse_access_line(&line) {
                        log.lock().unwrap_or_else(|e| e.into_inner()).push(request);
                    }
                }
            });
        }
        let stderr = child.stderr.take().ok_or_else(|| anyhow::anyhow!("no stderr"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && let Some(rest) = line.split("listening on ").nth(1) {
                    let addr: String = rest
                        .chars()
                        .take_while(|c| {
                            c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']')
                        })
                        .collect();
                    let _ = tx.send(Ok(addr));
                    sent = true;
                } else if !sent && line.contains("level=fatal") {
                    let _ = tx.send(Err(line));
                    sent = true;
                }
            }
        });
        let host = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(addr)) => addr.replace("[::]", "127.0.0.1"),
            Ok(Err(line)) => anyhow::bail!("docker-registry failed: {line}"),
            Err(_) => {
                let _ = child.kill();
                anyhow::bail!("docker-registry did not say where it listens within 10s");
            }
        };
        Ok(Self { child, dir, host, tls, log, push_auth })
    }

    /// The CA that signed the registry's certificate, PEM (TLS setups only).
    pub fn ca_pem(&self) -> Option<String> {
        self.tls.as_ref().and_then(|t| std::fs::read_to_string(&t.ca_pem).ok())
    }

    /// A pusher for this registry, authenticated as the setup requires.
    pub fn pusher(&self) -> anyhow::Result<Pusher> {
        Pusher::new(&self.host, self.ca_pem().as_deref(), self.push_auth.clone())
    }

    /// The requests received so far. Waits until the log has been quiet for 100 ms, since
    /// the registry writes a line just after it answers.
    pub fn requests(&self) -> Vec<Request> {
        let mut seen = usize::MAX;
        let started = Instant::now();
        loop {
            let now = self.log.lock().unwrap_or_else(|e| e.into_inner()).len();
            if now == seen || started.elapsed() > Duration::from_secs(2) {
                break;
            }
            seen = now;
            std::thread::sleep(Duration::from_millis(100));
        }
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Forgets the requests logged so far.
    pub fn clear_requests(&self) {
        let _ = self.requests();
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The sha256 of the manifest bytes the registry stores for `repository:tag`, read from its
    /// storage, not through its API.
    pub fn stored_digest(&self, repository: &str, tag: &str) -> anyhow::Result<String> {
        let v2 = self.storage();
        let link = v2.join(format!("repositories/{repository}/_manifests/tags/{tag}/current/link"));
        let linked = std::fs::read_to_string(&link)?;
        let hex = linked
            .trim()
            .strip_prefix("sha256:")
            .ok_or_else(|| anyhow::anyhow!("link {linked}"))?;
        let bytes = std::fs::read(v2.join(format!("blobs/sha256/{}/{hex}/data", &hex[..2])))?;
        let computed = format!("sha256:{}", hex_of(&sha2::Sha256::digest(&bytes)));
        anyhow::ensure!(
            computed == linked.trim(),
            "stored bytes hash to {computed}, link says {linked}"
        );
        Ok(computed)
    }

    /// The registry's storage: `docker/registry/v2` under its data directory.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("data/docker/registry/v2")
    }

    /// The temporary directory the registry lives in.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `127.0.0.1 - - [date] "HEAD /v2/a/manifests/v1 HTTP/1.1" 200 0 "" "ua"`
fn parse_access_line(line: &str) -> Option<Request> {
    let quoted = line.split('"').nth(1)?;
    let mut words = quoted.split_whitespace();
    let method = words.next()?.to_owned();
    let path = words.next()?.to_owned();
    let status = line.split('"').nth(2)?.split_whitespace().next()?.parse().ok()?;
    Some(Request { method, path, status })
}

pub(crate) fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Combined-log-format lines become requests.
    #[test]
    fn access_lines() {
        let line = r#"127.0.0.1 - - [27/Nov/2026:07:00:00 +0000] "HEAD /v2/demo/app/manifests/v1 HTTP/1.1" 404 96 "" "kubeship/0.1.0""#;
        assert_eq!(
            parse_access_line(line),
            Some(Request {
                method: "HEAD".into(),
                path: "/v2/demo/app/manifests/v1".into(),
                status: 404
            })
        );
        assert_eq!(parse_access_line("time=x level=info msg=hello"), None);
    }
}
