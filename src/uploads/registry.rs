//! Turns: one request per upload at a time, the newest wins.

use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedMutexGuard, watch};

// ---------------------------------------------------------------------------------------------
// Turns: one request per upload at a time, the newest wins.

/// Per-upload coordination, alive while the server runs. Small: a few words per upload.
#[derive(Default, Clone)]
pub struct Registry {
    pub(super) slots: Arc<Mutex<HashMap<String, Arc<Slot>>>>,
}

pub(super) struct Slot {
    pub(super) turn: Arc<tokio::sync::Mutex<Live>>,
    /// Bumped by every request that wants the turn; the holder stops when it changes.
    pub(super) latest: watch::Sender<u64>,
}

/// What the turn holder knows beyond the row: the SHA-256 of the first `at` bytes, so a
/// completed upload is not read again to hash it.
#[derive(Default)]
pub(super) struct Live {
    pub(super) hashed: Option<(u64, Sha256)>,
}

/// The right to work on one upload.
pub(super) struct Turn {
    pub(super) live: OwnedMutexGuard<Live>,
    pub(super) mine: u64,
    pub(super) newer: watch::Receiver<u64>,
    pub(super) _slot: Arc<Slot>,
}

impl Registry {
    pub(super) fn slot(&self, id: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry(id.to_string())
            .or_insert_with(|| {
                Arc::new(Slot { turn: Arc::new(tokio::sync::Mutex::new(Live::default())), latest: watch::channel(0).0 })
            })
            .clone()
    }

    pub(super) fn forget(&self, id: &str) {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// Takes the upload's turn, asking whoever holds it to stop.
    pub(super) async fn take_turn(&self, id: &str) -> Turn {
        let slot = self.slot(id);
        let mut mine = 0;
        slot.latest.send_modify(|v| {
            *v += 1;
            mine = *v;
        });
        let newer = slot.latest.subscribe();
        let live = slot.turn.clone().lock_owned().await;
        Turn { live, mine, newer, _slot: slot }
    }

    /// The turn if nobody holds it (the expiry sweep never waits for a request).
    pub(super) fn try_turn(&self, id: &str) -> Option<Turn> {
        let slot = self.slot(id);
        let live = slot.turn.clone().try_lock_owned().ok()?;
        let mine = *slot.latest.borrow();
        let newer = slot.latest.subscribe();
        Some(Turn { live, mine, newer, _slot: slot })
    }
}

impl Turn {
    /// Resolves when a newer request wants this upload.
    pub(super) async fn superseded(&mut self) {
        let mine = self.mine;
        if self.newer.wait_for(|v| *v != mine).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    pub(super) fn hasher_at(&mut self, offset: u64) -> Option<Sha256> {
        match self.live.hashed.take() {
            Some((at, hasher)) if at == offset => Some(hasher),
            _ => None,
        }
    }
}
