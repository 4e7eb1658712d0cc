//! `keyhelper-compile`: reads a plugin (a WebAssembly component) on stdin and
//! writes it compiled to native code, serialized, on stdout.
//!
//! `keyhelper-full` runs it, once per plugin version, and keeps the result in
//! its private artifact cache. Keeping Cranelift in this separate executable
//! makes `keyhelper-full` about 13 MB smaller and every call that runs a
//! plugin about 1 ms faster to start (README, "Performance").

use std::io::{Read, Write};
use std::process::ExitCode;

use wasmtime::{Config, Engine};

fn main() -> ExitCode {
    if std::env::args_os().len() > 1 {
        eprintln!(
            "keyhelper-compile: takes no arguments: keyhelper-full runs it with a plugin on stdin (usage: keyhelper-compile < plugin.wasm > plugin.cwasm)"
        );
        return ExitCode::from(2);
    }
    let mut wasm = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut wasm) {
        eprintln!("keyhelper-compile: cannot read the plugin from stdin: {e}");
        return ExitCode::from(1);
    }
    let compiled = match compile(&wasm) {
        Ok(compiled) => compiled,
        Err(e) => {
            let causes: Vec<String> = e.chain().map(ToString::to_string).collect();
            eprintln!("{}", causes.join(": "));
            return ExitCode::from(1);
        }
    };
    match std::io::stdout().lock().write_all(&compiled) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyhelper-compile: cannot write the compiled plugin to stdout: {e}");
            ExitCode::from(1)
        }
    }
}

/// Compiles `wasm` with the settings of keyhelper-full's engine
/// (`host/src/runtime/engine.rs`): fuel, the component model, unwind
/// information only where the platform needs it.
fn compile(wasm: &[u8]) -> wasmtime::Result<Vec<u8>> {
    let mut config = Config::new();
    config.consume_fuel(true);
    config.wasm_component_model(true);
    config.native_unwind_info(keyhelper_core::platform::PLUGIN_CODE_NEEDS_UNWIND_INFO);
    Engine::new(&config)?.precompile_component(wasm)
}
