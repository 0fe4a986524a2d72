//! `mcp-manager`: parses the command line and hands over to the library.

/// mimalloc: the server and replay allocate many small, short-lived values (rows, events, JSON)
/// from several threads; glibc's allocator spent a quarter of replay's time consolidating them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    mcp_manager::cli::main()
}
