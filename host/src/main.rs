//! The `keyhelper-full` executable: the complete program, which the small
//! `keyhelper` executable runs for everything but a cache hit.

fn main() -> std::process::ExitCode {
    keyhelper_host::cli::main()
}
