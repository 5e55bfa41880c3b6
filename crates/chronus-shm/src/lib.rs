//! chronus-shm
