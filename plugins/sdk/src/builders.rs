//! Small constructors and accessors on the WIT types, so plugin code reads like
//! ordinary Rust instead of struct literals.

use crate::bindings::keyhelper::provider::host;
use crate::{
    Command, CommandOutput, Credential, Failure, HostError, HttpRequest, HttpResponse, OptionSpec,
    PluginInfo, ProviderError, Request, Validation, Verdict,
};

impl PluginInfo {
    /// Starts a description with no options.
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            options: Vec::new(),
            supports_refresh: false,
        }
    }

    /// Adds an option the provider accepts.
    pub fn option(mut self, name: &str, help: &str, default: Option<&str>, required: bool) -> Self {
        self.options.push(OptionSpec {
            name: name.into(),
            help: help.into(),
            default: default.map(Into::into),
            required,
        });
        self
    }

    /// Says that `refresh` renews a credential better than fetching again.
    pub fn refreshable(mut self) -> Self {
        self.supports_refresh = true;
        self
    }
}

impl Credential {
    /// A credential with no known expiry and no metadata.
    pub fn new(secret: impl Into<String>) -> Self {
        Self { secret: secret.into(), expires_at: None, metadata: Vec::new(), headers: Vec::new() }
    }

    /// Sets when the secret stops working, in unix seconds.
    pub fn expires_at(mut self, unix_seconds: i64) -> Self {
        self.expires_at = Some(unix_seconds);
        self
    }

    /// Adds a non-secret HTTP header consumers must send along with the secret.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds a non-secret fact about the credential.
    pub fn meta(mut self, key: &str, value: impl Into<String>) -> Self {
        self.metadata.push((key.into(), value.into()));
        self
    }
}

impl Request {
    /// The value of an option, if set (defaults from the manifest are filled in).
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }

    /// The value of an option the provider cannot work without.
    pub fn required(&self, name: &str) -> Result<&str, ProviderError> {
        self.option(name).ok_or_else(|| {
            ProviderError::invalid_config(format!("credential '{}' has no `{name}` option", self.credential))
                .hint(format!("add `{name} = \"…\"` to [credentials.{}] in config.toml", self.credential))
        })
    }
}

impl ProviderError {
    fn failure(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), hint: None }
    }

    /// The user must sign in first.
    pub fn needs_login(message: impl Into<String>) -> Self {
        Self::NeedsLogin(Self::failure(message))
    }

    /// The secret or item does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(Self::failure(message))
    }

    /// The credential's options are wrong.
    pub fn invalid_config(message: impl Into<String>) -> Self {
        Self::InvalidConfig(Self::failure(message))
    }

    /// The backend refused access.
    pub fn denied(message: impl Into<String>) -> Self {
        Self::Denied(Self::failure(message))
    }

    /// The backend or its tool is missing or failed.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(Self::failure(message))
    }

    /// The backend reported a rate limit or exhausted quota.
    pub fn rate_limited(message: impl Into<String>) -> Self {
        Self::RateLimited(Self::failure(message))
    }

    /// Adds what the user should do about it.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.details_mut().hint = Some(hint.into());
        self
    }

    /// The message and hint, whatever the case.
    pub fn details(&self) -> &Failure {
        match self {
            Self::NeedsLogin(f)
            | Self::NotFound(f)
            | Self::InvalidConfig(f)
            | Self::Denied(f)
            | Self::Unavailable(f)
            | Self::RateLimited(f) => f,
        }
    }

    fn details_mut(&mut self) -> &mut Failure {
        match self {
            Self::NeedsLogin(f)
            | Self::NotFound(f)
            | Self::InvalidConfig(f)
            | Self::Denied(f)
            | Self::Unavailable(f)
            | Self::RateLimited(f) => f,
        }
    }
}

impl From<HostError> for ProviderError {
    fn from(error: HostError) -> Self {
        match error {
            HostError::Denied(m) => Self::denied(m),
            HostError::NotInstalled(m)
            | HostError::Failed(m)
            | HostError::TimedOut(m)
            | HostError::TooLarge(m) => Self::unavailable(m),
        }
    }
}

impl Validation {
    /// The secret is accepted.
    pub fn valid(message: impl Into<String>) -> Self {
        Self { verdict: Verdict::Valid, message: message.into() }
    }

    /// The secret is accepted with limits.
    pub fn restricted(message: impl Into<String>) -> Self {
        Self { verdict: Verdict::Restricted, message: message.into() }
    }

    /// The secret is refused.
    pub fn rejected(message: impl Into<String>) -> Self {
        Self { verdict: Verdict::Rejected, message: message.into() }
    }
}

impl Command {
    /// A command running `program`, which the manifest must declare.
    pub fn new(program: &str) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            timeout_ms: None,
            max_output: None,
        }
    }

    /// Adds one argument. Never pass a secret as an argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds an option and its value (`--flag value`) when the value is present.
    pub fn opt(self, flag: &str, value: Option<&str>) -> Self {
        match value {
            Some(value) => self.arg(flag).arg(value),
            None => self,
        }
    }

    /// Sets an environment variable for the program; the name must be declared.
    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Writes `bytes` to the program's standard input.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Stops the program after `timeout` if that is sooner than the host's
    /// limit (a plugin may shorten the limit, never extend it).
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout_ms = Some(u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX));
        self
    }

    /// Stops the program once it prints more than `bytes` (stdout or stderr)
    /// if that is less than the host's cap (a plugin may lower it, never
    /// raise it).
    pub fn max_output(mut self, bytes: u32) -> Self {
        self.max_output = Some(bytes);
        self
    }

    /// Runs the program and waits for it.
    pub fn run(&self) -> Result<CommandOutput, HostError> {
        host::run(self)
    }
}

impl CommandOutput {
    /// Whether the program exited with status 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// Standard output as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text (invalid UTF-8 replaced).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

impl HttpRequest {
    /// A GET request with no headers.
    pub fn get(url: impl Into<String>) -> Self {
        Self { method: "GET".into(), url: url.into(), headers: Vec::new(), body: None }
    }

    /// A POST request carrying `body`, with no headers.
    pub fn post(url: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Self { method: "POST".into(), url: url.into(), headers: Vec::new(), body: Some(body.into()) }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sends the request.
    pub fn send(&self) -> Result<HttpResponse, HostError> {
        host::http(self)
    }
}

impl HttpResponse {
    /// The first value of a header, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}
