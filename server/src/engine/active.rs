//! A run executing in this process: how it is cancelled, answered and
//! watched live.

use super::waits::WaitAnswer;
use crate::model::*;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

/// A run executing in this process.
pub struct ActiveRun {
    /// The run's key in the store.
    pub(super) run_pk: i64,
    pub(super) cancel: CancellationToken,
    /// Cancelled when the run is no longer this server's to execute (on a
    /// shared database, another server took it over): the driver stops
    /// at once and writes nothing more.
    pub(super) abandon: CancellationToken,
    pub(super) events: broadcast::Sender<Event>,
    /// Becomes true when the driver has written the run's final state.
    pub(super) done: watch::Sender<bool>,
    /// Answers to the run's human waits.
    pub(super) answers: mpsc::UnboundedSender<WaitAnswer>,
    /// Text streamed so far by each node still running. Held while a
    /// delta is published and while a watcher subscribes, so a watcher
    /// sees every piece exactly once: in its catch-up or live.
    pub(super) partial: Mutex<HashMap<String, String>>,
}

impl ActiveRun {
    /// Sends a streamed piece of a node's output to live watchers. Deltas
    /// carry sequence 0: they are not part of the durable event log.
    pub(crate) fn publish_delta(&self, node_id: &str, text: String) {
        let mut partial = self.partial.lock().expect("partial output lock");
        partial
            .entry(node_id.to_string())
            .or_default()
            .push_str(&text);
        let _ = self.events.send(delta_event(node_id, text));
    }

    /// Sends a worker's report of how far a node got to live watchers; like
    /// deltas, not part of the durable event log.
    pub(crate) fn publish_progress(&self, node_id: &str, message: String, fraction: Option<f64>) {
        let _ = self.events.send(Event {
            run_id: String::new(),
            sequence: 0,
            kind: EventKind::NodeProgress,
            time: now_micros(),
            node_id: Some(node_id.to_string()),
            detail: EventDetail {
                message,
                progress: fraction,
                ..Default::default()
            },
        });
    }

    /// Forgets the streamed text of a node that ended.
    pub(crate) fn end_partial(&self, node_id: &str) {
        self.partial
            .lock()
            .expect("partial output lock")
            .remove(node_id);
    }
}

pub(super) fn delta_event(node_id: &str, text: String) -> Event {
    Event {
        run_id: String::new(),
        sequence: 0,
        kind: EventKind::NodeOutputDelta,
        time: now_micros(),
        node_id: Some(node_id.to_string()),
        detail: EventDetail {
            delta: text,
            ..Default::default()
        },
    }
}
