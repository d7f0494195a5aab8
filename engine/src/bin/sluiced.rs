//! sluiced: the sluice daemon.
use clap::Parser;
use sluice_engine::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Kernel-bypass UDP/TCP engine: steers configured services into per-core
/// AF_XDP sockets and serves them; everything else stays with the kernel.
#[derive(Parser, Debug)]
#[command(name = "sluiced", version)]
struct Args {
    /// Configuration file (TOML). Without it, the embedded default
    /// (UDP echo on 198.18.0.2:7 and discard on :9, interface sluice0).
    #[arg(long, value_name = "FILE", conflicts_with = "check_config")]
    config: Option<PathBuf>,
    /// Validate FILE (syntax, fields, and against this machine: interface,
    /// queues, CPUs, privileges), print the result and exit.
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,
    /// Print the embedded default configuration and exit.
    #[arg(long)]
    print_default_config: bool,
    /// Log filter (error, warn, info, debug, trace; or RUST_LOG syntax).
    #[arg(long, default_value = "info", env = "SLUICE_LOG")]
    log: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();

    if args.print_default_config {
        print!("{}", sluice_engine::config::DEFAULT_CONFIG);
        return ExitCode::SUCCESS;
    }
    if let Some(path) = args.check_config {
        return match Config::load(&path).map_err(anyhow::Error::from).and_then(|c| sluice_engine::daemon::check(&c)) {
            Ok(msg) => {
                println!("{msg}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sluiced: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let cfg = match &args.config {
        Some(p) => match Config::load(p) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("sluiced: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => Config::embedded_default(),
    };
    let terminate = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The first signal asks for an orderly shutdown (detach, drain,
        // close); a second one, while that runs, exits at once with status 1
        // (the XDP program is attached through a link this process owns, so
        // the kernel detaches it on exit anyway). The conditional handler
        // must be registered first: it checks the flag before the second
        // handler sets it.
        let installed = signal_hook::flag::register_conditional_shutdown(sig, 1, terminate.clone())
            .and_then(|_| signal_hook::flag::register(sig, terminate.clone()));
        if let Err(e) = installed {
            eprintln!("sluiced: cannot install signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    match sluice_engine::daemon::run(cfg, terminate) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluiced: {e:#}");
            ExitCode::FAILURE
        }
    }
}
