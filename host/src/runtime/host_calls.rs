//! The functions a plugin may call (`keyhelper:provider/host`), each checked
//! against the call's [`CapabilityGrant`](super::capability::CapabilityGrant)
//! before it touches anything outside the sandbox.

use std::ffi::OsString;

use super::bindings::v0_1_0::keyhelper::provider::{host, types};
use super::http;
use super::process::{self, ProcessError};
use super::sandbox::PluginState;

/// Longest log line kept from a plugin.
const MAX_LOG_LINE: usize = 4096;
/// Most log lines kept from one call.
const MAX_LOG_LINES: usize = 256;
/// Secrets shorter than this are not searched for in argv (too many false hits).
const MIN_SECRET_LEN_FOR_ARGV_CHECK: usize = 6;

impl PluginState {
    /// Records a refused host call and builds the error the plugin receives.
    fn deny(&mut self, reason: String) -> host::HostError {
        tracing::debug!("plugin for '{}' denied: {reason}", self.call.provider);
        self.denials.push(reason.clone());
        host::HostError::Denied(reason)
    }

    fn check_command(&mut self, command: &host::Command) -> Result<(), host::HostError> {
        let grant = &self.call.grant;
        let verdict = grant
            .check_exec(&command.program, &command.args)
            .and_then(|()| command.env.iter().try_for_each(|(name, _)| grant.check_env(name)));
        if let Err(reason) = verdict {
            return Err(self.deny(reason));
        }
        let leaks_secret = self.known_secrets.iter().any(|secret| {
            secret.len() >= MIN_SECRET_LEN_FOR_ARGV_CHECK
                && command.args.iter().any(|arg| arg.contains(secret.as_str()))
        });
        if leaks_secret {
            return Err(self.deny(format!(
                "passing a secret in the arguments of `{}` is refused (other users can read argv); pass it on stdin or in an environment variable",
                command.program
            )));
        }
        Ok(())
    }

    /// `PATH`, `HOME`, the granted variables that are set, then the plugin's own.
    fn child_env(&self, command: &host::Command) -> Vec<(String, OsString)> {
        let inherited =
            ["PATH", "HOME"].into_iter().chain(self.call.grant.env_names().iter().map(String::as_str));
        let mut env: Vec<(String, OsString)> =
            inherited.filter_map(|name| Some((name.to_string(), std::env::var_os(name)?))).collect();
        for (name, value) in &command.env {
            env.retain(|(n, _)| n != name);
            env.push((name.clone(), value.into()));
        }
        env
    }
}

impl types::Host for PluginState {}

impl host::Host for PluginState {
    fn run(&mut self, command: host::Command) -> Result<host::CommandOutput, host::HostError> {
        self.check_command(&command)?;
        let env = self.child_env(&command);
        tracing::debug!("running `{} {}`", command.program, command.args.join(" "));
        let limits = self.call.limits.process;
        let result = self.host_call(|_| {
            process::run(&command.program, &command.args, &env, command.stdin.as_deref(), limits)
        });
        match result {
            Ok(out) => {
                Ok(host::CommandOutput { exit_code: out.exit_code, stdout: out.stdout, stderr: out.stderr })
            }
            Err(e @ ProcessError::NotInstalled(_)) => Err(host::HostError::NotInstalled(e.to_string())),
            Err(e @ ProcessError::Spawn { .. }) => Err(host::HostError::Failed(e.to_string())),
            Err(e @ ProcessError::TimedOut { .. }) => Err(host::HostError::TimedOut(e.to_string())),
            Err(e @ ProcessError::TooLarge { .. }) => Err(host::HostError::TooLarge(e.to_string())),
        }
    }

    fn env_var(&mut self, name: String) -> Result<Option<String>, host::HostError> {
        if let Err(reason) = self.call.grant.check_env(&name) {
            return Err(self.deny(reason));
        }
        match std::env::var(&name) {
            Ok(value) => Ok(Some(value)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(host::HostError::Failed(format!("environment variable {name} is not valid UTF-8")))
            }
        }
    }

    fn stored_secret(&mut self, connection: String) -> Result<Option<String>, host::HostError> {
        if let Err(reason) = self.call.grant.check_stored_secrets() {
            return Err(self.deny(reason));
        }
        let provider = self.call.provider.clone();
        let secrets = self.call.secrets.clone();
        let found = self
            .host_call(|_| secrets.read(&provider, &connection))
            .map_err(|e| host::HostError::Failed(format!("could not read the secret store: {e:#}")))?;
        Ok(found.map(|secret| {
            let value = secret.expose().to_string();
            self.known_secrets.push(value.clone());
            value
        }))
    }

    fn http(&mut self, request: host::HttpRequest) -> Result<host::HttpResponse, host::HostError> {
        if let Err(reason) = self.call.grant.check_url(&request.url) {
            return Err(self.deny(reason));
        }
        let limits = self.call.limits;
        let outgoing = http::Request {
            method: &request.method,
            url: &request.url,
            headers: &request.headers,
            body: request.body.as_deref(),
        };
        tracing::debug!("{} {}", request.method, request.url);
        match self.host_call(|_| http::send(&outgoing, limits.http_timeout, limits.http_max_body)) {
            Ok(r) => Ok(host::HttpResponse { status: r.status, headers: r.headers, body: r.body }),
            Err(e @ http::HttpError::TimedOut(_)) => Err(host::HostError::TimedOut(e.to_string())),
            Err(e @ http::HttpError::TooLarge(..)) => Err(host::HostError::TooLarge(e.to_string())),
            Err(e @ http::HttpError::Failed { .. }) => Err(host::HostError::Failed(e.to_string())),
        }
    }

    fn log(&mut self, level: host::LogLevel, message: String) {
        if self.logs.len() >= MAX_LOG_LINES {
            return;
        }
        let level = match level {
            host::LogLevel::Error => tracing::Level::ERROR,
            host::LogLevel::Warn => tracing::Level::WARN,
            host::LogLevel::Info => tracing::Level::INFO,
            host::LogLevel::Debug => tracing::Level::DEBUG,
            host::LogLevel::Trace => tracing::Level::TRACE,
        };
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let cut = (0..=MAX_LOG_LINE).rev().find(|i| message.is_char_boundary(*i)).unwrap_or(0);
            message.truncate(cut);
        }
        self.logs.push((level, message));
    }

    fn now(&mut self) -> i64 {
        crate::credential::unix_now()
    }
}
