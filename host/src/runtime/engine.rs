//! The process's one wasmtime engine. It links no compiler: plugins are
//! compiled by `keyhelper-compile` (`compiler/`), whose engine settings must
//! be these (wasmtime refuses an artifact made with other settings, except
//! for unwind information, which only decides what gets registered).
//!
//! A plugin's CPU is bounded with fuel (see `sandbox::new_store`), not with
//! epochs: epochs need a thread ticking beside every call, and starting that
//! thread, and the cross-CPU TLB flushes every unmapping then costs, made
//! each plugin call about 0.17 ms slower. Except on Windows, which requires
//! it, no unwind information is registered: wasmtime needs none to trap, to
//! take backtraces or to carry a host function's panic across wasm frames,
//! and registering and removing it cost each call another 0.3 ms.

use std::sync::OnceLock;

use wasmtime::{Config, Engine};

/// The engine, made on first use.
pub fn shared() -> anyhow::Result<Engine> {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    if let Some(engine) = ENGINE.get() {
        return Ok(engine.clone());
    }
    let mut config = Config::new();
    config.consume_fuel(true);
    config.wasm_component_model(true);
    config.native_unwind_info(keyhelper_core::platform::PLUGIN_CODE_NEEDS_UNWIND_INFO);
    let engine = Engine::new(&config)?;
    Ok(ENGINE.get_or_init(|| engine).clone())
}
