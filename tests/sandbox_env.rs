//! What environment a plugin and its programs see. One test in its own binary,
//! because it sets variables of the test process itself.

mod support;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use keyhelper_core::credential::Secret;
use keyhelper_core::manifest::ProviderManifest;
use keyhelper_host::runtime::capability::CapabilityGrant;
use keyhelper_host::runtime::sandbox::{CallContext, ConnectionGuard, Limits, StoredSecrets};
use keyhelper_host::runtime::{CallRequest, IntegrityCheck, PluginError, PluginRuntime, PluginSource};
use sha2::{Digest, Sha256};

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

#[test]
fn plugins_and_their_programs_see_only_declared_variables() {
    // SAFETY: this binary has this one test, so no other thread reads the
    // environment while it is changed.
    unsafe {
        std::env::set_var("HOSTILE_ALLOWED", "declared-value");
        std::env::set_var("HOSTILE_FORBIDDEN", "undeclared-value");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "parent-aws-secret");
    }
    let artifacts = support::TempDir::new("sandbox-env");
    let runtime =
        PluginRuntime::with_compiler(artifacts.path().to_path_buf(), support::compiler_exe()).unwrap();
    let wasm = support::fixture_wasm("hostile");
    let sha256 = hex::encode(Sha256::digest(&wasm));
    let plugin = runtime
        .load(&PluginSource {
            name: "hostile",
            wasm: Cow::Owned(wasm),
            sha256: &sha256,
            check: IntegrityCheck::EveryLoad,
        })
        .unwrap();
    let text =
        std::fs::read_to_string(support::repo_root().join("tests/fixtures/hostile/plugin.toml")).unwrap();
    let manifest = ProviderManifest::parse(&text).unwrap();
    let run = |attack: &str| {
        let options = BTreeMap::from([("attack".to_string(), attack.to_string())]);
        let ctx = CallContext {
            provider: "hostile".into(),
            grant: CapabilityGrant::new(&manifest.capabilities, &manifest.capabilities, &options),
            secrets: Arc::new(NoSecrets),
            limits: Limits::default(),
            known_secrets: Vec::new(),
        };
        plugin.fetch(ctx, &CallRequest { credential: "env".into(), options, interactive: false })
    };

    let declared = run("declared-env").unwrap();
    assert_eq!(declared.secret.expose(), "declared-value");
    assert!(matches!(run("undeclared-env"), Err(PluginError::Provider { .. })));

    let child_env = run("child-env").unwrap();
    let names: Vec<&str> = child_env
        .secret
        .expose()
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, _)| name)
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["HOME", "HOSTILE_ALLOWED", "PATH"], "the child saw {names:?}");
    assert!(child_env.secret.expose().contains("HOSTILE_ALLOWED=declared-value"));
}
