//! Linux: keeping `keyhelper-full` in the page cache the way a read leaves
//! it. After a reboot (or once memory pressure has evicted it) the first
//! `exec` reads the executable back through its page faults, and every later
//! start of it is then slower than when the file was read or written through
//! the file interface: measured, a cold `get` took 2.98 against 2.51 ms with
//! the same executables, depending only on how their pages came back. So
//! before the small executable runs `keyhelper-full`, it asks the kernel
//! (`cachestat`, Linux 6.5) how much of it is cached, and if less than half
//! is (it has not run since it was evicted), reads it through once
//! (`sendfile` to `/dev/null`, no copy in this process). A file that is
//! mostly cached is left alone: if an `exec` brought it back, reading it
//! again would not change how it is cached, and a few pages lost to memory
//! pressure are not worth reading 17 MB for at every call.
//!
//! A renewer (`detach`) does the same for its program before it runs it,
//! after its starter has exited: when the first start of `keyhelper-full`
//! after a reboot is a renewal in the background, the executable comes back
//! the fast way too, and no caller waits for the read.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

/// `cachestat`'s number, the same on every architecture.
const SYS_CACHESTAT: libc::c_long = 451;

#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// How many pages of the file open on `fd` are in the page cache, where
/// the kernel can say. Async-signal-safe.
pub(super) fn cached_pages(fd: RawFd) -> Option<u64> {
    let range = CachestatRange { off: 0, len: 0 };
    let mut stat = Cachestat::default();
    // SAFETY: cachestat reads `range` and writes `stat`, both valid for the call.
    let done = unsafe { libc::syscall(SYS_CACHESTAT, fd, &range, &mut stat, 0) };
    (done == 0).then_some(stat.nr_cache)
}

/// The size of the file open on `fd`, if less than half of its pages of
/// `page` bytes are cached; none if more are, or on any error.
/// Async-signal-safe.
fn mostly_evicted(fd: RawFd, page: u64) -> Option<u64> {
    // SAFETY: fstat writes a stat structure, valid (zeroed) for the call.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above; an invalid descriptor is an error, not undefined.
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return None;
    }
    let size = u64::try_from(stat.st_size).ok()?;
    (cached_pages(fd)? < size.div_ceil(page.max(1)) / 2).then_some(size)
}

/// Reads `size` bytes of the file open on `fd` through the page cache into
/// `sink` (open for writing on `/dev/null`), from the file's own position;
/// stops at any error. Async-signal-safe, and nothing is copied into this
/// process.
fn read_through(fd: RawFd, sink: RawFd, size: u64) {
    let mut left = size;
    while left > 0 {
        // SAFETY: sendfile between two descriptors, from the file's own
        // position; no memory of ours is touched.
        let sent = unsafe { libc::sendfile(sink, fd, std::ptr::null_mut(), left as usize) };
        match u64::try_from(sent) {
            Ok(sent) if sent > 0 => left = left.saturating_sub(sent),
            _ => return,
        }
    }
}

/// The system's page size, the unit `cachestat` counts in.
fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(1)
}

/// Reads `path` through the page cache if less than half of it is cached
/// (see the module's notes). Does nothing where the kernel cannot say, or on any
/// error: it only costs speed.
pub fn cache_whole_file(path: &Path) {
    let Ok(file) = File::open(path) else { return };
    let Some(size) = mostly_evicted(file.as_raw_fd(), page_size()) else { return };
    let Ok(sink) = File::options().write(true).open("/dev/null") else { return };
    read_through(file.as_raw_fd(), sink.as_raw_fd(), size);
}

/// What a renewer does for its program between its `fork` and its `exec`:
/// [`cache_whole_file`] with what that needs prepared beforehand.
pub struct ExecWarmUp {
    page: u64,
}

impl ExecWarmUp {
    /// Prepared in the starter, before any child starts.
    pub fn prepare() -> Self {
        Self { page: page_size() }
    }

    /// Reads the executable at `path` (a NUL-terminated path) through the
    /// page cache into `sink` (open for writing on `/dev/null`) if less than
    /// half of it is cached. Only async-signal-safe system calls, nothing
    /// allocated; does nothing on any error.
    ///
    /// # Safety
    /// `path` must point to a NUL-terminated string.
    pub unsafe fn run(&self, path: *const libc::c_char, sink: RawFd) {
        // SAFETY: `path` is NUL-terminated (the caller's promise).
        let fd = unsafe { libc::open(path, libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return;
        }
        if let Some(size) = mostly_evicted(fd, self.page) {
            read_through(fd, sink, size);
        }
        // SAFETY: closing the descriptor opened above, used by nothing else.
        unsafe { libc::close(fd) };
    }
}

/// Files for the tests of what is cached.
#[cfg(test)]
pub(super) mod test_files {
    use std::fs::File;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::path::{Path, PathBuf};

    use super::{cached_pages, page_size};

    /// A file written whole, then dropped from the page cache.
    pub struct EvictedFile {
        /// Its directory, removed when this is dropped.
        _dir: tempfile::TempDir,
        /// Where it is.
        pub path: PathBuf,
        /// It, open for reading.
        pub file: File,
        /// Its pages, all cached when it was written.
        pub pages: u64,
    }

    impl EvictedFile {
        /// How many of its pages are cached now.
        pub fn cached(&self) -> u64 {
            cached_pages(self.file.as_raw_fd()).expect("the kernel answered cachestat before")
        }
    }

    /// `bytes` (a whole number of pages) written to a file under the
    /// workspace's `target/` (not /tmp, which may be a tmpfs, whose pages
    /// cannot be dropped), then dropped from the page cache; none where the
    /// kernel has no cachestat or the file system keeps its pages.
    pub fn evicted(bytes: &[u8]) -> Option<EvictedFile> {
        let parent = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../target"));
        std::fs::create_dir_all(parent).unwrap();
        let dir = tempfile::tempdir_in(parent).unwrap();
        let path = dir.path().join("file");
        let mut written = File::create(&path).unwrap();
        written.write_all(bytes).unwrap();
        written.sync_all().unwrap();
        let file = File::open(&path).unwrap();
        let before = cached_pages(file.as_raw_fd())?;
        let pages = bytes.len() as u64 / page_size();
        assert_eq!(before, pages, "a file just written is cached");
        // SAFETY: posix_fadvise on an open descriptor; it drops clean pages only.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        let evicted = EvictedFile { _dir: dir, path, file, pages };
        let left = evicted.cached();
        if left == pages {
            return None; // a file system that keeps its pages (tmpfs)
        }
        assert!(left < pages / 2, "the pages were dropped ({left} of {pages} still cached)");
        Some(evicted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_out_of_the_page_cache_is_read_back_whole_and_one_mostly_in_it_is_left_alone() {
        let Some(evicted) = test_files::evicted(&vec![7u8; 3 << 20]) else {
            return; // nothing can be evicted here to read back
        };
        cache_whole_file(&evicted.path);
        assert_eq!(evicted.cached(), evicted.pages);
        let quarter: libc::off_t = (3 << 20) / 4;
        // SAFETY: posix_fadvise on an open descriptor, for the last quarter of the file only.
        unsafe {
            libc::posix_fadvise(evicted.file.as_raw_fd(), 3 * quarter, quarter, libc::POSIX_FADV_DONTNEED)
        };
        let mostly = evicted.cached();
        assert!(mostly < evicted.pages, "the last quarter was dropped");
        cache_whole_file(&evicted.path);
        assert_eq!(evicted.cached(), mostly, "a file mostly cached is left as it is");
    }
}
