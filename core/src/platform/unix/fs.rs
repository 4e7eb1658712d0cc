//! Unix: private means mode 0700 for directories and 0600 for files, owned
//! by this user; a file is known by its device and inode.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// The whole file at `path`, read with one `openat`, one `fstat` and, unless
/// it changes size meanwhile, one `read`. std's `fs::read` also asks for the
/// file's position and reads once more to meet its end, and under musl its
/// `open` sets close-on-exec in a second call; a cache hit reads four files,
/// so that was a third of its system calls.
pub fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let (file, metadata) = open_to_read(path)?;
    read_whole(file, &metadata)
}

/// Like [`read_file`], with the stamp of the version read (see
/// [`version_stamp`]), taken from the `fstat` before the read: a write after
/// it changes what a later [`current_stamp`] sees.
pub fn read_file_stamped(path: &Path, now: SystemTime) -> std::io::Result<(Vec<u8>, Option<String>)> {
    let (file, metadata) = open_to_read(path)?;
    let stamp = version_stamp(&metadata, now);
    Ok((read_whole(file, &metadata)?, stamp))
}

/// What tells one version of a file from another without reading it, as git
/// does: device, inode, size, and modification and change times to the
/// nanosecond. Rewriting a file changes its change time even if its size
/// and modification time are put back, and replacing it changes its inode.
/// `None` when the file changed less than [`RACY_WINDOW`] before `now`: a
/// later write could still carry the same times on a file system whose clock
/// is coarse, so its content must be compared instead.
fn version_stamp(metadata: &fs::Metadata, now: SystemTime) -> Option<String> {
    let changed =
        UNIX_EPOCH + Duration::new(metadata.ctime().try_into().ok()?, metadata.ctime_nsec().try_into().ok()?);
    (changed + RACY_WINDOW <= now).then(|| stamp(metadata))
}

fn stamp(metadata: &fs::Metadata) -> String {
    format!(
        "{}.{}.{}.{}.{}.{}.{}",
        metadata.dev(),
        metadata.ino(),
        metadata.size(),
        metadata.mtime(),
        metadata.mtime_nsec(),
        metadata.ctime(),
        metadata.ctime_nsec()
    )
}

/// How long after a change a file's times cannot yet tell it from a later
/// change (FAT keeps modification times to 2 s).
const RACY_WINDOW: Duration = Duration::from_secs(3);

/// The stamp of the file at `path` as it is now, to compare with one taken
/// when it was read; `None` when it cannot be had.
pub fn current_stamp(path: &Path) -> Option<String> {
    Some(stamp(&fs::metadata(path).ok()?))
}

/// Like [`read_file`], for a file that must be this user's alone: one owned
/// by another user, or with any permission for group or others, is an error
/// naming `chmod 600` rather than used.
pub fn read_private_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let (file, metadata) = open_to_read(path)?;
    check_private(&metadata, path)?;
    read_whole(file, &metadata)
}

fn open_to_read(path: &Path) -> std::io::Result<(File, fs::Metadata)> {
    let name = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a path with a NUL byte"))?;
    // SAFETY: `name` is a NUL-terminated path; the descriptor returned is
    // owned by the `File` made from it, and by nothing else.
    let file = unsafe {
        let fd = libc::openat(libc::AT_FDCWD, name.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        File::from_raw_fd(fd)
    };
    let metadata = file.metadata()?;
    Ok((file, metadata))
}

/// Reads `file` to its end, expecting `metadata`'s size: a read that brings
/// exactly that much ends it, without another to see the end.
fn read_whole(mut file: File, metadata: &fs::Metadata) -> std::io::Result<Vec<u8>> {
    let expected = usize::try_from(metadata.len()).unwrap_or(0);
    let mut bytes = vec![0; expected + 1];
    let mut filled = 0;
    loop {
        if filled == bytes.len() {
            bytes.resize(bytes.len() * 2, 0);
        }
        match file.read(&mut bytes[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if filled == expected {
            break;
        }
    }
    bytes.truncate(filled);
    Ok(bytes)
}

fn check_private(metadata: &fs::Metadata, path: &Path) -> std::io::Result<()> {
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
    Ok(())
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
    fn reads_whole_files_of_any_size() {
        let base = tempfile::tempdir().unwrap();
        for size in [0, 1, 4095, 4096, 100_000] {
            let path = base.path().join(format!("f{size}"));
            let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            private_file(&path);
            fs::write(&path, &content).unwrap();
            assert_eq!(read_file(&path).unwrap(), content, "{size} bytes");
            assert_eq!(read_private_file(&path).unwrap(), content, "{size} bytes");
        }
        let missing = read_file(&base.path().join("missing")).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        let path = base.path().join("f1");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_file(&path).is_ok());
        let open = read_private_file(&path).unwrap_err();
        assert!(open.to_string().contains("chmod 600"), "{open}");
    }

    #[test]
    fn refuses_files_open_to_others() {
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join("key");
        private_file(&path);
        assert!(read_private_file(&path).is_ok());
        for mode in [0o640, 0o604, 0o620, 0o601] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let error = read_private_file(&path).unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied);
            assert!(error.to_string().contains("chmod 600"), "{error}");
        }
    }
}
