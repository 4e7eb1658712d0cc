//! The hostile-plugin suite: plugins that try to escape the sandbox, exhaust
//! it, or are not valid plugins at all. Each must be refused or stopped within
//! its limit with a clear error, and the runtime must stay usable afterwards.
//!
//! The attacks live in `tests/fixtures/hostile` (one component, the attack
//! chosen by its `attack` option); when an attack succeeds the plugin returns
//! what it obtained as the secret, so success cannot go unnoticed.

mod support;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use keyhelper_core::credential::{Credential, Secret};
use keyhelper_core::manifest::ProviderManifest;
use keyhelper_host::runtime::capability::CapabilityGrant;
use keyhelper_host::runtime::outcome::FailureKind;
use keyhelper_host::runtime::sandbox::{CallContext, ConnectionGuard, Limits, StoredSecrets};
use keyhelper_host::runtime::{
    CallRequest, IntegrityCheck, LoadedPlugin, PluginError, PluginRuntime, PluginSource,
};
use sha2::{Digest, Sha256};

const STORED_SECRET: &str = "sk-stored-secret-0123456789";

struct FixtureSecrets;

impl StoredSecrets for FixtureSecrets {
    fn read(&self, provider: &str, connection: &str, name: Option<&str>) -> anyhow::Result<Option<Secret>> {
        Ok((provider == "hostile" && connection == "default" && name.is_none())
            .then(|| Secret::new(STORED_SECRET)))
    }
    fn save(&self, _: &str, _: &str, _: &str, _: &Secret) -> anyhow::Result<()> {
        anyhow::bail!("the hostile plugin is never granted save_secrets")
    }
    fn lock_connection(&self, _: &str, _: &str) -> anyhow::Result<ConnectionGuard> {
        anyhow::bail!("the hostile plugin is never granted save_secrets")
    }
}

struct Fixture {
    runtime: PluginRuntime,
    plugin: LoadedPlugin,
    manifest: ProviderManifest,
    _artifacts: support::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let artifacts = support::TempDir::new("hostile-artifacts");
        let runtime =
            PluginRuntime::with_compiler(artifacts.path().to_path_buf(), support::compiler_exe()).unwrap();
        let plugin = load(&runtime, "hostile", &support::fixture_wasm("hostile")).unwrap();
        let text =
            std::fs::read_to_string(support::repo_root().join("tests/fixtures/hostile/plugin.toml")).unwrap();
        Fixture { runtime, plugin, manifest: ProviderManifest::parse(&text).unwrap(), _artifacts: artifacts }
    })
}

fn load(runtime: &PluginRuntime, name: &str, wasm: &[u8]) -> Result<LoadedPlugin, PluginError> {
    let sha256 = hex::encode(Sha256::digest(wasm));
    runtime.load(&PluginSource {
        name,
        wasm: Cow::Borrowed(wasm),
        sha256: &sha256,
        check: IntegrityCheck::EveryLoad,
    })
}

fn test_limits() -> Limits {
    let mut limits = Limits { cpu: Duration::from_secs(1), memory: 32 << 20, ..Limits::default() };
    limits.process.timeout = Duration::from_secs(1);
    limits.process.max_output = 64 * 1024;
    limits
}

fn attack_with(attack: &str, extra: &[(&str, &str)]) -> Result<Credential, PluginError> {
    let f = fixture();
    let mut options: BTreeMap<String, String> = BTreeMap::from([("attack".into(), attack.into())]);
    options.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let ctx = CallContext {
        provider: "hostile".into(),
        grant: CapabilityGrant::new(&f.manifest.capabilities, &f.manifest.capabilities, &options),
        secrets: Arc::new(FixtureSecrets),
        limits: test_limits(),
        known_secrets: Vec::new(),
    };
    let request = CallRequest { credential: "hostile".into(), options, interactive: false };
    f.plugin.fetch(ctx, &request)
}

fn attack(attack: &str) -> Result<Credential, PluginError> {
    attack_with(attack, &[])
}

/// A refused host call: the plugin got `denied`, and the host recorded it.
fn assert_denied(result: Result<Credential, PluginError>, expected: &str) {
    match result {
        Err(PluginError::Provider { failure, aftermath }) => {
            assert_eq!(failure.kind, FailureKind::Denied, "{failure:?}");
            assert!(failure.message.contains(expected), "message {:?} lacks {expected:?}", failure.message);
            let denials = &aftermath.denials;
            assert!(denials.iter().any(|d| d.contains(expected)), "denials {denials:?} lack {expected:?}");
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    assert_still_usable();
}

fn assert_stopped(result: Result<Credential, PluginError>, expected: &str) {
    match result {
        Err(e @ PluginError::Stopped { .. }) => {
            assert!(e.to_string().contains(expected), "{e} lacks {expected:?}")
        }
        other => panic!("expected the plugin to be stopped, got {other:?}"),
    }
    assert_still_usable();
}

/// After any attack the same runtime and plugin still serve a normal call.
fn assert_still_usable() {
    let credential = attack("none").expect("a benign call after an attack");
    assert_eq!(credential.secret.expose(), "benign-secret");
}

#[test]
fn running_an_undeclared_program_is_denied() {
    assert_denied(attack("undeclared-program"), "running `curl` is not a granted capability");
}

#[test]
fn running_a_declared_program_with_undeclared_arguments_is_denied() {
    assert_denied(
        attack("undeclared-args"),
        "the arguments `ad sp create` do not fit `account get-access-token **`",
    );
}

#[test]
fn a_wildcard_matches_no_option_file_reference_or_file_url() {
    for sneaky in
        ["--debug", "--output-file=/tmp/x", "-o", "@/etc/passwd", "file:///etc/passwd", "fileb://key"]
    {
        let result = attack_with("option-under-wildcard", &[("target", sneaky)]);
        assert_denied(result, "running `az` with these arguments is not granted");
    }
}

#[test]
fn giving_a_program_an_undeclared_variable_is_denied() {
    assert_denied(attack("undeclared-env-for-child"), "environment variable AWS_SECRET_ACCESS_KEY");
}

#[test]
fn reading_an_undeclared_env_var_is_denied() {
    assert_denied(attack("undeclared-env"), "environment variable HOSTILE_FORBIDDEN");
}

#[test]
fn passing_a_secret_in_argv_is_denied() {
    assert_denied(attack("secret-in-argv"), "passing a secret in the arguments of `az` is refused");
}

#[test]
fn a_secret_disguised_in_argv_is_denied() {
    for disguise in ["slice", "base64", "hex"] {
        assert_denied(
            attack_with("secret-in-argv-disguised", &[("target", disguise)]),
            "passing a secret in the arguments of `az` is refused",
        );
    }
}

#[test]
fn refusals_in_a_loop_are_recorded_within_bounds() {
    match attack("deny-flood") {
        Err(PluginError::Provider { failure, aftermath }) => {
            assert_eq!(failure.kind, FailureKind::Denied, "{failure:?}");
            assert!(aftermath.denials.len() <= 16, "{} denial records kept", aftermath.denials.len());
            let bytes: usize = aftermath.denials.iter().map(String::len).sum();
            assert!(bytes <= 16 * 512, "{bytes} bytes of denial records kept");
            assert_eq!(
                aftermath.denials.len() + aftermath.denials_unrecorded,
                2_001,
                "every refusal counted"
            );
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    assert_still_usable();
}

#[test]
fn requesting_an_undeclared_url_is_denied_before_connecting() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/secret", listener.local_addr().unwrap());
    assert_denied(attack_with("undeclared-url", &[("target", &url)]), "is not a granted capability");
    assert!(listener.accept().is_err(), "the plugin reached the server");
}

#[test]
fn a_url_escaping_its_grant_by_dot_segments_is_denied_before_connecting() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    for sneaky in ["/open/../secret", "/open/%2e%2e/secret", "/open/.%2E/secret", "/open/x/../../secret"] {
        let target = format!("{base}{sneaky}");
        assert_denied(
            attack_with("undeclared-url", &[("target", &target), ("base_url", &base)]),
            "is not a granted capability",
        );
    }
    let with_userinfo = format!("http://user@{}/open/x", listener.local_addr().unwrap());
    assert_denied(
        attack_with("undeclared-url", &[("target", &with_userinfo), ("base_url", &base)]),
        "is not a granted capability",
    );
    assert!(listener.accept().is_err(), "the plugin reached the server");
}

#[test]
fn a_plugin_cannot_set_the_host_header() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    assert_denied(
        attack_with("host-header", &[("target", &format!("{base}/allowed")), ("base_url", &base)]),
        "setting the Host header is not allowed",
    );
    assert!(listener.accept().is_err(), "the plugin reached the server");
}

#[test]
fn a_declared_url_is_reachable() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 1024];
        let n = stream.read(&mut request).unwrap();
        let first_line =
            String::from_utf8_lossy(&request[..n]).lines().next().unwrap_or_default().to_string();
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\nallowed")
            .unwrap();
        first_line
    });
    let credential =
        attack_with("undeclared-url", &[("target", &format!("{base}/allowed")), ("base_url", &base)])
            .unwrap();
    assert_eq!(credential.secret.expose(), "allowed");
    assert_eq!(server.join().unwrap(), "GET /allowed HTTP/1.1");
}

#[test]
fn opening_a_file_finds_no_filesystem() {
    let dir = support::TempDir::new("hostile-file");
    let file = dir.path().join("secret.txt");
    std::fs::write(&file, "top secret file content").unwrap();
    let result = attack_with("open-file", &[("target", file.to_str().unwrap())]);
    let err = result.expect_err("the plugin read a host file");
    assert!(!format!("{err:?}").contains("top secret"), "{err:?}");
    assert!(attack_with("list-dir", &[("target", "/")]).is_err(), "the plugin listed /");
    assert_still_usable();
}

#[test]
fn reading_a_file_is_limited_to_the_one_granted_path() {
    let dir = support::TempDir::new("hostile-read-file");
    let granted = dir.path().join("token");
    let other = dir.path().join("other");
    std::fs::write(&granted, "federated-token-contents\n").unwrap();
    std::fs::write(&other, "top secret file content").unwrap();
    let granted = granted.to_str().unwrap();
    let read = attack_with("read-declared-file", &[("granted_file", granted), ("target", granted)]).unwrap();
    assert_eq!(read.secret.expose(), "federated-token-contents\n");
    let other = other.to_str().unwrap();
    assert_denied(
        attack_with("read-undeclared-file", &[("granted_file", granted), ("target", other)]),
        &format!("reading the file {other} is not a granted capability"),
    );
    // No option, no file: the placeholder allows nothing.
    assert_denied(attack_with("read-undeclared-file", &[("target", granted)]), "is not a granted capability");
    // A FIFO (or a device) is refused at once instead of blocking the call.
    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let fifo = fifo.to_str().unwrap();
    let started = Instant::now();
    match attack_with("read-declared-file", &[("granted_file", fifo), ("target", fifo)]) {
        Err(PluginError::Provider { failure, .. }) => {
            assert!(failure.message.contains("not a regular file"), "{failure:?}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    // The same path spelled differently is another path.
    let dotted = format!("{}/./token", dir.path().display());
    assert_denied(
        attack_with("read-undeclared-file", &[("granted_file", granted), ("target", &dotted)]),
        "is not a granted capability",
    );
}

#[test]
fn saving_secrets_needs_the_grant_and_named_secrets_need_valid_names() {
    assert_denied(attack("save-secret"), "saving secrets is not a granted capability");
    assert_denied(
        attack_with("read-named-secret", &[("target", "../openai/default")]),
        "is not a valid secret name",
    );
    assert_denied(
        attack_with("read-secret-of-connection", &[("target", "default#refresh_token")]),
        "is not a valid connection name",
    );
    // A valid name reads the store (which holds no such secret: the plugin
    // then returns an empty secret, which the host refuses).
    let none = attack_with("read-named-secret", &[("target", "refresh_token")]).unwrap_err();
    assert!(none.to_string().contains("returned an empty secret"), "{none}");
}

#[test]
fn a_plugin_may_shorten_a_programs_limits_but_never_extend_them() {
    let start = Instant::now();
    let failure = |result: Result<Credential, PluginError>| match result {
        Err(PluginError::Provider { failure, .. }) => failure.message,
        other => panic!("expected the program to be stopped, got {other:?}"),
    };
    // Asked for an hour: still stopped at the host's 1 s.
    let message = failure(attack_with("own-timeout", &[("target", "3600000")]));
    assert!(message.contains("did not finish within 1s"), "{message}");
    // Asked for 200 ms: stopped then.
    let message = failure(attack_with("own-timeout", &[("target", "200")]));
    assert!(message.contains("did not finish within 0.2s"), "{message}");
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
    let message = failure(attack_with("own-output-cap", &[("target", "4294967295")]));
    assert!(message.contains("printed more than 65536 bytes"), "{message}");
    let message = failure(attack_with("own-output-cap", &[("target", "1000")]));
    assert!(message.contains("printed more than 1000 bytes"), "{message}");
    assert_still_usable();
}

#[test]
fn opening_a_socket_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    assert!(attack_with("open-socket", &[("target", &addr)]).is_err(), "the plugin opened a socket");
    assert!(listener.accept().is_err(), "the plugin reached the listener");
    assert_still_usable();
}

#[test]
fn an_infinite_loop_is_stopped_at_the_cpu_limit() {
    let start = Instant::now();
    assert_stopped(attack("loop"), "used up its CPU budget (1000 million wasm instructions, about 1s)");
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
}

#[test]
fn a_loop_of_cheap_host_calls_is_stopped_at_the_cpu_limit() {
    let start = Instant::now();
    assert_stopped(attack("host-call-loop"), "used up its CPU budget");
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
}

#[test]
fn unbounded_allocation_is_stopped_at_the_memory_cap() {
    assert_stopped(attack("allocate"), "more than 32 MiB of memory");
}

#[test]
fn a_huge_secret_is_refused() {
    assert_stopped(attack("huge-string"), "returned a secret of 8388608 bytes");
}

#[test]
fn a_panic_becomes_a_readable_error() {
    assert_stopped(attack("panic"), "panicked: hostile plugin panicked on purpose");
}

#[test]
fn a_slow_program_is_killed_at_its_time_limit() {
    let start = Instant::now();
    match attack("slow-program") {
        Err(PluginError::Provider { failure, .. }) => {
            assert_eq!(failure.kind, FailureKind::Unavailable);
            assert!(failure.message.contains("did not finish within 1s"), "{}", failure.message);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
    assert_still_usable();
}

#[test]
fn a_call_is_stopped_at_its_wall_clock_deadline_whatever_its_programs_may_take() {
    let f = fixture();
    let options: BTreeMap<String, String> = BTreeMap::from([("attack".into(), "slow-program".into())]);
    let mut limits = test_limits();
    limits.call = Duration::from_millis(1500);
    limits.process.timeout = Duration::from_secs(100);
    let ctx = CallContext {
        provider: "hostile".into(),
        grant: CapabilityGrant::new(&f.manifest.capabilities, &f.manifest.capabilities, &options),
        secrets: Arc::new(FixtureSecrets),
        limits,
        known_secrets: Vec::new(),
    };
    let request = CallRequest { credential: "hostile".into(), options, interactive: false };
    let started = std::time::Instant::now();
    let result = f.plugin.fetch(ctx, &request);
    let elapsed = started.elapsed();
    // The program is stopped at the deadline; the plugin, if it goes on, is
    // stopped by the engine at its next check.
    match result {
        Err(PluginError::Provider { failure, .. }) => {
            assert!(failure.message.contains("ran past its deadline of 1.5s"), "{failure:?}")
        }
        Err(stopped @ PluginError::Stopped { .. }) => {
            assert!(stopped.to_string().contains("ran past its deadline of 1.5s"), "{stopped}")
        }
        other => panic!("expected the deadline to stop the call, got {other:?}"),
    }
    // The program's own limit (100 s) and `sleep 30` would both take far longer.
    assert!(elapsed < Duration::from_secs(15), "stopped after {elapsed:?}");
    assert_still_usable();
}

#[test]
fn a_program_printing_without_end_is_stopped_at_the_output_cap() {
    match attack("flood-program") {
        Err(PluginError::Provider { failure, .. }) => {
            assert!(failure.message.contains("printed more than 65536 bytes"), "{}", failure.message)
        }
        other => panic!("expected an output-size error, got {other:?}"),
    }
    assert_still_usable();
}

#[test]
fn a_component_of_an_unsupported_contract_version_is_refused() {
    let err = load(&fixture().runtime, "future", &support::fixture_wasm("future-version")).err().unwrap();
    assert!(matches!(err, PluginError::Incompatible { .. }), "{err:?}");
    assert!(err.to_string().contains("was built for keyhelper:provider@0.9.0"), "{err}");
}

#[test]
fn a_component_of_another_world_is_refused() {
    let err = load(&fixture().runtime, "greeter", &support::fixture_wasm("wrong-world")).err().unwrap();
    assert!(err.to_string().contains("is not a keyhelper provider plugin"), "{err}");
    assert!(err.to_string().contains("example:greeter/greet@0.1.0"), "{err}");
}

#[test]
fn a_core_module_or_garbage_is_refused_by_its_header() {
    let core_module = [0, b'a', b's', b'm', 1, 0, 0, 0];
    let err = load(&fixture().runtime, "core", &core_module).err().unwrap();
    assert!(err.to_string().contains("is a core WebAssembly module, not a component"), "{err}");
    let err = load(&fixture().runtime, "junk", b"#!/bin/sh\necho pwned\n").err().unwrap();
    assert!(err.to_string().contains("is not a WebAssembly component"), "{err}");
}

#[test]
fn bytes_that_do_not_match_the_pinned_hash_are_refused() {
    let wasm = support::fixture_wasm("hostile");
    let pinned = hex::encode(Sha256::digest(&wasm));
    let mut altered = wasm.clone();
    let middle = altered.len() / 2;
    altered[middle] ^= 0xff;
    let source = PluginSource {
        name: "hostile",
        wasm: Cow::Owned(altered),
        sha256: &pinned,
        check: IntegrityCheck::EveryLoad,
    };
    let err = fixture().runtime.load(&source).err().unwrap();
    assert!(matches!(err, PluginError::Integrity { .. }), "{err:?}");
    assert!(err.to_string().contains("failed its integrity check"), "{err}");
}

#[test]
fn embedded_bytes_are_checked_before_compiling_and_altered_ones_never_run() {
    let wasm = support::fixture_wasm("hostile");
    let pinned = hex::encode(Sha256::digest(&wasm));
    let mut altered = wasm.clone();
    let middle = altered.len() / 2;
    altered[middle] ^= 0xff;
    let embedded = |bytes: &[u8]| PluginSource {
        name: "hostile",
        wasm: Cow::Owned(bytes.to_vec()),
        sha256: &pinned,
        check: IntegrityCheck::BeforeCompiling,
    };
    // No artifact yet: the altered bytes are checked, and refused.
    let artifacts = support::TempDir::new("embedded-artifacts");
    let runtime =
        PluginRuntime::with_compiler(artifacts.path().to_path_buf(), support::compiler_exe()).unwrap();
    let err = runtime.load(&embedded(&altered)).err().unwrap();
    assert!(matches!(err, PluginError::Integrity { .. }), "{err:?}");
    // Compiled once from the right bytes, the artifact serves, whatever the bytes now hold.
    runtime.load(&embedded(&wasm)).unwrap();
    let fresh =
        PluginRuntime::with_compiler(artifacts.path().to_path_buf(), support::compiler_exe()).unwrap();
    let plugin = fresh.load(&embedded(&altered)).expect("the artifact compiled from checked bytes");
    assert_eq!(plugin.api_version(), "0.3.0");
}
