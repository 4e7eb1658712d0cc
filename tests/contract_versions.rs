//! Contract versions side by side: plugins built against the released
//! `keyhelper:provider@0.1.0` and `@0.2.0` (`tests/fixtures/legacy-v0_*`,
//! generated from the frozen `plugins/sdk/wit/since_v*` directories) keep
//! loading and working in a keyhelper whose latest contract is 0.3.0, through
//! the CLI like any installed plugin.

mod support;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use keyhelper_core::credential::Secret;
use keyhelper_core::manifest::ProviderManifest;
use keyhelper_host::runtime::capability::CapabilityGrant;
use keyhelper_host::runtime::outcome::{FailureKind, Verdict};
use keyhelper_host::runtime::sandbox::{CallContext, ConnectionGuard, Limits, StoredSecrets};
use keyhelper_host::runtime::{CallRequest, IntegrityCheck, PluginError, PluginRuntime, PluginSource};
use support::{Home, stderr, stdout};

struct NoSecrets;

impl StoredSecrets for NoSecrets {
    fn read(&self, _: &str, _: &str, _: Option<&str>) -> anyhow::Result<Option<Secret>> {
        Ok(None)
    }
    fn save(&self, _: &str, _: &str, _: &str, _: &Secret) -> anyhow::Result<()> {
        anyhow::bail!("nothing is stored in these tests")
    }
    fn lock_connection(&self, _: &str, _: &str) -> anyhow::Result<ConnectionGuard> {
        anyhow::bail!("nothing is stored in these tests")
    }
}

fn context() -> CallContext {
    let nothing = Default::default();
    CallContext {
        provider: "legacy".into(),
        grant: CapabilityGrant::new(&nothing, &nothing, &BTreeMap::new()),
        secrets: Arc::new(NoSecrets),
        limits: Limits::default(),
        known_secrets: Vec::new(),
    }
}

fn request(greeting: &str) -> CallRequest {
    CallRequest {
        credential: "old".into(),
        options: BTreeMap::from([("greeting".to_string(), greeting.to_string())]),
        interactive: false,
    }
}

#[test]
fn a_plugin_built_against_0_1_0_runs_every_function_in_a_0_3_0_host() {
    runs_every_function("legacy-v0_1_0", "0.1.0", &[]);
}

#[test]
fn a_plugin_built_against_0_2_0_runs_every_function_in_a_0_3_0_host() {
    runs_every_function("legacy-v0_2_0", "0.2.0", &[("X-Legacy".into(), "0.2.0".into())]);
}

/// Loads the fixture built against `version` and calls each of its
/// functions; its credentials carry `headers`.
fn runs_every_function(fixture: &str, version: &str, headers: &[(String, String)]) {
    let artifacts = support::TempDir::new("contract-versions");
    let runtime =
        PluginRuntime::with_compiler(artifacts.path().to_path_buf(), support::compiler_exe()).unwrap();
    let wasm = support::fixture_wasm(fixture);
    let sha256 = support::sha256_hex(&wasm);
    let legacy = runtime
        .load(&PluginSource {
            name: "legacy",
            wasm: Cow::Owned(wasm),
            sha256: &sha256,
            check: IntegrityCheck::EveryLoad,
        })
        .unwrap();
    assert_eq!(legacy.api_version(), version);

    let info = legacy.describe(context()).unwrap();
    assert_eq!((info.name.as_str(), info.options[0].name.as_str()), ("legacy", "greeting"));
    let fetched = legacy.fetch(context(), &request("hello")).unwrap();
    assert_eq!(fetched.secret.expose(), "hello-secret-for-old");
    assert!(fetched.expires_at.is_some());
    assert_eq!(fetched.headers, headers, "0.1.0 credentials have no headers; 0.2.0 ones do");
    let renewed = legacy.refresh(context(), &request("hello"), &fetched).unwrap();
    assert_eq!(renewed.secret.expose(), "hello-secret-for-old-renewed");
    let verdict = legacy.validate(context(), &request("hello"), &Secret::new("legacy-x"), false).unwrap();
    assert_eq!(verdict.verdict, Verdict::Valid);
    match legacy.fetch(context(), &request("fail")) {
        Err(PluginError::Provider { failure, .. }) => {
            assert_eq!(failure.kind, FailureKind::NotFound);
            assert_eq!(failure.hint.as_deref(), Some("use another greeting"));
        }
        other => panic!("expected not-found, got {other:?}"),
    }

    // The SDK builds against the latest contract.
    let hostile = support::fixture_wasm("hostile");
    let sha256 = support::sha256_hex(&hostile);
    let current = runtime
        .load(&PluginSource {
            name: "hostile",
            wasm: Cow::Owned(hostile),
            sha256: &sha256,
            check: IntegrityCheck::EveryLoad,
        })
        .unwrap();
    assert_eq!(current.api_version(), "0.3.0");
}

#[test]
fn a_0_1_0_plugin_installs_and_serves_through_the_cli() {
    installs_and_serves("legacy-v0_1_0", "0.1.0");
}

#[test]
fn a_0_2_0_plugin_installs_and_serves_through_the_cli() {
    installs_and_serves("legacy-v0_2_0", "0.2.0");
}

fn installs_and_serves(fixture: &str, version: &str) {
    let home = Home::new("contract-versions-cli");
    let manifest = support::repo_root().join(format!("tests/fixtures/{fixture}/plugin.toml"));
    ProviderManifest::parse(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let install = home.install_plugin("legacy.wasm", &support::fixture_wasm(fixture), &manifest);
    assert!(install.status.success(), "{}", stderr(&install));
    assert!(stderr(&install).contains(&format!("keyhelper:provider@{version}")), "{}", stderr(&install));
    home.write_config("[credentials.old]\nprovider = \"legacy\"\n");
    let get = home.run(&["get", "old", "--format", "json"]);
    assert!(get.status.success(), "{}", stderr(&get));
    let json: serde_json::Value = serde_json::from_slice(&get.stdout).unwrap();
    assert_eq!(json["token"], "legacy-secret-for-old");
    assert!(
        stdout(&home.run(&["plugin", "inspect", "legacy"]))
            .contains(&format!("contract:     keyhelper:provider@{version}"))
    );
}

/// A process that calls a plugin again (a proxy renewing) uses the component
/// it loaded the first time: neither its artifact nor the compiler is needed
/// again. The bytes are still checked against their pin at every load.
#[test]
fn a_runtime_loads_each_plugin_once_and_still_checks_its_bytes_every_time() {
    let artifacts = support::TempDir::new("loaded-once");
    let runtime =
        PluginRuntime::with_compiler(artifacts.path().to_path_buf(), support::compiler_exe()).unwrap();
    let wasm = support::fixture_wasm("legacy-v0_2_0");
    let sha256 = support::sha256_hex(&wasm);
    let source = |wasm: Vec<u8>| PluginSource {
        name: "legacy",
        wasm: Cow::Owned(wasm),
        sha256: &sha256,
        check: IntegrityCheck::EveryLoad,
    };
    runtime.load(&source(wasm.clone())).unwrap();
    let artifacts_made = std::fs::read_dir(artifacts.path()).unwrap().count();
    assert_eq!(artifacts_made, 1, "the first load compiles the plugin and stores its artifact");
    std::fs::remove_dir_all(artifacts.path()).unwrap();

    let again = runtime.load(&source(wasm.clone())).unwrap();
    assert_eq!(again.fetch(context(), &request("hello")).unwrap().secret.expose(), "hello-secret-for-old");
    assert!(!artifacts.path().exists(), "the second load neither read nor wrote an artifact");

    let mut altered = wasm;
    *altered.last_mut().unwrap() ^= 1;
    assert!(matches!(runtime.load(&source(altered)), Err(PluginError::Integrity { .. })));
}
