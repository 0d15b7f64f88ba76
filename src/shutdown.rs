//! One shutdown signal, cloneable, awaitable from any task and checkable from threads.
//! Closing a channel wakes every receiver at once, which is all a broadcast needs here.

#[derive(Clone)]
pub struct Shutdown {
    tx: async_channel::Sender<()>,
    rx: async_channel::Receiver<()>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        let (tx, rx) = async_channel::bounded(1);
        Shutdown { tx, rx }
    }
    /// Idempotent.
    pub fn trigger(&self) {
        self.tx.close();
    }
    pub fn is_triggered(&self) -> bool {
        self.tx.is_closed()
    }
    /// Resolves once `trigger` was called.
    pub async fn wait(&self) {
        let _ = self.rx.recv().await;
    }
}
