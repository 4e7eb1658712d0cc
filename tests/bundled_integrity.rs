//! A keyhelper whose embedded plugin was altered refuses to run it.

mod support;

use support::BoundedRun;

use std::os::unix::fs::PermissionsExt;

#[test]
fn an_altered_bundled_plugin_is_refused() {
    let original = std::fs::read(env!("CARGO_BIN_EXE_keyhelper-full")).unwrap();
    let azure = std::fs::read(
        support::repo_root().join("target/plugin-build/wasm32-wasip2/plugin/keyhelper_plugin_azure.wasm"),
    )
    .expect("the bundled azure plugin was built by host/build.rs");
    let offset = memchr::memmem::find(&original, &azure).expect("the azure component is embedded verbatim");

    // Flip one byte in the middle of the embedded component.
    let mut altered = original;
    altered[offset + azure.len() / 2] ^= 0x01;
    let home = support::Home::new("bundled-integrity");
    let install = home.path().join("altered");
    std::fs::create_dir(&install).unwrap();
    let binary = install.join("keyhelper");
    std::fs::copy(support::keyhelper_exe(), &binary).unwrap();
    let full = install.join("keyhelper-full");
    std::fs::write(&full, &altered).unwrap();
    std::fs::set_permissions(&full, std::fs::Permissions::from_mode(0o755)).unwrap();
    home.fake_tool("az", "#!/bin/sh\necho '{\"accessToken\":\"eyJ-token\",\"expires_on\":4102444800}'\n");

    let output = home.command(&binary).args(["get", "azure"]).output_within();
    assert_eq!(output.status.code(), Some(9), "{}", support::stderr(&output));
    assert!(output.stdout.is_empty());
    let stderr = support::stderr(&output);
    assert!(stderr.contains("plugin 'azure' failed its integrity check"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // The unaltered binary serves the same request.
    let output = home.run(&["get", "azure"]);
    assert_eq!(support::stdout(&output), "eyJ-token\n", "{}", support::stderr(&output));
}
