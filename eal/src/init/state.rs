//! What a running EAL owns, in drop order, and its teardown.

use std::sync::Arc;

use crate::args::EalArgs;
use crate::error::Result;
use crate::heap::MemCore;
use crate::lcore::LcoreSet;
use crate::mp::Mp;
use crate::pci::PciBus;
use crate::runtime::RuntimeDir;

use super::watcher::{ExitState, Watcher};

pub(super) struct Inner {
    // Field order is drop order: workers and the IPC and watcher threads stop before
    // memory goes away, memory goes away before the runtime directory and the locks.
    pub lcores: Option<LcoreSet>,
    pub mp: Option<Mp>,
    pub watcher: Option<Watcher>,
    pub core: Option<MemCore>,
    pub runtime: RuntimeDir,
    pub args: EalArgs,
    pub pci: PciBus,
    pub secondary: bool,
    pub primary_pid: i32,
    pub exit: Arc<ExitState>,
}

impl Inner {
    pub fn core(&self) -> &MemCore {
        self.core
            .as_ref()
            .expect("core lives until teardown, which needs the last handle")
    }

    pub fn lcores(&self) -> &LcoreSet {
        self.lcores
            .as_ref()
            .expect("lcores live until teardown, which needs the last handle")
    }

    pub fn mp(&self) -> &Mp {
        self.mp
            .as_ref()
            .expect("IPC lives until teardown, which needs the last handle")
    }

    pub fn teardown(&mut self) -> Result<()> {
        if let Some(mut l) = self.lcores.take() {
            l.shutdown();
        }
        if let Some(m) = self.mp.take() {
            m.shutdown();
        }
        drop(self.watcher.take());
        let mut first = None;
        // Primary with secondaries still attached: leave the files to them.
        let keep = !self.secondary && self.core.is_some() && !self.runtime.begin_exit();
        if let Some(mut c) = self.core.take() {
            c.config.lock().proc_unregister(std::process::id() as i32);
            if keep {
                c.memory.disown_files();
                crate::log_notice!(
                    "secondary process(es) {:?} still attached to prefix '{}': leaving the shared files to them",
                    self.runtime.secondary_pids(),
                    self.args.file_prefix
                );
            }
            if let Err(e) = c.memory.release() {
                first.get_or_insert(e);
            }
            drop(c);
        }
        if keep {
            self.runtime.release_keep_files();
        } else if let Err(e) = self.runtime.remove() {
            first.get_or_insert(e);
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}
