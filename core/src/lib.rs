//! keyhelper's core: what both executables share, and all that the small
//! `keyhelper` executable is made of.
//!
//! It holds the configuration ([`config`]) and the provider manifests that
//! check it ([`manifest`], [`catalog`], [`capabilities`]), turns a name into a
//! credential ([`resolve`]), keeps the encrypted credential cache ([`cache`],
//! [`sealed`]) and renders secrets for each consumer ([`output`]). The
//! cache-hit path ([`fast_get`]) is built from these alone.
//!
//! It depends on neither a CLI parser, an async runtime nor the plugin engine:
//! those live in the host crate (`keyhelper-host`), which depends on this one.

pub mod audit;
pub mod background;
pub mod bundled_manifests;
pub mod cache;
pub mod capabilities;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod credential;
pub mod duration;
pub mod failure;
pub mod fast_get;
pub mod grants;
pub mod installed;
pub mod invocation;
pub mod manifest;
pub mod output;
pub mod paths;
pub mod plain_get;
pub mod platform;
pub mod private_fs;
pub mod resolve;
pub mod rfc3339;
pub mod sealed;
pub mod sources;
pub mod suggest;
pub mod toml_diagnostics;
pub mod zero_on_free;
