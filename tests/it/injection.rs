//! Text from the cluster is an attacker's: a crashing container's log lines and an event's
//! message carry every workflow-command form the GitHub runner obeys, and Markdown that would
//! render live. Real runs on both clusters, read by an oracle that follows the runner's own
//! rules (`kubeship_testkit::github::runner`): the runner acts only on kubeship's own
//! commands, kubeship's `::error::` is still acted on, and the step summary renders no link,
//! image or HTML from the cluster.

use std::time::Duration;

use kubeship_testkit::github::{runner, summary};
use kubesim::Behaviour;

use crate::world::on_both;

/// Every form the issue reproduced, and Markdown that would render live.
const ATTACKS: [&str; 9] = [
    "::add-mask::sha256",
    "   ::stop-commands::pwned",
    "GET /\r::warning title=pwned::injected",
    "##[set-output name=status]succeeded",
    ":\u{200B}:add-mask::zero-width",
    "::error title=kubeship%3A rollout succeeded::all good",
    "\u{1b}]8;;https://e.vil\u{7}click\u{1b}]8;;\u{7}",
    "[click](https://e.vil) ![x](https://e.vil/p.png) <img src=https://e.vil> www.e.vil",
    "{\"#\": \"##[error]json\"}",
];

on_both!(
    /// Two failing targets whose pods and events speak every attack form: the runner would
    /// act only on kubeship's commands; the failure annotation is acted on; the summary has no
    /// live element; the JSON line has no `#`; the attack text is there, inert.
    cluster_text_cannot_command_the_runner,
    |w| {
        let logs: Vec<String> = ATTACKS.iter().map(|a| (*a).to_owned()).collect();
        let crash = Some((Duration::from_secs(1), "Error".to_owned(), 1));
        w.script(
            &w.pinned(&w.v2),
            Behaviour { crash, ready_delay: Duration::from_secs(30), logs, ..Behaviour::default() },
        );
        let summary_path = w.dir.path().join("summary.md");
        let run = w
            .command(&[
                ("INPUT_IMAGE", &w.image("v2")),
                ("INPUT_DEPLOYMENT", "api"),
                ("INPUT_TIMEOUT", "60s"),
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_STEP_SUMMARY", summary_path.to_str().unwrap()),
            ])
            .output()
            .unwrap();
        let (stdout, stderr) = (run.stdout.clone(), run.stderr.clone());
        let text = String::from_utf8_lossy(&stderr).into_owned();
        assert_eq!(run.status.code(), Some(1), "{text}");
        // The attack text did reach the log: the test is not vacuous.
        assert!(text.contains("##[set-output name=status]succeeded"), "{text}");
        assert!(text.contains("stop-commands::pwned"), "{text}");

        // The kubeconfig's bearer token is the one secret kubeship masks here.
        let config = w.kubeconfig();
        let token = config.lines().find_map(|l| l.trim().strip_prefix("token: ")).unwrap().to_owned();
        let reports = runner::step(&stdout, &stderr);
        for report in &reports {
            for outcome in &report.outcomes {
                assert!(
                    !matches!(outcome, runner::Outcome::Aborted { .. } | runner::Outcome::Failed { .. }),
                    "{report:?}"
                );
            }
            for command in report.commands() {
                let ours = match command.name.as_str() {
                    "group" | "endgroup" | "warning" | "debug" | "stop-commands" => true,
                    "add-mask" => command.data == token,
                    "error" => command.property("title").is_some_and(|t| t.starts_with("kubeship: rollout failed")),
                    name => name.starts_with("kubeship-"),
                };
                assert!(ours, "the runner would act on {command:?} from {:?}", report.text);
            }
        }
        let annotation = reports
            .iter()
            .find(|r| r.text.starts_with("::error title=kubeship%3A rollout failed::"))
            .unwrap_or_else(|| panic!("no failure annotation:\n{text}"));
        assert!(annotation.always_acted(), "{annotation:?}");
        // The runner also masks each stop token it is given (kubeship's are random).
        let masks = runner::masks(&stdout, &stderr);
        assert!(masks.iter().all(|m| *m == token || m.starts_with("kubeship-")), "{masks:?}");

        let json = String::from_utf8_lossy(&stdout);
        assert!(!json.contains('#'), "{json}");
        let markdown = std::fs::read_to_string(&summary_path).unwrap();
        let rendered = summary::render(&markdown);
        assert!(rendered.live().is_empty(), "{:?}\n{markdown}", rendered.live());
        assert!(
            rendered.code_blocks.iter().any(|b| b.contains("![x](https://e.vil/p.png)")),
            "the Markdown is shown as text:\n{markdown}"
        );
    }
);
