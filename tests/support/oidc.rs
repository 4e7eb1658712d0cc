//! A real OpenID Connect server for the oauth2 tests: npm's
//! `oauth2-mock-server` (installed by `cargo xtask test`) behind
//! `tests/fixtures/oauth2/server.js`, which adds what the package leaves out:
//! client authentication, single-use rotating refresh tokens, PKCE checks and
//! the device flow. Stopped on drop.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

use super::{TempDir, repo_root};

/// A running server.
pub struct OidcServer {
    child: Child,
    _stdin: ChildStdin,
    dir: TempDir,
    /// `http://127.0.0.1:PORT`, its issuer.
    pub issuer: String,
}

impl OidcServer {
    /// Starts the server; `env` sets its `OAUTH2_*` variables (see server.js).
    pub fn start(env: &[(&str, &str)]) -> Self {
        let dir = TempDir::new("oidc");
        let mut child = Command::new("node")
            .arg(repo_root().join("tests/fixtures/oauth2/server.js"))
            .env("OAUTH2_MOCK_SERVER_DIR", node_tools())
            .env("OAUTH2_EXIT_ON_STDIN_EOF", "1")
            .env("OAUTH2_LOG", dir.path().join("token-requests.jsonl"))
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting node (the tests need Node.js 20.19 or later)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|json| json["port"].as_u64())
            .unwrap_or_else(|| panic!("the OIDC server did not start; it printed {line:?}"));
        let stdin = child.stdin.take().unwrap();
        Self { child, _stdin: stdin, dir, issuer: format!("http://127.0.0.1:{port}") }
    }

    /// The `/token` requests it has answered, one JSON object each (grant,
    /// client authentication, scope… never a secret).
    pub fn token_requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("token-requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

impl Drop for OidcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The npm prefix holding `oauth2-mock-server`, installed by `cargo xtask test`.
fn node_tools() -> PathBuf {
    let dir = std::env::var_os("KEYHELPER_TEST_NODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/test-tools/node"));
    assert!(
        dir.join("node_modules/oauth2-mock-server").exists(),
        "oauth2-mock-server is not installed in {}; run the tests with `cargo xtask test`, which installs it",
        dir.display()
    );
    dir
}
