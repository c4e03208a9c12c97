//! Thread schedulers: policies that decide which reactor runs which thread, from the busy
//! and idle counters of the last period (SPDK's `scheduler_static` and
//! `scheduler_dynamic`, simplified).
//!
//! A policy is pure: it gets the per-reactor and per-thread loads of the last period and
//! returns moves. The framework runs it every period on the app thread and carries the
//! moves out with events (see `runtime`).

/// Load of one reactor over the last period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoreLoad {
    /// Its lcore.
    pub lcore: u32,
    /// Busy ticks.
    pub busy: u64,
    /// Idle ticks (sleep included).
    pub idle: u64,
}

/// Load of one thread over the last period.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadLoad {
    /// Thread id.
    pub id: u64,
    /// Lcore hosting it.
    pub lcore: u32,
    /// Busy ticks.
    pub busy: u64,
    /// Idle ticks.
    pub idle: u64,
    /// Lcores it may run on (empty = any).
    pub cpumask: Vec<u32>,
}

/// A thread to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    /// Thread id.
    pub thread: u64,
    /// Destination lcore.
    pub to: u32,
}

/// A scheduling policy.
pub trait Scheduler: Send {
    /// Its name (`framework_set_scheduler`).
    fn name(&self) -> &'static str;
    /// Decide moves from the last period's loads. `main` is the main lcore.
    fn balance(&mut self, main: u32, cores: &[CoreLoad], threads: &[ThreadLoad]) -> Vec<Move>;
}

/// Threads stay where they were placed.
#[derive(Debug, Default)]
pub struct Static;

impl Scheduler for Static {
    fn name(&self) -> &'static str {
        "static"
    }
    fn balance(&mut self, _: u32, _: &[CoreLoad], _: &[ThreadLoad]) -> Vec<Move> {
        Vec::new()
    }
}

/// Packs idle threads onto the main lcore (so the other reactors can sleep) and spreads
/// busy threads over reactors that have room.
#[derive(Debug)]
pub struct Dynamic {
    /// A thread busier than this (percent) is "busy"; below it is idle and packed.
    pub thread_busy_pct: u64,
    /// A reactor above this load (percent) sheds busy threads.
    pub core_limit_pct: u64,
}

impl Default for Dynamic {
    fn default() -> Dynamic {
        // SPDK's dynamic scheduler defaults: load_limit 20, core_limit 80.
        Dynamic {
            thread_busy_pct: 20,
            core_limit_pct: 80,
        }
    }
}

fn pct(busy: u64, idle: u64) -> u64 {
    let total = busy.saturating_add(idle);
    if total == 0 {
        0
    } else {
        (u128::from(busy) * 100 / u128::from(total)) as u64
    }
}

fn allowed(t: &ThreadLoad, lcore: u32) -> bool {
    t.cpumask.is_empty() || t.cpumask.contains(&lcore)
}

impl Scheduler for Dynamic {
    fn name(&self) -> &'static str {
        "dynamic"
    }

    fn balance(&mut self, main: u32, cores: &[CoreLoad], threads: &[ThreadLoad]) -> Vec<Move> {
        let mut moves = Vec::new();
        // Per-core load in percent, rebuilt from the threads as they are placed.
        let period = cores
            .iter()
            .map(|c| c.busy.saturating_add(c.idle))
            .max()
            .unwrap_or(0)
            .max(1);
        let share = |t: &ThreadLoad| (u128::from(t.busy) * 100 / u128::from(period)) as u64;
        let mut load: Vec<(u32, u64)> = cores.iter().map(|c| (c.lcore, 0)).collect();
        let mut busy_threads = Vec::new();
        for t in threads {
            if pct(t.busy, t.idle) < self.thread_busy_pct && allowed(t, main) {
                if t.lcore != main {
                    moves.push(Move {
                        thread: t.id,
                        to: main,
                    });
                }
                if let Some(l) = load.iter_mut().find(|l| l.0 == main) {
                    l.1 += share(t);
                }
            } else {
                busy_threads.push(t);
            }
        }
        // Busiest first: each stays unless its core would go over the limit, in which case
        // it goes to the least loaded allowed core with room.
        busy_threads.sort_by_key(|t| std::cmp::Reverse(t.busy));
        for t in busy_threads {
            let s = share(t);
            let here = load.iter().position(|l| l.0 == t.lcore);
            let fits_here = here.is_some_and(|i| load[i].1 + s <= self.core_limit_pct);
            let dest = if fits_here {
                here
            } else {
                load.iter()
                    .enumerate()
                    .filter(|(_, l)| allowed(t, l.0) && l.1 + s <= self.core_limit_pct)
                    .min_by_key(|(_, l)| l.1)
                    .map(|(i, _)| i)
                    .or(here)
            };
            if let Some(i) = dest {
                load[i].1 += s;
                if load[i].0 != t.lcore {
                    moves.push(Move {
                        thread: t.id,
                        to: load[i].0,
                    });
                }
            }
        }
        moves
    }
}

/// A policy by name: `static` or `dynamic`.
pub fn by_name(name: &str) -> Option<Box<dyn Scheduler>> {
    match name {
        "static" => Some(Box::new(Static)),
        "dynamic" => Some(Box::new(Dynamic::default())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: u64, lcore: u32, busy: u64, idle: u64) -> ThreadLoad {
        ThreadLoad {
            id,
            lcore,
            busy,
            idle,
            cpumask: Vec::new(),
        }
    }

    #[test]
    fn dynamic_packs_idle_and_spreads_busy() {
        let cores = [
            CoreLoad {
                lcore: 0,
                busy: 100,
                idle: 0,
            },
            CoreLoad {
                lcore: 1,
                busy: 5,
                idle: 95,
            },
            CoreLoad {
                lcore: 2,
                busy: 0,
                idle: 100,
            },
        ];
        // Two idle threads on 1 and 2 go to main (0); two busy threads on 0 are split.
        let threads = [
            t(1, 1, 5, 95),
            t(2, 2, 0, 100),
            t(3, 0, 60, 40),
            t(4, 0, 50, 50),
        ];
        let moves = Dynamic::default().balance(0, &cores, &threads);
        assert!(moves.contains(&Move { thread: 1, to: 0 }));
        assert!(moves.contains(&Move { thread: 2, to: 0 }));
        let moved_busy: Vec<_> = moves.iter().filter(|m| m.thread >= 3).collect();
        assert_eq!(
            moved_busy.len(),
            1,
            "one of the two busy threads leaves core 0: {moves:?}"
        );
        assert_ne!(moved_busy[0].to, 0);
        assert!(Static.balance(0, &cores, &threads).is_empty());
    }

    #[test]
    fn cpumask_is_respected() {
        let cores = [
            CoreLoad {
                lcore: 0,
                busy: 0,
                idle: 100,
            },
            CoreLoad {
                lcore: 1,
                busy: 0,
                idle: 100,
            },
        ];
        let mut pinned = t(7, 1, 0, 100);
        pinned.cpumask = vec![1];
        assert!(Dynamic::default().balance(0, &cores, &[pinned]).is_empty());
        assert!(by_name("static").is_some() && by_name("nope").is_none());
    }
}
