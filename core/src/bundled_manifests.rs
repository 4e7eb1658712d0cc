//! The provider manifests of `providers/`, compiled in by `build.rs`: what the
//! bundled providers are called, what their plugins may do and which options
//! they take. (The plugins themselves are embedded by the host crate.)

include!(concat!(env!("OUT_DIR"), "/bundled_manifests.rs"));
