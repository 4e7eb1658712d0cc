//! The `keyhelper` executable: serves cache hits, runs `keyhelper-full` for
//! everything else (see `keyhelper::front`).

fn main() -> std::process::ExitCode {
    keyhelper::front::main()
}
