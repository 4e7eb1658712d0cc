//! Whether a person is there to answer a prompt. Helpers are mostly run by
//! tools in the background; prompting then hangs them or pops up windows
//! nobody asked for.

use std::io::IsTerminal;

/// What the environment says about the caller.
#[derive(Debug, Clone, Default)]
pub struct CallerHints {
    /// Whether stdin and stderr are terminals.
    pub has_terminal: bool,
    /// `CLAUDE_HELPER_CONTEXT` (Claude Desktop / Cowork).
    pub claude_helper_context: Option<String>,
    /// `KUBERNETES_EXEC_INFO` (kubectl exec plugins).
    pub kubernetes_exec_info: Option<String>,
}

impl CallerHints {
    /// Reads the hints of this process.
    pub fn from_process() -> Self {
        Self {
            has_terminal: std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
            claude_helper_context: std::env::var("CLAUDE_HELPER_CONTEXT").ok(),
            kubernetes_exec_info: std::env::var("KUBERNETES_EXEC_INFO").ok(),
        }
    }

    /// Whether the caller may be prompted: a terminal, and no caller saying
    /// otherwise.
    pub fn is_interactive(&self) -> bool {
        if !self.has_terminal {
            return false;
        }
        if let Some(context) = &self.claude_helper_context {
            return context == "interactive";
        }
        if let Some(info) = &self.kubernetes_exec_info {
            let interactive = serde_json::from_str::<serde_json::Value>(info)
                .ok()
                .and_then(|v| v.pointer("/spec/interactive").and_then(serde_json::Value::as_bool));
            return interactive != Some(false);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints(terminal: bool, claude: Option<&str>, kube: Option<&str>) -> CallerHints {
        CallerHints {
            has_terminal: terminal,
            claude_helper_context: claude.map(Into::into),
            kubernetes_exec_info: kube.map(Into::into),
        }
    }

    #[test]
    fn no_terminal_is_never_interactive() {
        assert!(!hints(false, Some("interactive"), None).is_interactive());
    }

    #[test]
    fn claude_contexts_other_than_interactive_are_not() {
        assert!(hints(true, Some("interactive"), None).is_interactive());
        for context in ["mid-session-refresh", "scheduled-task", "setup-test", "background"] {
            assert!(!hints(true, Some(context), None).is_interactive(), "{context}");
        }
    }

    #[test]
    fn kubectl_spec_interactive_false_is_not() {
        let info = r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}"#;
        assert!(!hints(true, None, Some(info)).is_interactive());
        assert!(hints(true, None, Some(&info.replace("false", "true"))).is_interactive());
        assert!(hints(true, None, None).is_interactive());
    }
}
