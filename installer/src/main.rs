use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Test builds only: fault points configured by FAILPOINTS.
    #[cfg(feature = "failpoints")]
    let _faults = fail::FailScenario::setup();
    let cli = installer::cli::Cli::parse();
    match installer::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", installer::cli::error_text(&e));
            ExitCode::from(installer::cli::exit_code(&e))
        }
    }
}
