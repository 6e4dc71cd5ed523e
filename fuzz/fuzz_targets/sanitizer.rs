//! Any bytes from the cluster, through kubeship's sanitizer and log lines, as the GitHub runner
//! reads them: nothing but the stopped block's own commands is ever acted on, no control or
//! invisible character survives, no line passes the cap.
#![no_main]

use kubeship::{log, untrusted};
use kubeship_testkit::github::runner;
use libfuzzer_sys::fuzz_target;

fn only_the_block(lines: &[String]) -> bool {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    runner::commands(b"", text.as_bytes())
        .iter()
        .all(|c| c.name == "stop-commands" || c.name.starts_with("kubeship-"))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let one = untrusted::line(&text);
    assert!(one.len() <= untrusted::LINE_CAP + '…'.len_utf8());
    assert!(!one.chars().any(char::is_control));
    for line in untrusted::lines(&text, 20) {
        assert!(!line.chars().any(char::is_control));
    }
    let cleaned = log::clean(&text);
    assert!(only_the_block(&log::info_lines(&cleaned, true)));
    assert!(only_the_block(&log::untrusted_lines("heading", &[format!("  {cleaned}")], true)));
});
