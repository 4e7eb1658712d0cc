//! The SDK for keyhelper provider plugins.
//!
//! A provider plugin is a WebAssembly component that hands out credentials. With
//! this crate it is a type implementing [`Provider`] plus one
//! [`register_provider!`] line; the WIT bindings stay out of sight:
//!
//! ```ignore
//! use keyhelper_plugin::{Command, Credential, PluginInfo, Provider, ProviderError, Request};
//!
//! struct Pass;
//!
//! impl Provider for Pass {
//!     fn describe() -> PluginInfo {
//!         PluginInfo::new("pass", env!("CARGO_PKG_VERSION"), "Secrets from the pass password store")
//!             .option("entry", "Path of the entry in the store", None, true)
//!     }
//!
//!     fn fetch(request: &Request) -> Result<Credential, ProviderError> {
//!         let entry = request.required("entry")?;
//!         let output = Command::new("pass").arg("show").arg(entry).run()?;
//!         if !output.success() {
//!             return Err(ProviderError::not_found(output.stderr_text().trim()));
//!         }
//!         let text = output.stdout_text();
//!         Ok(Credential::new(text.lines().next().unwrap_or_default()))
//!     }
//! }
//!
//! keyhelper_plugin::register_provider!(Pass);
//! ```
//!
//! Everything a plugin does outside its own memory goes through the host
//! functions wrapped here ([`Command::run`], [`HttpRequest::send`], [`env_var`],
//! [`stored_secret`], [`named_secret`], [`save_secret`], [`read_file`], [`log`],
//! [`now`]). The host checks each call against the
//! capabilities in the provider's manifest and the user's grant.

mod builders;
pub mod oauth2;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit/since_v0.3.0",
        world: "plugin",
        pub_export_macro: true,
        default_bindings_module: "keyhelper_plugin::bindings",
        export_macro_name: "export_plugin_world",
    });
}

pub use bindings::keyhelper::provider::host::{
    Command, CommandOutput, HostError, HttpRequest, HttpResponse, LogLevel,
};
pub use bindings::keyhelper::provider::types::{
    Credential, Failure, OptionSpec, PluginInfo, ProviderError, Request, Validation, Verdict,
};

use bindings::keyhelper::provider::host;

/// A credential provider. Implement it on a unit struct and pass the type to
/// [`register_provider!`].
pub trait Provider {
    /// Describes the provider: its name, version and options.
    fn describe() -> PluginInfo;

    /// Gets a credential.
    fn fetch(request: &Request) -> Result<Credential, ProviderError>;

    /// Renews a credential returned earlier. The default fetches again.
    fn refresh(request: &Request, previous: Credential) -> Result<Credential, ProviderError> {
        let _ = previous;
        Self::fetch(request)
    }

    /// Checks a secret. The default accepts any non-empty secret and has no live check.
    fn validate(request: &Request, secret: &str, live: bool) -> Result<Validation, ProviderError> {
        let _ = (request, live);
        Ok(if secret.is_empty() {
            Validation::rejected("the secret is empty")
        } else {
            Validation::valid("this provider checks no format")
        })
    }
}

/// Reads an environment variable of the keyhelper process. The variable must be
/// declared in the provider's manifest (`capabilities.env`).
pub fn env_var(name: &str) -> Result<Option<String>, HostError> {
    host::env_var(name)
}

/// Reads the secret stored for this provider under `connection`
/// (`keyhelper login <provider> --connection <connection>`).
pub fn stored_secret(connection: &str) -> Result<Option<String>, HostError> {
    host::stored_secret(connection)
}

/// Reads the secret called `name` (e.g. `refresh_token`) that `connection`
/// holds besides its main one. Needs `stored_secrets` in the manifest.
pub fn named_secret(connection: &str, name: &str) -> Result<Option<String>, HostError> {
    host::named_secret(connection, name)
}

/// Saves (or replaces, atomically) the secret called `name` of `connection`,
/// e.g. a refresh token the server rotated. Needs `save_secrets` in the
/// manifest. A connection's main secret cannot be written.
pub fn save_secret(connection: &str, name: &str, value: &str) -> Result<(), HostError> {
    host::save_secret(connection, name, value)
}

/// Reads a whole file (at most 1 MiB) that the manifest's `files` declares,
/// e.g. a workload identity's token file.
pub fn read_file(path: &str) -> Result<Vec<u8>, HostError> {
    host::read_file(path)
}

/// Writes a line to keyhelper's log, shown with `keyhelper -v`. Never log a secret.
pub fn log(level: LogLevel, message: &str) {
    host::log(level, message);
}

/// The current time in unix seconds.
pub fn now() -> i64 {
    host::now()
}

/// Registers `$provider` (a type implementing [`Provider`]) as the plugin's export.
#[macro_export]
macro_rules! register_provider {
    ($provider:ident) => {
        impl $crate::bindings::exports::keyhelper::provider::provider::Guest for $provider {
            fn describe() -> $crate::PluginInfo {
                <$provider as $crate::Provider>::describe()
            }
            fn validate(
                request: $crate::Request,
                secret: ::std::string::String,
                live: bool,
            ) -> ::std::result::Result<$crate::Validation, $crate::ProviderError> {
                <$provider as $crate::Provider>::validate(&request, &secret, live)
            }
            fn fetch(
                request: $crate::Request,
            ) -> ::std::result::Result<$crate::Credential, $crate::ProviderError> {
                <$provider as $crate::Provider>::fetch(&request)
            }
            fn refresh(
                request: $crate::Request,
                previous: $crate::Credential,
            ) -> ::std::result::Result<$crate::Credential, $crate::ProviderError> {
                <$provider as $crate::Provider>::refresh(&request, previous)
            }
        }
        // Only a wasm build exports the component's functions; a native build
        // (for the plugin's unit tests) cannot link symbols named like
        // `keyhelper:provider/provider@0.1.0#fetch`.
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::export_plugin_world!($provider);
    };
}
