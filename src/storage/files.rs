//! The one place where client-given file names become files on disk (api.md §7).
//!
//! Every JSON-RPC file method and the HTTP download handler go through here:
//! - [`validate_name`] refuses `/`, `\`, `..`, NUL/control characters, leading dots and names
//!   over 255 bytes (→ -32602);
//! - [`open_file`] / [`remove_file`] work relative to a directory file descriptor with
//!   `O_NOFOLLOW`, so neither the camera folder nor the file may be a symlink: a symlink is
//!   never followed out of the directory (it is reported as absent, -32010);
//! - [`scan`] lists regular files only (symlinks are skipped, not followed).

use crate::error::ServiceError;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub const MAX_NAME_BYTES: usize = 255;

/// Which of the two file trees a name belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Recording,
    Snapshot,
}

impl Kind {
    /// `resource` of a -32010 error.
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Recording => "recording",
            Kind::Snapshot => "snapshot",
        }
    }
    /// Path segment of `download_url`: `/files/<segment>/<name>`.
    pub fn url_segment(self) -> &'static str {
        match self {
            Kind::Recording => "recordings",
            Kind::Snapshot => "snapshots",
        }
    }
    pub fn from_url_segment(s: &str) -> Option<Kind> {
        match s {
            "recordings" => Some(Kind::Recording),
            "snapshots" => Some(Kind::Snapshot),
            _ => None,
        }
    }
    /// Whether a (valid) name has an extension of this kind.
    pub fn accepts(self, name: &str) -> bool {
        file_format(self, name).is_some()
    }
}

/// The `format` of a file from its extension: recordings `mp4`/`ts`, snapshots `jpg`/`png`
/// (`fmp4` vs `mp4` is refined by the header reader).
pub fn file_format(kind: Kind, name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    match (kind, ext.as_str()) {
        (Kind::Recording, "mp4") => Some("fmp4"),
        (Kind::Recording, "ts") => Some("mpegts"),
        (Kind::Snapshot, "jpg" | "jpeg") => Some("jpg"),
        (Kind::Snapshot, "png") => Some("png"),
        _ => None,
    }
}

/// HTTP `Content-Type` by extension.
pub fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).as_deref() {
        Some("mp4") => "video/mp4",
        Some("ts") => "video/mp2t",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

fn invalid(details: &str) -> ServiceError {
    ServiceError::InvalidParam {
        param: "filename",
        details: details.to_string(),
    }
}

/// Checks a bare file name (api.md §7). The error never echoes the name back.
pub fn validate_name(name: &str) -> Result<(), ServiceError> {
    if name.is_empty() {
        return Err(invalid("filename must not be empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(invalid("filename must be at most 255 bytes"));
    }
    if name.contains(['/', '\\']) {
        return Err(invalid("filename must be a bare name without '/' or '\\'"));
    }
    if name.contains("..") {
        return Err(invalid("filename must not contain '..'"));
    }
    if name.starts_with('.') {
        return Err(invalid("filename must not start with '.'"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("filename must not contain NUL or control characters"));
    }
    Ok(())
}

/// `cameraN` from a `cameraN_...` name.
pub fn camera_of(name: &str) -> Option<&str> {
    let (prefix, _) = name.split_once('_')?;
    crate::ids::parse_camera_id(prefix).map(|_| prefix)
}

fn is_camera_folder(name: &str) -> bool {
    crate::ids::parse_camera_id(name).is_some()
}

fn not_found(kind: Kind, name: &str) -> ServiceError {
    ServiceError::NotFound {
        resource: kind.resource(),
        id: name.to_string(),
    }
}

fn io_internal(what: &str, e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(format!("{what}: {e}"))
}

/// Opens `<root>/<folder>` as a directory without following a symlink at `folder`.
/// `Ok(None)` when it does not exist (or is not a real directory).
fn open_folder(root: &Path, folder: &str) -> Result<Option<OwnedFd>, ServiceError> {
    let root_fd = match nix::fcntl::open(
        root,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(io_internal("cannot open storage directory", e)),
    };
    match openat(
        &root_fd,
        folder,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR | nix::errno::Errno::ELOOP) => Ok(None),
        Err(e) => Err(io_internal("cannot open camera folder", e)),
    }
}

/// Camera folders to look in for `name`: its `cameraN_` prefix, or every camera folder
/// (client-chosen snapshot names).
fn candidate_folders(kind: Kind, root: &Path, name: &str) -> Result<Vec<String>, ServiceError> {
    if let Some(cam) = camera_of(name) {
        return Ok(vec![cam.to_string()]);
    }
    if kind == Kind::Recording {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_internal("cannot read storage directory", e)),
    };
    for e in entries.flatten() {
        if let (Ok(t), Some(n)) = (e.file_type(), e.file_name().to_str()) {
            if t.is_dir() && is_camera_folder(n) {
                out.push(n.to_string());
            }
        }
    }
    out.sort_by_key(|f| crate::ids::parse_camera_id(f));
    Ok(out)
}

/// A file found by name.
#[derive(Debug)]
pub struct Opened {
    pub file: File,
    /// `<root>/<cameraN>/<name>`: identity for caches and the active-segment check (never
    /// shown to clients).
    pub path: PathBuf,
    pub device: String,
    pub meta: std::fs::Metadata,
}

/// Validates `name`, finds it in `root` and opens it read-only with `O_NOFOLLOW`.
/// Absent, a symlink, or not a regular file → -32010.
pub fn open_file(kind: Kind, root: &Path, name: &str) -> Result<Opened, ServiceError> {
    validate_name(name)?;
    if !kind.accepts(name) {
        return Err(not_found(kind, name));
    }
    for folder in candidate_folders(kind, root, name)? {
        let Some(dir) = open_folder(root, &folder)? else {
            continue;
        };
        let fd = match openat(
            &dir,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR) => continue,
            Err(e) => return Err(io_internal("cannot open file", e)),
        };
        let file = File::from(fd);
        let meta = file.metadata().map_err(|e| io_internal("cannot stat file", e))?;
        if !meta.is_file() {
            continue;
        }
        return Ok(Opened {
            file,
            path: root.join(&folder).join(name),
            device: folder,
            meta,
        });
    }
    Err(not_found(kind, name))
}

/// Removes `name` (a regular file, never a symlink or directory) after `may_delete` agreed
/// on its path. Returns the size freed.
pub fn remove_file(
    kind: Kind,
    root: &Path,
    name: &str,
    may_delete: impl Fn(&Path) -> Result<(), ServiceError>,
) -> Result<u64, ServiceError> {
    validate_name(name)?;
    if !kind.accepts(name) {
        return Err(not_found(kind, name));
    }
    for folder in candidate_folders(kind, root, name)? {
        let Some(dir) = open_folder(root, &folder)? else {
            continue;
        };
        let st = match fstatat(&dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => return Err(io_internal("cannot stat file", e)),
        };
        if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
            continue;
        }
        may_delete(&root.join(&folder).join(name))?;
        return match unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => Ok(st.st_size as u64),
            Err(nix::errno::Errno::ENOENT) => Err(not_found(kind, name)),
            Err(e) => Err(io_internal("cannot delete file", e)),
        };
    }
    Err(not_found(kind, name))
}

/// One file of a listing.
#[derive(Clone, Debug)]
pub struct Entry {
    pub kind: Kind,
    pub name: String,
    pub device: String,
    pub path: PathBuf,
    pub size: u64,
    pub modified: SystemTime,
    pub created: SystemTime,
}

/// Every regular file of `kind` in `root/cameraN/` (optionally one camera), unsorted.
/// Symlinks, other folders and names the API could not address are skipped.
pub fn scan(kind: Kind, root: &Path, device: Option<&str>) -> Result<Vec<Entry>, ServiceError> {
    let mut out = Vec::new();
    let folders: Vec<String> = match device {
        Some(d) => vec![d.to_string()],
        None => {
            let entries = match std::fs::read_dir(root) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(io_internal("cannot read storage directory", e)),
            };
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| is_camera_folder(n))
                .collect()
        }
    };
    for folder in folders {
        let dir = root.join(&folder);
        if std::fs::symlink_metadata(&dir).map_or(true, |m| !m.is_dir()) {
            continue;
        }
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_internal("cannot read camera folder", e)),
        };
        for e in entries.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if validate_name(&name).is_err() || !kind.accepts(&name) {
                continue;
            }
            // DirEntry::metadata does not follow symlinks.
            let Ok(meta) = e.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            out.push(Entry {
                kind,
                path: dir.join(&name),
                name,
                device: folder.clone(),
                size: meta.len(),
                modified,
                created: meta.created().unwrap_or(modified),
            });
        }
    }
    Ok(out)
}

/// Newest first by modification time; equal times by name (descending, so the later
/// timestamped name comes first).
pub fn sort_newest_first(entries: &mut [Entry]) {
    entries.sort_by(|a, b| b.modified.cmp(&a.modified).then_with(|| b.name.cmp(&a.name)));
}

/// Decodes `%XX` escapes exactly once (HTTP paths and query values). `None` for a broken
/// escape or a result that is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn code(r: Result<(), ServiceError>) -> &'static str {
        match r {
            Ok(()) => "ok",
            Err(ServiceError::InvalidParam { .. }) => "invalid",
            Err(_) => "other",
        }
    }

    #[test]
    fn hostile_names_are_invalid() {
        for bad in [
            "",
            "..",
            "../x.mp4",
            "a/b.mp4",
            "a\\b.mp4",
            "camera0_..mp4",
            "x\0.mp4",
            "x\n.mp4",
            "x\u{7f}.mp4",
            ".hidden.mp4",
            "/etc/passwd",
        ] {
            assert_eq!(code(validate_name(bad)), "invalid", "{bad:?}");
        }
        let long = format!("{}.mp4", "a".repeat(252));
        assert_eq!(long.len(), 256);
        assert_eq!(code(validate_name(&long)), "invalid");
        assert_eq!(code(validate_name(&long[1..])), "ok", "255 bytes is allowed");
        // multi-byte characters count in bytes
        assert_eq!(code(validate_name(&"é".repeat(128))), "invalid");
        for good in [
            "camera0_2026-11-24_10-15-30-123456.mp4",
            "my snap.jpg",
            "%2e%2e.jpg",
            "a.b.png",
        ] {
            assert_eq!(code(validate_name(good)), "ok", "{good:?}");
        }
    }

    #[test]
    fn camera_prefix_and_formats() {
        assert_eq!(camera_of("camera12_2026.mp4"), Some("camera12"));
        assert_eq!(camera_of("camera_x.mp4"), None);
        assert_eq!(camera_of("cam1_x.mp4"), None);
        assert_eq!(file_format(Kind::Recording, "a.MP4"), Some("fmp4"));
        assert_eq!(file_format(Kind::Recording, "a.ts"), Some("mpegts"));
        assert_eq!(file_format(Kind::Recording, "a.jpg"), None);
        assert_eq!(file_format(Kind::Snapshot, "a.jpeg"), Some("jpg"));
        assert_eq!(content_type("x.ts"), "video/mp2t");
    }

    #[test]
    fn percent_decoding_happens_once() {
        assert_eq!(percent_decode("%2e%2e").as_deref(), Some(".."));
        assert_eq!(percent_decode("%252e").as_deref(), Some("%2e"));
        assert_eq!(percent_decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None, "not UTF-8");
    }

    #[test]
    fn resolution_stays_inside_and_never_follows_symlinks() {
        let base = std::env::temp_dir().join(format!("cs-files-{}", crate::api::auth::random_token(6)));
        let root = base.join("snapshots");
        let outside = base.join("outside");
        std::fs::create_dir_all(root.join("camera0")).unwrap();
        std::fs::create_dir_all(root.join("camera3")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.jpg"), b"secret").unwrap();
        std::fs::write(root.join("camera0/camera0_a.jpg"), b"a").unwrap();
        std::fs::write(root.join("camera3/mine.jpg"), b"mine").unwrap();
        symlink(outside.join("secret.jpg"), root.join("camera0/camera0_link.jpg")).unwrap();
        symlink(&outside, root.join("camera9")).unwrap();
        std::fs::write(outside.join("camera9_x.jpg"), b"x").unwrap();

        let o = open_file(Kind::Snapshot, &root, "camera0_a.jpg").unwrap();
        assert_eq!((o.device.as_str(), o.meta.len()), ("camera0", 1));
        // client-chosen name found by looking in every camera folder
        assert_eq!(open_file(Kind::Snapshot, &root, "mine.jpg").unwrap().device, "camera3");
        let nf = |r: Result<Opened, ServiceError>| matches!(r, Err(ServiceError::NotFound { .. }));
        assert!(nf(open_file(Kind::Snapshot, &root, "camera0_link.jpg")), "file symlink");
        assert!(nf(open_file(Kind::Snapshot, &root, "camera9_x.jpg")), "folder symlink");
        assert!(nf(open_file(Kind::Snapshot, &root, "secret.jpg")));
        assert!(nf(open_file(Kind::Recording, &root, "camera0_a.jpg")), "wrong kind");
        assert!(matches!(
            open_file(Kind::Snapshot, &root, "../outside/secret.jpg"),
            Err(ServiceError::InvalidParam { .. })
        ));
        // listing skips symlinks; removal refuses them and leaves the target alone
        let names: Vec<String> = scan(Kind::Snapshot, &root, None)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(remove_file(Kind::Snapshot, &root, "camera0_link.jpg", |_| Ok(())).is_err());
        assert!(remove_file(Kind::Snapshot, &root, "camera9_x.jpg", |_| Ok(())).is_err());
        assert_eq!(std::fs::read(outside.join("secret.jpg")).unwrap(), b"secret");
        assert!(outside.join("camera9_x.jpg").exists());
        assert_eq!(remove_file(Kind::Snapshot, &root, "mine.jpg", |_| Ok(())).unwrap(), 4);
        assert!(!root.join("camera3/mine.jpg").exists());
        std::fs::remove_dir_all(base).unwrap();
    }
}
