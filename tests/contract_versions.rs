//! Contract versions side by side: a plugin built against the released
//! `keyhelper:provider@0.1.0` (`tests/fixtures/legacy-v0_1_0`, generated from
//! the frozen `plugins/sdk/wit/since_v0.1.0`) keeps loading and working in a keyhelper
//! whose latest contract is 0.2.0, through the CLI like any installed plugin.

mod support;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use keyhelper_core::credential::Secret;
use keyhelper_core::manifest::ProviderManifest;
use keyhelper_host::runtime::capability::CapabilityGrant;
use keyhelper_host::runtime::outcome::{FailureKind, Verdict};
use keyhelper_host::runtime::sandbox::{CallContext, Limits, StoredSecrets};
use keyhelper_host::runtime::{CallRequest, IntegrityCheck, PluginError, PluginRuntime, PluginSource};
use support::{Home, stderr, stdout};

struct NoSecrets;

impl StoredSecrets for NoSecrets {
    fn read(&self, _: &str, _: &str) -> anyhow::Result<Option<Secret>> {
        Ok(None)
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
fn a_plugin_built_against_0_1_0_runs_every_function_in_a_0_2_0_host() {
    let artifacts = support::TempDir::new("contract-versions");
    let runtime = PluginRuntime::new(artifacts.path().to_path_buf()).unwrap();
    let wasm = support::fixture_wasm("legacy-v0_1_0");
    let sha256 = support::sha256_hex(&wasm);
    let legacy = runtime
        .load(&PluginSource {
            name: "legacy",
            wasm: Cow::Owned(wasm),
            sha256: &sha256,
            check: IntegrityCheck::EveryLoad,
        })
        .unwrap();
    assert_eq!(legacy.api_version(), "0.1.0");

    let info = legacy.describe(context()).unwrap();
    assert_eq!((info.name.as_str(), info.options[0].name.as_str()), ("legacy", "greeting"));
    let fetched = legacy.fetch(context(), &request("hello")).unwrap();
    assert_eq!(fetched.secret.expose(), "hello-secret-for-old");
    assert!(fetched.expires_at.is_some());
    assert!(fetched.headers.is_empty(), "0.1.0 credentials have no headers");
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
    assert_eq!(current.api_version(), "0.2.0");
}

#[test]
fn a_0_1_0_plugin_installs_and_serves_through_the_cli() {
    let home = Home::new("contract-versions-cli");
    let manifest = support::repo_root().join("tests/fixtures/legacy-v0_1_0/plugin.toml");
    ProviderManifest::parse(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let install = home.install_plugin("legacy.wasm", &support::fixture_wasm("legacy-v0_1_0"), &manifest);
    assert!(install.status.success(), "{}", stderr(&install));
    assert!(stderr(&install).contains("keyhelper:provider@0.1.0"), "{}", stderr(&install));
    home.write_config("[credentials.old]\nprovider = \"legacy\"\n");
    let get = home.run(&["get", "old", "--format", "json"]);
    assert!(get.status.success(), "{}", stderr(&get));
    let json: serde_json::Value = serde_json::from_slice(&get.stdout).unwrap();
    assert_eq!(json["token"], "legacy-secret-for-old");
    assert!(
        stdout(&home.run(&["plugin", "inspect", "legacy"]))
            .contains("contract:     keyhelper:provider@0.1.0")
    );
}
