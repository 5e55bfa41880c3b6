//! chronus-osc
