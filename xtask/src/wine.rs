//! Wine, with a prefix of its own, for running the Windows executables from
//! Linux (`cross` and `wine_sessions`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, ensure};

use crate::workspace_root;

/// Where Debian's `wine64` package puts Wine.
pub const WINE: &str = "/usr/lib/wine/wine64";
/// Wine's server, beside it (from `libwine`, which `wine64` depends on; the
/// `wineserver` on PATH comes only with the `wine` package).
const WINESERVER: &str = "/usr/lib/wine/wineserver";

/// Wine with a prefix of its own, running the executables in `bin`.
pub(crate) struct Wine {
    pub(crate) bin: PathBuf,
    /// The Wine prefix and the test's files.
    pub(crate) dir: PathBuf,
}

impl Wine {
    pub(crate) fn new(bin: &Path) -> Result<Self> {
        let dir = workspace_root().join("target").join("wine-test");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin"))?;
        let wine = Self { bin: bin.to_path_buf(), dir };
        // Creating the prefix takes a while; do it before anything is timed.
        let boot = wine.command("wineboot").arg("--init").output().context("running wine")?;
        ensure!(boot.status.success(), "wineboot failed: {}", String::from_utf8_lossy(&boot.stderr));
        Ok(wine)
    }

    /// `program args…` under Wine, with the test's `bin` on the Windows PATH.
    pub(crate) fn command(&self, program: &str) -> Command {
        let mut command = Command::new(WINE);
        command.arg(program).envs(self.environment()).env_remove("KEYHELPER_CONFIG").stdin(Stdio::null());
        command
    }

    /// Wine's settings: the prefix, quiet, the stand-in DLL before Wine's
    /// own (and no .NET or Gecko to install), and the test's `bin` on PATH.
    pub(crate) fn environment(&self) -> [(&'static str, OsString); 4] {
        [
            ("WINEPREFIX", self.dir.join("prefix").into()),
            ("WINEDEBUG", "-all".into()),
            ("WINEDLLOVERRIDES", "bcryptprimitives=n;mscoree,mshtml=".into()),
            ("WINEPATH", windows_path(&self.dir.join("bin")).into()),
        ]
    }

    /// `keyhelper.exe args…` with `config`, feeding it `stdin`.
    pub(crate) fn keyhelper(&self, config: &Path, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        let exe = self.bin.join("keyhelper.exe");
        let mut command = self.command(&exe.to_string_lossy());
        command.args(args).env("KEYHELPER_CONFIG", windows_path(config));
        let output = match stdin {
            None => command.output()?,
            Some(text) => {
                use std::io::Write;
                let mut child =
                    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
                child.stdin.take().expect("piped").write_all(text.as_bytes())?;
                child.wait_with_output()?
            }
        };
        Ok(output)
    }

    pub(crate) fn write(&self, name: &str, text: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Stops every process of the prefix (a proxy, a renewer) with
    /// `wineserver -k`, so no pipe of theirs stays open.
    pub(crate) fn stop_all(&self) -> Result<()> {
        let status = Command::new(WINESERVER)
            .arg("-k")
            .envs(self.environment())
            .status()
            .with_context(|| format!("running {WINESERVER}"))?;
        ensure!(status.success() || status.code() == Some(1), "wineserver -k failed: {status}");
        Ok(())
    }
}

/// The Windows name Wine gives a Unix path (drive Z: is `/`).
pub(crate) fn windows_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
