//! `keyhelper proxy <credential> [--upstream <url>]`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use keyhelper_core::failure::{ExitClass, Failure};

use crate::environment::Environment;
use crate::proxy::{self, ClientKey, ConnectionLimits, ProxyOptions};

/// The variable `keyhelper proxy` takes its client key from, when set.
const CLIENT_KEY_VAR: &str = "KEYHELPER_PROXY_KEY";

/// Arguments of `keyhelper proxy`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The credential to put on every request.
    #[arg(add = super::completions::credential_names())]
    pub credential: String,
    /// Where to forward requests, e.g. https://api.openai.com (default: the
    /// credential's `upstream`, or its provider's base URL).
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// Address to listen on (loopback unless you say otherwise).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Read the key clients must send from this file (else $KEYHELPER_PROXY_KEY,
    /// else a random one, printed once).
    #[arg(long, value_name = "PATH")]
    pub client_key_file: Option<PathBuf>,
    /// Header to put the credential in, instead of the provider's (e.g. api-key).
    #[arg(long, value_name = "NAME")]
    pub header: Option<String>,
    /// What precedes the credential in that header (e.g. "Bearer ").
    #[arg(long, value_name = "TEXT")]
    pub header_prefix: Option<String>,
    /// Trust only the CA certificates in this PEM file for the upstream.
    #[arg(long, value_name = "PEM")]
    pub upstream_ca: Option<PathBuf>,
    /// Allow plain http:// to a non-loopback upstream (the secret crosses the network in clear).
    #[arg(long)]
    pub allow_insecure_upstream: bool,
    /// Connections served at once; more wait until one closes.
    #[arg(long, value_name = "N", default_value_t = ConnectionLimits::MAX_CONNECTIONS as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Seconds a client may take to send a request's headers before it is cut off.
    #[arg(long, value_name = "SECONDS", default_value_t = ConnectionLimits::HEADER_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout: u64,
    /// Print where the proxy listens and the client's variables as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `proxy` until SIGINT or SIGTERM.
pub fn run(env: Environment, args: ProxyArgs) -> Result<(), Failure> {
    let upstream = args.upstream.as_deref().map(parse_upstream).transpose()?;
    let client_key = client_key(args.client_key_file.as_deref())?;
    proxy::serve(
        env,
        ProxyOptions {
            credential: args.credential,
            upstream,
            listen: args.listen,
            client_key,
            header: args.header,
            header_prefix: args.header_prefix,
            upstream_ca: args.upstream_ca,
            allow_insecure_upstream: args.allow_insecure_upstream,
            limits: ConnectionLimits {
                max_connections: args.max_connections as usize,
                header_timeout: std::time::Duration::from_secs(args.header_timeout),
            },
        },
        args.json,
    )
}

fn parse_upstream(text: &str) -> Result<hyper::Uri, Failure> {
    let upstream: hyper::Uri = text
        .parse()
        .map_err(|e| Failure::new(ExitClass::Usage, format!("--upstream `{text}` is not a URL: {e}")))?;
    if !matches!(upstream.scheme_str(), Some("https" | "http")) || upstream.host().is_none() {
        return Err(Failure::new(ExitClass::Usage, format!("--upstream `{text}` must be an http(s) URL"))
            .hint("e.g. --upstream https://api.openai.com"));
    }
    Ok(upstream)
}

/// The client key: from `file`, else `$KEYHELPER_PROXY_KEY`, else random.
/// Never from the command line, where other local users can read it.
fn client_key(file: Option<&std::path::Path>) -> Result<ClientKey, Failure> {
    let given = match file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| {
                    Failure::new(
                        ExitClass::Usage,
                        format!("cannot read --client-key-file {}: {e}", path.display()),
                    )
                })?
                .trim()
                .to_string(),
        ),
        None => std::env::var(CLIENT_KEY_VAR).ok().map(|key| key.trim().to_string()),
    };
    if given.as_deref().is_some_and(|key| key.len() < 16) {
        return Err(Failure::new(
            ExitClass::Usage,
            "the client key is too short to keep other local users out",
        )
        .hint("use at least 16 characters, or let keyhelper generate one"));
    }
    Ok(ClientKey::new(given))
}
