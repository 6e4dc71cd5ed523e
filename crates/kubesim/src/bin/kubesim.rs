//! Serves a simulated cluster until interrupted, and writes a kubeconfig for it.
//!
//! Usage: kubesim [--kubeconfig PATH] [--insecure-registry HOST:PORT]...

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut options = kubesim::Options::default();
    let mut kubeconfig = None;
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--kubeconfig", Some(path)) => kubeconfig = Some(path),
            ("--insecure-registry", Some(host)) => options.insecure_registries.push(host),
            _ => {
                eprintln!("usage: kubesim [--kubeconfig PATH] [--insecure-registry HOST:PORT]...");
                return ExitCode::from(2);
            }
        }
    }
    let simulator = match kubesim::Simulator::start(options) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kubesim: {e:#}");
            return ExitCode::from(1);
        }
    };
    if let Some(path) = kubeconfig {
        if let Err(e) = std::fs::write(&path, simulator.kubeconfig(None)) {
            eprintln!("kubesim: cannot write {path}: {e}");
            return ExitCode::from(1);
        }
        eprintln!("kubesim: kubeconfig written to {path}");
    }
    println!("{}", simulator.url());
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kubesim: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { if let Some(t) = term.as_mut() { t.recv().await; } else { std::future::pending::<()>().await } } => {}
        }
    });
    ExitCode::SUCCESS
}
