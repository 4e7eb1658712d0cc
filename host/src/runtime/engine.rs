//! The process's one wasmtime engine. It links no compiler: plugins are
//! compiled by `keyhelper-compile` (`compiler/`), whose engine settings must
//! be these (wasmtime refuses an artifact made with other settings).

use std::sync::OnceLock;

use wasmtime::{Config, Engine};

use super::sandbox;

/// The engine, made on first use with its epoch ticker thread.
pub fn shared() -> anyhow::Result<Engine> {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    if let Some(engine) = ENGINE.get() {
        return Ok(engine.clone());
    }
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    let engine = Engine::new(&config)?;
    let engine = ENGINE.get_or_init(|| engine).clone();
    let weak = engine.weak();
    std::thread::spawn(move || {
        while let Some(engine) = weak.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(sandbox::EPOCH_TICK);
        }
    });
    Ok(engine)
}
