//! chronus-worker
