//! Whether a plugin and its provider manifest agree. The manifest is the
//! source of truth (for the options a credential may set, which are required,
//! whether `refresh` is worth calling, and the commands and hosts granted), so
//! a plugin whose `describe()` says otherwise is not used with it: checked at
//! `plugin install` and, for the bundled plugins, by the tests.

use keyhelper_core::manifest::ProviderManifest;

use crate::runtime::outcome::PluginInfo;

/// `Ok` when `info` (the plugin's `describe()`) agrees with `manifest` on the
/// name (the provider's, or the plugin's when one plugin serves several), its option names, which options are required, and
/// `supports_refresh`; otherwise the first difference, on one line.
pub fn check(info: &PluginInfo, manifest: &ProviderManifest) -> Result<(), String> {
    if info.name != manifest.name && info.name != manifest.plugin {
        return Err(format!(
            "the plugin calls itself '{}', the manifest '{}' (plugin '{}')",
            info.name, manifest.name, manifest.plugin
        ));
    }
    for option in &info.options {
        match manifest.options.get(&option.name) {
            None => return Err(format!("option `{}` is not in the manifest", option.name)),
            Some(declared) if declared.required != option.required => {
                return Err(format!(
                    "option `{}` is {} in the manifest but {} for the plugin",
                    option.name,
                    required_or_not(declared.required),
                    required_or_not(option.required)
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = manifest.options.keys().find(|name| !info.options.iter().any(|o| o.name == **name)) {
        return Err(format!("the manifest's option `{extra}` is not one the plugin takes"));
    }
    if info.supports_refresh != manifest.supports_refresh {
        return Err(format!(
            "the plugin says supports_refresh = {}, the manifest {}",
            info.supports_refresh, manifest.supports_refresh
        ));
    }
    Ok(())
}

fn required_or_not(required: bool) -> &'static str {
    if required { "required" } else { "optional" }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use keyhelper_core::bundled_manifests::BUNDLED_MANIFESTS;

    use super::*;
    use crate::bundled;
    use crate::runtime::PluginRuntime;
    use crate::runtime::outcome::PluginOption;
    use crate::runtime::sandbox::CallContext;

    fn info(options: &[(&str, bool)], supports_refresh: bool) -> PluginInfo {
        PluginInfo {
            name: "p".into(),
            version: "1".into(),
            description: String::new(),
            options: options
                .iter()
                .map(|(name, required)| PluginOption {
                    name: name.to_string(),
                    help: String::new(),
                    default: None,
                    required: *required,
                })
                .collect(),
            supports_refresh,
        }
    }

    fn manifest(extra: &str) -> ProviderManifest {
        ProviderManifest::parse(&format!(
            "name = 'p'\ndisplay_name = 'P'\ndescription = 'd'\nplugin = 'p'\n{extra}\n\
             [options.a]\nhelp = 'a'\nrequired = true\n[options.b]\nhelp = 'b'\n"
        ))
        .unwrap()
    }

    #[test]
    fn agreement_needs_the_same_options_requiredness_and_refresh() {
        assert_eq!(check(&info(&[("a", true), ("b", false)], false), &manifest("")), Ok(()));
        let missing = check(&info(&[("a", true)], false), &manifest("")).unwrap_err();
        assert!(missing.contains("`b` is not one the plugin takes"), "{missing}");
        let unknown = check(&info(&[("a", true), ("b", false), ("c", false)], false), &manifest(""));
        assert!(unknown.unwrap_err().contains("`c` is not in the manifest"));
        let optional = check(&info(&[("a", false), ("b", false)], false), &manifest("")).unwrap_err();
        assert!(optional.contains("`a` is required in the manifest but optional"), "{optional}");
        let refresh = check(&info(&[("a", true), ("b", false)], true), &manifest("")).unwrap_err();
        assert!(refresh.contains("supports_refresh"), "{refresh}");
        assert_eq!(
            check(&info(&[("a", true), ("b", false)], true), &manifest("supports_refresh = true")),
            Ok(())
        );
    }

    /// Every bundled manifest against its own plugin's `describe()`, and the
    /// same with one option removed from the manifest, which must fail.
    #[test]
    fn every_bundled_manifest_agrees_with_its_plugin() {
        let artifacts = tempfile::tempdir().unwrap();
        // This test executable is in target/<profile>/deps; `cargo xtask test`
        // builds keyhelper-compile into target/<profile>.
        let exe = std::env::current_exe().unwrap();
        let compiler = exe.parent().and_then(Path::parent).unwrap().join(format!(
            "{}{}",
            keyhelper_core::invocation::COMPILER_EXECUTABLE,
            std::env::consts::EXE_SUFFIX
        ));
        let runtime = PluginRuntime::with_compiler(artifacts.path().to_path_buf(), compiler).unwrap();
        for (name, text) in BUNDLED_MANIFESTS {
            let manifest = ProviderManifest::parse(text).unwrap();
            let plugin = bundled::find(&manifest.plugin).expect("the manifest names a bundled plugin");
            let described = runtime
                .load(&plugin.source())
                .unwrap()
                .describe(CallContext::granting_nothing(name))
                .unwrap();
            assert_eq!(check(&described, &manifest), Ok(()), "providers/{name}.toml");

            let removed = manifest.options.keys().next().expect("every bundled provider has options").clone();
            let mut without = manifest.clone();
            without.options.remove(&removed);
            let err = check(&described, &without).expect_err("a manifest missing an option must not agree");
            assert!(err.contains(&format!("`{removed}` is not in the manifest")), "{err}");
        }
    }
}
