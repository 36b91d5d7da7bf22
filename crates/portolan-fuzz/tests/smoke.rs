//! Every fuzz target over its seeds and a few thousand deterministic mutations: the targets keep
//! building and running in `cargo test`, and a finding fails the build with its input.

use std::path::PathBuf;

use portolan_fuzz::{Budget, TARGETS, fuzz};

#[test]
fn every_target_runs_its_seeds_and_mutations_without_findings() {
    portolan_fuzz::set_jq_worker(PathBuf::from(env!("CARGO_BIN_EXE_portolan-fuzz-jq-worker")));
    for target in TARGETS {
        // jq-backed targets cost a process round trip per input: fewer of them.
        let execs = if matches!(target.name, "jq" | "template" | "mapping") { 600 } else { 3000 };
        let report = fuzz(target, Budget::Execs(execs), 7);
        assert_eq!(report.execs, execs);
        let shown: Vec<String> =
            report.findings.iter().map(|f| format!("{}: {:?}", f.message, String::from_utf8_lossy(&f.input))).collect();
        assert!(report.findings.is_empty(), "target {}: {shown:#?}", target.name);
        eprintln!("{}: {} execs in {:?}", target.name, report.execs, report.elapsed);
    }
}
