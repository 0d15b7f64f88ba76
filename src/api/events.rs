//! Event bus (api.md §9): topics, aliases, per-client subscriptions with an optional device
//! filter, and bounded per-client queues that drop the oldest event when a client is slow.
//! A notification is serialised once, into a reference-counted WebSocket text payload that
//! every receiving client's queue and socket writer share (no copy per client). The publisher
//! writes it straight to an idle client's socket (its [`Outlet`]), never waiting; only a
//! client whose socket is busy gets it through its queue and writer task.

use async_tungstenite::tungstenite::Utf8Bytes;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    CameraConnected,
    CameraDisconnected,
    CameraStatusChange,
    RecordingStart,
    RecordingStop,
    RecordingError,
    RecordingProgress,
    SnapshotTaken,
    SnapshotError,
    StreamStart,
    StreamStop,
    SystemHealth,
    SystemStartup,
    SystemShutdown,
    StorageLowSpace,
}

impl Topic {
    pub const ALL: [Topic; 15] = [
        Topic::CameraConnected,
        Topic::CameraDisconnected,
        Topic::CameraStatusChange,
        Topic::RecordingStart,
        Topic::RecordingStop,
        Topic::RecordingError,
        Topic::RecordingProgress,
        Topic::SnapshotTaken,
        Topic::SnapshotError,
        Topic::StreamStart,
        Topic::StreamStop,
        Topic::SystemHealth,
        Topic::SystemStartup,
        Topic::SystemShutdown,
        Topic::StorageLowSpace,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Topic::CameraConnected => "camera.connected",
            Topic::CameraDisconnected => "camera.disconnected",
            Topic::CameraStatusChange => "camera.status_change",
            Topic::RecordingStart => "recording.start",
            Topic::RecordingStop => "recording.stop",
            Topic::RecordingError => "recording.error",
            Topic::RecordingProgress => "recording.progress",
            Topic::SnapshotTaken => "snapshot.taken",
            Topic::SnapshotError => "snapshot.error",
            Topic::StreamStart => "stream.start",
            Topic::StreamStop => "stream.stop",
            Topic::SystemHealth => "system.health",
            Topic::SystemStartup => "system.startup",
            Topic::SystemShutdown => "system.shutdown",
            Topic::StorageLowSpace => "storage.low_space",
        }
    }

    /// The JSON-RPC notification method that carries this topic.
    pub fn notification_method(self) -> &'static str {
        match self.as_str().split('.').next().unwrap_or_default() {
            "camera" => "camera_status_update",
            "recording" => "recording_status_update",
            "snapshot" => "snapshot_taken",
            "stream" => "stream_status_update",
            _ => "system_health_update",
        }
    }

    fn bit(self) -> u32 {
        1 << Topic::ALL.iter().position(|t| *t == self).expect("listed")
    }

    /// A topic name or an alias → the topics it stands for.
    pub fn resolve(name: &str) -> Option<Vec<Topic>> {
        let prefix_group = |prefixes: &[&str]| {
            Topic::ALL
                .iter()
                .copied()
                .filter(|t| prefixes.iter().any(|p| t.as_str().starts_with(p)))
                .collect::<Vec<_>>()
        };
        match name {
            "camera_status_update" => Some(prefix_group(&["camera."])),
            "recording_status_update" => Some(prefix_group(&["recording."])),
            "system_health_update" => Some(prefix_group(&["system.", "storage."])),
            _ => Topic::ALL.iter().copied().find(|t| t.as_str() == name).map(|t| vec![t]),
        }
    }
}

fn topics_of(mask: u32) -> Vec<Topic> {
    Topic::ALL.iter().copied().filter(|t| mask & t.bit() != 0).collect()
}

/// What became of a notification offered to an [`Outlet`].
pub enum Direct {
    /// Handed to the socket (written, or buffered with the connection's writer told to flush).
    Written,
    /// The client may not receive events now (or its connection is broken): skipped.
    Refused,
    /// The socket is busy or has frames waiting: queue it for the writer.
    Busy,
}

/// A client's socket, written by the publisher itself when idle: 500 notifications written
/// in turn by one thread, instead of 500 writer tasks woken and scheduled.
pub trait Outlet: Send + Sync {
    /// Writes `text` at once, without waiting, if the socket's send half is free and
    /// `sub.backlog()` is 0 while it is held (else an older event would be overtaken).
    fn try_write(&self, sub: &Subscriber, text: &Utf8Bytes) -> Direct;
}

/// One client's side of the bus: what it wants, its socket and its bounded queue.
pub struct Subscriber {
    pub id: u64,
    filter: Mutex<(u32, Option<String>)>,
    /// Unbounded channel kept at `capacity` by `publish` (drop-oldest, under the filter
    /// lock): a bounded channel would allocate all its slots up front, for every client.
    tx: async_channel::Sender<Utf8Bytes>,
    rx: async_channel::Receiver<Utf8Bytes>,
    capacity: usize,
    /// Events queued and not yet written (or skipped) by the writer, counting the one it may
    /// have taken out of the queue and not written yet.
    backlog: AtomicUsize,
    outlet: OnceLock<Box<dyn Outlet>>,
    /// Unix time until which this client may receive events (its credential's expiry).
    authorized_until: AtomicI64,
    dropped: AtomicU64,
    delivered: AtomicU64,
}

impl Subscriber {
    /// The queue the connection's writer drains.
    pub fn queue(&self) -> &async_channel::Receiver<Utf8Bytes> {
        &self.rx
    }
    /// Lets publishers write to the client's socket directly (set once, by its connection).
    pub fn set_outlet(&self, outlet: Box<dyn Outlet>) {
        let _ = self.outlet.set(outlet);
    }
    /// Events not yet through the writer (see `backlog`).
    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::SeqCst)
    }
    /// The writer has written (or skipped) an event it took from the queue.
    pub fn dequeued(&self) {
        self.backlog.fetch_sub(1, Ordering::SeqCst);
    }
    pub fn set_authorized_until(&self, unix: i64) {
        self.authorized_until.store(unix, Ordering::SeqCst);
    }
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
    pub fn topics(&self) -> Vec<Topic> {
        topics_of(self.filter.lock().unwrap().0)
    }
    pub fn device_filter(&self) -> Option<String> {
        self.filter.lock().unwrap().1.clone()
    }
    pub fn subscribe(&self, topics: &[Topic], device: Option<String>) {
        let mut f = self.filter.lock().unwrap();
        for t in topics {
            f.0 |= t.bit();
        }
        if device.is_some() {
            f.1 = device;
        }
    }
    /// `None` = every topic. Clears the device filter when nothing is left.
    pub fn unsubscribe(&self, topics: Option<&[Topic]>) {
        let mut f = self.filter.lock().unwrap();
        match topics {
            None => f.0 = 0,
            Some(ts) => {
                for t in ts {
                    f.0 &= !t.bit();
                }
            }
        }
        if f.0 == 0 {
            f.1 = None;
        }
    }
}

pub struct EventBus {
    clients: RwLock<HashMap<u64, Arc<Subscriber>>>,
    next_id: AtomicU64,
    queue_size: usize,
    published: AtomicU64,
}

impl EventBus {
    pub fn new(queue_size: usize) -> EventBus {
        EventBus {
            clients: RwLock::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            queue_size: queue_size.max(1),
            published: AtomicU64::new(0),
        }
    }

    pub fn register(&self) -> Arc<Subscriber> {
        let (tx, rx) = async_channel::unbounded();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let sub = Arc::new(Subscriber {
            id,
            filter: Mutex::new((0, None)),
            tx,
            rx,
            capacity: self.queue_size,
            backlog: AtomicUsize::new(0),
            outlet: OnceLock::new(),
            authorized_until: AtomicI64::new(i64::MIN),
            dropped: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
        });
        self.clients.write().unwrap().insert(id, sub.clone());
        sub
    }

    pub fn unregister(&self, id: u64) {
        self.clients.write().unwrap().remove(&id);
    }

    /// Publishes an event: `params` gets `topic` and `timestamp` added. Never blocks: it
    /// writes to idle clients' sockets without waiting and queues for the others.
    pub fn publish(&self, topic: Topic, device: Option<&str>, params: Map<String, Value>) {
        let mut params = params;
        params.insert("topic".into(), Value::from(topic.as_str()));
        params
            .entry("timestamp")
            .or_insert_with(|| Value::from(crate::clock::now_rfc3339()));
        if let Some(d) = device {
            params.entry("device").or_insert_with(|| Value::from(d));
        }
        let text = Utf8Bytes::from(
            json!({"jsonrpc": "2.0", "method": topic.notification_method(), "params": params}).to_string(),
        );
        self.published.fetch_add(1, Ordering::Relaxed);
        let now = crate::clock::unix_now();
        let clients = self.clients.read().unwrap();
        for sub in clients.values() {
            let f = sub.filter.lock().unwrap();
            let wanted = f.0 & topic.bit() != 0 && (f.1.is_none() || device.is_none() || f.1.as_deref() == device);
            if !wanted || sub.authorized_until.load(Ordering::SeqCst) <= now {
                continue;
            }
            if let Some(outlet) = sub.outlet.get() {
                match outlet.try_write(sub, &text) {
                    Direct::Written => {
                        sub.delivered.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Direct::Refused => continue,
                    Direct::Busy => {}
                }
            }
            // Drop the oldest to make room; the filter lock serialises publishers per client.
            let mut displaced = false;
            while sub.tx.len() >= sub.capacity && sub.rx.try_recv().is_ok() {
                sub.backlog.fetch_sub(1, Ordering::SeqCst);
                displaced = true;
            }
            sub.backlog.fetch_add(1, Ordering::SeqCst);
            if sub.tx.try_send(text.clone()).is_err() {
                sub.backlog.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            drop(f);
            if displaced {
                sub.dropped.fetch_add(1, Ordering::Relaxed);
            }
            sub.delivered.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// `get_subscription_stats` result for `me`.
    pub fn stats(&self, me: &Subscriber) -> Value {
        let clients = self.clients.read().unwrap();
        let mut topic_counts: Map<String, Value> = Map::new();
        let (mut active, mut total, mut dropped_total) = (0u64, 0u64, 0u64);
        for sub in clients.values() {
            let topics = sub.topics();
            if !topics.is_empty() {
                active += 1;
            }
            total += topics.len() as u64;
            dropped_total += sub.dropped();
            for t in topics {
                let c = topic_counts.entry(t.as_str()).or_insert(Value::from(0u64));
                *c = Value::from(c.as_u64().unwrap_or(0) + 1);
            }
        }
        json!({
            "global_stats": {
                "active_clients": active,
                "connected_clients": clients.len(),
                "total_subscriptions": total,
                "topic_counts": topic_counts,
                "events_published": self.published(),
                "dropped_events": dropped_total,
            },
            "client_topics": me.topics().iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            "client_filters": {"device": me.device_filter()},
            "client_id": me.id.to_string(),
            "dropped_events": me.dropped(),
            "delivered_events": me.delivered.load(Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_resolve() {
        assert_eq!(Topic::resolve("camera_status_update").unwrap().len(), 3);
        assert_eq!(Topic::resolve("recording_status_update").unwrap().len(), 4);
        let sys = Topic::resolve("system_health_update").unwrap();
        assert!(sys.contains(&Topic::StorageLowSpace) && sys.contains(&Topic::SystemStartup) && sys.len() == 4);
        assert_eq!(Topic::resolve("snapshot.taken"), Some(vec![Topic::SnapshotTaken]));
        assert_eq!(Topic::resolve("nope"), None);
    }

    #[test]
    fn delivery_filters_and_drop_oldest() {
        let bus = EventBus::new(2);
        let a = bus.register();
        let b = bus.register();
        a.set_authorized_until(i64::MAX);
        b.set_authorized_until(i64::MAX);
        a.subscribe(&[Topic::CameraConnected], Some("camera1".into()));
        b.subscribe(&[Topic::CameraConnected, Topic::SystemHealth], None);
        bus.publish(Topic::CameraConnected, Some("camera0"), Map::new());
        bus.publish(Topic::CameraConnected, Some("camera1"), Map::new());
        assert_eq!(a.queue().len(), 1);
        let v: Value = serde_json::from_str(&a.queue().try_recv().unwrap()).unwrap();
        assert_eq!(
            (v["method"].as_str(), v["params"]["device"].as_str()),
            (Some("camera_status_update"), Some("camera1"))
        );
        bus.publish(Topic::SystemHealth, None, Map::new());
        assert_eq!(b.queue().len(), 2);
        assert_eq!(b.dropped(), 1, "queue of 2 took 3 events");
        let first: Value = serde_json::from_str(&b.queue().try_recv().unwrap()).unwrap();
        assert_eq!(first["params"]["device"], "camera1", "the oldest was dropped");
        b.unsubscribe(None);
        bus.publish(Topic::SystemHealth, None, Map::new());
        assert_eq!(b.queue().len(), 1);
        // unauthenticated (expired) clients get nothing
        a.set_authorized_until(0);
        bus.publish(Topic::CameraConnected, Some("camera1"), Map::new());
        assert_eq!(a.queue().len(), 0);
    }
}
