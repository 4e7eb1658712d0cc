//! Every supported contract version behind one interface. Calls are made with
//! the latest version's types; a plugin built against an older version gets
//! them converted down, and its answers are converted up.

use wasmtime::Store;
use wasmtime::component::{HasSelf, InstancePre, Linker};

use super::bindings::{v0_1_0, v0_2_0, v0_3_0};
use super::sandbox::PluginState;

/// The latest contract version's types.
pub use v0_3_0::keyhelper::provider::types as latest;

/// The contract versions this host runs, oldest first; each entry is the
/// version of its frozen `plugins/sdk/wit/since_v*` directory.
pub const SUPPORTED: &[&str] = &["0.1.0", "0.2.0", "0.3.0"];

/// One of the [`SUPPORTED`] contract versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// `keyhelper:provider@0.1.x`.
    V0_1,
    /// `keyhelper:provider@0.2.x`.
    V0_2,
    /// `keyhelper:provider@0.3.x`.
    V0_3,
}

impl Contract {
    /// The contract of `version` (one of [`SUPPORTED`], or a semver-compatible
    /// patch of one).
    pub fn of(version: &str) -> Self {
        if version.starts_with("0.1.") {
            Self::V0_1
        } else if version.starts_with("0.2.") {
            Self::V0_2
        } else {
            Self::V0_3
        }
    }

    /// Its position in [`SUPPORTED`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Adds the host side of this contract (the `host` interface the plugin
    /// imports) to `linker`.
    pub fn add_to_linker(self, linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
        match self {
            Self::V0_1 => v0_1_0::Plugin::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s),
            Self::V0_2 => v0_2_0::Plugin::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s),
            Self::V0_3 => v0_3_0::Plugin::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s),
        }
    }
}

/// A linked plugin, ready to instantiate, of whichever version it was built for.
pub enum VersionedPre {
    /// `keyhelper:provider@0.1.x`.
    V0_1(v0_1_0::PluginPre<PluginState>),
    /// `keyhelper:provider@0.2.x` (the same types as 0.3; a smaller `host`).
    V0_2(v0_2_0::PluginPre<PluginState>),
    /// `keyhelper:provider@0.3.x`.
    V0_3(v0_3_0::PluginPre<PluginState>),
}

/// Calls `$call` on the `provider` export of a 0.2 or 0.3 plugin, whose types
/// are the latest ones; a 0.1 plugin is `$v0_1`'s business.
macro_rules! dispatch {
    ($self:ident, $store:ident, |$provider:ident| $call:expr, $v0_1:pat => $old:expr) => {
        match $self {
            $v0_1 => $old,
            Self::V0_2(pre) => {
                let $provider = pre.instantiate(&mut *$store)?;
                let $provider = $provider.keyhelper_provider_provider();
                $call
            }
            Self::V0_3(pre) => {
                let $provider = pre.instantiate(&mut *$store)?;
                let $provider = $provider.keyhelper_provider_provider();
                $call
            }
        }
    };
}

type Answer<T> = wasmtime::Result<Result<T, latest::ProviderError>>;

impl VersionedPre {
    /// Wraps `pre` in the bindings of `contract`.
    pub fn new(contract: Contract, pre: InstancePre<PluginState>) -> wasmtime::Result<Self> {
        Ok(match contract {
            Contract::V0_1 => Self::V0_1(v0_1_0::PluginPre::new(pre)?),
            Contract::V0_2 => Self::V0_2(v0_2_0::PluginPre::new(pre)?),
            Contract::V0_3 => Self::V0_3(v0_3_0::PluginPre::new(pre)?),
        })
    }

    /// `describe()`.
    pub fn describe(&self, store: &mut Store<PluginState>) -> wasmtime::Result<latest::PluginInfo> {
        dispatch!(self, store, |provider| provider.call_describe(store),
            Self::V0_1(pre) => {
                Ok(pre.instantiate(&mut *store)?.keyhelper_provider_provider().call_describe(store)?.into())
            }
        )
    }

    /// `fetch(request)`.
    pub fn fetch(
        &self,
        store: &mut Store<PluginState>,
        request: &latest::Request,
    ) -> Answer<latest::Credential> {
        dispatch!(self, store, |provider| provider.call_fetch(store, request),
            Self::V0_1(pre) => {
                let plugin = pre.instantiate(&mut *store)?;
                let answer =
                    plugin.keyhelper_provider_provider().call_fetch(store, &request.clone().into())?;
                Ok(answer.map(Into::into).map_err(Into::into))
            }
        )
    }

    /// `refresh(request, previous)`.
    pub fn refresh(
        &self,
        store: &mut Store<PluginState>,
        request: &latest::Request,
        previous: &latest::Credential,
    ) -> Answer<latest::Credential> {
        dispatch!(self, store, |provider| provider.call_refresh(store, request, previous),
            Self::V0_1(pre) => {
                let plugin = pre.instantiate(&mut *store)?;
                let answer = plugin.keyhelper_provider_provider().call_refresh(
                    store,
                    &request.clone().into(),
                    &previous.clone().into(),
                )?;
                Ok(answer.map(Into::into).map_err(Into::into))
            }
        )
    }

    /// `validate(request, secret, live)`.
    pub fn validate(
        &self,
        store: &mut Store<PluginState>,
        request: &latest::Request,
        secret: &str,
        live: bool,
    ) -> Answer<latest::Validation> {
        dispatch!(self, store, |provider| provider.call_validate(store, request, secret, live),
            Self::V0_1(pre) => {
                let plugin = pre.instantiate(&mut *store)?;
                let answer = plugin.keyhelper_provider_provider().call_validate(
                    store,
                    &request.clone().into(),
                    secret,
                    live,
                )?;
                Ok(answer.map(Into::into).map_err(Into::into))
            }
        )
    }
}

/// Conversions between 0.1 and the latest types. 0.2 added `credential.headers`;
/// everything else is the same shape (0.3 changed only the `host` interface).
mod from_v0_1 {
    use super::latest;
    use crate::runtime::bindings::v0_1_0::keyhelper::provider::types as v0_1;

    impl From<latest::Request> for v0_1::Request {
        fn from(r: latest::Request) -> Self {
            Self { credential: r.credential, options: r.options, interactive: r.interactive }
        }
    }

    impl From<latest::Credential> for v0_1::Credential {
        fn from(c: latest::Credential) -> Self {
            Self { secret: c.secret, expires_at: c.expires_at, metadata: c.metadata }
        }
    }

    impl From<v0_1::Credential> for latest::Credential {
        fn from(c: v0_1::Credential) -> Self {
            Self { secret: c.secret, expires_at: c.expires_at, metadata: c.metadata, headers: Vec::new() }
        }
    }

    impl From<v0_1::Failure> for latest::Failure {
        fn from(f: v0_1::Failure) -> Self {
            Self { message: f.message, hint: f.hint }
        }
    }

    impl From<v0_1::ProviderError> for latest::ProviderError {
        fn from(e: v0_1::ProviderError) -> Self {
            match e {
                v0_1::ProviderError::NeedsLogin(f) => Self::NeedsLogin(f.into()),
                v0_1::ProviderError::NotFound(f) => Self::NotFound(f.into()),
                v0_1::ProviderError::InvalidConfig(f) => Self::InvalidConfig(f.into()),
                v0_1::ProviderError::Denied(f) => Self::Denied(f.into()),
                v0_1::ProviderError::Unavailable(f) => Self::Unavailable(f.into()),
                v0_1::ProviderError::RateLimited(f) => Self::RateLimited(f.into()),
            }
        }
    }

    impl From<v0_1::PluginInfo> for latest::PluginInfo {
        fn from(i: v0_1::PluginInfo) -> Self {
            Self {
                name: i.name,
                version: i.version,
                description: i.description,
                options: i
                    .options
                    .into_iter()
                    .map(|o| latest::OptionSpec {
                        name: o.name,
                        help: o.help,
                        default: o.default,
                        required: o.required,
                    })
                    .collect(),
                supports_refresh: i.supports_refresh,
            }
        }
    }

    impl From<v0_1::Validation> for latest::Validation {
        fn from(v: v0_1::Validation) -> Self {
            let verdict = match v.verdict {
                v0_1::Verdict::Valid => latest::Verdict::Valid,
                v0_1::Verdict::Restricted => latest::Verdict::Restricted,
                v0_1::Verdict::Rejected => latest::Verdict::Rejected,
            };
            Self { verdict, message: v.message }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_supported_version_has_its_own_contract_at_its_position() {
        for (position, version) in SUPPORTED.iter().enumerate() {
            assert_eq!(Contract::of(version).index(), position, "{version}");
        }
        assert_eq!(Contract::of("0.2.7"), Contract::V0_2);
    }
}
