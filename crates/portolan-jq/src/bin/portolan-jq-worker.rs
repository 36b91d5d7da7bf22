//! A stand-alone jq worker process (`Isolation::Process`), for this crate's tests and for
//! embedders without a binary of their own to re-execute. The `portolan` binary serves the same
//! role itself (`portolan __jq-worker`).

/// The allocator the `portolan` binary's workers use.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    portolan_jq::worker_main()
}
