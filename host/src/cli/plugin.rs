//! `keyhelper plugin install | list | inspect | remove`: third-party provider
//! plugins, installed only after the user has seen and granted what they ask for.

use std::borrow::Cow;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Subcommand;
use keyhelper_core::capabilities::Capabilities;
use keyhelper_core::catalog::Origin;
use keyhelper_core::clock::unix_now;
use keyhelper_core::failure::{ExitClass, Failure};
use keyhelper_core::grants::{self, ManifestGrant, ManifestGrants};
use keyhelper_core::installed::{InstallRecord, InstalledPlugins};
use keyhelper_core::manifest::ProviderManifest;
use sha2::{Digest, Sha256};

use crate::bundled;
use crate::environment::Environment;
use crate::manifest_check;
use crate::runtime::sandbox::CallContext;
use crate::runtime::{IntegrityCheck, LoadedPlugin, PluginRuntime, PluginSource};

/// Subcommands of `keyhelper plugin`.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Install a provider plugin: a component `.wasm` with its manifest beside it.
    Install {
        /// The component file.
        path: PathBuf,
        /// Its provider manifest (default: `plugin.toml` beside the component).
        #[arg(long, value_name = "PATH")]
        manifest: Option<PathBuf>,
        /// The sha256 the component must have (hex); anything else is refused.
        #[arg(long, value_name = "HEX")]
        sha256: Option<String>,
        /// Grant what the plugin asks for without asking (needed without a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// List plugins: name, version, source, hash and granted capabilities.
    List(super::JsonArg),
    /// Show everything about one plugin and its provider.
    Inspect {
        /// The plugin's name.
        name: String,
    },
    /// Remove an installed plugin.
    Remove {
        /// The plugin's name.
        name: String,
    },
    /// Review and grant what your own provider manifest (in
    /// ~/.config/keyhelper/providers/) asks beyond keyhelper's bundled one.
    Grant {
        /// The provider's name.
        name: String,
        /// Grant without asking (needed without a terminal).
        #[arg(long)]
        yes: bool,
    },
}

/// Runs `plugin …`.
pub fn run(env: &Environment, command: &PluginCommand) -> Result<(), Failure> {
    let installed = InstalledPlugins::new(env.dirs.plugins_dir());
    match command {
        PluginCommand::Install { path, manifest, sha256, yes } => {
            install(env, &installed, path, manifest.as_deref(), sha256.as_deref(), *yes)
        }
        PluginCommand::List(args) => list(env, &installed, args.json),
        PluginCommand::Inspect { name } => inspect(env, &installed, name),
        PluginCommand::Remove { name } => remove(env, &installed, name),
        PluginCommand::Grant { name, yes } => grant(env, name, *yes),
    }
}

/// Grants a user manifest what it asks, pinned to its bytes.
fn grant(env: &Environment, name: &str, yes: bool) -> Result<(), Failure> {
    let Some(Origin::UserManifest { path, overrides_bundled, ungranted }) = env.catalog.origin(name) else {
        return Err(Failure::new(
            ExitClass::Usage,
            format!("'{name}' is not a provider manifest of yours, so there is nothing to grant"),
        )
        .hint(
            "bundled providers need no grant; installed plugins are granted at `keyhelper plugin install`",
        ));
    };
    if ungranted.is_empty() {
        eprintln!("keyhelper: {} asks for nothing that is not granted", path.display());
        return Ok(());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::new(ExitClass::Config, format!("cannot read {}: {e}", path.display())))?;
    let sha256 = grants::manifest_sha256(&text);
    let beyond = if *overrides_bundled {
        "beyond keyhelper's bundled provider"
    } else {
        "(a provider keyhelper does not bundle)"
    };
    eprintln!("keyhelper: {} (sha256 {sha256}) asks {beyond} to:", path.display());
    for line in describe_or_nothing(ungranted) {
        eprintln!("  {line}");
    }
    confirm_grant(yes)?;
    let manifest = env.catalog.get(name).expect("the provider exists");
    let record = ManifestGrant { sha256, granted: manifest.capabilities.clone() };
    ManifestGrants::new(env.dirs.grants_dir())
        .record(name, &record)
        .map_err(|e| Failure::new(ExitClass::Store, format!("cannot record the grant for '{name}': {e}")))?;
    if let Some(cache) = env.cache() {
        let _ = cache.clear(|entry| entry.provider == name);
    }
    eprintln!("keyhelper: granted; an edit to {} will need a new grant", path.display());
    Ok(())
}

fn install(
    env: &Environment,
    installed: &InstalledPlugins,
    path: &Path,
    manifest_path: Option<&Path>,
    pinned: Option<&str>,
    yes: bool,
) -> Result<(), Failure> {
    let wasm = std::fs::read(path)
        .map_err(|e| Failure::new(ExitClass::Usage, format!("cannot read {}: {e}", path.display())))?;
    let sha256 = hex::encode(Sha256::digest(&wasm));
    if let Some(pinned) = pinned.map(str::to_ascii_lowercase).filter(|p| *p != sha256) {
        return Err(Failure::new(
            ExitClass::Plugin,
            format!("not installed: {} has sha256 {sha256}, not the pinned {pinned}", path.display()),
        )
        .hint("check where the file came from; the pin protects you from a different file"));
    }

    // Is it a component of a supported contract? Checked before anything else.
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let runtime = PluginRuntime::new(env.dirs.artifact_dir())
        .map_err(|e| Failure::new(ExitClass::Internal, format!("cannot start the plugin runtime: {e:#}")))?;
    let plugin = runtime
        .load(&PluginSource {
            name: &stem,
            wasm: Cow::Borrowed(&wasm),
            sha256: &sha256,
            check: IntegrityCheck::EveryLoad,
        })
        .map_err(|e| Failure::from(e).context(format!("not installed: {}", path.display())))?;

    let manifest_path =
        manifest_path.map(Path::to_path_buf).unwrap_or_else(|| path.with_file_name("plugin.toml"));
    let manifest_text = std::fs::read_to_string(&manifest_path).map_err(|e| {
        Failure::new(
            ExitClass::Usage,
            format!("not installed: cannot read the manifest {}: {e}", manifest_path.display()),
        )
        .hint("put the provider manifest in plugin.toml beside the component, or pass --manifest")
    })?;
    let manifest = ProviderManifest::parse(&manifest_text).map_err(|e| {
        Failure::new(
            ExitClass::Config,
            format!("not installed: manifest {} is invalid: {e}", manifest_path.display()),
        )
    })?;
    check_identity(&manifest)?;
    let version = plugin_version(&plugin, &manifest)?;

    let previous = installed.get(&manifest.name).map(|p| p.record.granted);
    let requested = manifest.capabilities.clone();
    let new = match &previous {
        Some(granted) => requested.beyond(granted),
        None => requested.clone(),
    };
    eprintln!(
        "keyhelper: plugin '{}' {version} (keyhelper:provider@{}, sha256 {sha256}) asks to:",
        manifest.name,
        plugin.api_version()
    );
    for line in describe_or_nothing(&requested) {
        let mark = if previous.is_some() && new.describe().contains(&line) { " (new)" } else { "" };
        eprintln!("  {line}{mark}");
    }
    if previous.is_none() || !new.is_empty() {
        confirm_grant(yes)?;
    }

    let record = InstallRecord {
        name: manifest.name.clone(),
        version,
        api_version: plugin.api_version().to_string(),
        source: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string(),
        sha256,
        installed_at: unix_now(),
        granted: requested,
    };
    installed.install(&record, &wasm, &manifest_text).map_err(|e| {
        Failure::new(ExitClass::Store, format!("cannot install plugin '{}': {e}", record.name))
    })?;
    if let Some(cache) = env.cache() {
        let _ = cache.clear(|entry| entry.provider == record.name);
    }
    eprintln!("keyhelper: installed plugin '{}' {}", record.name, record.version);
    Ok(())
}

/// The manifest must name the plugin it ships with, and not shadow a bundled one.
fn check_identity(manifest: &ProviderManifest) -> Result<(), Failure> {
    if manifest.plugin != manifest.name {
        return Err(Failure::new(
            ExitClass::Config,
            format!(
                "not installed: the manifest's plugin '{}' differs from its name '{}'",
                manifest.plugin, manifest.name
            ),
        )
        .hint("an installed plugin's manifest sets name and plugin to the same value"));
    }
    if bundled::find(&manifest.name).is_some() {
        return Err(Failure::new(
            ExitClass::Usage,
            format!("not installed: '{}' is the name of a bundled plugin", manifest.name),
        )
        .hint("choose another name; to change a bundled provider's settings, put a manifest in ~/.config/keyhelper/providers/"));
    }
    Ok(())
}

/// Asks the plugin to describe itself (with no capabilities at all) and checks
/// it agrees with its manifest; returns its version.
fn plugin_version(plugin: &LoadedPlugin, manifest: &ProviderManifest) -> Result<String, Failure> {
    let info = plugin
        .describe(CallContext::granting_nothing(&manifest.name))
        .map_err(|e| Failure::from(e).context("not installed"))?;
    manifest_check::check(&info, manifest).map_err(|difference| {
        Failure::new(
            ExitClass::Config,
            format!("not installed: the plugin and its manifest disagree: {difference}"),
        )
        .hint("make the manifest's name, [options] and supports_refresh match what the plugin's describe() returns")
    })?;
    Ok(info.version)
}

fn describe_or_nothing(capabilities: &Capabilities) -> Vec<String> {
    let lines = capabilities.describe();
    if lines.is_empty() { vec!["nothing outside its sandbox".to_string()] } else { lines }
}

/// Gets the user's consent: `--yes`, or a "y" typed at a terminal.
fn confirm_grant(yes: bool) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(Failure::new(
            ExitClass::Usage,
            "not installed: nobody is at a terminal to grant these capabilities",
        )
        .hint("review them above and rerun with --yes to grant them"));
    }
    eprint!("Grant these and install? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::new(ExitClass::Usage, e.to_string()))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure::new(ExitClass::Usage, "not installed: the grant was declined"))
    }
}

/// One row of `plugin list`.
struct PluginRow {
    name: String,
    version: String,
    source: &'static str,
    sha256: String,
    providers: Vec<String>,
    granted: Vec<String>,
}

/// The width `plugin list` keeps within.
const LIST_WIDTH: usize = 100;

fn list(env: &Environment, installed: &InstalledPlugins, json: bool) -> Result<(), Failure> {
    let providers_of = |plugin: &str| {
        env.catalog.all().filter(|m| m.plugin == plugin).map(|m| m.name.clone()).collect::<Vec<_>>()
    };
    let mut rows: Vec<PluginRow> = bundled::BUNDLED_PLUGINS
        .iter()
        .map(|plugin| PluginRow {
            name: plugin.name.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            source: "bundled",
            sha256: plugin.sha256.to_string(),
            providers: providers_of(plugin.name),
            granted: env
                .catalog
                .all()
                .filter(|m| m.plugin == plugin.name)
                .flat_map(|m| env.catalog.granted(&m.name).unwrap_or_default().describe())
                .fold(Vec::new(), |mut all, line| {
                    if !all.contains(&line) {
                        all.push(line);
                    }
                    all
                }),
        })
        .collect();
    rows.extend(installed.list().into_iter().map(|plugin| PluginRow {
        providers: providers_of(&plugin.record.name),
        name: plugin.record.name,
        version: plugin.record.version,
        source: "installed",
        sha256: plugin.record.sha256,
        granted: plugin.record.granted.describe(),
    }));
    if json {
        let document: Vec<serde_json::Value> = rows
            .iter()
            .map(|row| {
                serde_json::json!({
                    "name": row.name, "version": row.version, "source": row.source, "sha256": row.sha256,
                    "providers": row.providers, "granted": row.granted,
                })
            })
            .collect();
        return super::print_json(&serde_json::Value::Array(document));
    }
    let mut out = format!(
        "{:<20} {:<8} {:<9} {:<12} {}\n",
        "PLUGIN", "VERSION", "SOURCE", "SHA256", "PROVIDERS: GRANTED"
    );
    for row in &rows {
        let granted = if row.granted.is_empty() { "nothing".to_string() } else { row.granted.join("; ") };
        let line = format!(
            "{:<20} {:<8} {:<9} {:<12} {}: {granted}",
            row.name,
            row.version,
            row.source,
            &row.sha256[..12],
            row.providers.join(", ")
        );
        out.push_str(&fit(&line, LIST_WIDTH));
        out.push('\n');
    }
    out.push_str("(`keyhelper plugin inspect NAME` shows all; `--json` for scripts)\n");
    print!("{out}");
    Ok(())
}

/// `line` cut to `width` characters, ending in `…` when cut.
fn fit(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        return line.to_string();
    }
    let mut cut: String = line.chars().take(width - 1).collect();
    cut.push('…');
    cut
}

fn inspect(env: &Environment, installed: &InstalledPlugins, name: &str) -> Result<(), Failure> {
    // A provider's name (`1password`) or its plugin's (`onepassword`).
    let manifest =
        env.catalog.get(name).or_else(|| env.catalog.all().find(|m| m.plugin == name)).ok_or_else(|| {
            Failure::new(ExitClass::NotFound, format!("no plugin or provider is called '{name}'"))
                .hint("`keyhelper plugin list` shows the plugins")
        })?;
    let name = manifest.name.as_str();
    let mut out = format!("provider:     {} — {}\n", manifest.name, manifest.display_name);
    out.push_str(&format!("description:  {}\n", manifest.description));
    out.push_str(&format!("plugin:       {}\n", manifest.plugin));
    match (env.catalog.origin(name), installed.get(&manifest.plugin), bundled::find(&manifest.plugin)) {
        (_, Some(plugin), _) => {
            let r = &plugin.record;
            out.push_str(&format!(
                "version:      {}\ncontract:     keyhelper:provider@{}\n",
                r.version, r.api_version
            ));
            out.push_str(&format!("source:       {}\nsha256:       {}\n", r.source, r.sha256));
            out.push_str(&format!("installed in: {}\n", plugin.dir.display()));
        }
        (_, None, Some(plugin)) => {
            out.push_str(&format!("source:       bundled with keyhelper {}\n", env!("CARGO_PKG_VERSION")));
            out.push_str(&format!("sha256:       {}\n", plugin.sha256));
        }
        _ => out.push_str("source:       (plugin not installed)\n"),
    }
    if let Some(Origin::UserManifest { path, overrides_bundled, ungranted }) = env.catalog.origin(name) {
        let overrides = if *overrides_bundled { " (overrides the bundled one)" } else { "" };
        out.push_str(&format!("manifest:     {}{overrides}\n", path.display()));
        if !ungranted.is_empty() {
            out.push_str(&format!(
                "not granted:  {} (`keyhelper plugin grant {name}`)\n",
                ungranted.describe().join("; ")
            ));
        }
    }
    out.push_str("declares:\n");
    for line in describe_or_nothing(&manifest.capabilities) {
        out.push_str(&format!("  {line}\n"));
    }
    let granted = env.catalog.granted(name).unwrap_or_default();
    out.push_str("granted:\n");
    for line in describe_or_nothing(&granted) {
        out.push_str(&format!("  {line}\n"));
    }
    out.push_str("options:\n");
    for (option, spec) in &manifest.options {
        let required = if spec.required { " [required]" } else { "" };
        out.push_str(&format!("  {option}: {}{required}\n", spec.help));
    }
    print!("{out}");
    Ok(())
}

fn remove(env: &Environment, installed: &InstalledPlugins, name: &str) -> Result<(), Failure> {
    if bundled::find(name).is_some() {
        return Err(Failure::new(
            ExitClass::Usage,
            format!("'{name}' is bundled with keyhelper and cannot be removed"),
        ));
    }
    let removed = installed
        .remove(name)
        .map_err(|e| Failure::new(ExitClass::Store, format!("cannot remove plugin '{name}': {e}")))?;
    if !removed {
        return Err(Failure::new(ExitClass::NotFound, format!("no plugin '{name}' is installed"))
            .hint("`keyhelper plugin list` shows the plugins"));
    }
    if let Some(cache) = env.cache() {
        let _ = cache.clear(|entry| entry.provider == name);
    }
    eprintln!("keyhelper: removed plugin '{name}'");
    Ok(())
}
