//! The functions a plugin may call (`keyhelper:provider/host`), each checked
//! against the call's [`CapabilityGrant`](super::capability::CapabilityGrant)
//! before it touches anything outside the sandbox.

use std::ffi::OsString;

use keyhelper_core::platform;
use keyhelper_core::platform::process::{self, ProcessError, ProcessOutput};

use super::argv_guard::SecretPieces;
use super::http;
use super::sandbox::PluginState;

/// Longest log line kept from a plugin.
const MAX_LOG_LINE: usize = 4096;
/// Most log lines kept from one call.
const MAX_LOG_LINES: usize = 256;
/// Secrets shorter than this are not searched for in argv (too many false hits).
const MIN_SECRET_LEN_FOR_ARGV_CHECK: usize = 6;
/// Most refused host calls recorded per call, and the longest record kept:
/// a plugin refused in a loop must not grow the host's memory.
const MAX_DENIALS: usize = 16;
const MAX_DENIAL_LEN: usize = 512;
/// Largest file `read-file` returns.
const MAX_FILE: u64 = 1 << 20;
/// Most named secrets one call may save, and the longest.
const MAX_SAVES: usize = 4;
const MAX_SAVED_LEN: usize = 16 * 1024;
/// Most secrets remembered per call for the argv check and log redaction.
const MAX_KNOWN_SECRETS: usize = 64;

/// A time limit and output cap a plugin asked for one program (contract
/// 0.3.0); they can only tighten the host's limits.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestedLimits {
    /// Milliseconds the program may run; `None` for the host's limit.
    pub timeout_ms: Option<u32>,
    /// Bytes of output kept; `None` for the host's limit.
    pub max_output: Option<u32>,
}

/// Why a host call did not complete, before it is put in the `host-error` of
/// the plugin's contract version.
#[derive(Debug)]
pub enum HostFailure {
    /// Not declared or not granted.
    Denied(String),
    /// The program is not on `PATH`.
    NotInstalled(String),
    /// Allowed, but failed.
    Failed(String),
    /// Over its time limit.
    TimedOut(String),
    /// Over its size limit.
    TooLarge(String),
}

impl From<ProcessError> for HostFailure {
    fn from(e: ProcessError) -> Self {
        match e {
            ProcessError::NotInstalled(_) => Self::NotInstalled(e.to_string()),
            ProcessError::Spawn { .. } => Self::Failed(e.to_string()),
            ProcessError::TimedOut { .. } => Self::TimedOut(e.to_string()),
            ProcessError::TooLarge { .. } => Self::TooLarge(e.to_string()),
        }
    }
}

impl From<http::HttpError> for HostFailure {
    fn from(e: http::HttpError) -> Self {
        match e {
            http::HttpError::TimedOut(_) => Self::TimedOut(e.to_string()),
            http::HttpError::TooLarge(..) => Self::TooLarge(e.to_string()),
            http::HttpError::Failed { .. } => Self::Failed(e.to_string()),
        }
    }
}

/// The host functions, whatever the contract version.
impl PluginState {
    /// Records a refused host call and builds the error the plugin receives.
    fn deny(&mut self, reason: String) -> HostFailure {
        if self.denials.len() < MAX_DENIALS {
            tracing::debug!("plugin for '{}' denied: {reason}", self.call.provider);
            self.denials.push(truncated(&reason, MAX_DENIAL_LEN).to_string());
        } else {
            self.denials_unrecorded += 1;
        }
        HostFailure::Denied(reason)
    }

    fn check_command(
        &mut self,
        program: &str,
        args: &[String],
        env: &[(String, String)],
    ) -> Result<(), HostFailure> {
        let grant = &self.call.grant;
        let verdict = grant
            .check_exec(program, args)
            .and_then(|()| env.iter().try_for_each(|(name, _)| grant.check_env(name)));
        if let Err(reason) = verdict {
            return Err(self.deny(reason));
        }
        let leaks_secret =
            self.known_secrets.iter().filter(|s| s.len() >= MIN_SECRET_LEN_FOR_ARGV_CHECK).any(|secret| {
                let pieces = SecretPieces::of(secret);
                args.iter().any(|arg| pieces.revealed_by(arg))
            });
        if leaks_secret {
            return Err(self.deny(format!(
                "passing a secret in the arguments of `{program}` is refused (other users can read argv); pass it on stdin or in an environment variable"
            )));
        }
        Ok(())
    }

    /// The variables every program needs (`PATH`, `HOME`, and on Windows
    /// `SystemRoot`, `PATHEXT`…), the granted ones that are set, then the
    /// plugin's own.
    fn child_env(&self, extra: &[(String, String)]) -> Vec<(String, OsString)> {
        let inherited = platform::BASE_CHILD_ENV
            .iter()
            .copied()
            .chain(self.call.grant.env_names().iter().map(String::as_str));
        let mut env: Vec<(String, OsString)> =
            inherited.filter_map(|name| Some((name.to_string(), std::env::var_os(name)?))).collect();
        for (name, value) in extra {
            env.retain(|(n, _)| n != name);
            env.push((name.clone(), value.into()));
        }
        env
    }

    /// `run`: a declared program with a declared argument pattern.
    fn run_program(
        &mut self,
        program: &str,
        args: &[String],
        extra_env: &[(String, String)],
        stdin: Option<&[u8]>,
        requested: RequestedLimits,
    ) -> Result<ProcessOutput, HostFailure> {
        self.check_command(program, args, extra_env)?;
        let env = self.child_env(extra_env);
        tracing::debug!("running `{program} {}`", args.join(" "));
        let mut limits = self.call.limits.process;
        if let Some(ms) = requested.timeout_ms {
            limits.timeout = limits.timeout.min(std::time::Duration::from_millis(ms.into()));
        }
        if let Some(bytes) = requested.max_output {
            limits.max_output = limits.max_output.min(bytes as usize);
        }
        let left = self.time_left().map_err(HostFailure::TimedOut)?;
        let cut_by_deadline = left < limits.timeout;
        limits.timeout = limits.timeout.min(left);
        process::run(program, args, &env, stdin, limits).map_err(|e| match e {
            ProcessError::TimedOut { .. } if cut_by_deadline => HostFailure::TimedOut(format!(
                "`{program}` was stopped: the plugin call ran past its deadline of {}s",
                self.call.limits.call.as_secs_f32()
            )),
            other => other.into(),
        })
    }

    /// `env-var`: a declared variable of keyhelper's environment.
    fn read_env(&mut self, name: &str) -> Result<Option<String>, HostFailure> {
        if let Err(reason) = self.call.grant.check_env(name) {
            return Err(self.deny(reason));
        }
        match std::env::var(name) {
            Ok(value) => Ok(Some(value)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(HostFailure::Failed(format!("environment variable {name} is not valid UTF-8")))
            }
        }
    }

    /// `stored-secret` and `named-secret`: this provider's main secret for
    /// `connection`, or the one called `name`.
    fn read_stored_secret(
        &mut self,
        connection: &str,
        name: Option<&str>,
    ) -> Result<Option<String>, HostFailure> {
        self.time_left().map_err(HostFailure::TimedOut)?;
        let verdict = self
            .call
            .grant
            .check_stored_secrets()
            .and_then(|()| checked_connection(connection))
            .and_then(|()| name.map_or(Ok(()), checked_name));
        if let Err(reason) = verdict {
            return Err(self.deny(reason));
        }
        if name.is_some() && self.call.grant.check_save_secrets().is_ok() {
            self.lock_connection(connection)?;
        }
        let provider = self.call.provider.clone();
        let secrets = self.call.secrets.clone();
        let found = secrets.read(&provider, connection, name).map_err(|e| {
            self.store_failure = Some(e.to_string());
            HostFailure::Failed(format!("could not read the secret store: {e}"))
        })?;
        Ok(found.map(|secret| {
            let value = secret.expose().to_string();
            self.remember_secret(&value);
            value
        }))
    }

    /// Takes the lock of `connection` for the rest of the call, the first
    /// time a call that may rotate its secrets touches them: another process
    /// renewing through the same connection waits, then reads what this
    /// call saved.
    fn lock_connection(&mut self, connection: &str) -> Result<(), HostFailure> {
        match &self.connection_lock {
            Some((held, _)) if held == connection => return Ok(()),
            Some((held, _)) => {
                let reason = format!("a call may use one connection's secrets; it already uses '{held}'");
                return Err(self.deny(reason));
            }
            None => {}
        }
        let provider = self.call.provider.clone();
        let secrets = self.call.secrets.clone();
        let guard = secrets
            .lock_connection(&provider, connection)
            .map_err(|e| HostFailure::Failed(format!("could not lock connection '{connection}': {e}")))?;
        self.connection_lock = Some((connection.to_string(), guard));
        Ok(())
    }

    /// Adds `value` to the secrets refused in argv and redacted from logs
    /// (each once, and at most [`MAX_KNOWN_SECRETS`]).
    fn remember_secret(&mut self, value: &str) {
        if self.known_secrets.len() < MAX_KNOWN_SECRETS
            && !self.known_secrets.iter().any(|k| k.as_str() == value)
        {
            self.known_secrets.push(zeroize::Zeroizing::new(value.to_string()));
        }
    }

    /// `save-secret`: stores the secret called `name` of `connection`.
    fn save_named_secret(&mut self, connection: &str, name: &str, value: &str) -> Result<(), HostFailure> {
        self.time_left().map_err(HostFailure::TimedOut)?;
        let verdict = self
            .call
            .grant
            .check_save_secrets()
            .and_then(|()| checked_connection(connection))
            .and_then(|()| checked_name(name));
        if let Err(reason) = verdict {
            return Err(self.deny(reason));
        }
        if self.saves >= MAX_SAVES {
            return Err(self.deny(format!("a call may save at most {MAX_SAVES} secrets")));
        }
        if value.trim().is_empty() || value.len() > MAX_SAVED_LEN {
            return Err(HostFailure::Failed(format!(
                "refusing to save `{name}`: it is empty or longer than {MAX_SAVED_LEN} bytes"
            )));
        }
        self.lock_connection(connection)?;
        self.saves += 1;
        self.remember_secret(value);
        let provider = self.call.provider.clone();
        let secrets = self.call.secrets.clone();
        let secret = keyhelper_core::credential::Secret::new(value);
        secrets.save(&provider, connection, name, &secret).map_err(|e| {
            self.store_failure = Some(e.to_string());
            HostFailure::Failed(format!("could not save `{name}` in the secret store: {e}"))
        })
    }

    /// `read-file`: a granted file, whole. Its text is treated as a secret
    /// (a token file): refused in argv, redacted from logs.
    fn read_granted_file(&mut self, path: &str) -> Result<Vec<u8>, HostFailure> {
        self.time_left().map_err(HostFailure::TimedOut)?;
        if let Err(reason) = self.call.grant.check_file(path) {
            return Err(self.deny(reason));
        }
        let read = || -> std::io::Result<Vec<u8>> {
            use std::io::Read;
            // A FIFO or a device would block or never end: only regular files.
            if !std::fs::metadata(path)?.is_file() {
                return Err(std::io::Error::other("not a regular file"));
            }
            let mut bytes = Vec::new();
            std::fs::File::open(path)?.take(MAX_FILE + 1).read_to_end(&mut bytes)?;
            Ok(bytes)
        };
        let bytes = read().map_err(|e| HostFailure::Failed(format!("cannot read {path}: {e}")))?;
        if bytes.len() as u64 > MAX_FILE {
            return Err(HostFailure::TooLarge(format!("{path} is larger than {MAX_FILE} bytes")));
        }
        if let Ok(text) = std::str::from_utf8(&bytes) {
            self.remember_secret(text.trim());
        }
        Ok(bytes)
    }

    /// `http`: a request to a declared URL pattern.
    fn send_http(&mut self, request: &http::Request<'_>) -> Result<http::Response, HostFailure> {
        let checked = self.call.grant.check_url(request.url).and_then(|url| {
            request.headers.iter().try_for_each(|(name, _)| self.call.grant.check_header(name)).map(|()| url)
        });
        let url = match checked {
            Ok(url) => url,
            Err(reason) => return Err(self.deny(reason)),
        };
        let limits = self.call.limits;
        let timeout = limits.http_timeout.min(self.time_left().map_err(HostFailure::TimedOut)?);
        tracing::debug!("{} {url}", request.method);
        let request = http::Request { url: &url, ..*request };
        Ok(http::send(&request, timeout, limits.http_max_body)?)
    }

    /// `log`: kept (bounded) and emitted, redacted, after the call.
    fn record_log(&mut self, level: tracing::Level, mut message: String) {
        if self.logs.len() >= MAX_LOG_LINES {
            return;
        }
        message.truncate(truncated(&message, MAX_LOG_LINE).len());
        self.logs.push((level, message));
    }
}

/// `Ok` if `connection` may name a connection.
fn checked_connection(connection: &str) -> Result<(), String> {
    if super::sandbox::is_valid_connection_name(connection) {
        Ok(())
    } else {
        Err(format!("`{connection}` is not a valid connection name (no `/`, `#` or control characters)"))
    }
}

/// `Ok` if `name` may name a secret of a connection.
fn checked_name(name: &str) -> Result<(), String> {
    if super::sandbox::is_valid_secret_name(name) {
        Ok(())
    } else {
        Err(format!("`{name}` is not a valid secret name (lowercase letters, digits and _, at most 64)"))
    }
}

/// At most the first `max` bytes of `text`, cut at a character boundary.
fn truncated(text: &str, max: usize) -> &str {
    let cut = (0..=max.min(text.len())).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
    &text[..cut]
}

/// Implements one contract version's `host` interface on [`PluginState`] by
/// converting its types to and from the version-independent functions above.
/// `|command| limits` reads a command's [`RequestedLimits`]; the functions a
/// version added come last. (Each version's types are distinct Rust types,
/// even where their shape has not changed.)
macro_rules! host_interface {
    ($module:ident, $version:ident, |$command:ident| $limits:expr, { $($added:item)* }) => {
        mod $module {
            #[allow(unused_imports)]
            use super::{HostFailure, PluginState, RequestedLimits};
            use crate::runtime::bindings::$version::keyhelper::provider::host;
            use crate::runtime::http;

            impl From<HostFailure> for host::HostError {
                fn from(failure: HostFailure) -> Self {
                    match failure {
                        HostFailure::Denied(m) => Self::Denied(m),
                        HostFailure::NotInstalled(m) => Self::NotInstalled(m),
                        HostFailure::Failed(m) => Self::Failed(m),
                        HostFailure::TimedOut(m) => Self::TimedOut(m),
                        HostFailure::TooLarge(m) => Self::TooLarge(m),
                    }
                }
            }

            impl host::Host for PluginState {
                fn run(&mut self, $command: host::Command) -> Result<host::CommandOutput, host::HostError> {
                    let requested = $limits;
                    let mut out = self.run_program(
                        &$command.program,
                        &$command.args,
                        &$command.env,
                        $command.stdin.as_deref(),
                        requested,
                    )?;
                    // Handed to the guest's memory, which the bindings copy it into.
                    Ok(host::CommandOutput {
                        exit_code: out.exit_code,
                        stdout: std::mem::take(&mut out.stdout),
                        stderr: std::mem::take(&mut out.stderr),
                    })
                }

                fn env_var(&mut self, name: String) -> Result<Option<String>, host::HostError> {
                    Ok(self.read_env(&name)?)
                }

                fn stored_secret(&mut self, connection: String) -> Result<Option<String>, host::HostError> {
                    Ok(self.read_stored_secret(&connection, None)?)
                }

                fn http(
                    &mut self,
                    request: host::HttpRequest,
                ) -> Result<host::HttpResponse, host::HostError> {
                    let outgoing = http::Request {
                        method: &request.method,
                        url: &request.url,
                        headers: &request.headers,
                        body: request.body.as_deref(),
                    };
                    let r = self.send_http(&outgoing)?;
                    Ok(host::HttpResponse { status: r.status, headers: r.headers, body: r.body })
                }

                fn log(&mut self, level: host::LogLevel, message: String) {
                    let level = match level {
                        host::LogLevel::Error => tracing::Level::ERROR,
                        host::LogLevel::Warn => tracing::Level::WARN,
                        host::LogLevel::Info => tracing::Level::INFO,
                        host::LogLevel::Debug => tracing::Level::DEBUG,
                        host::LogLevel::Trace => tracing::Level::TRACE,
                    };
                    self.record_log(level, message);
                }

                fn now(&mut self) -> i64 {
                    keyhelper_core::clock::unix_now()
                }

                $($added)*
            }
        }
    };
}

// The `types` interface has no functions; 0.2 shares 0.3's.
impl crate::runtime::bindings::v0_1_0::keyhelper::provider::types::Host for PluginState {}
impl crate::runtime::bindings::v0_3_0::keyhelper::provider::types::Host for PluginState {}

host_interface!(host_v0_1_0, v0_1_0, |command| RequestedLimits::default(), {});
host_interface!(host_v0_2_0, v0_2_0, |command| RequestedLimits::default(), {});
host_interface!(
    host_v0_3_0,
    v0_3_0,
    |command| RequestedLimits { timeout_ms: command.timeout_ms, max_output: command.max_output },
    {
        fn named_secret(
            &mut self,
            connection: String,
            name: String,
        ) -> Result<Option<String>, host::HostError> {
            Ok(self.read_stored_secret(&connection, Some(&name))?)
        }

        fn save_secret(
            &mut self,
            connection: String,
            name: String,
            value: String,
        ) -> Result<(), host::HostError> {
            let value = zeroize::Zeroizing::new(value);
            Ok(self.save_named_secret(&connection, &name, &value)?)
        }

        fn read_file(&mut self, path: String) -> Result<Vec<u8>, host::HostError> {
            Ok(self.read_granted_file(&path)?)
        }
    }
);
