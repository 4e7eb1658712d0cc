//! How keyhelper was invoked, and where its other half is. Docker runs
//! credential helpers as `docker-credential-<name> <action>`, so a symlink of
//! that name to keyhelper speaks Docker's protocol; the small `keyhelper`
//! executable runs `keyhelper-full`, installed beside it, which runs
//! `keyhelper-compile` to compile a plugin.

use std::path::PathBuf;

/// The complete program's file name; it lives beside `keyhelper`.
pub const FULL_EXECUTABLE: &str = "keyhelper-full";

/// `keyhelper-full` (`keyhelper-full.exe` on Windows) beside the running
/// executable (symlinks to it resolved).
pub fn full_executable() -> PathBuf {
    beside_this_executable(FULL_EXECUTABLE)
}

/// The plugin compiler's file name; it lives beside `keyhelper-full`.
pub const COMPILER_EXECUTABLE: &str = "keyhelper-compile";

/// `keyhelper-compile` (`keyhelper-compile.exe` on Windows) beside the
/// running executable (symlinks to it resolved).
pub fn compiler_executable() -> PathBuf {
    beside_this_executable(COMPILER_EXECUTABLE)
}

/// `name` plus the platform's executable suffix, beside the running executable.
fn beside_this_executable(name: &str) -> PathBuf {
    let name = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    std::env::current_exe().map(|exe| exe.with_file_name(&name)).unwrap_or_else(|_| PathBuf::from(name))
}

/// The name Docker runs keyhelper under (`credsStore`/`credHelpers` = "keyhelper").
pub const DOCKER_HELPER_NAME: &str = "docker-credential-keyhelper";

/// Whether `args` (a whole argv) come from Docker: `argv[0]` names
/// `docker-credential-keyhelper`, or `docker-credential-keyhelper.exe`.
pub fn invoked_as_docker_helper(args: &[std::ffi::OsString]) -> bool {
    let Some(path) = args.first().map(std::path::Path::new) else { return false };
    match path.extension() {
        Some(ext) => {
            ext.eq_ignore_ascii_case("exe") && path.file_stem().is_some_and(|s| s == DOCKER_HELPER_NAME)
        }
        None => path.file_name().is_some_and(|name| name == DOCKER_HELPER_NAME),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_docker_helper_by_its_file_name() {
        let argv = |arg0: &str| vec![std::ffi::OsString::from(arg0), "get".into()];
        assert!(invoked_as_docker_helper(&argv("/usr/local/bin/docker-credential-keyhelper")));
        assert!(invoked_as_docker_helper(&argv("docker-credential-keyhelper")));
        assert!(invoked_as_docker_helper(&argv("C:/bin/docker-credential-keyhelper.exe")));
        assert!(invoked_as_docker_helper(&argv("docker-credential-keyhelper.EXE")));
        assert!(!invoked_as_docker_helper(&argv("docker-credential-keyhelper.sh")));
        assert!(!invoked_as_docker_helper(&argv("/usr/local/bin/keyhelper")));
        assert!(!invoked_as_docker_helper(&[]));
    }
}
