//! The jq worker process of the fuzz targets (they evaluate in process isolation, so a filter
//! that overflows the stack is a finding recorded by the driver, not the end of the run).

fn main() -> std::process::ExitCode {
    portolan_jq::worker_main()
}
