//! Durable replacement of small state files (API keys, external streams, recordings in
//! progress, retention policy): they must survive a crash or power loss either whole-old or
//! whole-new, never torn or empty.
//!
//! [`write`] puts the bytes into a temporary file next to the target (same file system, so
//! the rename is atomic), fsyncs it, renames it over the target and fsyncs the directory so
//! the rename itself is on disk. These are blocking calls: from async code run them on the
//! blocking pool (`blocking::unblock`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Who may read the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 0600 whatever the umask: the file holds credentials or key hashes.
    Private,
    /// 0666 less the umask, as `File::create` gives.
    Default,
}

/// Replaces `path` with `data` durably (see the module doc); creates the directory if needed.
/// On error the target is left as it was and no temporary file remains.
pub fn write(path: &Path, data: &[u8], mode: Mode) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let tmp = temp_path(path);
    let result = write_synced(&tmp, data, mode).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    // Best effort: some file systems refuse fsync on a directory; the data itself is synced.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn write_synced(tmp: &Path, data: &[u8], mode: Mode) -> io::Result<()> {
    let bits = match mode {
        Mode::Private => 0o600,
        Mode::Default => 0o666,
    };
    let mut file = OpenOptions::new().write(true).create_new(true).mode(bits).open(tmp)?;
    if mode == Mode::Private {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(data)?;
    file.sync_all()
}

/// `.name.tmp.<pid>.<n>` next to the target: unique per write, so two writers of one file
/// never share (and tear) a temporary file; the last rename wins.
fn temp_path(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp.{}.{n}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("state-file-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_content_in_a_new_directory_and_leaves_no_temp() {
        let dir = scratch("content");
        let path = dir.join("sub").join("state.json");
        write(&path, b"{\"a\":1}", Mode::Default).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\":1}");
        assert_eq!(names(&dir.join("sub")), ["state.json"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn private_files_are_0600_whatever_was_there() {
        let dir = scratch("mode");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.json");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&path, b"secret", Mode::Private).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"secret");
        assert_eq!(names(&dir), ["keys.json"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn overwrite_replaces_whole_content() {
        let dir = scratch("overwrite");
        let path = dir.join("rec.json");
        write(&path, &[b'x'; 4096], Mode::Default).unwrap();
        write(&path, b"short", Mode::Default).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"short");
        write(&path, b"", Mode::Private).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        assert_eq!(names(&dir), ["rec.json"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failed_write_keeps_target_and_leaves_no_temp() {
        let dir = scratch("fail");
        std::fs::create_dir_all(&dir).unwrap();
        // The target is a non-empty directory: the rename fails.
        let path = dir.join("state.json");
        std::fs::create_dir_all(path.join("inner")).unwrap();
        assert!(write(&path, b"data", Mode::Private).is_err());
        assert!(path.join("inner").is_dir());
        assert_eq!(names(&dir), ["state.json"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
