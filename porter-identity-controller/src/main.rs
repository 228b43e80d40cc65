//! `porter-identity-controller`: `crd` prints the CRDs (the reconcile loop is not built yet).

use std::process::ExitCode;

const USAGE: &str = "usage: porter-identity-controller crd   (prints the CRDs as YAML)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["crd"] => {
            print!("{}", porter_identity_controller::crd::crd_yaml());
            ExitCode::SUCCESS
        }
        ["-h" | "--help"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
