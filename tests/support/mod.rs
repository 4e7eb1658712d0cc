//! Shared helpers for keyhelper's integration tests: building the test
//! plugins, isolated home directories, running the real `keyhelper` binary
//! with fake tools on PATH, and bounded waits for every child process.

#![allow(dead_code)]

pub mod fake_az;
pub mod oidc;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use wait_timeout::ChildExt;

/// How long any child process of a test may run: far beyond what any of them
/// needs on a loaded machine, so that a hang fails the test instead of CI.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

/// The small `keyhelper` executable, which `cargo xtask test` builds beside
/// `keyhelper-full` (another package's binary, so cargo does not build it for
/// these tests by itself).
pub fn keyhelper_exe() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| beside_full("keyhelper"))
}

/// `keyhelper-compile`, which `cargo xtask test` builds beside
/// `keyhelper-full` like the small executable; tests that load plugins in
/// their own process give it to `PluginRuntime::with_compiler`.
pub fn compiler_exe() -> PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| beside_full("keyhelper-compile")).clone()
}

/// The executable `name` (its package's name too), beside `keyhelper-full`.
fn beside_full(name: &str) -> PathBuf {
    let exe = Path::new(env!("CARGO_BIN_EXE_keyhelper-full"))
        .with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        exe.exists(),
        "{} is missing; run the tests with `cargo xtask test`, which builds it (or `cargo build -p {name}` with the same flags first)",
        exe.display()
    );
    exe
}

/// [`Command`] with every wait bounded by [`CHILD_TIMEOUT`].
pub trait BoundedRun {
    /// Like `output()` (stdin empty, stdout and stderr captured), but the child
    /// is killed and the test fails if it runs longer than [`CHILD_TIMEOUT`].
    fn output_within(&mut self) -> Output;
}

impl BoundedRun for Command {
    fn output_within(&mut self) -> Output {
        let shown = format!("{self:?}");
        let child = self
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {shown}: {e}"));
        finish(child)
    }
}

/// Runs `command` with `input` on its stdin, bounded like [`finish`]. A
/// program may refuse (exit 2) before it reads its input: a closed pipe is
/// not a failure.
pub fn with_stdin(mut command: Command, input: &str) -> Output {
    let mut child =
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    if let Err(e) = child.stdin.take().unwrap().write_all(input.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    finish(child)
}

/// Like `Child::wait_with_output()`, but the child is killed and the test
/// fails if it, or anything holding its output pipes open, runs longer than
/// [`CHILD_TIMEOUT`].
pub fn finish(mut child: Child) -> Output {
    fn drain(pipe: Option<impl Read + Send + 'static>) -> std::sync::mpsc::Receiver<Vec<u8>> {
        let (send, receive) = std::sync::mpsc::channel();
        if let Some(mut pipe) = pipe {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                let _ = send.send(bytes);
            });
        } else {
            let _ = send.send(Vec::new());
        }
        receive
    }
    let deadline = std::time::Instant::now() + CHILD_TIMEOUT;
    let (stdout, stderr) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let Some(status) = child.wait_timeout(CHILD_TIMEOUT).expect("waiting for a child process") else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("a child process ran longer than {CHILD_TIMEOUT:?} and was killed");
    };
    let collect = |pipe: std::sync::mpsc::Receiver<Vec<u8>>| {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        pipe.recv_timeout(left).expect("a child's output pipe stayed open past the test's bound")
    };
    Output { status, stdout: collect(stdout), stderr: collect(stderr) }
}

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
                "-p",
                "keyhelper-fixture-legacy-v0_1_0",
                "-p",
                "keyhelper-fixture-legacy-v0_2_0",
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

/// Waits for `child` at most [`CHILD_TIMEOUT`]; kills it and fails the test
/// after that.
pub fn wait_within(child: &mut Child) -> std::process::ExitStatus {
    match child.wait_timeout(CHILD_TIMEOUT).expect("waiting for a child process") {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a child process ran longer than {CHILD_TIMEOUT:?} and was killed");
        }
    }
}

/// The lines of a child's output pipe, read on a thread of their own, so
/// that each is awaited for at most [`CHILD_TIMEOUT`].
pub struct BoundedLines(std::sync::mpsc::Receiver<String>);

impl BoundedLines {
    /// Starts reading `pipe`.
    pub fn new(pipe: impl Read + Send + 'static) -> Self {
        use std::io::BufRead;
        let (send, receive) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Self(receive)
    }

    /// The next line; `None` at the end of the output. Fails the test if no
    /// line comes within [`CHILD_TIMEOUT`].
    pub fn next_line(&self) -> Option<String> {
        match self.0.recv_timeout(CHILD_TIMEOUT) {
            Ok(line) => Some(line),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("a child printed no line for {CHILD_TIMEOUT:?}")
            }
        }
    }
}

/// A fresh, empty directory for one test, removed when dropped.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    /// A new directory named after `tag`.
    pub fn new(tag: &str) -> Self {
        Self(
            tempfile::Builder::new()
                .prefix(&format!("keyhelper-test-{tag}-"))
                .tempdir()
                .expect("creating a temp dir"),
        )
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.0.path()
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
        let mut command = self.command(keyhelper_exe());
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
        self.keyhelper(args).output_within()
    }

    /// Installs a plugin as a user would: the component saved as
    /// `downloads/<file_name>`, then `keyhelper plugin install <it>
    /// --manifest <manifest> --yes`.
    pub fn install_plugin(&self, file_name: &str, wasm: &[u8], manifest: &Path) -> Output {
        let dir = self.path().join("downloads");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(file_name);
        std::fs::write(&file, wasm).unwrap();
        self.run(&[
            "plugin",
            "install",
            file.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
            "--yes",
        ])
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

/// The directory with the Python tools the tests drive (`aws`, `moto_server`,
/// the `openai` package), installed by `cargo xtask test`.
pub fn python_tools() -> PathBuf {
    let dir = std::env::var_os("KEYHELPER_TEST_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/test-tools/venv/bin"));
    assert!(
        dir.join("aws").exists() && dir.join("moto_server").exists(),
        "awscli and moto are not installed in {}; run the tests with `cargo xtask test`, which installs them",
        dir.display()
    );
    dir
}

/// The `bin` directory of the virtualenv with Aider, installed by `cargo
/// xtask test`.
pub fn aider_tools() -> PathBuf {
    let dir = std::env::var_os("KEYHELPER_TEST_AIDER")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/test-tools/aider/bin"));
    assert!(
        dir.join("aider").exists(),
        "aider is not installed in {}; run the tests with `cargo xtask test`, which installs it",
        dir.display()
    );
    dir
}

/// Every file under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .is_ok_and(|bytes| memchr::memmem::find(&bytes, needle.as_bytes()).is_some())
            {
                hits.push(path);
            }
        }
    }
    hits
}

/// A minimal HTTP/1.1 server on loopback for tests: each request's method,
/// path and headers go to `respond`, which returns status and body.
pub struct MockHttp {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
}

/// A request as the mock server saw it.
pub struct SeenRequest {
    /// e.g. `GET`.
    pub method: String,
    /// e.g. `/v1/models`.
    pub path: String,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
    /// The body (as `content-length` gives it), as text.
    pub body: String,
}

impl SeenRequest {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

impl MockHttp {
    /// Serves until the test process ends.
    pub fn start(respond: impl Fn(&SeenRequest) -> (u16, String) + Send + Sync + 'static) -> Self {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let respond = std::sync::Arc::new(respond);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let respond = respond.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let (method, path) = (
                        parts.next().unwrap_or_default().to_string(),
                        parts.next().unwrap_or_default().to_string(),
                    );
                    let mut headers = Vec::new();
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = header.trim_end().split_once(':') {
                            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                        }
                    }
                    let length = headers
                        .iter()
                        .find(|(k, _)| k == "content-length")
                        .and_then(|(_, v)| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    let mut body = vec![0; length];
                    if std::io::Read::read_exact(&mut reader, &mut body).is_err() {
                        return;
                    }
                    let body = String::from_utf8_lossy(&body).into_owned();
                    let (status, body) = respond(&SeenRequest { method, path, headers, body });
                    let mut stream = stream;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        Self { base_url }
    }
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A moto server (AWS APIs) on a free loopback port, stopped on drop.
pub struct Moto {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Moto {
    /// Starts moto from the test tools; with `free_actions`, IAM auth is
    /// enforced after that many requests (moto's `INITIAL_NO_AUTH_ACTION_COUNT`).
    pub fn start(free_actions: Option<u32>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut command = Command::new(python_tools().join("moto_server"));
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(n) = free_actions {
            command.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
        }
        let child = command.spawn().expect("starting moto_server");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Self { child, endpoint: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
