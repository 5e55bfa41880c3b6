//! chronus-supervisor
