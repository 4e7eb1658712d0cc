//! `keyhelper plugin install | list | inspect | remove` with real components,
//! and every refusal: not a component, an unsupported contract version, a hash
//! mismatch, tampering after install, no grant, a capability used but not
//! declared, and a reinstall that asks for more.

mod support;

use std::path::{Path, PathBuf};

use support::{BoundedRun, Home, stderr, stdout};

fn hostile_manifest() -> PathBuf {
    support::repo_root().join("tests/fixtures/hostile/plugin.toml")
}

/// Writes a fixture's component (and optionally a manifest) into `dir`.
fn stage(home: &Home, fixture: &str, manifest: Option<&str>) -> PathBuf {
    let dir = home.path().join("downloads");
    std::fs::create_dir_all(&dir).unwrap();
    let wasm = dir.join(format!("{fixture}.wasm"));
    std::fs::write(&wasm, support::fixture_wasm(fixture)).unwrap();
    if let Some(manifest) = manifest {
        std::fs::write(dir.join("plugin.toml"), manifest).unwrap();
    }
    wasm
}

fn install(home: &Home, wasm: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["plugin", "install", wasm.to_str().unwrap()];
    args.extend_from_slice(extra);
    home.run(&args)
}

fn installed_hostile(tag: &str) -> Home {
    let home = Home::new(tag);
    let wasm = stage(&home, "hostile", Some(&std::fs::read_to_string(hostile_manifest()).unwrap()));
    let output = install(&home, &wasm, &["--yes"]);
    assert!(output.status.success(), "{}", stderr(&output));
    home
}

#[test]
fn install_list_inspect_use_and_remove() {
    let home = installed_hostile("plugin-round-trip");
    let list = stdout(&home.run(&["plugin", "list"]));
    let line = list.lines().find(|l| l.starts_with("hostile")).expect(&list);
    assert!(line.contains("0.1.0") && line.contains("installed"), "{line}");
    assert!(line.contains("run `az account get-access-token **`"), "{line}");
    assert!(list.lines().all(|l| l.chars().count() <= 100), "plugin list fits 100 columns:\n{list}");
    assert!(list.lines().any(|l| l.starts_with("azure") && l.contains("bundled")), "{list}");
    let listed: serde_json::Value =
        serde_json::from_str(&stdout(&home.run(&["plugin", "list", "--json"]))).unwrap();
    let hostile =
        listed.as_array().unwrap().iter().find(|p| p["name"] == "hostile").expect("hostile is listed");
    assert_eq!(hostile["source"], "installed");
    assert_eq!(hostile["providers"], serde_json::json!(["hostile"]));
    let granted = hostile["granted"].as_array().unwrap();
    assert!(granted.iter().any(|g| g == "read env HOSTILE_ALLOWED"), "{granted:?}");
    let stored_key = listed.as_array().unwrap().iter().find(|p| p["name"] == "stored-key").unwrap();
    assert!(stored_key["providers"].as_array().unwrap().iter().any(|p| p == "anthropic"), "{stored_key}");

    let inspect = stdout(&home.run(&["plugin", "inspect", "hostile"]));
    for expected in
        ["contract:     keyhelper:provider@0.3.0", "granted:", "attack: Which escape to try [required]"]
    {
        assert!(inspect.contains(expected), "{expected:?} missing from\n{inspect}");
    }
    let sha = inspect.lines().find_map(|l| l.strip_prefix("sha256:       ")).unwrap();
    assert_eq!(sha.len(), 64);

    home.write_config("[credentials.h]\nprovider = \"hostile\"\nattack = \"none\"\n");
    let get = home.run(&["get", "h"]);
    assert_eq!(stdout(&get), "benign-secret\n", "{}", stderr(&get));
    let headers = stdout(&home.run(&["get", "h", "--format", "headers"]));
    assert_eq!(
        headers,
        "{\"Authorization\":\"Bearer benign-secret\",\"X-Fixture-Project\":\"hostile-tests\"}\n"
    );

    let remove = home.run(&["plugin", "remove", "hostile"]);
    assert!(remove.status.success(), "{}", stderr(&remove));
    let gone = home.run(&["get", "h"]);
    assert_eq!(gone.status.code(), Some(3), "{}", stderr(&gone));
    assert!(stderr(&gone).contains("uses provider 'hostile', which does not exist"), "{}", stderr(&gone));
    assert_eq!(home.run(&["plugin", "remove", "hostile"]).status.code(), Some(5));
}

#[test]
fn a_capability_used_but_not_declared_is_refused_at_run_time() {
    let home = installed_hostile("plugin-undeclared");
    home.write_config("[credentials.h]\nprovider = \"hostile\"\nattack = \"undeclared-program\"\n");
    let output = home.run(&["get", "h"]);
    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains(
            "keyhelper: warning: the sandbox refused a request from plugin 'hostile': running `curl`"
        ),
        "{err}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn what_is_not_a_plugin_of_a_supported_contract_is_refused_first() {
    let home = Home::new("plugin-not-component");
    let dir = home.path().join("downloads");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("plugin.toml"), "this manifest is never read").unwrap();
    let cases: [(&str, &[u8], &str); 3] = [
        ("junk.wasm", b"#!/bin/sh\necho pwned\n", "is not a WebAssembly component"),
        ("core.wasm", &[0, b'a', b's', b'm', 1, 0, 0, 0], "is a core WebAssembly module, not a component"),
        // A component's header, then nothing valid: keyhelper-compile refuses it.
        ("torn.wasm", &[0, b'a', b's', b'm', 0x0d, 0, 1, 0, 0xff, 0xff], "is not a valid component: "),
    ];
    for (name, bytes, expected) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let output = install(&home, &path, &["--yes"]);
        assert_eq!(output.status.code(), Some(9), "{}", stderr(&output));
        assert!(stderr(&output).contains(expected), "{}", stderr(&output));
        assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));
    }
    let future = stage(&home, "future-version", None);
    let output = install(&home, &future, &["--yes"]);
    assert_eq!(output.status.code(), Some(9));
    assert!(stderr(&output).contains("was built for keyhelper:provider@0.9.0"), "{}", stderr(&output));
    let greeter = stage(&home, "wrong-world", None);
    assert!(stderr(&install(&home, &greeter, &["--yes"])).contains("is not a keyhelper provider plugin"));
    assert!(!stdout(&home.run(&["plugin", "list"])).contains("installed"), "nothing was installed");
}

#[test]
fn a_hash_pin_mismatch_is_refused() {
    let home = Home::new("plugin-pin");
    let wasm = stage(&home, "hostile", Some(&std::fs::read_to_string(hostile_manifest()).unwrap()));
    let output = install(&home, &wasm, &["--yes", "--sha256", &"0".repeat(64)]);
    assert_eq!(output.status.code(), Some(9));
    assert!(stderr(&output).contains("not the pinned 0000"), "{}", stderr(&output));
    let right = support::sha256_hex(&std::fs::read(&wasm).unwrap()).to_uppercase();
    let output = install(&home, &wasm, &["--yes", "--sha256", &right]);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn a_plugin_changed_after_install_is_refused_until_reinstalled() {
    let home = installed_hostile("plugin-tampered");
    home.write_config("[credentials.h]\nprovider = \"hostile\"\nattack = \"none\"\n");
    let installed = home.path().join(".local/share/keyhelper/plugins/hostile/plugin.wasm");
    let mut bytes = std::fs::read(&installed).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&installed, bytes).unwrap();
    let output = home.run(&["get", "h"]);
    assert_eq!(output.status.code(), Some(9), "{}", stderr(&output));
    assert!(stderr(&output).contains("changed since it was installed"), "{}", stderr(&output));
    assert!(output.stdout.is_empty());
}

#[test]
fn without_a_grant_nothing_is_installed() {
    let home = Home::new("plugin-no-grant");
    let wasm = stage(&home, "hostile", Some(&std::fs::read_to_string(hostile_manifest()).unwrap()));
    let output = install(&home, &wasm, &[]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("asks to:") && err.contains("run `sleep *`"), "the review was shown: {err}");
    assert!(err.contains("nobody is at a terminal to grant these capabilities (hint: review them above and rerun with --yes"), "{err}");
    assert!(!home.path().join(".local/share/keyhelper/plugins/hostile").exists());
}

#[test]
fn a_reinstall_asking_for_more_needs_a_fresh_grant() {
    let home = Home::new("plugin-more");
    let full = std::fs::read_to_string(hostile_manifest()).unwrap();
    let smaller = full.replace("    { command = \"yes\", args = [] },\n", "");
    assert_ne!(smaller, full);
    let wasm = stage(&home, "hostile", Some(&smaller));
    assert!(install(&home, &wasm, &["--yes"]).status.success());
    std::fs::write(wasm.with_file_name("plugin.toml"), &full).unwrap();
    let output = install(&home, &wasm, &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("run `yes` (new)"), "{}", stderr(&output));
    let inspect = stdout(&home.run(&["plugin", "inspect", "hostile"]));
    assert!(!inspect.contains("run `yes`"), "the larger grant was not recorded: {inspect}");
    assert!(install(&home, &wasm, &["--yes"]).status.success());
    let again = install(&home, &wasm, &[]);
    assert!(again.status.success(), "same capabilities need no new grant: {}", stderr(&again));
}

#[test]
fn a_manifest_that_disagrees_with_its_plugin_or_shadows_a_bundled_one_is_refused() {
    let home = Home::new("plugin-mismatch");
    let full = std::fs::read_to_string(hostile_manifest()).unwrap();
    let extra_option = format!("{full}\n[options.bogus]\nhelp = \"not a real option\"\n");
    let wasm = stage(&home, "hostile", Some(&extra_option));
    let output = install(&home, &wasm, &["--yes"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("the manifest's option `bogus` is not one the plugin takes"),
        "{}",
        stderr(&output)
    );
    let renamed = full
        .replace("name = \"hostile\"", "name = \"azure\"")
        .replace("plugin = \"hostile\"", "plugin = \"azure\"");
    std::fs::write(wasm.with_file_name("plugin.toml"), renamed).unwrap();
    let output = install(&home, &wasm, &["--yes"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("'azure' is the name of a bundled plugin"), "{}", stderr(&output));
}

#[test]
fn a_user_manifest_overrides_the_bundled_one() {
    let home = Home::new("plugin-user-manifest");
    let log = home.bin().join("az.log");
    home.fake_tool(
        "az",
        &format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\necho '{{\"accessToken\":\"tok\",\"expires_on\":4102444800}}'\n",
            log.display()
        ),
    );
    let bundled = std::fs::read_to_string(support::repo_root().join("providers/azure.toml")).unwrap();
    let custom =
        bundled.replace("[options.tenant]\n", "[options.tenant]\ndefault = \"contoso.onmicrosoft.com\"\n");
    let dir = home.path().join(".config/keyhelper/providers");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("azure.toml"), custom).unwrap();
    let output = home.run(&["get", "azure"]);
    assert_eq!(stdout(&output), "tok\n", "{}", stderr(&output));
    assert!(std::fs::read_to_string(&log).unwrap().contains("--tenant contoso.onmicrosoft.com"));
    let inspect = stdout(&home.run(&["plugin", "inspect", "azure"]));
    assert!(inspect.contains("(overrides the bundled one)"), "{inspect}");

    std::fs::write(dir.join("azure.toml"), "name = \"azure\"\nbogus = 1\n").unwrap();
    let broken = home.run(&["get", "azure"]);
    assert_eq!(broken.status.code(), Some(3));
    assert!(
        stderr(&broken).contains("providers/azure.toml is invalid: line 2, column 1: unknown field `bogus`"),
        "{}",
        stderr(&broken)
    );
}

/// A user manifest is a third-party artifact: one that asks for more than
/// the bundled provider it replaces is not run until the user grants that,
/// for its exact bytes.
#[test]
fn a_user_manifest_widening_a_bundled_provider_needs_a_grant_pinned_to_its_bytes() {
    let home = Home::new("manifest-grant");
    home.fake_tool("az", "#!/bin/sh\necho '{\"accessToken\":\"tok\",\"expires_on\":4102444800}'\n");
    let bundled = std::fs::read_to_string(support::repo_root().join("providers/azure.toml")).unwrap();
    let dir = home.path().join(".config/keyhelper/providers");
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("azure.toml");
    let refused = |output: &std::process::Output, what: &str| {
        assert_eq!(output.status.code(), Some(6), "{what}: {}", stderr(output));
        assert!(output.stdout.is_empty());
        assert!(stderr(output).contains("asks for what you have not granted"), "{what}: {}", stderr(output));
        assert!(stderr(output).contains("`keyhelper plugin grant azure`"), "{what}: {}", stderr(output));
        assert_eq!(stderr(output).lines().count(), 1, "{what}: {}", stderr(output));
    };

    // Wider arguments: any `az` subcommand.
    let widened = bundled.replace(r#"args = ["account", "get-access-token"]"#, r#"args = ["**"]"#);
    assert_ne!(widened, bundled);
    std::fs::write(&manifest, &widened).unwrap();
    refused(&home.run(&["get", "azure"]), "widened");
    let list = stdout(&home.run(&["list"]));
    assert!(
        list.contains("(overrides the bundled one); not granted: run `keyhelper plugin grant azure`"),
        "{list}"
    );
    let grant = home.run(&["plugin", "grant", "azure", "--yes"]);
    assert!(grant.status.success(), "{}", stderr(&grant));
    assert!(
        stderr(&grant).contains("run `az ** [--scope *]"),
        "the grant shows what is asked: {}",
        stderr(&grant)
    );
    assert_eq!(stdout(&home.run(&["get", "azure"])), "tok\n");

    // Any edit needs a new grant.
    std::fs::write(&manifest, format!("{widened}\n# edited\n")).unwrap();
    refused(&home.run(&["get", "azure"]), "edited");

    // A command given as a path (not looked up on PATH) is beyond the bundled one too.
    let fixed_path =
        bundled.replace(r#"command = "az""#, &format!(r#"command = "{}""#, home.bin().join("az").display()));
    assert_ne!(fixed_path, bundled);
    std::fs::write(&manifest, &fixed_path).unwrap();
    refused(&home.run(&["get", "azure"]), "path");
    let without_terminal = home.run(&["plugin", "grant", "azure"]);
    assert_ne!(without_terminal.status.code(), Some(0), "no grant without --yes or a terminal");
    refused(&home.run(&["get", "azure"]), "still not granted");
}

/// keyhelper-full links no compiler: `keyhelper-compile`, beside it, compiles
/// a plugin once; without it the first call fails in one line saying so (the
/// provider never runs), and once the artifact exists it is not needed.
#[test]
fn plugins_are_compiled_by_keyhelper_compile_once() {
    let az = support::fake_az::FakeAz::new("compiler", "[credentials.work]\nprovider = \"azure\"\n");
    let installed = az.home.path().join("installed");
    std::fs::create_dir(&installed).unwrap();
    let full = installed.join("keyhelper-full");
    std::fs::copy(env!("CARGO_BIN_EXE_keyhelper-full"), &full).unwrap();
    let get = || az.home.command(&full).args(["get", "work", "--no-cache"]).output_within();

    let without = get();
    assert_eq!(without.status.code(), Some(1), "{}", stderr(&without));
    let message = stderr(&without);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.contains("plugin 'azure': cannot compile it with"), "{message}");
    assert!(message.contains("keyhelper-compile must sit beside keyhelper-full"), "{message}");
    assert!(stdout(&without).is_empty());
    assert_eq!(az.calls(), 0);

    // A stand-in that records its environment and fails: the compiler gets
    // none of the caller's variables but PATH and HOME, and a failure that is
    // not a refusal of the plugin is reported as the compiler's.
    let seen = az.home.path().join("compiler-env");
    let stand_in = installed.join("keyhelper-compile");
    std::fs::write(&stand_in, format!("#!/bin/sh\nenv > '{}'\nexit 3\n", seen.display())).unwrap();
    std::fs::set_permissions(&stand_in, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let failed = az.home.command(&full).args(["get", "work"]).env("CALLER_ONLY", "x").output_within();
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    assert!(stderr(&failed).contains("it ended with exit status: 3"), "{}", stderr(&failed));
    let env = std::fs::read_to_string(&seen).unwrap();
    let names: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    assert!(names.contains(&"PATH") && names.contains(&"HOME"), "{env}");
    assert!(!names.contains(&"CALLER_ONLY") && !names.contains(&"XDG_CACHE_HOME"), "{env}");
    assert_eq!(az.calls(), 0);

    std::fs::copy(support::compiler_exe(), &stand_in).unwrap();
    assert_eq!(stdout(&get()), "token-1\n");
    let artifacts: Vec<_> = std::fs::read_dir(az.home.path().join(".cache/keyhelper/plugins"))
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");

    std::fs::remove_file(&stand_in).unwrap();
    assert_eq!(stdout(&get()), "token-2\n", "the stored artifact runs without the compiler");
}
