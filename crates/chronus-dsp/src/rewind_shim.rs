//! Temporary: whole-engine checkpoints, until the cheap ones land.

use crate::Engine;

pub struct Checkpoint(Engine);

impl Checkpoint {
    pub fn frame(&self) -> u64 {
        self.0.frame()
    }
}

impl Engine {
    pub fn keep_history(&mut self, _frames: usize) {}
    pub fn history(&self) -> usize {
        usize::MAX
    }
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint(self.clone())
    }
    pub fn save(&self, cp: &mut Checkpoint) {
        cp.0.clone_from(self);
    }
    pub fn restore(&mut self, cp: &Checkpoint) {
        self.clone_from(&cp.0);
    }
}
