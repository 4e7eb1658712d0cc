//! Unix: private means mode 0700 for directories and 0600 for files, owned
//! by this user; a file is known by its device and inode.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::platform::Exposure;

/// Creates `dir` (and its parents) if needed and makes it mode 0700.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Makes `options` create files mode 0600.
pub fn open_private(options: &mut OpenOptions) -> &mut OpenOptions {
    options.mode(0o600)
}

/// Refuses `file` (opened from `path`) unless it is this user's alone: one
/// owned by another user, or with any permission for group or others, is an
/// error naming `chmod 600` rather than used. Returns its metadata.
pub fn verify_private(file: &File, path: &Path) -> std::io::Result<fs::Metadata> {
    let metadata = file.metadata()?;
    if metadata.uid() != effective_uid() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{} belongs to another user; it must be yours alone: move it aside", path.display()),
        ));
    }
    let mode = metadata.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} is open to other users (mode {mode:04o}), so it is not used: run `chmod 600 {}` (and rotate what it protects if others could read it)",
                path.display(),
                path.display()
            ),
        ));
    }
    Ok(metadata)
}

/// Whether `path` is this user's, not a symlink, and gives others no more
/// than `exposure` allows.
pub fn verify_owned(path: &Path, exposure: Exposure) -> bool {
    let forbidden = match exposure {
        Exposure::Private => 0o077,
        Exposure::ReadOnly => 0o022,
    };
    fs::symlink_metadata(path)
        .is_ok_and(|m| m.uid() == effective_uid() && m.mode() & forbidden == 0 && !m.file_type().is_symlink())
}

/// Makes a rename in `dir` durable: the directory is synced.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Whether two open files are the same file (device and inode).
pub fn same_file(a: &File, b: &File) -> bool {
    match (a.metadata(), b.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o777
    }

    fn private_file(path: &Path) {
        open_private(File::options().create(true).write(true)).open(path).unwrap();
    }

    #[test]
    fn private_means_0600_files_in_0700_directories() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("a/b");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let path = dir.join("file");
        private_file(&path);
        assert_eq!(mode(&path), 0o600);
        assert!(verify_owned(&path, Exposure::Private));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(!verify_owned(&path, Exposure::Private));
        assert!(verify_owned(&path, Exposure::ReadOnly));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o664)).unwrap();
        assert!(!verify_owned(&path, Exposure::ReadOnly));
    }

    #[test]
    fn refuses_files_open_to_others() {
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join("key");
        private_file(&path);
        assert!(verify_private(&File::open(&path).unwrap(), &path).is_ok());
        for mode in [0o640, 0o604, 0o620, 0o601] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let error = verify_private(&File::open(&path).unwrap(), &path).unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied);
            assert!(error.to_string().contains("chmod 600"), "{error}");
        }
    }
}
