//! The changes feed: every change to a user's recordings gets a per-user, gap-free, monotonic
//! position, written by triggers in the same transaction as the change (whatever makes it: a
//! request, the worker, the sweep, `recorder check --repair`). `GET /api/v1/changes` pages
//! through it; `GET /api/v1/events` streams it, woken by [`Notifier`].

use tokio::sync::broadcast;

/// Wakes the live event streams after a commit that changed someone's recordings.
#[derive(Clone)]
pub struct Notifier {
    sender: broadcast::Sender<Wake>,
}

/// Whose feed has something new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    User(String),
    /// Several users at once (the trash sweep): every stream looks.
    Everyone,
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier { sender: broadcast::channel(1024).0 }
    }
}

impl Notifier {
    /// A user's recordings changed (call after the commit).
    pub fn user(&self, user_id: &str) {
        let _ = self.sender.send(Wake::User(user_id.to_string()));
    }

    /// Recordings of several users changed.
    pub fn everyone(&self) {
        let _ = self.sender.send(Wake::Everyone);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Wake> {
        self.sender.subscribe()
    }

    /// Live event streams.
    pub fn subscribers(&self) -> usize {
        self.sender.receiver_count()
    }
}
