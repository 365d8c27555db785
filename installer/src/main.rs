use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = installer::cli::Cli::parse();
    match installer::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(installer::cli::exit_code(&e))
        }
    }
}
