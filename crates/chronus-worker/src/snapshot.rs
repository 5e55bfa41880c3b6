//! What a cold-started worker starts from: written by the supervisor into the
//! region's snapshot area, identical for every worker it starts together.

use crate::WorkerError;
use chronus_dsp::Params;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// First frame to render (a block boundary).
    pub start_frame: u64,
    /// First command-log record to read.
    pub cursor: u64,
    /// Parameters in force at `start_frame`.
    pub params: Params,
    /// Commands already in the log before `cursor` but stamped at or after `start_frame`.
    pub pending: Vec<PendingCommand>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingCommand {
    pub stamp: u64,
    pub seq: u64,
    /// `Command::encode` bytes.
    pub bytes: Vec<u8>,
}

impl Snapshot {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a snapshot always serializes")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Snapshot, WorkerError> {
        serde_json::from_slice(bytes).map_err(|e| WorkerError::Snapshot(e.to_string()))
    }
}
