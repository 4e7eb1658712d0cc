//! The on-disk cache of compiled plugins, so Cranelift runs once per plugin and
//! keyhelper version, not once per call, and in `keyhelper-compile`, not in
//! this executable.
//!
//! Artifacts are native code that wasmtime loads without checking, so they are
//! only read from a directory this user owns with mode 0700, and only under a
//! name derived from the plugin's sha256 and keyhelper's version. wasmtime
//! checks each artifact's header against the engine (its own version, the
//! settings, the CPU's features) and refuses a mismatch: the plugin is then
//! compiled again and its artifact replaced.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use keyhelper_core::platform::{self, Exposure};
use keyhelper_core::private_fs::{self, Durability};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Why a plugin could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The compiler refused the plugin: it is not a valid component.
    #[error("{0}")]
    Invalid(String),
    /// The compiler could not be run, or failed in a way that is not the
    /// plugin's fault.
    #[error(
        "cannot compile it with {}: {problem} (hint: keyhelper-compile must sit beside keyhelper-full; reinstall with `cargo xtask install`)",
        .compiler.display()
    )]
    Compiler {
        /// The compiler executable.
        compiler: PathBuf,
        /// What went wrong.
        problem: String,
    },
}

/// A directory of precompiled components, and the compiler that fills it.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    compiler: OnceLock<PathBuf>,
}

impl ArtifactCache {
    /// A cache in `dir`, filled by the `keyhelper-compile` at `compiler`, or
    /// with `None` by the one beside this executable, looked up only when a
    /// plugin is compiled: a call whose artifact is there does not spend a
    /// `readlink` of `/proc/self/exe` on it.
    pub fn new(dir: PathBuf, compiler: Option<PathBuf>) -> Self {
        Self { dir, compiler: compiler.map(OnceLock::from).unwrap_or_default() }
    }

    fn compiler(&self) -> &Path {
        self.compiler.get_or_init(keyhelper_core::invocation::compiler_executable)
    }

    /// The path of the artifact for a plugin whose wasm has this sha256.
    fn path_for(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", env!("CARGO_PKG_VERSION")))
    }

    /// The compiled component of the plugin whose wasm has this sha256, if
    /// there is a usable artifact.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path_for(sha256);
        if !self.is_trusted(&path) {
            return None;
        }
        // SAFETY: the artifact was written by this program (see `compile`)
        // into a directory only this user can write, under a name that pins
        // the source wasm. wasmtime checks its header against the engine.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => {
                tracing::debug!("loaded precompiled plugin {}", path.display());
                Some(component)
            }
            Err(e) => {
                tracing::debug!("recompiling plugin artifact {}: {e}", path.display());
                None
            }
        }
    }

    /// Compiles `wasm` (whose sha256 is `sha256`, checked by the caller) with
    /// `keyhelper-compile` and stores the artifact for next time.
    pub fn compile(&self, engine: &Engine, sha256: &str, wasm: &[u8]) -> Result<Component, CompileError> {
        let started = std::time::Instant::now();
        let compiled = self.run_compiler(wasm)?;
        // SAFETY: the bytes are what keyhelper-compile, installed beside this
        // executable and so as trusted as it, made of checked wasm; wasmtime
        // checks their header against the engine.
        let component = unsafe { Component::deserialize(engine, &compiled) }
            .map_err(|e| self.compiler_failed(format!("it wrote an artifact this engine refuses ({e})")))?;
        tracing::debug!("compiled plugin {sha256} in {:?}", started.elapsed());
        let path = self.path_for(sha256);
        if let Err(e) = private_fs::write_atomic(&path, &compiled, Durability::Durable) {
            tracing::debug!("could not store plugin artifact {}: {e}", path.display());
        }
        Ok(component)
    }

    /// Runs the compiler with `wasm` on its stdin; returns its stdout. It gets
    /// only the variables every program needs (`PATH`, `HOME`, and on Windows
    /// `SystemRoot`…), none of the caller's others.
    fn run_compiler(&self, wasm: &[u8]) -> Result<Vec<u8>, CompileError> {
        let inherited =
            platform::BASE_CHILD_ENV.iter().filter_map(|name| Some((name, std::env::var_os(name)?)));
        let mut child = Command::new(self.compiler())
            .env_clear()
            .envs(inherited)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.compiler_failed(e.to_string()))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let (fed, output) = std::thread::scope(|scope| {
            let feeder = scope.spawn(move || stdin.write_all(wasm));
            let output = child.wait_with_output();
            (feeder.join().expect("the feeding thread does not panic"), output)
        });
        let output = output.map_err(|e| self.compiler_failed(e.to_string()))?;
        match output.status.code() {
            Some(0) => {}
            Some(1) => {
                let message = String::from_utf8_lossy(&output.stderr);
                return Err(CompileError::Invalid(message.trim().replace('\n', " ")));
            }
            _ => return Err(self.compiler_failed(format!("it ended with {}", output.status))),
        }
        fed.map_err(|e| self.compiler_failed(format!("writing the plugin to it failed: {e}")))?;
        Ok(output.stdout)
    }

    fn compiler_failed(&self, problem: String) -> CompileError {
        CompileError::Compiler { compiler: self.compiler().to_path_buf(), problem }
    }

    /// Whether `path` is in a private directory and owned by this user.
    fn is_trusted(&self, path: &Path) -> bool {
        private_fs::is_owned(&self.dir, Exposure::Private) && private_fs::is_owned(path, Exposure::ReadOnly)
    }
}
