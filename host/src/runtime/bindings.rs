//! Host-side bindings for every released version of the plugin contract.
//!
//! Each version of the contract (`plugins/sdk/wit/`) gets its own module, generated from its frozen
//! directory, so a plugin built against an old contract keeps loading after a
//! new one is added.

/// Bindings for `keyhelper:provider@0.1.0` (`plugins/sdk/wit/since_v0.1.0`).
pub mod v0_1_0 {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        path: "../plugins/sdk/wit/since_v0.1.0",
        world: "plugin",
    });
}

/// Bindings for `keyhelper:provider@0.2.0` (`plugins/sdk/wit/since_v0.2.0`).
/// Its `types` are the same as 0.3.0's, so they are 0.3.0's Rust types.
pub mod v0_2_0 {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        path: "../plugins/sdk/wit/since_v0.2.0",
        world: "plugin",
        with: { "keyhelper:provider/types": super::v0_3_0::keyhelper::provider::types },
    });
}

/// Bindings for `keyhelper:provider@0.3.0` (`plugins/sdk/wit/since_v0.3.0`), the latest.
pub mod v0_3_0 {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        path: "../plugins/sdk/wit/since_v0.3.0",
        world: "plugin",
    });
}
