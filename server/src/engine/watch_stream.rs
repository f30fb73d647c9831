//! Watching a run: its durable events from any sequence, then live ones,
//! with no gap and no duplicate; streamed output passes through live.

use super::Engine;
use super::active::delta_event;
use super::cluster::Note;
use crate::error::{EngineError, EngineResult, Reason};
use crate::model::*;
use crate::store::RunRef;
use futures::Stream;
use tokio::sync::broadcast;

impl Engine {
    /// Events of a run after `after`, then live ones until the run ends.
    pub async fn watch(
        &self,
        run_ref: &str,
        after: i64,
    ) -> EngineResult<impl Stream<Item = EngineResult<Event>> + use<>> {
        if after < 0 {
            return Err(EngineError::invalid_argument(format!(
                "after_sequence must be 0 or more, got {after}"
            )));
        }
        let run = self.0.store.find_run(RunRef(run_ref)).await?;
        if after > 0
            && let Some(first) = self.0.store.first_event_sequence(run.pk).await?
            && first > after + 1
        {
            return Err(EngineError::out_of_range(format!(
                "Events of run '{}' before sequence {first} were pruned",
                run.id
            ))
            .reason(Reason::EventsPruned)
            .meta("runId", &run.id)
            .meta("firstSequence", first.to_string()));
        }
        // Subscribe before reading history so nothing falls between the two.
        let notes = self.0.cluster.as_ref().map(|c| c.subscribe());
        let active = self.0.active_run(&run.id);
        let (live, partial) = match active {
            Some(a) => {
                let partial = a.partial.lock().expect("partial output lock");
                let rx = a.events.subscribe();
                let catch_up: Vec<Event> = partial
                    .iter()
                    .filter(|(_, text)| !text.is_empty())
                    .map(|(node, text)| delta_event(node, text.clone()))
                    .collect();
                (Some(rx), catch_up)
            }
            None => (None, Vec::new()),
        };
        let engine = self.clone();
        Ok(async_stream(engine, run, after, live, partial, notes))
    }
}

fn shutting_down(last: i64) -> EngineError {
    EngineError::unavailable(format!(
        "the server is shutting down; watch again from after sequence {last} once it is back"
    ))
}

/// History from the store, then live events, with no gap and no duplicate:
/// anything the live channel misses (lag) is re-read from the store.
/// Streamed output (sequence 0) is passed through as it comes; a watcher
/// that joins while a node streams first gets that node's text so far.
fn async_stream(
    engine: Engine,
    run: Run,
    after: i64,
    live: Option<broadcast::Receiver<Event>>,
    partial: Vec<Event>,
    notes: Option<broadcast::Receiver<Note>>,
) -> impl Stream<Item = EngineResult<Event>> {
    let watch = Watch {
        engine,
        run,
        last: after,
        live,
        notes,
        buf: std::collections::VecDeque::new(),
        catch_up: partial,
        ended_nodes: std::collections::HashSet::new(),
        ended: false,
        read_after_end: false,
    };
    futures::stream::unfold(watch, |mut w| async move {
        let item = w.next().await?;
        if item.is_ok() {
            crate::metrics::metrics().events_streamed.inc();
        } else {
            w.ended = true;
        }
        Some((item, w))
    })
}

struct Watch {
    engine: Engine,
    run: Run,
    last: i64,
    live: Option<broadcast::Receiver<Event>>,
    /// On a shared database: which runs other servers wrote events for.
    notes: Option<broadcast::Receiver<Note>>,
    buf: std::collections::VecDeque<Event>,
    /// Text streamed before this watcher joined, sent once it has caught up.
    catch_up: Vec<Event>,
    /// Nodes whose end this watcher has seen: their catch-up text is stale.
    ended_nodes: std::collections::HashSet<String>,
    ended: bool,
    /// The store was read again after the run was seen finished.
    read_after_end: bool,
}

/// Events after which no text of a node (or of the run) streams.
fn ends_streaming(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::NodeCompleted
            | EventKind::NodeFailed
            | EventKind::NodeCancelled
            | EventKind::NodeRetrying
            | EventKind::RunFinished
    )
}

impl Watch {
    /// The text streamed before this watcher joined, less that of nodes it
    /// has seen end (their output is the record).
    fn take_catch_up(&mut self) -> Vec<Event> {
        let ended = &self.ended_nodes;
        self.catch_up
            .drain(..)
            .filter(|e| e.node_id.as_ref().is_none_or(|n| !ended.contains(n)))
            .collect()
    }

    /// The streamed text waiting in the live channel; the stored events
    /// there are skipped (the store has them).
    fn unread_text(&mut self) -> Vec<Event> {
        let mut text = Vec::new();
        let Some(rx) = self.live.as_mut() else {
            return text;
        };
        loop {
            match rx.try_recv() {
                Ok(e) if e.sequence == 0 => text.push(e),
                Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => return text,
            }
        }
    }

    async fn next(&mut self) -> Option<EngineResult<Event>> {
        loop {
            if let Some(mut e) = self.buf.pop_front() {
                // A node's streamed text is published before its end is
                // committed, so text still unread from the live channel
                // comes before an end read from the store.
                if e.sequence != 0 && ends_streaming(e.kind) {
                    let early = self.unread_text();
                    if !early.is_empty() {
                        self.buf.push_front(e);
                        let before: Vec<Event> =
                            self.take_catch_up().into_iter().chain(early).collect();
                        for t in before.into_iter().rev() {
                            self.buf.push_front(t);
                        }
                        continue;
                    }
                }
                if e.sequence == 0 {
                    e.run_id = self.run.id.clone();
                    return Some(Ok(e));
                }
                self.last = e.sequence;
                match e.kind {
                    EventKind::RunFinished => {
                        self.ended = true;
                        self.buf.clear();
                    }
                    EventKind::NodeCompleted
                    | EventKind::NodeFailed
                    | EventKind::NodeCancelled
                    | EventKind::NodeSkipped => {
                        self.ended_nodes.extend(e.node_id.clone());
                    }
                    _ => {}
                }
                return Some(Ok(e));
            }
            if self.ended {
                return None;
            }
            // Catch up from the store first.
            match self
                .engine
                .0
                .store
                .events_after(&self.run, self.last, 500)
                .await
            {
                Err(e) => return Some(Err(e)),
                Ok(events) if !events.is_empty() => {
                    self.buf.extend(events);
                    continue;
                }
                Ok(_) => {}
            }
            if !self.catch_up.is_empty() {
                let text = self.take_catch_up();
                self.buf.extend(text);
                continue;
            }
            // Caught up. A finished run (or one not executing here) ends the stream.
            let shutdown = self.engine.0.shutdown.clone();
            let Some(rx) = self.live.as_mut() else {
                let current = self.engine.0.store.find_run(RunRef(&self.run.id)).await;
                match current {
                    Ok(r) if !r.status.is_finished() => {
                        // Executing in another process: read the store
                        // when told it has more, and now and then anyway.
                        let poll = match &self.engine.0.cluster {
                            Some(c) => c.poll_interval(),
                            None => std::time::Duration::from_millis(200),
                        };
                        let pk = self.run.pk;
                        let told = async {
                            match self.notes.as_mut() {
                                Some(notes) => loop {
                                    match notes.recv().await {
                                        Ok(Note::Events(p)) if p == pk => return,
                                        Ok(_) => {}
                                        // Missed some: read the store.
                                        Err(broadcast::error::RecvError::Lagged(_)) => return,
                                        Err(broadcast::error::RecvError::Closed) => {
                                            std::future::pending::<()>().await
                                        }
                                    }
                                },
                                None => std::future::pending().await,
                            }
                        };
                        tokio::select! {
                            _ = told => continue,
                            _ = tokio::time::sleep(poll) => continue,
                            _ = shutdown.cancelled() => return Some(Err(shutting_down(self.last))),
                        }
                    }
                    // Its final events committed with its status, maybe
                    // after the read above: read once more before ending.
                    Ok(_) if !self.read_after_end => {
                        self.read_after_end = true;
                        continue;
                    }
                    _ => return None,
                }
            };
            let received = tokio::select! {
                r = rx.recv() => r,
                _ = shutdown.cancelled() => return Some(Err(shutting_down(self.last))),
            };
            match received {
                Ok(e) if e.sequence == 0 => self.buf.push_back(e),
                Ok(e) if e.sequence <= self.last => continue,
                Ok(e) if e.sequence == self.last + 1 => self.buf.push_back(e),
                // A gap or lag: the store has everything committed.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => {
                    self.live = None;
                    continue;
                }
            }
        }
    }
}
