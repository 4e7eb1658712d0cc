//! `keyhelper run --proxy` and quota failover, with real clients: the
//! `openai` Python SDK (plain and streamed) as the program, raw HTTP for the
//! Anthropic API, against a mock of both APIs (`tests/proxy/api_upstream.py`)
//! that answers quota and rate-limit errors with the real bodies and headers.
//!
//! Two stored keys serve as the team's and the personal credential: OpenAI
//! keys (the `openai` provider) for the openai family, Anthropic keys (the
//! `anthropic` provider, sent in `x-api-key`) for the anthropic family; the
//! mock tells them apart by key.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{BoundedRun, Home, stderr, stdout};

const TEAM_KEY: &str = "sk-proj-TeamKey0123456789abcdefghijklmnopqrstuvwxyzABCDEF";
const PERSONAL_KEY: &str = "sk-proj-PersonalKey0123456789abcdefghijklmnopqrstuvwxyzAB";
const TEAM_ANTHROPIC_KEY: &str = "sk-ant-api03-TeamKey0123456789abcdefghijklmnopqrstuvwxyzABCDEF";
const PERSONAL_ANTHROPIC_KEY: &str = "sk-ant-api03-PersonalKey0123456789abcdefghijklmnopqrstuvwxyzAB";

/// The provider and the team's and personal keys for an API family.
fn provider_and_keys(api: &str) -> (&'static str, &'static str, &'static str) {
    match api {
        "anthropic" => ("anthropic", TEAM_ANTHROPIC_KEY, PERSONAL_ANTHROPIC_KEY),
        _ => ("openai", TEAM_KEY, PERSONAL_KEY),
    }
}
const CLIENT_KEY: &str = "test-client-key-0123456789";

/// The mock API server.
struct Api {
    child: Child,
    url: String,
    log: PathBuf,
    control: PathBuf,
}

impl Api {
    fn start(home: &Home) -> Self {
        let dir = home.path();
        let (port_file, log, control) = (dir.join("api.port"), dir.join("api.log"), dir.join("api-control"));
        std::fs::create_dir_all(&control).unwrap();
        let child = Command::new(support::python_tools().join("python"))
            .arg(support::repo_root().join("tests/proxy/api_upstream.py"))
            .arg("--port-file")
            .arg(&port_file)
            .arg("--log")
            .arg(&log)
            .arg("--control")
            .arg(&control)
            .spawn()
            .expect("starting the mock API");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port: u16 = loop {
            if let Ok(port) = std::fs::read_to_string(&port_file) {
                break port.trim().parse().unwrap();
            }
            assert!(Instant::now() < deadline, "the mock API did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        Self { child, url: format!("http://127.0.0.1:{port}"), log, control }
    }

    /// Makes `key` answer as the API does when its quota is gone.
    fn exhaust(&self, key: &str) {
        std::fs::write(self.control.join(format!("quota-{key}")), "").unwrap();
    }

    /// Makes `key` rate limited for `seconds`.
    fn limit(&self, key: &str, seconds: u32) {
        std::fs::write(self.control.join(format!("limit-{key}")), seconds.to_string()).unwrap();
    }

    fn restore(&self, key: &str) {
        let _ = std::fs::remove_file(self.control.join(format!("quota-{key}")));
        let _ = std::fs::remove_file(self.control.join(format!("limit-{key}")));
    }

    /// Which key each request carried, and what it got.
    fn seen(&self) -> Vec<(String, u64)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (v["key"].as_str().unwrap().to_string(), v["status"].as_u64().unwrap())
            })
            .collect()
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A home with the two keys stored and a config of `extra` plus the team
/// credential (falling back to the personal one) for `api`, both forwarding
/// to `upstream`.
fn home(tag: &str, api: &str, upstream: &str, extra: &str) -> Home {
    let home = Home::new(tag);
    let (provider, team_key, personal_key) = provider_and_keys(api);
    for (connection, key) in [("team", team_key), ("personal", personal_key)] {
        let mut login = home
            .keyhelper(&["login", provider, "--connection", connection, "--stdin"])
            .env("KEYHELPER_SECRET_STORE", "file")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        login.stdin.take().unwrap().write_all(key.as_bytes()).unwrap();
        let output = support::finish(login);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    home.write_config(&format!(
        "[settings]\nsecret_store = \"file\"\n\n\
         [credentials.team]\nprovider = \"{provider}\"\nconnection = \"team\"\napi = \"{api}\"\n\
         upstream = \"{upstream}\"\nfallback = [\"personal\"]\n{extra}\n\n\
         [credentials.personal]\nprovider = \"{provider}\"\nconnection = \"personal\"\napi = \"{api}\"\nupstream = \"{upstream}\"\n"
    ));
    home
}

/// `keyhelper run --proxy <credential> -- python run_client.py <family>`;
/// the client's JSON report.
fn run_client(home: &Home, credential: &str, family: &str) -> serde_json::Value {
    let (_, team_key, personal_key) = provider_and_keys(family);
    let forbidden = home.path().join("forbidden");
    std::fs::write(&forbidden, format!("{team_key}\n{personal_key}\n")).unwrap();
    let output = home
        .keyhelper(&["run", "--proxy", credential, "--"])
        .arg(support::python_tools().join("python"))
        .arg(support::repo_root().join("tests/proxy/run_client.py"))
        .arg(family)
        .arg(&forbidden)
        // A real key in keyhelper's own environment must not reach the program either.
        .env("ANTHROPIC_API_KEY", personal_key)
        .env("OPENAI_API_KEY", team_key)
        .output_within();
    assert!(output.status.success(), "{}{}", stdout(&output), stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&output)))
}

#[test]
fn the_openai_sdk_under_run_proxy_gets_answers_and_never_a_secret() {
    let scratch = Home::new("run-proxy-openai-api");
    let api = Api::start(&scratch);
    let home = home("run-proxy-openai", "openai", &api.url, "");
    let report = run_client(&home, "team", "openai");
    assert_eq!(report["secret_in_environment"], false, "{report}");
    assert!(report["base_url"].as_str().unwrap().starts_with("http://127.0.0.1:"), "{report}");
    assert!(report["base_url"].as_str().unwrap().ends_with("/v1"), "{report}");
    assert_eq!(report["plain"], "hello from the mock");
    assert_eq!(report["streamed"].as_array().unwrap().len(), 5, "{report}");
    let offsets: Vec<f64> =
        report["chunk_offsets"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(offsets[4] - offsets[0] > 0.6, "the chunks arrived together, not streamed: {offsets:?}");
    assert!(api.seen().iter().all(|(key, status)| key == TEAM_KEY && *status == 200), "{:?}", api.seen());
}

#[test]
fn an_anthropic_client_gets_the_base_url_without_v1_and_only_the_auth_token() {
    let scratch = Home::new("run-proxy-anthropic-api");
    let api = Api::start(&scratch);
    let home = home("run-proxy-anthropic", "anthropic", &api.url, "");
    let report = run_client(&home, "team", "anthropic");
    assert_eq!(report["secret_in_environment"], false, "{report}");
    assert_eq!(report["has_api_key"], false, "ANTHROPIC_API_KEY must not be set beside the token: {report}");
    assert!(!report["base_url"].as_str().unwrap().ends_with("/v1"), "{report}");
    assert_eq!(report["plain"], "hello from the mock");
    assert_eq!(api.seen(), [(TEAM_ANTHROPIC_KEY.to_string(), 200)]);
}

/// A `keyhelper proxy` for the team credential, spoken to with raw HTTP.
struct Proxy {
    child: Child,
    address: String,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Proxy {
    fn start(home: &Home) -> Self {
        let mut child = home
            .keyhelper(&["proxy", "team"])
            .env("KEYHELPER_PROXY_KEY", CLIENT_KEY)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = support::BoundedLines::new(child.stderr.take().unwrap());
        let address = loop {
            let line = lines.next_line().expect("the proxy exited before listening");
            if let Some(rest) = line.strip_prefix("keyhelper: proxying http://") {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = stderr.clone();
        std::thread::spawn(move || {
            while let Some(line) = lines.next_line() {
                kept.lock().unwrap().push(line);
            }
        });
        Self { child, address, stderr }
    }

    /// One raw HTTP/1.1 request; status, headers and body.
    fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, String, String) {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        stream.set_read_timeout(Some(support::CHILD_TIMEOUT)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CLIENT_KEY}\r\nanthropic-version: 2023-06-01\r\n\
             content-type: application/json\r\ncontent-length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        stream.write_all(body).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let response = String::from_utf8_lossy(&response).into_owned();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, head.to_string(), body.to_string())
    }

    fn chat(&self) -> (u16, String, String) {
        self.request(
            "POST",
            "/v1/chat/completions",
            br#"{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}"#,
        )
    }

    fn said(&self, text: &str) -> bool {
        self.stderr.lock().unwrap().iter().any(|l| l.contains(text))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_quota_gone_fails_over_with_the_same_request_to_the_fallback() {
    let scratch = Home::new("failover-quota-api");
    let api = Api::start(&scratch);
    let home = home("failover-quota", "openai", &api.url, "");
    let proxy = Proxy::start(&home);
    api.exhaust(TEAM_KEY);
    let (status, _, body) = proxy.chat();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("hello from the mock"), "{body}");
    assert_eq!(api.seen(), [(TEAM_KEY.to_string(), 429), (PERSONAL_KEY.to_string(), 200)]);
    eventually("the failover was announced", || proxy.said("failing over from 'team' to 'personal'"));
    // Later requests go to the fallback directly while the quota is out.
    assert_eq!(proxy.chat().0, 200);
    assert_eq!(api.seen().last().unwrap(), &(PERSONAL_KEY.to_string(), 200));
    assert_eq!(api.seen().len(), 3);
    // `status`, another process, shows it.
    let status = stdout(&home.run(&["status"]));
    assert!(
        status.contains("team") && status.contains("failed over") && status.contains("insufficient_quota"),
        "{status}"
    );
    assert!(!status.contains(TEAM_KEY) && !status.contains(PERSONAL_KEY), "{status}");
}

#[test]
fn a_short_rate_limit_reaches_the_client_and_a_long_one_fails_over_until_its_reset() {
    let scratch = Home::new("failover-limit-api");
    let api = Api::start(&scratch);
    let home = home("failover-limit", "openai", &api.url, "failover_after = \"2s\"");
    let proxy = Proxy::start(&home);
    api.limit(TEAM_KEY, 1);
    let (status, head, _) = proxy.chat();
    assert_eq!(status, 429, "a 1 s limit is the client's to wait out");
    assert!(head.to_ascii_lowercase().contains("retry-after: 1"), "{head}");
    assert_eq!(api.seen(), [(TEAM_KEY.to_string(), 429)]);

    api.limit(TEAM_KEY, 3);
    assert_eq!(proxy.chat().0, 200, "a 3 s limit is over failover_after (2 s)");
    assert_eq!(api.seen()[1..], [(TEAM_KEY.to_string(), 429), (PERSONAL_KEY.to_string(), 200)]);
    api.restore(TEAM_KEY);
    // After the reset the primary serves again, and stderr says so.
    std::thread::sleep(Duration::from_millis(3200));
    assert_eq!(proxy.chat().0, 200);
    assert_eq!(api.seen().last().unwrap(), &(TEAM_KEY.to_string(), 200));
    eventually("the return was announced", || proxy.said("'team' is back"));
}

#[test]
fn a_request_too_large_to_replay_gets_the_429_and_a_line_saying_why() {
    let scratch = Home::new("failover-large-api");
    let api = Api::start(&scratch);
    let home = home("failover-large", "openai", &api.url, "");
    let proxy = Proxy::start(&home);
    api.exhaust(TEAM_KEY);
    let large = format!(
        r#"{{"model":"gpt-test","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(2 << 20)
    );
    let (status, _, body) = proxy.request("POST", "/v1/chat/completions", large.as_bytes());
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("insufficient_quota"), "{body}");
    assert_eq!(api.seen(), [(TEAM_KEY.to_string(), 429)], "not replayed");
    eventually("the reason was printed", || proxy.said("was not kept to replay"));
}

#[test]
fn an_anthropic_credit_error_fails_over_to_an_anthropic_fallback() {
    let scratch = Home::new("failover-anthropic-api");
    let api = Api::start(&scratch);
    let home = home("failover-anthropic", "anthropic", &api.url, "");
    let proxy = Proxy::start(&home);
    api.exhaust(TEAM_ANTHROPIC_KEY);
    let (status, _, body) = proxy.request(
        "POST",
        "/v1/messages",
        br#"{"model":"claude-test","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        api.seen(),
        [(TEAM_ANTHROPIC_KEY.to_string(), 400), (PERSONAL_ANTHROPIC_KEY.to_string(), 200)]
    );
}

#[test]
fn run_reports_a_bad_credential_or_program_as_a_shell_would() {
    let scratch = Home::new("run-errors-api");
    let api = Api::start(&scratch);
    let home = home("run-errors", "openai", &api.url, "");
    let nosuch = home.run(&["run", "--proxy", "nosuch", "--", "true"]);
    assert_eq!(nosuch.status.code(), Some(5), "{}", stderr(&nosuch));
    assert_eq!(stderr(&nosuch).lines().count(), 1, "{}", stderr(&nosuch));
    let missing = home.run(&["run", "--proxy", "team", "--", "nosuchprog-keyhelper-test"]);
    assert_eq!(missing.status.code(), Some(127), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("cannot run `nosuchprog-keyhelper-test`: not found"),
        "{}",
        stderr(&missing)
    );
    let not_executable = home.path().join("data.txt");
    std::fs::write(&not_executable, "not a program").unwrap();
    let refused = home.run(&["run", "--proxy", "team", "--", not_executable.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(126), "{}", stderr(&refused));
    let killed = home.run(&["run", "--proxy", "team", "--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(killed.status.code(), Some(128 + 9));
    let exits = home.run(&["run", "--proxy", "team", "--", "sh", "-c", "exit 42"]);
    assert_eq!(exits.status.code(), Some(42));
    let twice = home.run(&["run", "--proxy", "team", "--proxy", "personal", "--", "true"]);
    assert_eq!(twice.status.code(), Some(2), "{}", stderr(&twice));
    assert!(stderr(&twice).contains("both for the openai API"), "{}", stderr(&twice));
    let neither = home.run(&["run", "--", "true"]);
    assert_eq!(neither.status.code(), Some(2), "{}", stderr(&neither));
}

#[test]
fn clear_text_upstreams_beyond_loopback_are_refused_unless_allowed() {
    let home = home("run-insecure", "openai", "http://api.example.invalid", "");
    let refused = home.run(&["run", "--proxy", "team", "--", "true"]);
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("clear text") && stderr(&refused).contains("--allow-insecure-upstream")
    );
    let allowed = home.run(&["run", "--allow-insecure-upstream", "--proxy", "team", "--", "true"]);
    assert_eq!(allowed.status.code(), Some(0), "{}", stderr(&allowed));
}

/// Real Aider (PyPI `aider-chat`), offline, as the program of `run --proxy`
/// for an Azure AD credential whose tokens live 3 s (a fake `az`), against a
/// mock that refuses expired tokens (`tests/proxy/upstream.py`): two runs, a
/// token rotation between them, both answered.
#[test]
fn aider_under_run_proxy_works_across_a_token_rotation() {
    let home = Home::new("run-proxy-aider");
    let calls = home.bin().join("calls");
    home.fake_tool(
        "az",
        &format!(
            "#!/bin/sh\necho call >> '{c}'\nn=$(wc -l < '{c}')\nexp=$(( $(date +%s) + 3 ))\necho \"{{\\\"accessToken\\\":\\\"token-$n-$exp\\\",\\\"expires_on\\\":$exp}}\"\n",
            c = calls.display()
        ),
    );
    let (port_file, log) = (home.path().join("upstream.port"), home.path().join("upstream.log"));
    let mut upstream = Command::new(support::python_tools().join("python"))
        .arg(support::repo_root().join("tests/proxy/upstream.py"))
        .arg("--port-file")
        .arg(&port_file)
        .arg("--log")
        .arg(&log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let port = loop {
        if let Ok(port) = std::fs::read_to_string(&port_file) {
            break port.trim().to_string();
        }
        assert!(Instant::now() < deadline, "the mock upstream did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    home.write_config(&format!(
        "[credentials.work]\nprovider = \"azure\"\nrefresh_before = \"1s\"\nupstream = \"http://127.0.0.1:{port}\"\n"
    ));
    let aider = |message: &str| {
        home.keyhelper(&["run", "--proxy", "work", "--"])
            .arg(support::aider_tools().join("aider"))
            .args(["--model", "openai/gpt-test", "--no-check-update", "--analytics-disable", "--yes-always"])
            .args([
                "--no-git",
                "--no-show-model-warnings",
                "--no-pretty",
                "--no-stream",
                "--message",
                message,
            ])
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .current_dir(home.path())
            .output_within()
    };
    let first = aider("say hi");
    assert!(
        first.status.success() && stdout(&first).contains("hello"),
        "{}{}",
        stdout(&first),
        stderr(&first)
    );
    std::thread::sleep(Duration::from_millis(3500));
    let second = aider("say hi again");
    assert!(
        second.status.success() && stdout(&second).contains("hello"),
        "{}{}",
        stdout(&second),
        stderr(&second)
    );
    let _ = upstream.kill();
    let _ = upstream.wait();
    let seen: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["path"].as_str().unwrap().contains("chat/completions"))
        .collect();
    assert!(seen.iter().all(|v| v["status"] == 200), "{seen:?}");
    let tokens: std::collections::BTreeSet<&str> =
        seen.iter().map(|v| v["token"].as_str().unwrap()).collect();
    assert!(tokens.len() >= 2, "the token rotated between the runs: {tokens:?}");
    assert!(!seen.iter().any(|v| v["client_key_seen"] == true), "the client key reached the upstream");
}
