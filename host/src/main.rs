//! The `keyhelper` binary.

fn main() -> std::process::ExitCode {
    keyhelper::cli::main()
}
