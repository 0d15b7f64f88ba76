//! What must survive a restart: which component id each camera has (a GCS keeps its camera
//! list by component), and the next image index per camera (CAMERA_IMAGE_CAPTURED indices
//! only grow). One small JSON file in `storage.state_dir`, written atomically on change.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

#[derive(Default, Serialize, Deserialize)]
struct Persisted {
    /// camera id → component id
    components: BTreeMap<String, u8>,
    /// camera id → images announced so far (= the next index)
    images: BTreeMap<String, i32>,
}

pub(crate) struct Ids {
    path: PathBuf,
    base: u8,
    data: Mutex<Persisted>,
}

impl Ids {
    pub(crate) fn load(path: PathBuf, base: u8) -> Ids {
        let data = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                log::warn!("mavlink: {} unreadable ({e}); starting afresh", path.display());
                Persisted::default()
            }),
            Err(_) => Persisted::default(),
        };
        Ids {
            path,
            base,
            data: Mutex::new(data),
        }
    }

    fn range(&self) -> std::ops::RangeInclusive<u8> {
        self.base..=(self.base + super::config::MAX_CAMERAS - 1).min(105)
    }

    /// The camera's component id; a new camera gets the lowest free one, else the id of a
    /// camera that is not `present` any more (None when six present cameras hold them all).
    pub(crate) fn component_for(&self, camera: &str, present: &[&str]) -> Option<u8> {
        let mut d = self.data.lock().unwrap();
        if let Some(id) = d.components.get(camera) {
            return self.range().contains(id).then_some(*id);
        }
        let free = match self.range().find(|id| !d.components.values().any(|v| v == id)) {
            Some(id) => id,
            None => {
                let (gone, id) = d
                    .components
                    .iter()
                    .find(|(cam, id)| self.range().contains(id) && !present.contains(&cam.as_str()))
                    .map(|(c, id)| (c.clone(), *id))?;
                log::info!("mavlink: component {id} passes from {gone} (gone) to {camera}");
                d.components.remove(&gone);
                id
            }
        };
        d.components.insert(camera.to_string(), free);
        self.save(&d);
        Some(free)
    }

    pub(crate) fn is_ours(&self, component: u8) -> bool {
        self.range().contains(&component) && self.data.lock().unwrap().components.values().any(|v| *v == component)
    }

    pub(crate) fn image_count(&self, camera: &str) -> i32 {
        self.data.lock().unwrap().images.get(camera).copied().unwrap_or(0)
    }

    /// The index of the next image (0, 1, 2, ... per camera, across restarts).
    pub(crate) fn next_index(&self, camera: &str) -> i32 {
        let mut d = self.data.lock().unwrap();
        let n = d.images.entry(camera.to_string()).or_insert(0);
        let index = *n;
        *n += 1;
        self.save(&d);
        index
    }

    fn save(&self, d: &Persisted) {
        let tmp = self.path.with_extension("json.tmp");
        let result = serde_json::to_vec_pretty(d)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = result {
            log::warn!("mavlink: cannot save {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_bounded_and_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("mav-ids-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mavlink-state.json");
        let _ = std::fs::remove_file(&path);
        let ids = Ids::load(path.clone(), 100);
        let all = ["camera1", "camera0", "cam2", "cam3", "cam4", "cam5", "seventh"];
        assert_eq!(ids.component_for("camera1", &all), Some(100));
        assert_eq!(ids.component_for("camera0", &all), Some(101));
        assert_eq!(ids.component_for("camera1", &all), Some(100));
        for i in 2..6 {
            assert_eq!(ids.component_for(&format!("cam{i}"), &all), Some(100 + i as u8));
        }
        assert_eq!(ids.component_for("seventh", &all), None);
        // once a camera is gone for good, a new one may take its id
        assert_eq!(ids.component_for("seventh", &all[1..]), Some(100));
        assert_eq!(ids.component_for("camera1", &all), None);
        assert_eq!(ids.component_for("seventh", &all), Some(100));
        assert_eq!((ids.next_index("camera1"), ids.next_index("camera1")), (0, 1));
        let again = Ids::load(path, 100);
        assert_eq!(again.component_for("camera0", &all), Some(101));
        assert_eq!(again.next_index("camera1"), 2);
        assert!(again.is_ours(105) && !again.is_ours(99));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
