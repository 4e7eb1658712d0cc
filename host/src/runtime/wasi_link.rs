//! WASI for plugins, linked one interface at a time: only those a loaded
//! component imports. wasmtime-wasi's `add_to_linker_sync` defines all
//! twenty-seven, with every function's name and type registered and hashed,
//! and a cold `get` spent 9% of its time there; the bundled plugins import
//! ten (`wasi:cli/*` and `wasi:io/*`).
//!
//! The table names the same interfaces, with the same implementations, as
//! `add_to_linker_sync`; an import that is not in it stays undefined, and
//! `instantiate_pre` refuses the plugin as before.

use std::collections::BTreeSet;

use wasmtime::Engine;
use wasmtime::component::{Component, HasData, Linker, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView as _};
use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sockets, sync};
use wasmtime_wasi::random::WasiRandom;
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView as _};

use super::sandbox::PluginState;

type Add = fn(&mut Linker<PluginState>) -> wasmtime::Result<()>;

/// The resource table, as the `wasi:io` interfaces see the store.
struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// Every interface `wasmtime_wasi::p2::add_to_linker_sync` defines, by its
/// name without the version, and how to define it.
const INTERFACES: [(&str, Add); 27] = [
    ("wasi:io/error", |l| sync::io::error::add_to_linker::<_, HasIo>(l, |t| t.ctx().table)),
    ("wasi:io/poll", |l| sync::io::poll::add_to_linker::<_, HasIo>(l, |t| t.ctx().table)),
    ("wasi:io/streams", |l| sync::io::streams::add_to_linker::<_, HasIo>(l, |t| t.ctx().table)),
    ("wasi:clocks/wall-clock", |l| {
        clocks::wall_clock::add_to_linker::<_, WasiClocks>(l, PluginState::clocks)
    }),
    ("wasi:clocks/monotonic-clock", |l| {
        clocks::monotonic_clock::add_to_linker::<_, WasiClocks>(l, PluginState::clocks)
    }),
    ("wasi:filesystem/preopens", |l| {
        filesystem::preopens::add_to_linker::<_, WasiFilesystem>(l, PluginState::filesystem)
    }),
    ("wasi:filesystem/types", |l| {
        sync::filesystem::types::add_to_linker::<_, WasiFilesystem>(l, PluginState::filesystem)
    }),
    ("wasi:random/random", |l| random::random::add_to_linker::<_, WasiRandom>(l, |t| t.ctx().ctx.random())),
    ("wasi:random/insecure", |l| {
        random::insecure::add_to_linker::<_, WasiRandom>(l, |t| t.ctx().ctx.random())
    }),
    ("wasi:random/insecure-seed", |l| {
        random::insecure_seed::add_to_linker::<_, WasiRandom>(l, |t| t.ctx().ctx.random())
    }),
    ("wasi:cli/exit", |l| cli::exit::add_to_linker::<_, WasiCli>(l, PluginState::cli)),
    ("wasi:cli/environment", |l| cli::environment::add_to_linker::<_, WasiCli>(l, PluginState::cli)),
    ("wasi:cli/stdin", |l| cli::stdin::add_to_linker::<_, WasiCli>(l, PluginState::cli)),
    ("wasi:cli/stdout", |l| cli::stdout::add_to_linker::<_, WasiCli>(l, PluginState::cli)),
    ("wasi:cli/stderr", |l| cli::stderr::add_to_linker::<_, WasiCli>(l, PluginState::cli)),
    ("wasi:cli/terminal-input", |l| cli::terminal_input::add_to_linker::<_, WasiCli>(l, PluginState::cli)),
    ("wasi:cli/terminal-output", |l| cli::terminal_output::add_to_linker::<_, WasiCli>(l, PluginState::cli)),
    ("wasi:cli/terminal-stdin", |l| cli::terminal_stdin::add_to_linker::<_, WasiCli>(l, PluginState::cli)),
    ("wasi:cli/terminal-stdout", |l| cli::terminal_stdout::add_to_linker::<_, WasiCli>(l, PluginState::cli)),
    ("wasi:cli/terminal-stderr", |l| cli::terminal_stderr::add_to_linker::<_, WasiCli>(l, PluginState::cli)),
    ("wasi:sockets/tcp-create-socket", |l| {
        sockets::tcp_create_socket::add_to_linker::<_, WasiSockets>(l, PluginState::sockets)
    }),
    ("wasi:sockets/instance-network", |l| {
        sockets::instance_network::add_to_linker::<_, WasiSockets>(l, PluginState::sockets)
    }),
    ("wasi:sockets/network", |l| {
        sockets::network::add_to_linker::<_, WasiSockets>(l, &Default::default(), PluginState::sockets)
    }),
    ("wasi:sockets/ip-name-lookup", |l| {
        sockets::ip_name_lookup::add_to_linker::<_, WasiSockets>(l, PluginState::sockets)
    }),
    ("wasi:sockets/tcp", |l| sync::sockets::tcp::add_to_linker::<_, WasiSockets>(l, PluginState::sockets)),
    ("wasi:sockets/udp", |l| sync::sockets::udp::add_to_linker::<_, WasiSockets>(l, PluginState::sockets)),
    ("wasi:sockets/udp-create-socket", |l| {
        sync::sockets::udp_create_socket::add_to_linker::<_, WasiSockets>(l, PluginState::sockets)
    }),
];

/// A linker that grows: the WASI interfaces defined so far, for the
/// components loaded so far.
pub struct GrowingLinker {
    linker: Linker<PluginState>,
    defined: BTreeSet<&'static str>,
}

impl GrowingLinker {
    /// A linker with what `define` puts in it, and no WASI yet.
    pub fn new(
        engine: &Engine,
        define: impl FnOnce(&mut Linker<PluginState>) -> wasmtime::Result<()>,
    ) -> wasmtime::Result<Self> {
        let mut linker = Linker::new(engine);
        define(&mut linker)?;
        Ok(Self { linker, defined: BTreeSet::new() })
    }

    /// The linker, with every WASI interface `component` imports defined.
    pub fn for_component(
        &mut self,
        engine: &Engine,
        component: &Component,
    ) -> wasmtime::Result<&Linker<PluginState>> {
        for (import, _) in component.component_type().imports(engine) {
            let name = import.split('@').next().unwrap_or(import);
            if let Some((name, add)) = INTERFACES.iter().find(|(known, _)| *known == name)
                && !self.defined.contains(name)
            {
                add(&mut self.linker)?;
                self.defined.insert(name);
            }
        }
        Ok(&self.linker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_interface_is_named_once_and_defines_without_conflict() {
        let engine = Engine::default();
        let mut linker = Linker::<PluginState>::new(&engine);
        let mut names = BTreeSet::new();
        for (name, add) in INTERFACES {
            assert!(names.insert(name), "{name} is listed twice");
            add(&mut linker).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
