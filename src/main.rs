//! The process edge: arguments, environment, runtime, signals, the outputs and the exit code.

use std::process::ExitCode;

use kubeship::inputs::{INPUTS, Inputs};
use kubeship::report::Report;
use kubeship::report::files::Destinations;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // CI systems that insist on a command for a container (Codeship Pro, some Jenkins
    // setups) pass the program's own name after the entrypoint: `kubeship` or `/kubeship`.
    if args.first().is_some_and(|a| a == "kubeship" || a == "/kubeship") {
        args.remove(0);
    }
    match args.first().map(String::as_str) {
        None => {}
        Some("--version" | "-V") => {
            println!("kubeship {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some("--help" | "-h") => {
            print!("{}", help());
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!(
                "kubeship: unexpected argument {:?}: kubeship reads its inputs from environment variables; see kubeship --help",
                kubeship::untrusted::short(other, 80)
            );
            return ExitCode::from(2);
        }
    }
    let vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let var = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    kubeship::log::set_debug(
        var("RUNNER_DEBUG") == Some("1") || var("KUBESHIP_DEBUG") == Some("1"),
    );
    kubeship::log::set_github(var("GITHUB_ACTIONS") == Some("true"));
    for warning in kubeship::inputs::raw::unknown(vars.iter().map(|(k, _)| k.as_str())) {
        kubeship::log::warn(warning);
    }
    let inputs = match Inputs::from_vars(vars.iter().map(|(k, v)| (k, v))) {
        Ok(inputs) => inputs,
        Err(e) => {
            // Still a report: status failed, the error in the summary, the runner's outputs.
            let runner = Destinations {
                github_output: var("GITHUB_OUTPUT").filter(|p| !p.is_empty()).map(Into::into),
                step_summary: var("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()).map(Into::into),
                ..Destinations::default()
            };
            return finish(&Report::default(), Some(&kubeship::Error::from(e)), &runner, 2);
        }
    };
    // The destinations before any request: a run that could not report is not started.
    if let Err(e) = inputs.outputs.check() {
        let error = kubeship::Error::from(e);
        let writable = Destinations::default();
        return finish(&Report::default(), Some(&error), &writable, error.exit_code());
    }
    // One thread: the run waits on the network, and worker threads would cost their start and
    // a hand-off on every answer. A blocking exec plugin gets a thread of its own.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kubeship: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let (stop, cancel) = tokio::sync::watch::channel(None);
    // The handlers are in place before the run starts, not when the task first runs: a signal
    // in between would otherwise end the process with no report.
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        let _entered = runtime.enter();
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    };
    runtime.spawn(async move {
        let (Ok(mut term), Ok(mut int)) = signals else {
            return;
        };
        let number = tokio::select! {
            _ = term.recv() => 15,
            _ = int.recv() => 2,
        };
        let _ = stop.send(Some(number));
    });
    let run = runtime.block_on(kubeship::run::run(&inputs, cancel));
    // Not a wait for blocking threads: one may still be inside an exec plugin that hangs,
    // which kubeship has already given up on.
    runtime.shutdown_background();
    kubeship::cluster::end_plugins();
    kubeship::log::end_group();
    finish(&run.report, run.error.as_ref(), &inputs.outputs, run.exit_code())
}

/// Reports the run everywhere it goes: the error line (an `::error::` annotation under
/// GitHub Actions), the output files, and the `result` JSON as the last line of standard
/// output, whatever failed before.
fn finish(
    report: &Report,
    error: Option<&kubeship::Error>,
    outputs: &Destinations,
    code: u8,
) -> ExitCode {
    let text = error.map(|e| kubeship::log::redact(&kubeship::error::render_chain(e)));
    if let (Some(error), Some(text)) = (error, &text) {
        kubeship::log::error_titled(error.title(), text);
    }
    let mut code = code;
    match outputs.write(report, text.as_deref()) {
        Ok(warnings) => warnings.iter().for_each(kubeship::log::warn),
        Err(e) => {
            kubeship::log::error(&e);
            // The run's own failure stays the exit code; a run that went well still failed
            // to report.
            if code == 0 {
                code = 2;
            }
        }
    }
    println!("{}", kubeship::log::redact(&report.json()));
    ExitCode::from(code)
}

fn help() -> String {
    let mut text = format!(
        "kubeship {}: pin a freshly pushed image by digest on Kubernetes workloads and wait for the rollout.\n\n\
         Inputs are environment variables. Each input NAME is read from INPUT_<NAME> (hyphens kept, as the\n\
         GitHub runner sets them), INPUT_<NAME_WITH_UNDERSCORES> or KUBESHIP_<NAME_WITH_UNDERSCORES>.\n\n",
        env!("CARGO_PKG_VERSION")
    );
    for input in INPUTS {
        let default = match (input.required, input.default) {
            (true, _) => "required".to_owned(),
            (false, "") => "no default".to_owned(),
            (false, d) => format!("default {d}"),
        };
        let vars = input.variables().join(", ");
        text.push_str(&format!(
            "  {} ({default})\n      {}\n      {vars}\n",
            input.name, input.description
        ));
    }
    text.push_str("\nExit codes: 0 success, 1 rollout failed, timed out or superseded, 2 invalid input,\n3 registry error, 4 Kubernetes API error, 130/143 interrupted.\n");
    text
}
