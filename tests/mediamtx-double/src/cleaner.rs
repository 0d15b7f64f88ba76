//! Record cleaner, like MediaMTX's recordcleaner: segments whose start is older than
//! `recordDeleteAfter` are removed (0 = never), then empty directories under the path's
//! record directory; it runs at start and then every min(30 min, recordDeleteAfter / 2).

use crate::core::Shared;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn delete_after(eff: &serde_json::Map<String, serde_json::Value>) -> i128 {
    eff.get("recordDeleteAfter")
        .and_then(|v| v.as_str())
        .and_then(|s| crate::conf::parse_duration(s).ok())
        .unwrap_or(0)
}

/// One pass over every path with segments.
pub fn run_once(shared: &Shared) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as i128;
    let st = shared.lock();
    let mut work = Vec::new();
    for cn in st.confs.keys() {
        let eff = st.effective(cn).unwrap_or_default();
        let del = delete_after(&eff);
        let any = crate::api::recording_format(shared, &eff, None);
        for (name, _, _) in crate::recordings::find(&any) {
            if del != 0 && st.find_conf(&name).ok().as_deref() == Some(cn.as_str()) {
                let fmt = crate::api::recording_format(shared, &eff, Some(&name));
                let dir = crate::recordings::common_path(&crate::api::recording_format(shared, &eff, Some(cn)));
                work.push((fmt, dir, del));
            }
        }
    }
    drop(st);
    for (fmt, dir, del) in work {
        for (_, start, key) in crate::recordings::find(&fmt) {
            if key <= now - del {
                shared.log(&format!("cleaner: removing segment {} ({})", fmt, start));
                if let Some(file) = file_of(&fmt, key) {
                    let _ = std::fs::remove_file(file);
                }
            }
        }
        remove_empty_dirs(std::path::Path::new(&dir));
    }
}

/// The file of a segment found by `recordings::find` (found again by its sort key).
fn file_of(fmt: &str, key: i128) -> Option<std::path::PathBuf> {
    crate::recordings::find_files(fmt)
        .into_iter()
        .find(|(_, k)| *k == key)
        .map(|(p, _)| p)
}

/// filepath.WalkDir + os.Remove on every directory: empty ones go (parents first, so a
/// directory emptied by this pass goes on the next one).
fn remove_empty_dirs(dir: &std::path::Path) {
    if std::fs::remove_dir(dir).is_ok() {
        return;
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_empty_dirs(&e.path());
            }
        }
    }
}

/// min(30 min, recordDeleteAfter / 2) over every path configuration.
fn interval(shared: &Shared) -> Duration {
    let mut interval: i128 = 30 * 60 * 1_000_000_000;
    let st = shared.lock();
    for cn in st.confs.keys() {
        let del = delete_after(&st.effective(cn).unwrap_or_default());
        if del != 0 && interval > del / 2 {
            interval = del / 2;
        }
    }
    Duration::from_nanos(interval.max(1_000_000) as u64)
}

pub fn serve(shared: Arc<Shared>) {
    run_once(&shared);
    let snapshot = |sh: &Shared| {
        let st = sh.lock();
        (st.confs.clone(), st.path_defaults.clone())
    };
    let mut seen = snapshot(&shared);
    let mut next = Instant::now() + interval(&shared);
    while !shared.shutdown.load(Ordering::SeqCst) {
        // like MediaMTX's loop, a configuration reload restarts the wait with the new interval
        let now_conf = snapshot(&shared);
        if now_conf != seen {
            seen = now_conf;
            next = Instant::now() + interval(&shared);
        }
        if Instant::now() >= next {
            run_once(&shared);
            next = Instant::now() + interval(&shared);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
