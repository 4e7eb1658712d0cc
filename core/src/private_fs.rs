//! Files only this user can read (0700 directories and 0600 files on Unix,
//! an owner-only ACL on Windows: see [`crate::platform`]), replaced
//! atomically. Every file keyhelper writes that holds a secret or native code
//! goes through here.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::platform::{self, Exposure};

/// Creates `dir` (and its parents) if needed and makes it this user's alone.
pub fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    platform::create_private_dir(dir)
}

/// Opens (creating it 0600, in a 0700 directory) a file that exists to be
/// locked; its content is never read or written.
pub fn open_lock_file(path: &Path) -> std::io::Result<fs::File> {
    ensure_dir(parent(path)?)?;
    platform::open_private(fs::File::options().create(true).truncate(false).write(true)).open(path)
}

/// Opens `path` for appending, creating it 0600 (in a 0700 directory).
pub fn open_append(path: &Path) -> std::io::Result<fs::File> {
    let open = || platform::open_private(fs::File::options().append(true).create(true)).open(path);
    match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            ensure_dir(parent(path)?)?;
            open()
        }
        other => other,
    }
}

/// Whether two open files are the same file (not one replaced by another).
pub fn same_file(a: &fs::File, b: &fs::File) -> bool {
    platform::same_file(a, b)
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
        Durability::Durable => platform::sync_dir(dir),
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
        Ok(_) => platform::sync_dir(dir),
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

/// Reads a file that must be this user's alone (a key or a secret store):
/// one that others could read is refused with an error naming the fix
/// rather than used.
pub fn read_private(path: &Path) -> std::io::Result<Vec<u8>> {
    platform::read_private_file(path)
}

/// Whether `path` is this user's, not a symlink, and gives others no more
/// than `exposure` allows.
pub fn is_owned(path: &Path, exposure: Exposure) -> bool {
    platform::verify_owned(path, exposure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_private_files_in_private_dirs() {
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join("a").join("b").join("file");
        write_atomic(&path, b"one", Durability::Durable).unwrap();
        write_atomic(&path, b"two", Durability::Disposable).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(read_private(&path).unwrap(), b"two");
        assert!(is_owned(&path, Exposure::Private));
        assert!(is_owned(path.parent().unwrap(), Exposure::Private));
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "no temporary files left");
    }

    #[test]
    fn create_new_keeps_the_first_file() {
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join("key");
        create_new(&path, b"first").unwrap();
        create_new(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert!(is_owned(&path, Exposure::Private));
        assert_eq!(fs::read_dir(base.path()).unwrap().count(), 1, "no temporary files left");
    }

    #[test]
    fn knows_a_replaced_file() {
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join("log");
        let mut first = open_append(&path).unwrap();
        first.write_all(b"line\n").unwrap();
        assert!(same_file(&first, &fs::File::open(&path).unwrap()));
        fs::rename(&path, base.path().join("log.1")).unwrap();
        let _second = open_append(&path).unwrap();
        assert!(!same_file(&first, &fs::File::open(&path).unwrap()));
    }
}
