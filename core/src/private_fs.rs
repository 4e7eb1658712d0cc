//! Files only this user can read: 0700 directories, 0600 files, atomic replace.
//! Every file keyhelper writes that holds a secret or native code goes through
//! here.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and its parents) if needed and makes it mode 0700.
pub fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Opens (creating it 0600, in a 0700 directory) a file that exists to be
/// locked; its content is never read or written.
pub fn open_lock_file(path: &Path) -> std::io::Result<fs::File> {
    ensure_dir(parent(path)?)?;
    fs::File::options().create(true).truncate(false).write(true).mode(0o600).open(path)
}

/// What a replaced file must survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A crash leaves the new content or the old: the file and its directory
    /// are synced. For what cannot be had again: secrets, keys, records.
    Durable,
    /// A crash may lose the new content, never tear it. For caches, where a
    /// lost file is a miss and a sync would cost milliseconds on every fetch.
    Disposable,
}

/// Replaces `path` with `bytes` atomically: a reader sees the old content or
/// the new, never a mix; `durability` says what a crash may do. The file is
/// 0600 and its directory 0700.
pub fn write_atomic(path: &Path, bytes: &[u8], durability: Durability) -> std::io::Result<()> {
    let dir = parent(path)?;
    let file = written_temp_file(dir, bytes, durability)?;
    file.persist(path).map_err(|e| e.error)?;
    match durability {
        Durability::Durable => sync_dir(dir),
        Durability::Disposable => Ok(()),
    }
}

/// Creates `path` with `bytes` only if it does not exist yet (0600, directory
/// 0700). Losing a race to another creator is not an error: the file exists.
pub fn create_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = parent(path)?;
    let file = written_temp_file(dir, bytes, Durability::Durable)?;
    // A complete file appears at once or not at all.
    match file.persist_noclobber(path) {
        Ok(_) => sync_dir(dir),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e.error),
    }
}

fn parent(path: &Path) -> std::io::Result<&Path> {
    path.parent().ok_or_else(|| std::io::Error::other("path has no parent directory"))
}

/// A temporary file in `dir` (0600, made 0700 first) holding `bytes`, synced
/// to disk when it must be durable; removed if it is dropped before it is
/// persisted.
fn written_temp_file(
    dir: &Path,
    bytes: &[u8],
    durability: Durability,
) -> std::io::Result<tempfile::NamedTempFile> {
    ensure_dir(dir)?;
    let mut file = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    file.write_all(bytes)?;
    if durability == Durability::Durable {
        file.as_file().sync_all()?;
    }
    Ok(file)
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Whether `path` is owned by this user, is not a symlink, and has none of the
/// permission bits in `forbidden_mode` (e.g. `0o077` for "private").
pub fn is_owned_with_mode(path: &Path, forbidden_mode: u32) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    fs::symlink_metadata(path)
        .is_ok_and(|m| m.uid() == uid && m.mode() & forbidden_mode == 0 && !m.file_type().is_symlink())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_private_files_in_private_dirs() {
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join("a/b/file");
        write_atomic(&path, b"one", Durability::Durable).unwrap();
        write_atomic(&path, b"two", Durability::Disposable).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777, 0o700);
        assert!(is_owned_with_mode(&path, 0o077));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(!is_owned_with_mode(&path, 0o077));
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "no temporary files left");
    }

    #[test]
    fn create_new_keeps_the_first_file() {
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join("key");
        create_new(&path, b"first").unwrap();
        create_new(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(base.path()).unwrap().count(), 1, "no temporary files left");
    }
}
