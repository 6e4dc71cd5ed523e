//! Which containers of a workload get the pinned image, as the contract says: the named ones
//! (each must exist), else every container and init container running the image's
//! repository, else the only container (with a warning). Pure: the caller reads the pod
//! template and reports the outcome.

use crate::registry::ImageRef;

pub use crate::workload::Container;

/// One container's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub name: String,
    pub init: bool,
    pub previous_image: String,
    pub image: String,
}

impl Change {
    /// Whether the container's image actually changes.
    pub fn changes(&self) -> bool {
        self.previous_image != self.image
    }
}

/// A selection that cannot be made (exit 2; nothing is patched).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "{workload} has no container {name:?} (input container); its containers are: {available}"
    )]
    UnknownContainer { workload: String, name: String, available: String },
    #[error(
        "no container of {workload} runs {repository}, and it has more than one: name the ones to \
         update in the container input; its containers are: {available}"
    )]
    NoMatch { workload: String, repository: String, available: String },
}

fn listing(containers: &[Container]) -> String {
    containers
        .iter()
        .map(|c| {
            let image = crate::untrusted::short(&c.image, 200);
            format!("{}{} ({image})", c.name, if c.init { " [init]" } else { "" })
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Same registry and repository, whatever the tag or digest (only the name is parsed, so a
/// digest kubeship would refuse as input cannot hide a match).
fn same_repository(image: &str, wanted: &ImageRef) -> bool {
    let name = image.split('@').next().unwrap_or(image);
    ImageRef::parse(name)
        .is_ok_and(|i| i.registry() == wanted.registry() && i.repository() == wanted.repository())
}

/// Chooses the containers of `workload` to pin to `pinned`. Returns the changes and a
/// warning when the fallback to the only container was taken.
///
/// # Errors
/// [`Error`] when a named container does not exist, or no container can be chosen.
pub fn select(
    workload: &str,
    containers: &[Container],
    requested: &[String],
    image: &ImageRef,
    pinned: &str,
) -> Result<(Vec<Change>, Option<String>), Error> {
    let change = |c: &Container| Change {
        name: c.name.clone(),
        init: c.init,
        previous_image: c.image.clone(),
        image: pinned.to_owned(),
    };
    if !requested.is_empty() {
        let mut changes = Vec::new();
        for name in requested {
            let found = containers.iter().find(|c| &c.name == name).ok_or_else(|| {
                Error::UnknownContainer {
                    workload: workload.to_owned(),
                    name: name.clone(),
                    available: listing(containers),
                }
            })?;
            changes.push(change(found));
        }
        return Ok((changes, None));
    }
    let matching: Vec<Change> =
        containers.iter().filter(|c| same_repository(&c.image, image)).map(change).collect();
    if !matching.is_empty() {
        return Ok((matching, None));
    }
    let regular: Vec<&Container> = containers.iter().filter(|c| !c.init).collect();
    if let [only] = regular.as_slice() {
        let warning = format!(
            "no container of {workload} runs {}/{}; updating its only container {:?} (was {})",
            image.registry(),
            image.repository(),
            only.name,
            crate::untrusted::short(&only.image, 200)
        );
        return Ok((vec![change(only)], Some(warning)));
    }
    Err(Error::NoMatch {
        workload: workload.to_owned(),
        repository: format!("{}/{}", image.registry(), image.repository()),
        available: listing(containers),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, image: &str, init: bool) -> Container {
        Container { name: name.into(), image: image.into(), init }
    }

    const PINNED: &str = "ghcr.io/acme/api@sha256:aa";

    fn image() -> ImageRef {
        ImageRef::parse("ghcr.io/acme/api:v2").unwrap()
    }

    /// By default, every container and init container of the repository, tag and digest ignored.
    #[test]
    fn matching_repository_by_default() {
        let containers = [
            c("api", "ghcr.io/acme/api:v1", false),
            c("proxy", "envoy:1", false),
            c("migrate", "ghcr.io/acme/api@sha256:bb", true),
        ];
        let (changes, warning) =
            select("deployment/api", &containers, &[], &image(), PINNED).unwrap();
        let names: Vec<&str> = changes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["api", "migrate"]);
        assert!(changes[1].init && warning.is_none());
    }

    /// Docker Hub names match however they are written.
    #[test]
    fn normalized_names_match() {
        let containers =
            [c("web", "docker.io/library/nginx:1.26", false), c("side", "busybox", false)];
        let wanted = ImageRef::parse("nginx:1.27").unwrap();
        let (changes, _) =
            select("d", &containers, &[], &wanted, "docker.io/library/nginx@sha256:x").unwrap();
        assert_eq!(changes[0].name, "web");
        assert_eq!(changes.len(), 1);
    }

    /// One container and no match: that one, with a warning.
    #[test]
    fn only_container_fallback_warns() {
        let (changes, warning) =
            select("d", &[c("app", "other:1", false), c("init", "x", true)], &[], &image(), PINNED)
                .unwrap();
        assert_eq!(changes[0].name, "app");
        assert!(warning.unwrap().contains("only container"));
    }

    /// No match among several: an error listing containers and images.
    #[test]
    fn no_match_lists_the_containers() {
        let e = select(
            "deployment/api",
            &[c("a", "x:1", false), c("b", "y:1", false)],
            &[],
            &image(),
            PINNED,
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("a (x:1), b (y:1)") && text.contains("container input"), "{text}");
    }

    /// Named containers must exist; init containers can be named.
    #[test]
    fn named_containers() {
        let containers = [c("app", "x:1", false), c("migrate", "x:1", true)];
        let (changes, _) = select("d", &containers, &["migrate".into()], &image(), PINNED).unwrap();
        assert!(changes[0].init);
        let e = select("d", &containers, &["ap".into()], &image(), PINNED).unwrap_err();
        assert!(matches!(e, Error::UnknownContainer { .. }));
        assert!(e.to_string().contains("\"ap\"") && e.to_string().contains("migrate [init] (x:1)"));
    }

    /// Already pinned: a change that changes nothing.
    #[test]
    fn already_pinned_is_no_change() {
        let (changes, _) = select("d", &[c("api", PINNED, false)], &[], &image(), PINNED).unwrap();
        assert!(!changes[0].changes());
    }
}
