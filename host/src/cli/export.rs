//! `keyhelper export [--format env|dotenv|json] <VAR=credential>…`: prints
//! secrets as shell `export` lines, a `.env` file, or JSON.

use clap::{Args, ValueEnum};
use keyhelper_core::failure::{ExitClass, Failure};
use keyhelper_core::output;

use super::secret_env;
use crate::environment::Environment;

/// Formats of `keyhelper export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// `export VAR='value'` lines for `eval "$(keyhelper export …)"`.
    Env,
    /// `VAR="value"` lines of a .env file.
    Dotenv,
    /// `{"VAR": "value", …}`.
    Json,
}

/// Arguments of `keyhelper export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// `VAR=credential`, or a credential alone for its provider's variable.
    #[arg(required = true, value_name = "VAR=CREDENTIAL")]
    pub bindings: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Env)]
    pub format: ExportFormat,
}

/// Runs `export`.
pub fn run(env: &Environment, args: &ExportArgs) -> Result<(), Failure> {
    let config = env.config()?;
    let secrets = secret_env::fetch(env, &config, &args.bindings, "export")?;
    let pairs: Vec<(&str, &str)> = secrets.iter().map(|(var, s)| (var.as_str(), s.expose())).collect();
    let text = zeroize::Zeroizing::new(render(&pairs, args.format));
    output::print(&text)
        .map_err(|e| Failure::new(ExitClass::Internal, format!("cannot write to stdout: {e}")))
}

fn render(pairs: &[(&str, &str)], format: ExportFormat) -> String {
    match format {
        ExportFormat::Env => pairs
            .iter()
            .map(|(var, value)| format!("export {var}='{}'\n", value.replace('\'', r"'\''")))
            .collect(),
        ExportFormat::Dotenv => pairs
            .iter()
            .map(|(var, value)| {
                let escaped = value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n");
                format!("{var}=\"{escaped}\"\n")
            })
            .collect(),
        ExportFormat::Json => {
            let map: serde_json::Map<String, serde_json::Value> =
                pairs.iter().map(|(var, value)| (var.to_string(), (*value).into())).collect();
            format!("{}\n", serde_json::Value::Object(map))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_for_each_format() {
        let pairs = [("A", "it's \"x\"\\y"), ("B", "plain")];
        assert_eq!(render(&pairs, ExportFormat::Env), "export A='it'\\''s \"x\"\\y'\nexport B='plain'\n");
        assert_eq!(render(&pairs, ExportFormat::Dotenv), "A=\"it's \\\"x\\\"\\\\y\"\nB=\"plain\"\n");
        assert_eq!(render(&pairs, ExportFormat::Json), "{\"A\":\"it's \\\"x\\\"\\\\y\",\"B\":\"plain\"}\n");
    }
}
