//! Shared helpers for keyhelper's integration tests: building the test
//! plugins, isolated home directories, running the real `keyhelper` binary
//! with fake tools on PATH.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ is in the repository").to_path_buf()
}

/// The component of test fixture `name` (`tests/fixtures/<name>`), built once
/// per test process with the same profile and target directory as the bundled
/// plugins.
pub fn fixture_wasm(name: &str) -> Vec<u8> {
    static BUILT: OnceLock<()> = OnceLock::new();
    let root = repo_root();
    let target_dir = root.join("target").join("plugin-build");
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .current_dir(&root)
            .args(["build", "--quiet", "--target", "wasm32-wasip2", "--profile", "plugin", "--target-dir"])
            .arg(&target_dir)
            .args([
                "-p",
                "keyhelper-fixture-hostile",
                "-p",
                "keyhelper-fixture-future-version",
                "-p",
                "keyhelper-fixture-wrong-world",
            ])
            .status()
            .expect("running cargo to build the test plugins");
        assert!(status.success(), "building the test plugins failed");
    });
    let path = target_dir
        .join("wasm32-wasip2/plugin")
        .join(format!("keyhelper_fixture_{}.wasm", name.replace('-', "_")));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A fresh, empty directory for one test, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new directory named after `tag`.
    pub fn new(tag: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("keyhelper-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("creating a temp dir");
        Self(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An isolated user for the `keyhelper` binary: its own HOME and XDG
/// directories, and a `bin/` directory of fake tools first on PATH.
pub struct Home {
    dir: TempDir,
}

impl Home {
    /// A new empty home.
    pub fn new(tag: &str) -> Self {
        let home = Self { dir: TempDir::new(tag) };
        std::fs::create_dir_all(home.bin()).unwrap();
        home
    }

    /// The home directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where fake tools go.
    pub fn bin(&self) -> PathBuf {
        self.path().join("bin")
    }

    /// `$XDG_CONFIG_HOME/keyhelper/config.toml`.
    pub fn config_file(&self) -> PathBuf {
        self.path().join(".config/keyhelper/config.toml")
    }

    /// Writes the config file.
    pub fn write_config(&self, text: &str) {
        let path = self.config_file();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Installs an executable script `name` in `bin/`.
    pub fn fake_tool(&self, name: &str, script: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.bin().join(name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// `keyhelper <args>` as this user, with a clean environment.
    pub fn keyhelper(&self, args: &[&str]) -> Command {
        let mut command = self.command(env!("CARGO_BIN_EXE_keyhelper"));
        command.args(args);
        command
    }

    /// `program` run as this user, with a clean environment.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join(".config"))
            .env("XDG_DATA_HOME", self.path().join(".local/share"))
            .env("XDG_CACHE_HOME", self.path().join(".cache"))
            .env("XDG_STATE_HOME", self.path().join(".local/state"))
            .env("PATH", format!("{}:/usr/local/bin:/usr/bin:/bin", self.bin().display()));
        command
    }

    /// Runs `keyhelper <args>` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.keyhelper(args).output().expect("running keyhelper")
    }
}

/// stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
