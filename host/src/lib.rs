//! keyhelper-full: the complete keyhelper, built on `keyhelper-core`.
//!
//! Data flows one way: the CLI ([`cli`]) reads the user's [`environment`]
//! (directories, providers, configuration), asks the [`broker`] for a
//! credential, which serves it from the core's encrypted cache or fetches it
//! through its provider's sandboxed plugin ([`fetcher`], [`runtime`],
//! [`bundled`]), and prints it in the consumer's format. Long-lived secrets
//! live in [`store`]; [`proxy`] puts fresh credentials on HTTP requests.

pub mod broker;
pub mod bundled;
pub mod cli;
pub mod environment;
pub mod fetcher;
pub mod interaction;
pub mod logging;
pub mod manifest_check;
pub mod mask;
pub mod proxy;
pub mod runtime;
pub mod store;
pub mod waiting;
