//! chronus-config
