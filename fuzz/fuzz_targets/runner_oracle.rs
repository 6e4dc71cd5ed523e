//! The test kit's model of the GitHub runner and of the step summary must take any bytes
//! without panicking: the first half of the input is stdout, the rest stderr.
#![no_main]

use kubeship_testkit::github::{runner, summary};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (stdout, stderr) = data.split_at(data.len() / 2);
    let _ = runner::step(stdout, stderr);
    let text = String::from_utf8_lossy(data);
    let _ = runner::is_inert(&text);
    let _ = runner::is_inert_in_block(&text, "f81d4fae7dec11d0");
    let _ = summary::render(&text);
});
