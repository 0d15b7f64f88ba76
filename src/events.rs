//! Domain events: what happened, as typed values. The domain publishes them here; each front
//! end (the JSON-RPC event bus in `api/events.rs`, later MAVLink) registers a listener and
//! encodes them in its own terms, once per publish.

use crate::camera::registry::{Camera, ChangeKind};
use crate::media::recording::RecEvent;
use crate::media::snapshot::Attempt;
use crate::storage::Space;
use std::sync::{Arc, RwLock};

/// Health of the service as a whole (`system.*` events).
#[derive(Clone, Debug, PartialEq)]
pub struct HealthSnapshot {
    pub overall: crate::health::Level,
    pub components: Vec<(&'static str, crate::health::Component)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    Startup,
    Shutdown,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A camera appeared, vanished or changed; `removed`: an external stream was removed.
    Camera {
        kind: ChangeKind,
        camera: Camera,
        removed: bool,
    },
    Recording(RecEvent),
    SnapshotTaken(SnapshotTaken),
    SnapshotFailed {
        device: String,
        reason: &'static str,
        tiers_tried: Vec<Attempt>,
    },
    StreamStarted {
        device: String,
    },
    StreamStopped {
        device: String,
        stream_continues: bool,
    },
    /// The overall health changed.
    Health(HealthSnapshot),
    /// The service started or is stopping.
    Lifecycle {
        kind: Lifecycle,
        health: HealthSnapshot,
        message: String,
    },
    /// Free space fell below the warning threshold.
    StorageLowSpace {
        space: Space,
        threshold_percent: u8,
        min_free_bytes: u64,
        message: String,
    },
}

/// A snapshot written to disk (also the core of the `take_snapshot` result).
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotTaken {
    pub device: String,
    pub taken: crate::media::snapshot::Taken,
    pub position: Option<crate::mavlink::exif::Geotag>,
}

type Listener = Arc<dyn Fn(&Event) + Send + Sync>;

/// The publisher. Listeners run synchronously on the publishing thread: they must only
/// encode and enqueue (bounded) or write without waiting, never block.
#[derive(Default)]
pub struct Events {
    listeners: RwLock<Vec<Listener>>,
}

impl Events {
    pub fn new() -> Events {
        Events::default()
    }

    pub fn listen(&self, f: impl Fn(&Event) + Send + Sync + 'static) {
        self.listeners.write().unwrap().push(Arc::new(f));
    }

    pub fn publish(&self, event: Event) {
        for l in self.listeners.read().unwrap().iter() {
            l(&event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_listener_sees_every_event() {
        let events = Events::new();
        let seen = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let s = seen.clone();
            events.listen(move |e| {
                if matches!(e, Event::StreamStarted { .. }) {
                    s.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        events.publish(Event::StreamStarted {
            device: "camera0".into(),
        });
        assert_eq!(seen.load(Ordering::Relaxed), 2);
    }
}
