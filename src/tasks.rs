//! The long-lived tasks of a component, kept so shutdown can join them: nothing long-lived
//! is detached. Tasks end on the shared shutdown signal; `join` waits for them in reverse
//! start order, bounded, and cancels what is still running at the deadline.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Tasks {
    running: Mutex<Vec<(&'static str, smol::Task<()>)>>,
}

impl Tasks {
    pub fn new() -> Tasks {
        Tasks::default()
    }

    /// Spawns a loop that must end when the shutdown signal fires.
    pub fn spawn(&self, name: &'static str, f: impl std::future::Future<Output = ()> + Send + 'static) {
        self.running.lock().unwrap().push((name, smol::spawn(f)));
    }

    /// Waits for every task, newest first; a task still running after `limit` is cancelled
    /// (and logged). Idempotent: a second call finds nothing to join.
    pub async fn join(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let tasks = std::mem::take(&mut *self.running.lock().unwrap());
        for (name, task) in tasks.into_iter().rev() {
            let left = deadline.saturating_duration_since(Instant::now());
            let done = futures_lite::future::or(
                async {
                    task.await;
                    true
                },
                async {
                    smol::Timer::after(left).await;
                    false
                },
            )
            .await;
            if !done {
                log::warn!("task {name} did not stop within {limit:?}: cancelled");
            }
        }
    }

    pub fn len(&self) -> usize {
        self.running.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shutdown::Shutdown;
    use std::sync::{Arc, Mutex as StdMutex};

    #[test]
    fn joins_in_reverse_start_order_and_cancels_at_the_deadline() {
        smol::block_on(async {
            let tasks = Tasks::new();
            let sd = Shutdown::new();
            let order = Arc::new(StdMutex::new(Vec::new()));
            for (name, delay) in [("first", 30u64), ("second", 0)] {
                let (sd, order) = (sd.clone(), order.clone());
                tasks.spawn(name, async move {
                    sd.wait().await;
                    smol::Timer::after(Duration::from_millis(delay)).await;
                    order.lock().unwrap().push(name);
                });
            }
            tasks.spawn("stuck", futures_lite::future::pending());
            sd.trigger();
            let t0 = Instant::now();
            tasks.join(Duration::from_millis(300)).await;
            assert!(
                t0.elapsed() >= Duration::from_millis(250),
                "the stuck task was waited for"
            );
            assert_eq!(tasks.len(), 0);
            assert_eq!(*order.lock().unwrap(), vec!["second", "first"]);
            tasks.join(Duration::from_millis(10)).await; // idempotent
        });
    }
}
