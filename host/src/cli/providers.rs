//! `keyhelper providers`: each provider, its options and its capabilities.

use keyhelper_core::failure::Failure;
use serde_json::{Value, json};

use crate::environment::Environment;

/// Runs `providers`.
pub fn run(env: &Environment, json: bool) -> Result<(), Failure> {
    if json {
        let providers: Vec<Value> = env
            .catalog
            .all()
            .map(|manifest| {
                json!({
                    "name": manifest.name,
                    "display_name": manifest.display_name,
                    "description": manifest.description,
                    "plugin": manifest.plugin,
                    "api": manifest.api.name(),
                    "options": manifest.options.iter().map(|(name, option)| json!({
                        "name": name,
                        "help": option.help,
                        "default": option.default,
                        "required": option.required,
                    })).collect::<Vec<_>>(),
                    "capabilities": manifest.capabilities.describe(),
                })
            })
            .collect();
        return super::print_json(&Value::Array(providers));
    }
    let mut out = String::new();
    for manifest in env.catalog.all() {
        out.push_str(&format!("{} — {}\n  {}\n", manifest.name, manifest.display_name, manifest.description));
        if !manifest.options.is_empty() {
            out.push_str("  options:\n");
            for (name, option) in &manifest.options {
                let mut line = format!("    {name}: {}", option.help);
                if let Some(default) = &option.default {
                    line.push_str(&format!(" [default: {default}]"));
                }
                if option.required {
                    line.push_str(" [required]");
                }
                out.push_str(&line);
                out.push('\n');
            }
        }
        out.push_str("  may:\n");
        let capabilities = manifest.capabilities.describe();
        if capabilities.is_empty() {
            out.push_str("    nothing outside its sandbox\n");
        }
        for capability in capabilities {
            out.push_str(&format!("    {capability}\n"));
        }
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}
