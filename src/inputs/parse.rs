//! Value grammars of the contract: booleans, durations, lists, Kubernetes names and targets.
//! Pure functions from a string to a value or a reason the caller puts into a message.

use std::time::Duration;

/// `true/false/yes/no/1/0`, any case.
pub fn boolean(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err("is not a boolean: use true or false (yes/no and 1/0 work too)".into()),
    }
}

/// `300` (seconds), `90s`, `5m`, `1h30m`, `1h 30m`. Zero is refused: a zero deadline can only
/// fail, which is never what the user meant.
pub fn duration(value: &str) -> Result<Duration, String> {
    const HINT: &str = "use seconds (300) or units h, m, s (90s, 5m, 1h30m)";
    let text = value.trim();
    if text.is_empty() {
        return Err(format!("is not a duration: {HINT}"));
    }
    let seconds = if text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<u64>().map_err(|_| format!("is too large: {HINT}"))?
    } else {
        let mut total: u64 = 0;
        let mut number = String::new();
        let mut last_unit = u64::MAX;
        for c in text.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            if c.is_whitespace() && number.is_empty() {
                continue;
            }
            let unit = match c {
                'h' => 3600,
                'm' => 60,
                's' => 1,
                _ => return Err(format!("is not a duration: {HINT}")),
            };
            // Units must come in decreasing order, each once: "5m1h" is a typo, not 65 minutes.
            if number.is_empty() || unit >= last_unit {
                return Err(format!("is not a duration: {HINT}"));
            }
            let n: u64 = number.parse().map_err(|_| format!("is too large: {HINT}"))?;
            total = n
                .checked_mul(unit)
                .and_then(|s| total.checked_add(s))
                .ok_or_else(|| format!("is too large: {HINT}"))?;
            number.clear();
            last_unit = unit;
        }
        if !number.is_empty() {
            return Err(format!("is not a duration (a number without a unit at the end): {HINT}"));
        }
        total
    };
    // A year is far past any CI job's limit; larger values are typos and overflow Instant math.
    if seconds > 366 * 24 * 3600 {
        return Err(format!("is longer than a year: {HINT}"));
    }
    if seconds == 0 {
        return Err("must be longer than zero".into());
    }
    Ok(Duration::from_secs(seconds))
}

/// Comma- or newline-separated, items trimmed, empty items ignored.
pub fn list(value: &str) -> Vec<String> {
    value.split([',', '\n']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// A DNS-1123 label (namespace and container names): at most 63 characters of `a-z`, `0-9`
/// and `-`, starting and ending with a letter or digit.
pub fn dns_label(value: &str) -> Result<(), String> {
    dns_part(value, 63)
}

/// A DNS-1123 subdomain (workload names): at most 253 characters, labels joined by dots.
pub fn dns_subdomain(value: &str) -> Result<(), String> {
    if value.len() > 253 {
        return Err("is longer than 253 characters".into());
    }
    value.split('.').try_for_each(|label| dns_part(label, 253))
}

fn dns_part(value: &str, max: usize) -> Result<(), String> {
    const RULE: &str =
        "lowercase letters, digits and '-', starting and ending with a letter or digit";
    if value.is_empty() {
        return Err(format!("is empty: use {RULE}"));
    }
    if value.len() > max {
        return Err(format!("is longer than {max} characters"));
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    let edges_ok = !value.starts_with('-') && !value.ends_with('-');
    if !value.chars().all(ok_char) || !edges_ok {
        return Err(format!("is not a valid name: use {RULE}"));
    }
    Ok(())
}

pub use crate::workload::Kind;

/// One entry of the `deployment` list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub kind: Kind,
    pub name: String,
}

/// An IAM role's ARN: `arn:<partition>:iam::<account>:role/<name>`.
pub fn role_arn(value: &str) -> Result<(), String> {
    let fields: Vec<&str> = value.splitn(6, ':').collect();
    match fields[..] {
        ["arn", partition, "iam", "", account, resource]
            if partition.starts_with("aws")
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource.starts_with("role/")
                && resource.len() > "role/".len() =>
        {
            Ok(())
        }
        _ => Err("is not an IAM role's ARN (arn:aws:iam::<12-digit account>:role/<name>)".into()),
    }
}

/// A workload identity provider as google-github-actions/auth takes it:
/// `projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<id>`. The full
/// resource name (`//iam.googleapis.com/projects/…`) is taken too, without its prefix.
pub fn workload_identity_provider(value: &str) -> Result<String, String> {
    let name = value.strip_prefix("//iam.googleapis.com/").unwrap_or(value);
    let parts: Vec<&str> = name.split('/').collect();
    match parts[..] {
        [
            "projects",
            number,
            "locations",
            "global",
            "workloadIdentityPools",
            pool,
            "providers",
            id,
        ] if !number.is_empty()
            && number.bytes().all(|b| b.is_ascii_digit())
            && !pool.is_empty()
            && !id.is_empty() =>
        {
            Ok(name.to_owned())
        }
        _ => Err("is not projects/<project number>/locations/global/workloadIdentityPools/\
                  <pool>/providers/<id> (the project's number, not its name)"
            .into()),
    }
}

/// A service account's e-mail address.
pub fn service_account(value: &str) -> Result<(), String> {
    match value.split_once('@') {
        Some((name, domain)) if !name.is_empty() && domain.contains('.') => Ok(()),
        _ => Err("is not a service account's e-mail address \
                  (<name>@<project>.iam.gserviceaccount.com)"
            .into()),
    }
}

/// `name`, `kind/name` with kubectl's names for the kind (`deploy`, `sts`, `ds`, plurals and
/// the `.apps` group suffix).
pub fn target(value: &str) -> Result<Target, String> {
    let (kind, name) = match value.split_once('/') {
        None => (Kind::Deployment, value),
        Some((kind, name)) => {
            let kind = match kind.to_ascii_lowercase().trim_end_matches(".apps") {
                "deployment" | "deployments" | "deploy" => Kind::Deployment,
                "statefulset" | "statefulsets" | "sts" => Kind::StatefulSet,
                "daemonset" | "daemonsets" | "ds" => Kind::DaemonSet,
                _ => {
                    return Err(format!(
                        "has kind {kind:?}: use deployment/, statefulset/ or daemonset/ \
                         (or deploy/, sts/, ds/)"
                    ));
                }
            };
            (kind, name)
        }
    };
    dns_subdomain(name).map_err(|reason| format!("has a name that {reason}"))?;
    Ok(Target { kind, name: name.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every spelling the contract allows, in any case.
    #[test]
    fn booleans_of_the_contract() {
        for t in ["true", "TRUE", "Yes", "1", " true "] {
            assert_eq!(boolean(t), Ok(true), "{t}");
        }
        for f in ["false", "False", "NO", "0"] {
            assert_eq!(boolean(f), Ok(false), "{f}");
        }
        for bad in ["", "on", "2", "truee", "y"] {
            assert!(boolean(bad).is_err(), "{bad}");
        }
    }

    /// Seconds, single units and compound units.
    #[test]
    fn durations_of_the_contract() {
        let cases = [("300", 300), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("1h 30m", 5400)];
        for (text, secs) in cases {
            assert_eq!(duration(text), Ok(Duration::from_secs(secs)), "{text}");
        }
        assert_eq!(duration("1h0m5s"), Ok(Duration::from_secs(3605)));
    }

    /// Typos are errors, never a silently different deadline.
    #[test]
    fn malformed_durations_are_refused() {
        for bad in [
            "",
            "5x",
            "m",
            "5m1h",
            "5mm",
            "1.5m",
            "-5",
            "5 m s",
            "10ms",
            "0",
            "0s",
            "99999999999999999999",
            "9999999999h",
        ] {
            assert!(duration(bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        /// Any text gets an answer, never a panic.
        #[test]
        fn duration_parsing_never_panics(text in "\\PC{0,40}") {
            let _ = duration(&text);
        }

        /// Composed h/m/s values parse to their sum.
        #[test]
        fn composed_durations_add_up(h in 0u64..100, m in 0u64..100, s in 0u64..100) {
            let total = h * 3600 + m * 60 + s;
            let text = format!("{h}h{m}m{s}s");
            if total == 0 {
                proptest::prop_assert!(duration(&text).is_err());
            } else {
                proptest::prop_assert_eq!(duration(&text), Ok(Duration::from_secs(total)));
            }
        }
    }

    /// Commas and newlines both split; blanks vanish.
    #[test]
    fn lists_split_on_commas_and_newlines() {
        assert_eq!(list("a, b\nc,,\n d \n"), ["a", "b", "c", "d"]);
        assert!(list(" , \n").is_empty());
    }

    /// kubectl's kind spellings are accepted; a bare name is a Deployment.
    #[test]
    fn targets_with_kubectl_kinds() {
        let cases = [
            ("api", Kind::Deployment),
            ("deploy/api", Kind::Deployment),
            ("deployments.apps/api", Kind::Deployment),
            ("sts/api", Kind::StatefulSet),
            ("StatefulSet/api", Kind::StatefulSet),
            ("ds/api", Kind::DaemonSet),
            ("daemonset/api", Kind::DaemonSet),
        ];
        for (text, kind) in cases {
            assert_eq!(target(text), Ok(Target { kind, name: "api".into() }), "{text}");
        }
    }

    /// Unknown kinds and invalid names say what is wrong.
    #[test]
    fn malformed_targets_are_refused() {
        assert!(target("job/api").unwrap_err().contains("job"));
        for bad in ["deploy/", "API", "deploy/a_b", "-api", "a/b/c", "deploy/ api"] {
            assert!(target(bad).is_err(), "{bad}");
        }
    }

    /// Label rules: length, case, edges.
    #[test]
    fn dns_labels() {
        assert!(dns_label("web-1").is_ok());
        for bad in ["", "Web", "web_1", "-web", "web-", "a.b", &"a".repeat(64)] {
            assert!(dns_label(bad).is_err(), "{bad}");
        }
    }
}
