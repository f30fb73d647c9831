//! Parsed workflow snapshots, kept for the runs read or replayed again and
//! again: parsing a 1,000-node document costs more than everything else a
//! replay of its last node does. Keyed by the digest of what parsing reads
//! (the snapshot, its files and the run's variables), so a hit is exactly
//! what parsing would return.

use super::workflow::Workflow;
use crate::model::Run;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// How many parsed snapshots are kept; the least recently added goes first.
const CAPACITY: usize = 32;

#[derive(Default)]
pub struct ParsedWorkflows {
    inner: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    by_key: HashMap<[u8; 32], Arc<Workflow>>,
    order: VecDeque<[u8; 32]>,
}

impl ParsedWorkflows {
    pub fn get(&self, key: &[u8; 32]) -> Option<Arc<Workflow>> {
        self.inner
            .lock()
            .expect("parsed workflows lock")
            .by_key
            .get(key)
            .cloned()
    }

    pub fn insert(&self, key: [u8; 32], workflow: Arc<Workflow>) {
        let mut cache = self.inner.lock().expect("parsed workflows lock");
        if cache.by_key.insert(key, workflow).is_none() {
            cache.order.push_back(key);
        }
        while cache.order.len() > CAPACITY {
            if let Some(old) = cache.order.pop_front() {
                cache.by_key.remove(&old);
            }
        }
    }
}

/// The cache key of `run`'s snapshot as parsed with its files and variables.
pub fn key_of(run: &Run) -> [u8; 32] {
    key(&run.workflow_sha256, &run.files, &run.variables)
}

/// The cache key of a document (by the sha256 of its text) parsed with
/// `files` and `variables`.
pub fn key(
    text_sha256: &str,
    files: &BTreeMap<String, String>,
    variables: &BTreeMap<String, String>,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(text_sha256.as_bytes());
    for map in [files, variables] {
        h.update((map.len() as u64).to_le_bytes());
        for (k, v) in map {
            for part in [k, v] {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part.as_bytes());
            }
        }
    }
    h.finalize().into()
}
