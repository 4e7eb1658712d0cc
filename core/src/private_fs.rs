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

/// Opens `path` for appending, creating it 0600 (in a 0700 directory).
pub fn open_append(path: &Path) -> std::io::Result<fs::File> {
    match fs::File::options().append(true).create(true).mode(0o600).open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            ensure_dir(parent(path)?)?;
            fs::File::options().append(true).create(true).mode(0o600).open(path)
        }
        other => other,
    }
}

/// Whether two metadata describe the same file (device and inode).
pub fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
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

/// Reads a file that must be this user's alone (a key or a secret store):
/// one owned by another user, or with any permission bit for group or
/// others, is refused with an error naming `chmod 600` rather than used.
pub fn read_private(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = fs::File::open(path)?;
    let metadata = file.metadata()?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if metadata.uid() != uid {
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
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
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
    fn read_private_refuses_files_open_to_others() {
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join("key");
        write_atomic(&path, b"k", Durability::Durable).unwrap();
        assert_eq!(read_private(&path).unwrap(), b"k");
        for mode in [0o640, 0o604, 0o620, 0o601] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let error = read_private(&path).unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied);
            assert!(error.to_string().contains("chmod 600"), "{error}");
        }
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
