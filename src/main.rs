//! `mcp-manager`: parses the command line and hands over to the library.

fn main() -> std::process::ExitCode {
    mcp_manager::cli::main()
}
