//! `keyhelper proxy <credential> --upstream <url>`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use keyhelper_core::failure::{ExitClass, Failure};

use crate::environment::Environment;
use crate::proxy::{self, ProxyOptions};

/// Arguments of `keyhelper proxy`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The credential to put on every request.
    pub credential: String,
    /// Where to forward requests, e.g. https://api.openai.com.
    #[arg(long, value_name = "URL")]
    pub upstream: String,
    /// Address to listen on (loopback unless you say otherwise).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The key clients must send (default: a random one, printed once).
    #[arg(long, value_name = "KEY")]
    pub client_key: Option<String>,
    /// Header to put the credential in, instead of the provider's (e.g. api-key).
    #[arg(long, value_name = "NAME")]
    pub header: Option<String>,
    /// What precedes the credential in that header (e.g. "Bearer ").
    #[arg(long, value_name = "TEXT")]
    pub header_prefix: Option<String>,
    /// Trust only the CA certificates in this PEM file for the upstream.
    #[arg(long, value_name = "PEM")]
    pub upstream_ca: Option<PathBuf>,
}

/// Runs `proxy` until SIGINT or SIGTERM.
pub fn run(env: Environment, args: ProxyArgs) -> Result<(), Failure> {
    let upstream: hyper::Uri = args.upstream.parse().map_err(|e| {
        Failure::new(ExitClass::Usage, format!("--upstream `{}` is not a URL: {e}", args.upstream))
    })?;
    if !matches!(upstream.scheme_str(), Some("https" | "http")) || upstream.host().is_none() {
        return Err(Failure::new(
            ExitClass::Usage,
            format!("--upstream `{}` must be an http(s) URL", args.upstream),
        )
        .hint("e.g. --upstream https://api.openai.com"));
    }
    if args.client_key.as_deref().is_some_and(|k| k.len() < 16) {
        return Err(Failure::new(
            ExitClass::Usage,
            "--client-key is too short to keep other local users out",
        )
        .hint("use at least 16 characters, or let keyhelper generate one"));
    }
    proxy::serve(
        env,
        ProxyOptions {
            credential: args.credential,
            upstream,
            listen: args.listen,
            client_key: args.client_key,
            header: args.header,
            header_prefix: args.header_prefix,
            upstream_ca: args.upstream_ca,
        },
    )
}
