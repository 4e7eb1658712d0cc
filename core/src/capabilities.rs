//! What a provider's plugin may do, as data: the capabilities a manifest
//! declares or a user granted. The host's plugin runtime enforces them.

use serde::{Deserialize, Serialize};

/// A set of capabilities, as declared in a provider manifest or as granted by
/// the user (bundled providers come granted exactly what they declare).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Programs the plugin may run, each with its argument pattern.
    #[serde(default)]
    pub exec: Vec<ExecCapability>,
    /// Environment variables the plugin may read; they are also the only ones
    /// (besides `PATH` and `HOME`) its programs inherit or may be given.
    #[serde(default)]
    pub env: Vec<String>,
    /// URL patterns the plugin may request. `*` matches any run of characters
    /// after the host; `{option}` is replaced by the credential's option value.
    #[serde(default)]
    pub http: Vec<String>,
    /// Whether the plugin may read secrets stored for its own provider.
    #[serde(default)]
    pub stored_secrets: bool,
    /// Whether the plugin may save named secrets (a refresh token the server
    /// rotated) for its own provider's connections (contract 0.3.0).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub save_secrets: bool,
    /// Files the plugin may read whole (contract 0.3.0): a path, or a
    /// placeholder filled like those of `http`: `{option}` with the
    /// credential's option, `{env:NAME}` with a granted variable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// A list option holding a command line the plugin may run exactly as
    /// written (the `command` provider): the user's config is the grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_option: Option<String>,
    /// A list option naming environment variables the plugin may read and
    /// pass on, as the user's config lists them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_option: Option<String>,
}

/// One program a plugin may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecCapability {
    /// The program's bare name, looked up on `PATH`.
    pub command: String,
    /// The positional arguments, in order: a literal matches itself, `*` any
    /// one value, and a final `**` any remaining values. A wildcard never
    /// matches an option (`-x`, `--x`), a file reference (`@file`) or a file
    /// URL (`file://`, `fileb://`): those change what a command does.
    #[serde(default)]
    pub args: Vec<String>,
    /// The options the program may be given, each at most once, in any order
    /// and anywhere among the arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<FlagCapability>,
}

/// One option a program may be given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagCapability {
    /// The option, e.g. `--tenant`.
    pub flag: String,
    /// Its value: a literal, or `*` for any one plain value (as for `args`);
    /// none for an option that takes no value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Whether `arg` is a plain value that a wildcard may match: not an option,
/// a file reference or a file URL.
pub fn is_plain_value(arg: &str) -> bool {
    let lower = arg.to_ascii_lowercase();
    !(arg.starts_with('-')
        || arg.starts_with('@')
        || lower.starts_with("file://")
        || lower.starts_with("fileb://"))
}

impl Capabilities {
    /// The capabilities present in both `self` (declared) and `granted`.
    pub fn intersect(&self, granted: &Capabilities) -> Capabilities {
        Capabilities {
            exec: self.exec.iter().filter(|e| granted.exec.contains(e)).cloned().collect(),
            env: self.env.iter().filter(|e| granted.env.contains(e)).cloned().collect(),
            http: self.http.iter().filter(|h| granted.http.contains(h)).cloned().collect(),
            stored_secrets: self.stored_secrets && granted.stored_secrets,
            save_secrets: self.save_secrets && granted.save_secrets,
            files: self.files.iter().filter(|f| granted.files.contains(f)).cloned().collect(),
            exec_option: self.exec_option.clone().filter(|o| granted.exec_option.as_ref() == Some(o)),
            env_option: self.env_option.clone().filter(|o| granted.env_option.as_ref() == Some(o)),
        }
    }

    /// What `self` asks for beyond `granted`.
    pub fn beyond(&self, granted: &Capabilities) -> Capabilities {
        Capabilities {
            exec: self.exec.iter().filter(|e| !granted.exec.contains(e)).cloned().collect(),
            env: self.env.iter().filter(|e| !granted.env.contains(e)).cloned().collect(),
            http: self.http.iter().filter(|h| !granted.http.contains(h)).cloned().collect(),
            stored_secrets: self.stored_secrets && !granted.stored_secrets,
            save_secrets: self.save_secrets && !granted.save_secrets,
            files: self.files.iter().filter(|f| !granted.files.contains(f)).cloned().collect(),
            exec_option: self.exec_option.clone().filter(|o| granted.exec_option.as_ref() != Some(o)),
            env_option: self.env_option.clone().filter(|o| granted.env_option.as_ref() != Some(o)),
        }
    }

    /// Whether nothing at all is allowed.
    pub fn is_empty(&self) -> bool {
        self.exec.is_empty()
            && self.env.is_empty()
            && self.http.is_empty()
            && !self.stored_secrets
            && !self.save_secrets
            && self.files.is_empty()
            && self.exec_option.is_none()
            && self.env_option.is_none()
    }

    /// Human-readable lines, one per capability, for `providers` and `plugin inspect`.
    pub fn describe(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .exec
            .iter()
            .map(|e| {
                let mut line = std::iter::once(e.command.as_str())
                    .chain(e.args.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(" ");
                for flag in &e.flags {
                    line.push_str(&format!(
                        " [{}{}]",
                        flag.flag,
                        flag.value.as_ref().map(|v| format!(" {v}")).unwrap_or_default()
                    ));
                }
                format!("run `{line}`")
            })
            .collect();
        lines.extend(self.env.iter().map(|name| format!("read env {name}")));
        lines.extend(self.http.iter().map(|url| format!("request {url}")));
        if self.stored_secrets {
            lines.push("read its own stored secrets".to_string());
        }
        if self.save_secrets {
            lines.push("save named secrets (a rotated refresh token) for its own connections".to_string());
        }
        lines.extend(self.files.iter().map(|file| format!("read file {file}")));
        if let Some(option) = &self.exec_option {
            lines.push(format!("run the command line configured in its `{option}` option, exactly"));
        }
        if let Some(option) = &self.env_option {
            lines.push(format!("read the env variables listed in its `{option}` option"));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> Capabilities {
        Capabilities {
            exec: vec![ExecCapability {
                command: "az".into(),
                args: vec!["account".into(), "get-access-token".into()],
                flags: vec![FlagCapability { flag: "--scope".into(), value: Some("*".into()) }],
            }],
            env: vec!["AZURE_CONFIG_DIR".into()],
            http: vec!["{base_url}/v1/models".into()],
            stored_secrets: true,
            files: vec!["{env:AZURE_FEDERATED_TOKEN_FILE}".into()],
            ..Capabilities::default()
        }
    }

    #[test]
    fn intersection_drops_what_was_not_granted() {
        let declared = caps();
        let mut granted = caps();
        granted.exec.clear();
        granted.stored_secrets = false;
        granted.files.clear();
        let both = declared.intersect(&granted);
        assert!(both.exec.is_empty() && !both.stored_secrets && both.files.is_empty());
        assert_eq!(both.env, declared.env);
        let more = declared.beyond(&granted);
        assert_eq!(more.exec, declared.exec);
        assert_eq!(more.files, declared.files);
        assert!(more.stored_secrets && more.env.is_empty() && more.http.is_empty());
        assert!(declared.beyond(&declared).is_empty());
    }
}
