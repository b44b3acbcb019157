//! INFO's `rdb_changes_since_last_save`: how many changes the dataset has had since the last snapshot was
//! saved. A command (or one shard's part of one) counts once if it changed any key, however many keys
//! or elements it changed; a change outside a command (an active expiry, a flush, a key moved by RENAME)
//! counts per key. Valkey counts elements (an LPUSH of three values is 3 there, 1 here); both are zero
//! exactly when nothing changed, which is what an operator reads it for.

#[derive(Debug, Default)]
pub struct Dirty {
    count: u64,
    /// A command is running: its changes count once.
    open: bool,
    /// The running command has counted already.
    counted: bool,
}

impl Dirty {
    #[inline]
    pub fn changed(&mut self) {
        if !self.counted {
            self.count += 1;
            self.counted = self.open;
        }
    }

    pub fn add(&mut self, n: u64) {
        self.count += n;
    }

    #[inline]
    pub fn begin_command(&mut self) {
        self.open = true;
        self.counted = false;
    }

    #[inline]
    pub fn end_command(&mut self) {
        self.open = false;
        self.counted = false;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// A snapshot taken when the count was `at` was saved: what came after it is still unsaved.
    pub fn saved(&mut self, at: u64) {
        self.count = self.count.saturating_sub(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_counts_once_and_other_changes_per_key() {
        let mut d = Dirty::default();
        d.begin_command();
        d.changed();
        d.changed();
        d.end_command();
        assert_eq!(d.count(), 1);
        d.begin_command();
        d.end_command();
        assert_eq!(d.count(), 1, "a command that changed nothing");
        d.changed();
        d.changed();
        d.add(3);
        assert_eq!(d.count(), 6);
        d.saved(4);
        assert_eq!(d.count(), 2);
        d.saved(10);
        assert_eq!(d.count(), 0);
    }
}
