use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = bundler::cli::Cli::parse();
    match bundler::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", installer::cli::error_text(&e));
            ExitCode::from(bundler::cli::exit_code(&e))
        }
    }
}
