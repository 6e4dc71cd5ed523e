//! The process edge: arguments, environment, runtime, exit code.

use std::process::ExitCode;

use kubeship::inputs::{INPUTS, Inputs};

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
                "kubeship: unexpected argument {other:?}: kubeship reads its inputs from environment variables; see kubeship --help"
            );
            return ExitCode::from(2);
        }
    }
    let env = || {
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
    };
    let debug = env().any(|(k, v)| (k == "RUNNER_DEBUG" || k == "KUBESHIP_DEBUG") && v == "1");
    kubeship::log::set_debug(debug);
    kubeship::log::set_github(env().any(|(k, v)| k == "GITHUB_ACTIONS" && v == "true"));
    let var = |name: &str| env().find(|(k, _)| k == name).map(|(_, v)| v).filter(|v| !v.is_empty());
    let inputs = match Inputs::from_vars(env()) {
        Ok(inputs) => inputs,
        Err(e) => {
            // Still a report: status failed, the error in the summary, the outputs written.
            let error = kubeship::Error::from(e);
            let text = kubeship::error::render_chain(&error);
            kubeship::log::error_titled(error.title(), &text);
            let report = kubeship::report::Report { status: "failed", ..Default::default() };
            // The input error stays the exit code even when an output cannot be written too.
            let _ = report_to_github(&report, Some(&text), &var);
            println!("{}", report.json());
            return ExitCode::from(error.exit_code());
        }
    };
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                eprintln!("kubeship: cannot start: {e}");
                return ExitCode::from(1);
            }
        };
    let (stop, cancel) = tokio::sync::watch::channel(None);
    runtime.spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) =
            (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
        else {
            return;
        };
        let number = tokio::select! {
            _ = term.recv() => 15,
            _ = int.recv() => 2,
        };
        let _ = stop.send(Some(number));
    });
    let run = runtime.block_on(kubeship::run::run(&inputs, cancel));
    let error = run.error.as_ref().map(|e| kubeship::error::render_chain(e));
    kubeship::log::end_group();
    if let (Some(error), Some(text)) = (&run.error, &error) {
        kubeship::log::error_titled(error.title(), text);
    }
    if let Err(code) = report_to_github(&run.report, error.as_deref(), &var) {
        return code;
    }
    let outputs = run.report.outputs();
    if let Err(e) = kubeship::report::write_files(
        &outputs,
        inputs.dotenv_file.as_deref(),
        inputs.results_dir.as_deref(),
    ) {
        kubeship::log::error(format_args!(
            "cannot write the dotenv report or the Tekton results: {e}; check the dotenv-file and results-dir inputs"
        ));
        return ExitCode::from(1);
    }
    println!("{}", run.report.json());
    ExitCode::from(run.exit_code())
}

/// The step summary and `$GITHUB_OUTPUT`, when the runner gives their files. An output
/// that cannot be written fails the run (exit 1): a later step would read nothing.
fn report_to_github(
    report: &kubeship::report::Report,
    error: Option<&str>,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ExitCode> {
    if let Some(path) = var("GITHUB_STEP_SUMMARY") {
        let markdown = kubeship::report::summary(report, error);
        if let Err(e) = kubeship::report::write_summary(std::path::Path::new(&path), &markdown) {
            kubeship::log::warn(format_args!(
                "cannot write the step summary to $GITHUB_STEP_SUMMARY ({path}): {e}"
            ));
        }
    }
    if let Some(path) = var("GITHUB_OUTPUT")
        && let Err(e) =
            kubeship::report::write_github_output(std::path::Path::new(&path), &report.outputs())
    {
        kubeship::log::error(format_args!(
            "cannot write the outputs to $GITHUB_OUTPUT ({path}): {e}; check that the step may write the runner's file-command directory"
        ));
        return Err(ExitCode::from(1));
    }
    Ok(())
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
    text.push_str("\nExit codes: 0 success, 1 rollout failed or timed out, 2 invalid input, 3 registry error,\n4 Kubernetes API error, 130/143 interrupted.\n");
    text
}
