//! Windows: a private directory has a protected ACL that grants full access
//! to the current user alone (`D:P(A;OICI;FA;;;<user SID>)`), which files
//! created in it inherit; a file is known by its volume and file index.
//!
//! The ACE names the user's SID rather than OWNER RIGHTS: an elevated
//! administrator's new files are owned by the Administrators group, which
//! the same user, not elevated, is not.

use std::fs::{File, OpenOptions};
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::AsRawHandle;
use std::path::Path;

use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, LocalFree};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    DACL_SECURITY_INFORMATION, GetTokenInformation, PROTECTED_DACL_SECURITY_INFORMATION,
    PSECURITY_DESCRIPTOR, SetFileSecurityW, TOKEN_QUERY, TOKEN_USER, TokenUser,
};
use windows_sys::Win32::Storage::FileSystem::{BY_HANDLE_FILE_INFORMATION, GetFileInformationByHandle};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

use crate::platform::Exposure;

/// Creates `dir` (and its parents) if needed and gives it an ACL that lets
/// only the current user in.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    set_owner_only(dir)
}

/// Files take their ACL from their private directory: nothing to set.
pub fn open_private(options: &mut OpenOptions) -> &mut OpenOptions {
    options
}

/// The whole file at `path`.
pub fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    std::fs::read(path)
}

/// The whole file at `path`, and no stamp of its version: Windows keeps no
/// change time, so a file's content is always what tells its versions apart.
pub fn read_file_stamped(
    path: &Path,
    _now: std::time::SystemTime,
) -> std::io::Result<(Vec<u8>, Option<String>)> {
    Ok((read_file(path)?, None))
}

/// No stamp of a file's version here (see [`read_file_stamped`]).
pub fn current_stamp(_path: &Path) -> Option<String> {
    None
}

/// The whole file at `path`, which must be this user's alone (see
/// `verify_private`).
pub fn read_private_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let metadata = verify_private(&file, path)?;
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Files keyhelper reads as private sit in directories whose ACL lets only
/// their owner in (see [`create_private_dir`]); nothing more is checked.
/// Returns the file's metadata.
fn verify_private(file: &File, _path: &Path) -> std::io::Result<std::fs::Metadata> {
    file.metadata()
}

/// Whether `path` exists and is not a symlink; what others may do with it is
/// the business of its private directory's ACL.
pub fn verify_owned(path: &Path, _exposure: Exposure) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| !m.file_type().is_symlink())
}

/// A rename is durable once it returns: NTFS journals it, and a directory
/// cannot be opened as a file to sync it.
pub fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Whether two open files are the same file (volume and file index).
pub fn same_file(a: &File, b: &File) -> bool {
    match (identity(a), identity(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn identity(file: &File) -> Option<(u32, u32, u32)> {
    let mut info = BY_HANDLE_FILE_INFORMATION::default();
    // SAFETY: the handle is open for the life of `file`; `info` is a valid
    // struct for the call to fill.
    let ok = unsafe { GetFileInformationByHandle(file.as_raw_handle(), &mut info) } != 0;
    ok.then_some((info.dwVolumeSerialNumber, info.nFileIndexHigh, info.nFileIndexLow))
}

/// Full access for the current user, inherited by everything created
/// inside, and nothing inherited from above.
fn set_owner_only(path: &Path) -> std::io::Result<()> {
    let wide = |s: &std::ffi::OsStr| s.encode_wide().chain(Some(0)).collect::<Vec<u16>>();
    let sddl = wide(format!("D:P(A;OICI;FA;;;{})", current_user_sid()?).as_ref());
    let name = wide(path.as_os_str());
    let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `sddl` is NUL-terminated; on success `descriptor` points to a
    // descriptor allocated with LocalAlloc, freed below.
    let converted = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut descriptor,
            std::ptr::null_mut(),
        )
    };
    if converted == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `name` is NUL-terminated and `descriptor` valid until freed.
    let set = unsafe {
        SetFileSecurityW(
            name.as_ptr(),
            DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
            descriptor,
        )
    };
    let error = std::io::Error::last_os_error();
    // SAFETY: frees what ConvertStringSecurityDescriptorToSecurityDescriptorW allocated.
    unsafe { LocalFree(descriptor) };
    if set == 0 { Err(error) } else { Ok(()) }
}

/// The current user's SID, as a string (`S-1-5-21-…`).
fn current_user_sid() -> std::io::Result<String> {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: the pseudo-handle of this process needs no closing; `token`
    // receives a handle closed below.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // TOKEN_USER is followed by the SID it points to; 256 bytes hold any SID.
    let mut buffer = [0u64; 32];
    let mut needed = 0u32;
    // SAFETY: the buffer is writable for its whole size, and aligned for TOKEN_USER.
    let ok = unsafe {
        GetTokenInformation(
            token,
            TokenUser,
            buffer.as_mut_ptr().cast(),
            size_of_val(&buffer) as u32,
            &mut needed,
        )
    };
    let error = std::io::Error::last_os_error();
    // SAFETY: closes the token opened above.
    unsafe { CloseHandle(token) };
    if ok == 0 {
        return Err(error);
    }
    // SAFETY: on success the buffer starts with a TOKEN_USER.
    let sid = unsafe { (*buffer.as_ptr().cast::<TOKEN_USER>()).User.Sid };
    let mut text: windows_sys::core::PWSTR = std::ptr::null_mut();
    // SAFETY: `sid` points into `buffer`, alive here; `text` receives a
    // LocalAlloc'd NUL-terminated string, freed below.
    if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `text` is NUL-terminated.
    let length = unsafe { (0..).take_while(|&i| *text.add(i) != 0).count() };
    // SAFETY: `length` u16s are readable at `text`.
    let sid = String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(text, length) });
    // SAFETY: frees what ConvertSidToStringSidW allocated.
    unsafe { LocalFree(text.cast()) };
    Ok(sid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use windows_sys::Win32::Security::Authorization::ConvertSecurityDescriptorToStringSecurityDescriptorW;
    use windows_sys::Win32::Security::GetFileSecurityW;

    /// The DACL of `path` as SDDL (`D:P(A;…)`), read back from the file system.
    fn dacl_of(path: &Path) -> String {
        let name: Vec<u16> = path.as_os_str().encode_wide().chain(Some(0)).collect();
        let mut buffer = [0u64; 512];
        let mut needed = 0u32;
        // SAFETY: `name` is NUL-terminated; the buffer is writable for its size.
        let ok = unsafe {
            GetFileSecurityW(
                name.as_ptr(),
                DACL_SECURITY_INFORMATION,
                buffer.as_mut_ptr().cast(),
                size_of_val(&buffer) as u32,
                &mut needed,
            )
        };
        assert_ne!(ok, 0, "GetFileSecurityW: {}", std::io::Error::last_os_error());
        let mut text: windows_sys::core::PWSTR = std::ptr::null_mut();
        // SAFETY: the buffer holds the descriptor just read; `text` receives a
        // LocalAlloc'd NUL-terminated string, freed below.
        let ok = unsafe {
            ConvertSecurityDescriptorToStringSecurityDescriptorW(
                buffer.as_mut_ptr().cast(),
                SDDL_REVISION_1,
                DACL_SECURITY_INFORMATION,
                &mut text,
                std::ptr::null_mut(),
            )
        };
        assert_ne!(ok, 0, "converting the descriptor: {}", std::io::Error::last_os_error());
        // SAFETY: `text` is NUL-terminated.
        let length = unsafe { (0..).take_while(|&i| *text.add(i) != 0).count() };
        // SAFETY: `length` u16s are readable at `text`.
        let sddl = String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(text, length) });
        // SAFETY: frees what the conversion allocated.
        unsafe { LocalFree(text.cast()) };
        sddl
    }

    #[test]
    fn a_private_directory_lets_no_one_but_its_owner_in() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("secrets");
        create_private_dir(&private).unwrap();
        let sid = current_user_sid().unwrap();
        assert!(sid.starts_with("S-1-5-"), "{sid}");
        // Windows reads back `D:P(A;OICI;FA;;;<sid>)`: full access for the
        // owner, inherited by files and subdirectories, nothing inherited
        // from above. Wine keeps permissions as Unix modes and reads back
        // what they allow, adding SYSTEM (`SY`); a plain directory there also
        // lets everyone (`WD`) read. Either way: no one but the owner (and
        // the OS itself).
        let dacl = dacl_of(&private);
        let body = dacl.strip_prefix("D:").unwrap_or_default().trim_start_matches('P');
        let aces: Vec<&str> = body.trim_start_matches('(').trim_end_matches(')').split(")(").collect();
        assert!(aces.contains(&format!("A;OICI;FA;;;{sid}").as_str()), "{dacl}");
        assert!(
            aces.iter().all(|ace| ace.ends_with(&format!(";;;{sid}")) || ace.ends_with(";;;SY")),
            "{dacl}"
        );
    }
}
