//! The Markdown step summary: the run, a table of every target's containers (image before
//! and after, revision, status, ready replicas), then each failure's cause with the failing
//! pods, events and log lines. Text from outside (images read from the cluster, messages from
//! pods, events and webhooks) only ever appears inside code: a code span with a fence longer
//! than any backtick run in it, or a fenced block, so it cannot render a link, an image or
//! HTML, close its code, or break the table.

use super::{Report, Status};

/// The runner refuses a step summary over 1 MiB; stay well under it.
const LIMIT: usize = 1000 * 1024;

/// The step summary for `report`, with the run's error when it failed before or beside the
/// targets.
pub fn render(report: &Report, error: Option<&str>) -> String {
    let mut text = format!("### kubeship: {}\n\n", report.status.as_str());
    if let (Some(image), Some(digest)) = (&report.image, &report.digest) {
        let repository = image.split('@').next().unwrap_or(image);
        let changed = match (report.status, report.changed) {
            (Status::DryRun, _) => "dry run, nothing changed",
            (_, true) => "changed",
            // A run that failed before any patch says nothing about what the cluster runs.
            (Status::Succeeded, false) => "already up to date",
            (_, false) => "nothing changed",
        };
        text.push_str(&format!(
            "{} is {}; {changed}; {:.1} s\n\n",
            code(repository, false),
            code(digest, false),
            report.duration_seconds
        ));
    }
    if let Some(error) = error {
        text.push_str(&format!("**Error:**\n\n{}\n", own_block(error)));
    }
    if !report.targets.is_empty() {
        text.push_str(
            "| target | status | container | before | after | revision | ready |\n|---|---|---|---|---|---|---|\n",
        );
    }
    for t in &report.targets {
        let target = format!("{}/{} in {}", t.kind.lower(), t.name, t.namespace);
        let status = match (t.status, t.containers.is_empty()) {
            (Status::DryRun, false) => "dry-run (would change)".to_owned(),
            (status, _) => status.as_str().to_owned(),
        };
        let ready = format!("{}/{}", t.ready_replicas, t.replicas);
        let revision = t.revision.as_deref().map(|r| code(r, true)).unwrap_or_default();
        let target = code(&target, true);
        if t.containers.is_empty() {
            text.push_str(&format!(
                "| {target} | {status} | | (unchanged) | | {revision} | {ready} |\n"
            ));
        }
        for c in &t.containers {
            text.push_str(&format!(
                "| {target} | {status} | {} | {} | {} | {revision} | {ready} |\n",
                code(&c.name, true),
                code(&c.previous_image, true),
                code(&c.image, true),
            ));
        }
    }
    for t in report.targets.iter().filter(|t| !t.diagnostics.is_empty() || t.status.is_failure()) {
        text.push_str(&format!(
            "\n#### {}/{}: {}\n\n{}",
            t.kind.lower(),
            t.name,
            t.status.as_str(),
            own_block(&t.message)
        ));
        if !t.diagnostics.is_empty() {
            text.push_str(&format!("\n{}", block(&t.diagnostics)));
        }
    }
    if text.len() > LIMIT {
        let mut end = LIMIT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        // The cut may fall inside a fenced block; close it so the note renders.
        text.push_str(&format!(
            "\n{}\n\n(truncated: the step summary is limited to 1 MiB; the job log has everything)\n",
            "`".repeat(longest_run(&text, '`') + 1)
        ));
    }
    text
}

/// The longest run of `c` in `text`.
fn longest_run(text: &str, c: char) -> usize {
    text.split(|x| x != c).map(str::len).max().unwrap_or(0)
}

/// `text` as an inline code span it cannot close; in a table cell `|` is escaped too (GFM
/// splits cells on it even inside code). Empty text is an empty cell.
pub fn code(text: &str, in_table: bool) -> String {
    let text = crate::untrusted::line(text);
    if text.is_empty() {
        return String::new();
    }
    let fence = "`".repeat(longest_run(&text, '`') + 1);
    // A space on each side keeps a leading or trailing backtick out of the fence; CommonMark
    // strips exactly one from each side.
    let pad = if text.starts_with('`') || text.ends_with('`') || text.starts_with(' ') {
        " "
    } else {
        ""
    };
    let text = if in_table { text.replace('|', "\\|") } else { text };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// kubeship's own message in a fenced block, with [`crate::untrusted::own_line`]'s cap: the
/// server's words it quotes are capped already, and the advice after them must stay.
fn own_block(message: &str) -> String {
    fenced(message.split('\n').map(crate::untrusted::own_line).collect())
}

/// Lines from outside in a fenced code block.
fn block(lines: &[String]) -> String {
    fenced(lines.iter().flat_map(|l| l.split('\n')).map(crate::untrusted::line).collect())
}

/// Safe lines in a fenced code block longer than any backtick run inside.
fn fenced(lines: Vec<String>) -> String {
    let body = lines.join("\n");
    let fence = "`".repeat(longest_run(&body, '`').max(2) + 1);
    format!("{fence}text\n{body}\n{fence}\n")
}

#[cfg(test)]
mod tests {
    use super::super::tests::report;
    use super::*;

    /// The target's row, the cause, and the diagnostics in a fence the log's backticks cannot
    /// close.
    #[test]
    fn summary_of_a_failure() {
        let mut r = report(Status::Failed);
        r.targets[0].ready_replicas = 2;
        r.targets[0].revision = Some("8".into());
        r.targets[0].message = "pod api-1: ImagePullBackOff | pull denied".into();
        r.targets[0].diagnostics =
            vec!["pod api-1: waiting: ImagePullBackOff".into(), "log: ``` x".into()];
        let text = render(&r, None);
        assert!(text.starts_with("### kubeship: failed\n"), "{text}");
        assert!(
            text.contains("| `deployment/api in prod` | failed | `api` | `r/a:1` | `r/a@sha256:aa` | `8` | 2/3 |"),
            "{text}"
        );
        assert!(text.contains("```text\npod api-1: ImagePullBackOff | pull denied\n```"), "{text}");
        assert!(
            text.contains("````text\npod api-1: waiting: ImagePullBackOff\nlog: ``` x\n````"),
            "{text}"
        );
    }

    /// Cluster text cannot become a link, an image or HTML, nor break out of its code span.
    #[test]
    fn cluster_text_stays_code() {
        assert_eq!(code("evil`image", true), "``evil`image``");
        assert_eq!(code("`x`", true), "`` `x` ``");
        assert_eq!(code("a|b", true), "`a\\|b`");
        assert_eq!(code("![x](https://e.vil/p.png)", false), "`![x](https://e.vil/p.png)`");
        assert_eq!(code("", true), "");
        let mut r = report(Status::Failed);
        r.targets[0].containers[0].previous_image =
            "x`<img src=https://e.vil>`[a](https://e.vil)".into();
        let text = render(&r, Some("webhook said: [click](https://e.vil)"));
        assert!(text.contains("``x`<img src=https://e.vil>`[a](https://e.vil)``"), "{text}");
        assert!(text.contains("```text\nwebhook said: [click](https://e.vil)\n```"), "{text}");
    }

    /// A run that failed before any target: the error, no table.
    #[test]
    fn summary_of_an_early_error() {
        let r = Report::default();
        let text = render(&r, Some("registry: tag v9 not found\ncheck the tag"));
        assert!(
            text.contains("**Error:**\n\n```text\nregistry: tag v9 not found\ncheck the tag\n```"),
            "{text}"
        );
        assert!(!text.contains("| target |"));
    }

    /// A run refused after the digest was resolved changed nothing, and is not "up to date";
    /// a long message keeps its advice after a capped quote.
    #[test]
    fn a_refused_run_is_not_up_to_date() {
        let mut r = report(Status::Failed);
        r.changed = false;
        r.targets.clear();
        let quote = crate::untrusted::line(&"forbidden ".repeat(100));
        let error = format!("the server said: {quote}. Grant the Role in the README");
        let text = render(&r, Some(&error));
        assert!(text.contains("; nothing changed;") && !text.contains("up to date"), "{text}");
        assert!(text.contains("Grant the Role in the README"), "{text}");
        let mut done = report(Status::Succeeded);
        done.changed = false;
        assert!(render(&done, None).contains("already up to date"));
    }

    /// Dry runs say what would change, and that nothing did.
    #[test]
    fn dry_run_rows() {
        let mut r = report(Status::DryRun);
        r.changed = false;
        let text = render(&r, None);
        assert!(
            text.contains("dry run, nothing changed") && text.contains("dry-run (would change)"),
            "{text}"
        );
    }

    /// Huge diagnostics are cut under the runner's 1 MiB limit, the fence closed.
    #[test]
    fn summary_stays_under_the_limit() {
        let mut r = report(Status::Failed);
        r.targets[0].diagnostics = vec!["é".repeat(400); 5000];
        let text = render(&r, None);
        assert!(text.len() < 1024 * 1024);
        assert!(text.ends_with("the job log has everything)\n"));
    }
}
