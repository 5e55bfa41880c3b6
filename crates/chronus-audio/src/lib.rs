//! chronus-audio
