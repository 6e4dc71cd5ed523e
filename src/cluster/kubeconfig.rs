//! Finding and reading the kubeconfig: the `kubeconfig` input (YAML, base64 of it, or a path to
//! a file), else the `KUBECONFIG` path list, else `~/.kube/config`. A kubeconfig holds secrets,
//! so no error here ever quotes its text: a parse error says line and column only.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

use super::{Access, Error};

/// A kubeconfig and a name for it in messages.
pub struct Loaded {
    pub source: String,
    pub kubeconfig: Kubeconfig,
}

/// The kubeconfig to use; `None` when there is none (in-cluster, or nothing at all).
///
/// # Errors
/// [`Error::Kubeconfig`] for one that cannot be read or parsed; [`Error::KubeconfigPath`] when
/// `KUBECONFIG` or the input names files that do not exist.
pub fn load(access: &Access) -> Result<Option<Loaded>, Error> {
    if let Some(text) = &access.kubeconfig {
        use secrecy::ExposeSecret as _;
        return from_input(text.expose_secret()).map(Some);
    }
    if !access.kubeconfig_paths.is_empty() {
        let existing: Vec<&PathBuf> =
            access.kubeconfig_paths.iter().filter(|p| p.is_file()).collect();
        let names = |paths: &[&PathBuf]| {
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":")
        };
        if existing.is_empty() {
            // kubectl skips missing files in KUBECONFIG; when all are missing, the user pointed
            // it at the wrong place (often a path outside the container).
            let all: Vec<&PathBuf> = access.kubeconfig_paths.iter().collect();
            if all.iter().any(|p| p.is_dir()) {
                return Err(Error::KubeconfigPath {
                    variable: "KUBECONFIG",
                    paths: names(&all),
                    problem: "is a folder, not a file",
                    hint: "point KUBECONFIG at the file inside it (often <folder>/config)",
                });
            }
            return Err(Error::KubeconfigPath {
                variable: "KUBECONFIG",
                paths: names(&all),
                problem: "does not exist",
                hint: "check the path; in a container, mount the file and point KUBECONFIG at \
                       the mounted path, or give the kubeconfig input",
            });
        }
        let source = format!("KUBECONFIG ({})", names(&existing));
        let mut merged = Kubeconfig::default();
        for path in existing {
            let next = read(path).map_err(|detail| Error::Kubeconfig {
                source_: format!("{} (in KUBECONFIG)", path.display()),
                detail,
            })?;
            merged = merged.merge(next).map_err(|e| Error::Kubeconfig {
                source_: source.clone(),
                detail: e.to_string(),
            })?;
        }
        return Ok(Some(Loaded { source, kubeconfig: merged }));
    }
    if let Some(home) = &access.home {
        let path = home.join(".kube/config");
        if path.is_file() {
            let source = path.display().to_string();
            return read(&path)
                .map(|kubeconfig| Some(Loaded { source: source.clone(), kubeconfig }))
                .map_err(|detail| Error::Kubeconfig { source_: source, detail });
        }
    }
    Ok(None)
}

/// The `kubeconfig` input: YAML, base64 of YAML (what CI secrets usually hold), or a path to
/// a file (what users often try first).
fn from_input(text: &str) -> Result<Loaded, Error> {
    let trimmed = text.trim();
    if looks_like_path(trimmed) {
        let path = Path::new(trimmed);
        if !path.is_file() {
            return Err(Error::KubeconfigPath {
                variable: "the kubeconfig input",
                paths: trimmed.to_owned(),
                problem: if path.is_dir() { "is a folder, not a file" } else { "does not exist" },
                hint: "the input takes the kubeconfig's content (YAML, or base64 of it), or the \
                       path of a file that exists inside the step's container",
            });
        }
        let source = format!("the kubeconfig input's file {trimmed}");
        return read(path)
            .map(|kubeconfig| Loaded { source: source.clone(), kubeconfig })
            .map_err(|detail| Error::Kubeconfig { source_: source, detail });
    }
    let source = "the kubeconfig input".to_owned();
    parse(text)
        .map(|kubeconfig| Loaded { source: source.clone(), kubeconfig })
        .map_err(|detail| Error::Kubeconfig { source_: source, detail })
}

/// One line, no YAML structure, and shaped like a file path.
fn looks_like_path(text: &str) -> bool {
    !text.contains('\n')
        && !text.contains(": ")
        && (text.starts_with('/')
            || text.starts_with("./")
            || text.starts_with("~/")
            || text.ends_with(".yaml")
            || text.ends_with(".yml")
            || text.ends_with("/config")
            || text.ends_with("kubeconfig"))
}

fn read(path: &Path) -> Result<Kubeconfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("it cannot be read ({e})"))?;
    parse(&text)
}

/// YAML, or base64 of YAML. The reason never quotes the text.
pub fn parse(text: &str) -> Result<Kubeconfig, String> {
    let trimmed = text.trim();
    let looks_like_yaml =
        trimmed.contains("apiVersion") || trimmed.contains("clusters") || trimmed.starts_with('{');
    let decoded;
    let yaml = if looks_like_yaml {
        trimmed
    } else {
        let compact: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|_| "it is neither kubeconfig YAML nor base64 of it".to_owned())?;
        decoded = String::from_utf8(bytes)
            .map_err(|_| "its base64 does not decode to text".to_owned())?;
        decoded.as_str()
    };
    let kubeconfig = Kubeconfig::from_yaml(yaml).map_err(|e| describe(&e))?;
    if kubeconfig.clusters.is_empty() {
        return Err("it has no clusters".into());
    }
    Ok(kubeconfig)
}

/// A kubeconfig error in words that cannot carry the file's content: the YAML parser's own
/// message shows the lines around the error, which hold tokens and keys.
fn describe(error: &KubeconfigError) -> String {
    match error {
        KubeconfigError::Parse(inner) => match inner.location() {
            Some(at) => format!(
                "it is not valid kubeconfig YAML (error at line {}, column {})",
                at.line(),
                at.column()
            ),
            None => "it is not valid kubeconfig YAML".into(),
        },
        other => crate::error::render_chain(other),
    }
}

/// The context to use: the `context` input, which must exist, else `current-context`, which
/// must be set; either way the message lists the contexts there are.
///
/// # Errors
/// [`Error::Context`] when neither names a context of the file.
pub fn options(loaded: &Loaded, context: Option<&str>) -> Result<KubeConfigOptions, Error> {
    let contexts = &loaded.kubeconfig.contexts;
    let available = || contexts.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
    let wanted = match context {
        Some(wanted) => wanted.to_owned(),
        None => match loaded.kubeconfig.current_context.as_deref().filter(|c| !c.is_empty()) {
            Some(current) => current.to_owned(),
            None => {
                return Err(Error::Context {
                    source_: loaded.source.clone(),
                    problem: "sets no current-context".into(),
                    available: available(),
                });
            }
        },
    };
    if !contexts.iter().any(|c| c.name == wanted) {
        return Err(Error::Context {
            source_: loaded.source.clone(),
            problem: format!("has no context {:?}", crate::untrusted::short(&wanted, 80)),
            available: available(),
        });
    }
    Ok(KubeConfigOptions { context: Some(wanted), ..KubeConfigOptions::default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n\
        contexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\n    namespace: prod\ncurrent-context: ctx\n\
        users:\n- name: u\n  user:\n    token: t0k3n-secret-value\n";

    /// YAML and base64 of YAML (wrapped, as CI secrets often are) are both taken.
    #[test]
    fn yaml_or_base64() {
        assert!(parse(CONFIG).is_ok());
        let b64 = base64::engine::general_purpose::STANDARD.encode(CONFIG);
        assert!(parse(&b64).is_ok());
        let wrapped: String = b64
            .as_bytes()
            .chunks(60)
            .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
            .collect();
        assert!(parse(&wrapped).is_ok());
    }

    /// A broken kubeconfig is refused with line and column, and no line of it is quoted:
    /// not the token two lines away, not the broken line itself.
    #[test]
    fn parse_errors_quote_nothing() {
        let key =
            "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JSUV2Z0lCQURBTkJna3Foa2lHOXcwQkFRRUZBQVND";
        let broken = format!(
            "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: t0k3n-secret-value\n    \
             client-key-data: {key}\n    bad: [unclosed\nclusters: []\n"
        );
        for text in [broken.clone(), base64::engine::general_purpose::STANDARD.encode(&broken)] {
            let e = parse(&text).unwrap_err();
            assert!(e.contains("line") && e.contains("column"), "{e}");
            for secret in ["t0k3n-secret-value", key, "unclosed", "client-key-data"] {
                assert!(!e.contains(secret), "{secret} leaked: {e}");
            }
        }
        for bad in ["%%% not base64", "aGVsbG8=", "apiVersion: v1\nkind: Config\n"] {
            let e = parse(bad).unwrap_err();
            assert!(!e.contains("%%%") && !e.contains("hello"), "{e}");
        }
    }

    /// A path given as the input is read; a path that does not exist says so.
    #[test]
    fn the_input_may_be_a_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, CONFIG).expect("write");
        let loaded = from_input(path.to_str().expect("utf-8")).expect("read");
        assert_eq!(loaded.kubeconfig.clusters.len(), 1);
        let e = from_input("/nonexistent/kubeconfig").err().expect("missing file");
        let text = e.to_string();
        assert!(text.contains("/nonexistent/kubeconfig") && text.contains("exists"), "{text}");
        assert!(!looks_like_path(CONFIG));
    }

    /// A folder where the kubeconfig should be, as the input or in `KUBECONFIG`: named as a
    /// folder, with the file to point at instead.
    #[test]
    fn a_folder_is_not_a_kubeconfig() {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = dir.path().join(".kube");
        std::fs::create_dir(&folder).expect("mkdir");
        let text = from_input(folder.to_str().expect("utf-8")).err().expect("a folder").to_string();
        assert!(text.contains("is a folder, not a file"), "{text}");
        let access = Access { kubeconfig_paths: vec![folder.clone()], ..Access::default() };
        let text = load(&access).err().expect("a folder").to_string();
        assert!(
            text.starts_with(&format!("KUBECONFIG names {}, which is a folder", folder.display()))
                && text.contains("<folder>/config"),
            "{text}"
        );
    }

    /// No current-context and no context input: the contexts are listed.
    #[test]
    fn missing_current_context_lists_contexts() {
        let mut kubeconfig = parse(CONFIG).expect("parses");
        kubeconfig.current_context = None;
        let loaded = Loaded { source: "the kubeconfig input".into(), kubeconfig };
        let e = options(&loaded, None).err().expect("no context").to_string();
        assert!(e.contains("no current-context") && e.contains("ctx"), "{e}");
        assert_eq!(options(&loaded, Some("ctx")).expect("ok").context.as_deref(), Some("ctx"));
        let e = options(&loaded, Some("other")).err().expect("unknown").to_string();
        assert!(e.contains("\"other\"") && e.contains("ctx"), "{e}");
    }
}
