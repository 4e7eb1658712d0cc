//! keyhelper: one credential helper for AI coding tools and API clients.
//!
//! Data flows one way: the CLI ([`cli`]) resolves a name against the
//! configuration ([`config`], [`resolve`]), asks the [`broker`] for it, which
//! serves it from the encrypted [`cache`] or fetches it through its provider's
//! sandboxed plugin ([`fetcher`], [`runtime`]), and prints it in the consumer's
//! format ([`output`]). Long-lived secrets live in [`store`].

pub mod broker;
pub mod bundled;
pub mod cache;
pub mod cli;
pub mod config;
pub mod credential;
pub mod duration;
pub mod failure;
pub mod fast_get;
pub mod fetcher;
pub mod front;
pub mod installed;
pub mod interaction;
pub mod logging;
pub mod manifest;
pub mod mask;
pub mod output;
pub mod paths;
pub mod private_fs;
pub mod proxy;
pub mod resolve;
pub mod rfc3339;
pub mod runtime;
pub mod sealed;
pub mod store;
pub mod suggest;
