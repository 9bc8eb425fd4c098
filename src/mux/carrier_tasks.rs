//! The reader and writer task of each carrier, by index. A lost carrier's tasks are stopped at
//! once: over a connection that went silent (a NAT entry expired, a middlebox dropping packets)
//! the reader would wait in `recv` and the writer in `send` forever, holding the socket.

use std::sync::{Mutex, MutexGuard};

use tokio::task::AbortHandle;

/// Tasks of one attachment of one carrier slot.
struct Entry {
    attachment: u64,
    tasks: [AbortHandle; 2],
}

impl Entry {
    fn abort(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Carrier tasks by index.
#[derive(Default)]
pub(super) struct CarrierTasks {
    slots: Mutex<Vec<Option<Entry>>>,
}

impl CarrierTasks {
    fn slots(&self) -> MutexGuard<'_, Vec<Option<Entry>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the tasks of attachment `attachment` of carrier `index`; the tasks of an older
    /// attachment still there are stopped.
    pub(super) fn set(
        &self,
        index: usize,
        attachment: u64,
        reader: AbortHandle,
        writer: AbortHandle,
    ) {
        let mut slots = self.slots();
        while slots.len() <= index {
            slots.push(None);
        }
        let entry = Entry {
            attachment,
            tasks: [reader, writer],
        };
        if let Some(old) = slots[index].replace(entry) {
            old.abort();
        }
    }

    /// Stops the tasks of carrier `index` if they still belong to `attachment`.
    pub(super) fn stop(&self, index: usize, attachment: u64) {
        let mut slots = self.slots();
        if let Some(slot) = slots.get_mut(index) {
            if slot.as_ref().is_some_and(|e| e.attachment == attachment) {
                if let Some(entry) = slot.take() {
                    entry.abort();
                }
            }
        }
    }

    /// Stops every carrier task.
    pub(super) fn stop_all(&self) {
        for entry in self.slots().drain(..).flatten() {
            entry.abort();
        }
    }
}
