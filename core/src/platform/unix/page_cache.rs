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

use std::fs::File;
use std::os::fd::AsRawFd;
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

/// How many pages of `file` are in the page cache, where the kernel can say.
fn cached_pages(file: &File) -> Option<u64> {
    let range = CachestatRange { off: 0, len: 0 };
    let mut stat = Cachestat::default();
    // SAFETY: cachestat reads `range` and writes `stat`, both valid for the call.
    let done = unsafe { libc::syscall(SYS_CACHESTAT, file.as_raw_fd(), &range, &mut stat, 0) };
    (done == 0).then_some(stat.nr_cache)
}

/// Reads `path` through the page cache if less than half of it is cached
/// (see the module's notes). Does nothing where the kernel cannot say, or on any
/// error: it only costs speed.
pub fn cache_whole_file(path: &Path) {
    let Ok(file) = File::open(path) else { return };
    let Ok(size) = file.metadata().map(|m| m.len()) else { return };
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(1);
    match cached_pages(&file) {
        Some(cached) if cached < size.div_ceil(page) / 2 => {}
        _ => return,
    }
    let Ok(sink) = File::options().write(true).open("/dev/null") else { return };
    let mut left = size;
    while left > 0 {
        // SAFETY: sendfile between two open descriptors, from the file's own
        // position; no memory of ours is touched.
        let sent = unsafe {
            libc::sendfile(sink.as_raw_fd(), file.as_raw_fd(), std::ptr::null_mut(), left as usize)
        };
        match u64::try_from(sent) {
            Ok(sent) if sent > 0 => left = left.saturating_sub(sent),
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_out_of_the_page_cache_is_read_back_whole_and_one_mostly_in_it_is_left_alone() {
        // Not /tmp, which may be a tmpfs, whose pages cannot be dropped.
        let parent = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../target"));
        std::fs::create_dir_all(parent).unwrap();
        let dir = tempfile::tempdir_in(parent).unwrap();
        let path = dir.path().join("executable");
        let mut file = File::create(&path).unwrap();
        file.write_all(&vec![7u8; 3 << 20]).unwrap();
        file.sync_all().unwrap();
        let file = File::open(&path).unwrap();
        let Some(before) = cached_pages(&file) else {
            return; // a kernel without cachestat: nothing to check
        };
        // SAFETY: sysconf has no memory-safety preconditions.
        let pages = (3 << 20) / u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap();
        assert_eq!(before, pages, "a file just written is cached");
        // SAFETY: posix_fadvise on an open descriptor; it drops clean pages only.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        let evicted = cached_pages(&file).unwrap();
        if evicted == pages {
            return; // a file system that keeps its pages (tmpfs): nothing was evicted to read back
        }
        assert!(evicted < pages / 2, "the pages were dropped ({evicted} of {pages} still cached)");
        cache_whole_file(&path);
        assert_eq!(cached_pages(&file), Some(pages));
        let quarter: libc::off_t = (3 << 20) / 4;
        // SAFETY: as above, for the last quarter of the file only.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 3 * quarter, quarter, libc::POSIX_FADV_DONTNEED) };
        let mostly = cached_pages(&file).unwrap();
        assert!(mostly < pages, "the last quarter was dropped");
        cache_whole_file(&path);
        assert_eq!(cached_pages(&file), Some(mostly), "a file mostly cached is left as it is");
    }
}
