//! `portolan-fuzz <target|all> [--seconds N] [--seed S]`: run the stable mutation driver on a
//! target and print executions and findings (inputs that panicked are written to
//! `fuzz-findings/`). See docs/fuzzing.md.

use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seconds = 10u64;
    let mut seed = 1u64;
    let mut names = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--seconds" => {
                seconds = args.get(i + 1).and_then(|s| s.parse().ok()).unwrap_or(seconds);
                i += 1;
            }
            "--seed" => {
                seed = args.get(i + 1).and_then(|s| s.parse().ok()).unwrap_or(seed);
                i += 1;
            }
            "all" => names.extend(portolan_fuzz::TARGETS.iter().map(|t| t.name.to_string())),
            other => names.push(other.to_string()),
        }
        i += 1;
    }
    if names.is_empty() {
        eprintln!(
            "usage: portolan-fuzz <target|all> [--seconds N] [--seed S]; targets: {}",
            portolan_fuzz::TARGETS.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
        );
        return ExitCode::from(2);
    }
    let mut failed = false;
    for name in names {
        let Some(target) = portolan_fuzz::TARGETS.iter().find(|t| t.name == name) else {
            eprintln!("unknown target {name:?}");
            return ExitCode::from(2);
        };
        let report = portolan_fuzz::fuzz(target, portolan_fuzz::Budget::Time(Duration::from_secs(seconds)), seed);
        println!(
            "{:<16} {:>9} execs  {:>7.0} execs/s  {} findings",
            target.name,
            report.execs,
            report.execs as f64 / report.elapsed.as_secs_f64().max(1e-9),
            report.findings.len()
        );
        for f in &report.findings {
            let dir = std::path::Path::new("fuzz-findings");
            let _ = std::fs::create_dir_all(dir);
            let file = dir.join(format!("{}-{:016x}", target.name, portolan_fuzz::hash(&f.input)));
            let _ = std::fs::write(&file, &f.input);
            println!("  finding: {} ({})", f.message, file.display());
            failed = true;
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
