//! chronus-dsp
