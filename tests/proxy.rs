//! `keyhelper proxy` with a real OpenAI client (the `openai` Python package)
//! against a mock upstream (`tests/proxy/upstream.py`, plain HTTP and TLS with
//! a throwaway CA) that accepts only unexpired, unrevoked tokens, while a fake
//! `az` issues tokens that expire within seconds.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{BoundedRun, Home};

const CLIENT_KEY: &str = "test-client-key-0123456789";

/// A home whose `az` issues `token-<n>-<expiry>`, valid for `ttl` seconds.
fn home(tag: &str, ttl: u32) -> Home {
    let home = Home::new(tag);
    let calls = home.bin().join("calls");
    home.fake_tool(
        "az",
        &format!(
            "#!/bin/sh\necho call >> '{c}'\nn=$(wc -l < '{c}')\nexp=$(( $(date +%s) + {ttl} ))\necho \"{{\\\"accessToken\\\":\\\"token-$n-$exp\\\",\\\"expires_on\\\":$exp}}\"\n",
            c = calls.display()
        ),
    );
    home.write_config("[credentials.work]\nprovider = \"azure\"\nrefresh_before = \"2s\"\n");
    home
}

fn az_calls(home: &Home) -> usize {
    std::fs::read_to_string(home.bin().join("calls")).map_or(0, |s| s.lines().count())
}

struct Upstream {
    child: Child,
    port: u16,
    log: PathBuf,
    min_token: PathBuf,
}

impl Upstream {
    fn start(home: &Home, tls: Option<&Path>) -> Self {
        let dir = home.path();
        let port_file = dir.join("upstream.port");
        let mut command = Command::new(support::python_tools().join("python"));
        command
            .arg(support::repo_root().join("tests/proxy/upstream.py"))
            .args([
                "--port-file",
                port_file.to_str().unwrap(),
                "--log",
                dir.join("upstream.log").to_str().unwrap(),
            ])
            .args(["--min-token-file", dir.join("min_token").to_str().unwrap()]);
        if let Some(certs) = tls {
            command.args([
                "--cert",
                certs.join("server.pem").to_str().unwrap(),
                "--key",
                certs.join("server.key").to_str().unwrap(),
            ]);
        }
        let child = command.spawn().expect("starting the mock upstream");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Ok(port) = std::fs::read_to_string(&port_file) {
                break port.trim().parse().unwrap();
            }
            assert!(Instant::now() < deadline, "the mock upstream did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        Self { child, port, log: dir.join("upstream.log"), min_token: dir.join("min_token") }
    }

    fn statuses(&self) -> Vec<u64> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["status"].as_u64().unwrap())
            .collect()
    }

    /// Each logged request's field `name`.
    fn logged(&self, name: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()[name].clone())
            .collect()
    }

    fn saw_client_key(&self) -> bool {
        std::fs::read_to_string(&self.log).unwrap_or_default().contains("\"client_key_seen\": true")
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Proxy {
    child: Child,
    address: String,
    /// What the proxy wrote on stderr before it listened.
    preamble: Vec<String>,
}

impl Proxy {
    fn start(home: &Home, upstream: &str, extra: &[&str]) -> Self {
        let mut args = vec!["proxy", "work", "--upstream", upstream];
        args.extend_from_slice(extra);
        Self::spawn(home.keyhelper(&args))
    }

    /// Starts `command` (a `keyhelper proxy …`) and waits until it listens.
    fn spawn(mut command: Command) -> Self {
        let mut child =
            command.env("KEYHELPER_PROXY_KEY", CLIENT_KEY).stderr(Stdio::piped()).spawn().unwrap();
        let lines = support::BoundedLines::new(child.stderr.take().unwrap());
        let mut preamble = Vec::new();
        let address = loop {
            let line = lines.next_line().expect("the proxy exited before listening");
            if let Some(rest) = line.strip_prefix("keyhelper: proxying http://") {
                break rest.split_whitespace().next().unwrap().to_string();
            }
            preamble.push(line);
        };
        std::thread::spawn(move || while lines.next_line().is_some() {});
        Self { child, address, preamble }
    }

    fn base(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    /// A keep-alive connection that has had one request answered.
    fn open_connection(&self) -> TcpStream {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        stream.set_read_timeout(Some(support::CHILD_TIMEOUT)).unwrap();
        send_models_request(&mut stream, &self.address);
        assert!(read_response_head(&mut stream).starts_with("HTTP/1.1 200"));
        stream
    }

    /// One raw HTTP/1.1 request; returns status and body.
    fn request(&self, path: &str, key: Option<&str>) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        stream.set_read_timeout(Some(support::CHILD_TIMEOUT)).unwrap();
        let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\n\r\n", self.address)
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a keep-alive `GET /v1/models` with the client key.
fn send_models_request(stream: &mut TcpStream, host: &str) {
    write!(stream, "GET /v1/models HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {CLIENT_KEY}\r\n\r\n")
        .unwrap();
}

/// Reads one response whose body has a Content-Length; returns its head.
fn read_response_head(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "the connection closed mid-response");
        seen.push(byte[0]);
    }
    let head = String::from_utf8(seen).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    head
}

fn openai_session(proxy: &Proxy, seconds: u32) -> serde_json::Value {
    let output = Command::new(support::python_tools().join("python"))
        .arg(support::repo_root().join("tests/proxy/client.py"))
        .args([&proxy.base(), CLIENT_KEY, &seconds.to_string()])
        .output_within();
    assert!(output.status.success(), "{}", support::stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn a_session_spanning_token_rotations_never_sees_a_401_and_streams_incrementally() {
    let home = home("proxy-rotation", 4);
    let upstream = Upstream::start(&home, None);
    let proxy = Proxy::start(&home, &format!("http://127.0.0.1:{}", upstream.port), &[]);
    let session = openai_session(&proxy, 9);
    assert_eq!(session["errors"], serde_json::json!([]), "{session}");
    assert!(session["requests"].as_u64().unwrap() >= 20, "{session}");
    assert!(az_calls(&home) >= 3, "tokens rotated only {} times", az_calls(&home));
    assert!(!upstream.saw_client_key(), "the client key reached the upstream");
    // The audit log: a line per fetch, with the requests it served, never a token.
    let audit = std::fs::read_to_string(home.path().join(".local/state/keyhelper/audit.jsonl")).unwrap();
    assert!(!audit.contains("token-"), "a token in the audit log");
    let proxy_lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["mode"] == "proxy")
        .collect();
    assert!(proxy_lines.len() >= 2 && proxy_lines[0]["cache"] == "miss", "{audit}");
    assert!(proxy_lines.iter().map(|l| l["requests"].as_u64().unwrap()).sum::<u64>() >= 10, "{audit}");

    let offsets: Vec<f64> =
        session["chunk_offsets"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(offsets.len() >= 5, "{offsets:?}");
    assert!(offsets[0] < 0.5, "the first chunk waited for the whole response: {offsets:?}");
    assert!(offsets[offsets.len() - 1] - offsets[0] > 0.6, "chunks arrived together: {offsets:?}");
}

#[test]
fn a_revoked_token_is_renewed_and_the_request_retried_once() {
    let home = home("proxy-revoked", 3600);
    let upstream = Upstream::start(&home, None);
    let proxy = Proxy::start(&home, &format!("http://127.0.0.1:{}", upstream.port), &[]);
    assert_eq!(proxy.request("/v1/models", Some(CLIENT_KEY)).0, 200);
    std::fs::write(&upstream.min_token, "2").unwrap();
    let (status, body) = proxy.request("/v1/models", Some(CLIENT_KEY));
    assert_eq!(status, 200, "{body}");
    assert_eq!(upstream.statuses(), [200, 401, 200]);
    assert_eq!(az_calls(&home), 2);
}

#[test]
fn a_token_refused_again_after_its_renewal_is_renewed_once_not_per_request() {
    let home = Home::new("proxy-herd");
    let calls = home.bin().join("calls");
    // The provider keeps handing out the same token (as `az` does from its
    // own cache), and the upstream refuses it.
    home.fake_tool(
        "az",
        &format!(
            "#!/bin/sh\necho call >> '{}'\necho '{{\"accessToken\":\"token-1-4102444800\",\"expires_on\":4102444800}}'\n",
            calls.display()
        ),
    );
    home.write_config("[credentials.work]\nprovider = \"azure\"\n");
    let upstream = Upstream::start(&home, None);
    std::fs::write(&upstream.min_token, "2").unwrap();
    let proxy = Proxy::start(&home, &format!("http://127.0.0.1:{}", upstream.port), &[]);
    for _ in 0..5 {
        assert_eq!(proxy.request("/v1/models", Some(CLIENT_KEY)).0, 401);
    }
    assert_eq!(az_calls(&home), 2, "one fetch, one renewal after the first 401; then the 401s pass");
    assert_eq!(upstream.statuses(), [401; 5], "the renewed copy was the same token: not sent again");
}

#[test]
fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let home = home("proxy-slow-client", 3600);
    let upstream = Upstream::start(&home, None);
    let proxy =
        Proxy::start(&home, &format!("http://127.0.0.1:{}", upstream.port), &["--header-timeout", "1"]);
    let mut slow = TcpStream::connect(&proxy.address).unwrap();
    slow.set_read_timeout(Some(support::CHILD_TIMEOUT)).unwrap();
    write!(slow, "GET /v1/models HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut rest = Vec::new();
    // Without a header timeout this read would wait for CHILD_TIMEOUT and fail.
    slow.read_to_end(&mut rest).expect("the proxy closed the connection");
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));
    assert_eq!(proxy.request("/v1/models", Some(CLIENT_KEY)).0, 200, "others are still served");
}

#[test]
fn connections_beyond_the_limit_wait_until_one_closes() {
    let home = home("proxy-connection-limit", 3600);
    let upstream = Upstream::start(&home, None);
    let proxy =
        Proxy::start(&home, &format!("http://127.0.0.1:{}", upstream.port), &["--max-connections", "2"]);
    let first = proxy.open_connection();
    let _second = proxy.open_connection();
    let mut third = TcpStream::connect(&proxy.address).unwrap();
    send_models_request(&mut third, &proxy.address);
    third.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    let mut byte = [0u8; 1];
    let waited = third.read(&mut byte).unwrap_err().kind();
    assert!(
        matches!(waited, std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        "a third connection was served beyond the limit of 2"
    );
    drop(first);
    third.set_read_timeout(Some(support::CHILD_TIMEOUT)).unwrap();
    assert!(read_response_head(&mut third).starts_with("HTTP/1.1 200"), "served once a slot freed");
}

/// With its file descriptors used up, the proxy pauses accepting instead of
/// retrying at once (which spun a core at 100 %), and recovers.
#[test]
fn running_out_of_file_descriptors_does_not_spin() {
    let home = home("proxy-emfile", 3600);
    let upstream = Upstream::start(&home, None);
    let mut command = home.command("sh");
    command.args(["-c", "ulimit -n 40 && exec \"$0\" \"$@\""]).arg(support::keyhelper_exe()).args([
        "proxy",
        "work",
        "--upstream",
        &format!("http://127.0.0.1:{}", upstream.port),
    ]);
    let proxy = Proxy::spawn(command);
    let held: Vec<TcpStream> = (0..60).filter_map(|_| TcpStream::connect(&proxy.address).ok()).collect();
    assert!(held.len() >= 40, "the kernel queued the connections the proxy cannot accept");
    let cpu = || {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", proxy.child.id())).unwrap();
        let fields: Vec<u64> = stat
            .rsplit_once(") ")
            .unwrap()
            .1
            .split(' ')
            .skip(11)
            .take(2)
            .map(|f| f.parse().unwrap())
            .collect();
        fields[0] + fields[1]
    };
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu();
    std::thread::sleep(Duration::from_secs(2));
    let ticks = cpu() - before;
    // A spinning accept loop burns ~200 ticks (100 Hz) in 2 s; pausing 100 ms
    // between tries takes a few.
    assert!(ticks < 40, "the proxy used {ticks} CPU ticks in 2 s while out of descriptors");
    drop(held);
    assert_eq!(proxy.request("/v1/models", Some(CLIENT_KEY)).0, 200, "it accepts again");
}

/// The proxy allocates from mimalloc where keyhelper-full ships with it
/// (glibc Linux, Windows): the heap is chosen from the arguments before the
/// first allocation, and a short command keeps the system's (see
/// `cli_basics`). The shipped Linux build has no mimalloc constructor; the
/// proxy starts mimalloc itself, fully: it reads its options from the
/// environment (here `MIMALLOC_VERBOSE`), which it skips while it believes
/// the C runtime is not up yet.
#[test]
fn the_proxy_allocates_from_mimalloc() {
    let home = home("proxy-heap", 3600);
    let upstream = Upstream::start(&home, None);
    let upstream = format!("http://127.0.0.1:{}", upstream.port);
    let mut command = home.keyhelper(&["-v", "proxy", "work", "--upstream", &upstream]);
    command.env("MIMALLOC_VERBOSE", "1");
    let proxy = Proxy::spawn(command);
    let mimalloc = cfg!(any(all(target_os = "linux", target_env = "gnu"), windows));
    let expected =
        if mimalloc { "keyhelper: debug: heap: mimalloc" } else { "keyhelper: debug: heap: system" };
    assert!(proxy.preamble.iter().any(|line| line == expected), "{:?}", proxy.preamble);
    let started = proxy.preamble.iter().any(|line| line.starts_with("mimalloc: process init"));
    assert_eq!(started, mimalloc, "{:?}", proxy.preamble);
    assert_eq!(proxy.request("/v1/models", Some(CLIENT_KEY)).0, 200);
}

#[test]
fn clients_without_the_key_get_401_and_never_reach_the_upstream() {
    let home = home("proxy-client-key", 3600);
    let upstream = Upstream::start(&home, None);
    let proxy = Proxy::start(&home, &format!("http://127.0.0.1:{}", upstream.port), &[]);
    for key in [None, Some("wrong-key-0123456789"), Some("token-1-4102444800")] {
        let (status, body) = proxy.request("/v1/models", key);
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("missing or wrong client key"), "{body}");
    }
    assert!(upstream.statuses().is_empty());
    assert_eq!(az_calls(&home), 0);
}

/// Upstream connections are kept alive and reused across client
/// connections (each worker keeps its own), and each request carries the
/// upstream's `Host` and an origin-form target.
#[test]
fn upstream_connections_are_reused_with_the_upstreams_host() {
    let home = home("proxy-reuse", 3600);
    let upstream = Upstream::start(&home, None);
    let proxy = Proxy::start(&home, &format!("http://127.0.0.1:{}", upstream.port), &[]);
    for _ in 0..12 {
        assert_eq!(proxy.request("/v1/models?limit=2", Some(CLIENT_KEY)).0, 200);
    }
    let peers: std::collections::BTreeSet<u64> =
        upstream.logged("peer").iter().map(|p| p.as_u64().unwrap()).collect();
    assert!(
        !peers.is_empty() && peers.len() <= 8,
        "12 requests came on {} connections: {peers:?}",
        peers.len()
    );
    let expected_host = format!("127.0.0.1:{}", upstream.port);
    assert!(upstream.logged("host").iter().all(|h| h == &expected_host), "{:?}", upstream.logged("host"));
    assert!(
        upstream.logged("path").iter().all(|p| p == "/v1/models?limit=2"),
        "{:?}",
        upstream.logged("path")
    );
}

#[test]
fn an_unreachable_upstream_is_a_502_with_a_clear_body() {
    let home = home("proxy-down", 3600);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let proxy = Proxy::start(&home, &format!("http://127.0.0.1:{closed}"), &[]);
    let (status, body) = proxy.request("/v1/models", Some(CLIENT_KEY));
    assert_eq!(status, 502);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("cannot reach the upstream") && message.contains("onnection refused"),
        "{message}"
    );
    assert!(!message.contains("token-"), "{message}");
}

#[test]
fn tls_upstreams_are_verified_against_the_given_ca() {
    let home = home("proxy-tls", 3600);
    let certs = home.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let made = Command::new(support::python_tools().join("python"))
        .arg(support::repo_root().join("tests/proxy/make_certs.py"))
        .arg(&certs)
        .output_within();
    assert!(made.status.success(), "{}", support::stderr(&made));
    let upstream = Upstream::start(&home, Some(&certs));
    let url = format!("https://127.0.0.1:{}", upstream.port);
    let trusted = Proxy::start(&home, &url, &["--upstream-ca", certs.join("ca.pem").to_str().unwrap()]);
    let session = openai_session(&trusted, 2);
    assert_eq!(session["errors"], serde_json::json!([]), "{session}");

    let untrusting = Proxy::start(&home, &url, &[]);
    let (status, body) = untrusting.request("/v1/models", Some(CLIENT_KEY));
    assert_eq!(status, 502, "{body}");
    assert!(body.to_lowercase().contains("certificate"), "{body}");
}

#[test]
fn sigterm_stops_the_proxy_cleanly() {
    let home = home("proxy-sigterm", 3600);
    let upstream = Upstream::start(&home, None);
    let mut proxy = Proxy::start(&home, &format!("http://127.0.0.1:{}", upstream.port), &[]);
    assert_eq!(proxy.request("/v1/models", Some(CLIENT_KEY)).0, 200);
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(proxy.child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = proxy.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "the proxy did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_provider_that_fails_is_a_503_naming_the_fix_and_one_stderr_line() {
    let home = Home::new("proxy-signed-out");
    // What `az account get-access-token` prints and exits with when signed out.
    home.fake_tool("az", "#!/bin/sh\necho \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1\n");
    home.write_config("[credentials.work]\nprovider = \"azure\"\n");
    let upstream = Upstream::start(&home, None);
    let mut child = home
        .keyhelper(&["proxy", "work", "--upstream", &format!("http://127.0.0.1:{}", upstream.port)])
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
    let proxy = Proxy { child, address, preamble: Vec::new() };
    for _ in 0..3 {
        let (status, body) = proxy.request("/v1/models", Some(CLIENT_KEY));
        assert_eq!(status, 503, "{body}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"]["code"], "credential_unavailable", "{body}");
        assert!(error["error"]["message"].as_str().unwrap().contains("az login"), "{body}");
    }
    let said = std::iter::from_fn(|| lines.next_line())
        .find(|l| l.starts_with("keyhelper: proxy: cannot get"))
        .expect("one stderr line");
    assert!(said.starts_with("keyhelper: proxy: cannot get 'work':") && said.contains("az login"), "{said}");
    drop(proxy);
    let rest: Vec<String> = std::iter::from_fn(|| lines.next_line()).collect();
    assert!(rest.iter().all(|l| !l.contains("cannot get")), "said once, not per request: {rest:?}");
    assert!(upstream.statuses().is_empty(), "nothing reached the upstream");
}
