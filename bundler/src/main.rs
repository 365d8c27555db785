use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = bundler::cli::Cli::parse();
    match bundler::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", bundle_format::error_text(e.as_ref()));
            ExitCode::from(bundler::cli::exit_code(&e))
        }
    }
}
