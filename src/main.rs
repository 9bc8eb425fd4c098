//! The `underpass` command line.
#![forbid(unsafe_code)]

// mimalloc keeps the 64-256 KiB message buffers of the data path in its pools; with glibc's
// malloc large buffers are often fresh pages that fault in on first touch. The pools are
// purged when workers go idle (`underpass::allocator`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    underpass::cli::drop_empty_env();
    let cli = underpass::cli::Cli::from_args();
    // Idle workers hand freed memory back to the OS (see `underpass::allocator`).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.worker_threads())
        .enable_all()
        .on_thread_park(underpass::allocator::release_when_idle)
        .build();
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let workers = runtime.metrics().num_workers();
    runtime.spawn(underpass::allocator::wake_idle_workers(workers));
    match runtime.block_on(underpass::cli::main(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
