//! The runner's own L0 cases (`src/Test/L0/Worker/ActionCommandL0.cs`,
//! `ActionCommandManagerL0.cs`, `OutputManagerL0.cs`) as tables, and the attack forms of issue 12.

use super::{
    Command, Outcome, Runner, Stream, commands, is_inert, is_inert_in_block, lines, masks, parse,
    step,
};

fn utf16(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

fn command(name: &str, properties: &[(&str, &str)], data: &str) -> Command {
    let properties = properties.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    Command { name: name.to_owned(), properties, data: data.to_owned() }
}

fn only_do_something(name: &str) -> bool {
    name == "do-something"
}

#[test]
fn legacy_parser_l0() {
    let cases: [(&str, Command); 6] = [
        ("##[do-something k1=v1;]msg", command("do-something", &[("k1", "v1")], "msg")),
        ("##[do-something]", command("do-something", &[], "")),
        (
            "##[do-something k1=%3B=%0D=%0A=%5D;]%3B-%0D-%0A-%5D",
            command("do-something", &[("k1", ";=\r=\n=]")], ";-\r-\n-]"),
        ),
        (
            "##[do-something k1=%253B=%250D=%250A=%255D;]%253B-%250D-%250A-%255D",
            command("do-something", &[("k1", "%3B=%0D=%0A=%5D")], "%3B-%0D-%0A-%5D"),
        ),
        ("##[do-something k1=;k2=;]", command("do-something", &[], "")),
        (">>>   ##[do-something k1=v1;]msg", command("do-something", &[("k1", "v1")], "msg")),
    ];
    for (line, expected) in cases {
        assert_eq!(parse::legacy(&utf16(line), &only_do_something), Some(expected), "{line}");
    }
}

#[test]
fn v2_parser_l0() {
    let cases: [(&str, Option<Command>); 8] = [
        ("::do-something k1=v1,::msg", Some(command("do-something", &[("k1", "v1")], "msg"))),
        ("::do-something::", Some(command("do-something", &[], ""))),
        (
            "::do-something k1=;=%2C=%0D=%0A=]=%3A,::;-%0D-%0A-]-:-,",
            Some(command("do-something", &[("k1", ";=,=\r=\n=]=:")], ";-\r-\n-]-:-,")),
        ),
        (
            "::do-something k1=;=%252C=%250D=%250A=]=%253A,::;-%250D-%250A-]-:-,",
            Some(command("do-something", &[("k1", ";=%2C=%0D=%0A=]=%3A")], ";-%0D-%0A-]-:-,")),
        ),
        ("::do-something k1=,k2=,::", Some(command("do-something", &[], ""))),
        ("::do-something k1=v1::", Some(command("do-something", &[("k1", "v1")], ""))),
        ("   ::do-something k1=v1,::msg", Some(command("do-something", &[("k1", "v1")], "msg"))),
        ("   >>>   ::do-something k1=v1,::msg", None),
    ];
    for (line, expected) in cases {
        assert_eq!(parse::v2(&utf16(line), &only_do_something), expected, "{line}");
    }
}

/// `String.Split('=', 2, RemoveEmptyEntries)` and the dictionary's case-insensitive keys.
#[test]
fn property_splitting() {
    let parsed = parse::v2(&utf16("::do-something =a=b,k==v=w,K=x,z::"), &only_do_something);
    let expected = command("do-something", &[("a", "b"), ("k", "x")], "");
    assert_eq!(parsed, Some(expected));
    let parsed = parse::v2(&utf16("::do-something a=1=2::"), &only_do_something);
    assert_eq!(parsed.and_then(|c| c.property("A").map(str::to_owned)).as_deref(), Some("1=2"));
}

fn run(lines: &[&str]) -> Vec<Outcome> {
    let mut runner = Runner::new();
    lines.iter().map(|line| runner.line(line)).collect()
}

fn acted(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Acted { .. })
}

fn failed(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Failed { .. })
}

#[test]
fn stop_commands_l0() {
    let o = run(&[
        "##[stop-commands]stopToken",
        "##[set-env name=foo]bar",
        "##[stopToken]",
        "##[set-env name=foo]bar",
    ]);
    assert!(acted(&o[0]) && o[1] == Outcome::Shown && acted(&o[2]) && failed(&o[3]), "{o:?}");
    let o = run(&[
        "::stop-commands::randomToken",
        "##[set-env name=foo]bar",
        "::randomToken::",
        "##[set-env name=foo]bar",
    ]);
    assert!(acted(&o[0]) && o[1] == Outcome::Shown && acted(&o[2]) && failed(&o[3]), "{o:?}");
    let mut runner = Runner::new();
    runner.line("::stop-commands::randomToken");
    assert_eq!(runner.masks(), ["randomToken"]);
    for invalid in ["stop-commands", "", "set-env", "ERROR", "Pause-Logging"] {
        let o = run(&[&format!("::stop-commands::{invalid}"), "::error::read?"]);
        assert!(
            matches!(o[0], Outcome::Aborted { .. }) && o[1] == Outcome::Unread,
            "{invalid:?}: {o:?}"
        );
    }
}

#[test]
fn echo_l0() {
    let mut runner = Runner::new();
    let shown = |runner: &mut Runner| runner.line("::group::g").shown();
    assert!(!shown(&mut runner));
    for (line, on) in [
        ("::echo::on", true),
        ("::echo::off", false),
        ("::echo::ON", true),
        ("::echo::Off   ", false),
    ] {
        assert!(acted(&runner.line(line)));
        assert_eq!(shown(&mut runner), on, "{line}");
    }
    assert!(failed(&runner.line("::echo::invalid")) && failed(&runner.line("::echo::")));
}

/// `OutputManagerL0`: the legacy form is found anywhere in a line; unknown names are text.
#[test]
fn legacy_anywhere_l0() {
    let o = run(&["this line is a command too ##[warning]even though", "##[not-command]text"]);
    assert_eq!(o[0].command(), Some(&command("warning", &[], "even though")));
    assert_eq!(o[1], Outcome::Shown);
}

#[test]
fn lines_end_as_in_stream_reader() {
    assert_eq!(lines(b"a\r\nb\rc\n\nd"), ["a", "b", "c", "", "d"]);
    assert_eq!(lines(b"a\n"), ["a"]);
    assert_eq!(lines(b"\xEF\xBB\xBFx\xFFy\xe2\x80\xa8z"), ["x\u{FFFD}y\u{2028}z"]);
    assert_eq!(lines(b"\xFF\xFEa\0\n\0b\0"), ["a", "b"]);
}

/// Issue 12: what a pod's log line does when kubeship prints it raw.
#[test]
fn attack_forms_are_obeyed_when_printed_raw() {
    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let cases: Vec<(String, &str, &str)> = vec![
        (format!("::add-mask::{digest}"), "add-mask", digest),
        ("  ::add-mask::x".to_owned(), "add-mask", "x"),
        (
            "\t\u{3000}::warning title=t::leading white space is trimmed".to_owned(),
            "warning",
            "leading white space is trimmed",
        ),
        ("##[set-output name=image]evil".to_owned(), "set-output", "evil"),
        (
            r###"{"image":"x","message":"##[error]in the JSON line"}"###.to_owned(),
            "error",
            r#"in the JSON line"}"#,
        ),
        (
            "::add-mask:\u{200B}:zero width space between the colons".to_owned(),
            "add-mask",
            ":zero width space between the colons",
        ),
        ("#\u{AD}#[error]soft hyphen".to_owned(), "", ""),
    ];
    for (line, name, data) in &cases {
        let outcome = Runner::new().line(line);
        if name.is_empty() {
            // "#\u{AD}#[" matches, but the info then starts at '[': no command, shown as text.
            assert_eq!(outcome, Outcome::Shown, "{line:?}");
        } else {
            let got = outcome.command().map(|c| (c.name.as_str(), c.data.as_str()));
            assert_eq!(got, Some((*name, *data)), "{line:?}");
        }
    }
    // A bare "\r" ends a line: what follows it is a line of its own.
    let stderr = "GET /\r::warning title=pwned::from a log line\n";
    let found = commands(b"", stderr.as_bytes());
    assert_eq!(found, [command("warning", &[("title", "pwned")], "from a log line")]);
    // `::stop-commands::x` swallows kubeship's own error that follows.
    let o = run(&["::stop-commands::x", "::error::the rollout failed"]);
    assert!(acted(&o[0]) && o[1] == Outcome::Shown);
    // An invalid token fails the step outright and nothing after it is read.
    let o = run(&["::stop-commands::", "::error::the rollout failed"]);
    assert!(matches!(o[0], Outcome::Aborted { .. }) && o[1] == Outcome::Unread);
    assert_eq!(masks(format!("::add-mask::{digest}").as_bytes(), b""), [digest]);
}

/// The contract's defence: untrusted text inside a block with a fresh token; kubeship's own
/// `::error::` after the block is still obeyed.
#[test]
fn a_stop_block_holds_the_attack_forms() {
    let token = "f81d4fae7dec11d0a76500a0c91e6bf6";
    let attack =
        "::add-mask::x\n##[set-output name=a]b\n  ::stop-commands::y\n::y::\n::error::forged";
    assert!(is_inert_in_block(attack, token));
    assert!(!is_inert(attack));
    assert!(!is_inert_in_block(&format!("log ##[{token}]then ::error::x"), token));
    let stderr =
        format!("::stop-commands::{token}\n{attack}\n::{token}::\n::error::the rollout failed\n");
    let found = commands(b"", stderr.as_bytes());
    let names: Vec<&str> = found.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["stop-commands", token, "error"]);
}

/// The runner merges the streams in any order and shares the stop state between them.
#[test]
fn streams_share_the_stop_state_in_every_order() {
    let stdout = b"::error::from stdout\n";
    let stderr = b"::stop-commands::tok12345\nlog\n::tok12345::\n";
    let report = step(stdout, stderr);
    let error = report.iter().find(|l| l.stream == Stream::Stdout).expect("stdout line");
    // Before or after the block it is acted on; inside it, shown as text.
    assert!(error.outcomes.iter().any(|o| o.command().is_some()));
    assert!(error.outcomes.contains(&Outcome::Shown));
    assert!(!error.always_acted());
    let resume =
        report.iter().find(|l| l.stream == Stream::Stderr && l.index == 2).expect("resume");
    assert!(resume.always_acted());
    // A line that is a resume in one order and a legacy command in another.
    let stdout = b"::tok12345::x ##[warning]w\n";
    let report = step(stdout, stderr);
    let names: Vec<&str> = report[0].commands().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["warning", "tok12345"]);
}

/// Any text without ':' or '#' is inert; no line without the token resumes a block.
mod properties {
    use super::super::{Outcome, Runner, is_inert, is_inert_in_block};
    use proptest::prelude::*;

    fn tricky() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            ":",
            "::",
            "#",
            "##[",
            "]",
            "add-mask",
            "error",
            "stop-commands",
            "tok",
            "TOK",
            " ",
            "\t",
            "\n",
            "\r",
            "=",
            ",",
            ";",
            "%3A",
            "\u{200B}",
            "\u{AD}",
            "\u{301}",
            "\u{600}",
            "\u{E0020}",
            "x",
        ]);
        prop::collection::vec(pieces, 0..24).prop_map(|p| p.concat())
    }

    fn line() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "text",
            "::stop-commands::tok12345",
            "::tok12345::",
            "##[tok12345]",
            "::stop-commands::",
            "::error::e",
            "::echo::on",
            "::group::g",
            "::add-mask::m",
            "::tok12345:: ##[warning]w",
        ])
        .prop_map(str::to_owned)
    }

    /// Every order that keeps each stream's own: the outcomes each line meets.
    fn merges(out: &[String], err: &[String], order: &mut Vec<usize>, seen: &mut [Vec<Outcome>]) {
        if order.len() == out.len() + err.len() {
            let mut runner = Runner::new();
            for &k in order.iter() {
                let text = if k < out.len() { &out[k] } else { &err[k - out.len()] };
                let outcome = runner.line(text);
                if !seen[k].contains(&outcome) {
                    seen[k].push(outcome);
                }
            }
            return;
        }
        let taken_out = order.iter().filter(|&&k| k < out.len()).count();
        let taken_err = order.len() - taken_out;
        if taken_out < out.len() {
            order.push(taken_out);
            merges(out, err, order, seen);
            order.pop();
        }
        if taken_err < err.len() {
            order.push(out.len() + taken_err);
            merges(out, err, order, seen);
            order.pop();
        }
    }

    proptest! {
        #[test]
        fn text_without_colon_or_hash_is_inert(text in "[^:#]{0,80}") {
            prop_assert!(is_inert(&text));
        }

        #[test]
        fn only_the_token_resumes(text in tricky()) {
            let token = "tok12345";
            if !text.to_ascii_lowercase().contains(token) {
                prop_assert!(is_inert_in_block(&text, token));
            }
        }

        /// `step` against running every merge of the two streams' lines through a `Runner`.
        #[test]
        fn step_equals_every_interleaving(
            out in prop::collection::vec(line(), 0..6),
            err in prop::collection::vec(line(), 0..6),
        ) {
            let (stdout, stderr) = (out.join("\n"), err.join("\n"));
            let (out, err) = (super::lines(stdout.as_bytes()), super::lines(stderr.as_bytes()));
            let mut seen: Vec<Vec<Outcome>> = vec![Vec::new(); out.len() + err.len()];
            merges(&out, &err, &mut Vec::new(), &mut seen);
            let report = super::step(stdout.as_bytes(), stderr.as_bytes());
            for (line, expected) in report.iter().zip(&seen) {
                let mut got = line.outcomes.clone();
                let mut expected = expected.clone();
                got.sort_by_key(|o| format!("{o:?}"));
                expected.sort_by_key(|o| format!("{o:?}"));
                prop_assert_eq!(got, expected, "{:?}", line);
            }
        }
    }
}
