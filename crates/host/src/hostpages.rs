//! Which guest-RAM page each linear page of the jail's host mapping holds (pure logic).
//!
//! A shadow page the guest loses (a switch of address space, a changed entry) is not
//! replaced by a fresh PROT_NONE reservation but `mprotect`ed to PROT_NONE: the host keeps
//! the mapping of that RAM page (a "ghost"), and mapping the same RAM page at the same
//! linear page again is another `mprotect`, not an `mmap`. On this host a single-page
//! `mmap` over the reservation plus the page fault that fills it costs several times a
//! `mprotect` pair, and an `mprotect` covers a run of pages in one call whatever they map
//! (Linux's `text_poke` maps, writes and unmaps one page ~8k times in a boot; a process
//! switched away from and back to gets its pages back in a few calls).
//!
//! Every ghost is a host VMA unless it merges with its neighbours, so their number is
//! bounded: past `GHOST_LIMIT` pages every ghost goes back to the reservation.
#![forbid(unsafe_code)]

/// Ghost pages kept at most (each may be a VMA and split the reservation in two; the
/// kernel's default limit is 65530 VMAs and the shadow MMU maps at most 32768 pages).
pub const GHOST_LIMIT: usize = 8192;

/// Above this many pages an unmap replaces the range with the reservation at once.
const RESERVE_PAGES: u32 = 1024;

/// A host call on the jail (linear pages as page numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostOp {
    /// `mmap` `count` pages of guest RAM from `pa_page` at `lin_page`.
    Map { lin_page: u32, pa_page: u32, count: u32, writable: bool },
    /// `mprotect` `count` pages: `None` (unmapped) or readable, optionally writable.
    Protect { lin_page: u32, count: u32, access: Option<bool> },
    /// Replace `count` pages with the anonymous PROT_NONE reservation.
    Reserve { lin_page: u32, count: u32 },
}

const ACCESSIBLE: u32 = 1 << 31;
const PA_MASK: u32 = !ACCESSIBLE;

/// Per linear page: 0 (the reservation, or not known to hold RAM), or the RAM page + 1 it
/// maps, with `ACCESSIBLE` while the guest may reach it.
pub struct HostPages {
    state: Vec<u32>,
    /// Linear pages whose state may be non-zero (for resets and reaping).
    touched: Vec<u32>,
    ghosts: usize,
    limit: usize,
}

impl HostPages {
    /// `pages` linear pages (the guest part of the jail).
    pub fn new(pages: u32) -> Self {
        Self::with_limit(pages, GHOST_LIMIT)
    }

    pub fn with_limit(pages: u32, limit: usize) -> Self {
        HostPages { state: vec![0; pages as usize], touched: Vec::new(), ghosts: 0, limit }
    }

    /// Ghost pages now (mapped on the host, not accessible).
    pub fn ghosts(&self) -> usize {
        self.ghosts
    }

    /// The RAM page `lin_page` maps on the host and whether the guest may reach it.
    pub fn get(&self, lin_page: u32) -> Option<(u32, bool)> {
        let s = self.state[lin_page as usize];
        (s != 0).then(|| ((s & PA_MASK) - 1, s & ACCESSIBLE != 0))
    }

    /// Maps `count` linear pages from `lin_page` to RAM pages from `pa_page`.
    pub fn map(&mut self, lin_page: u32, pa_page: u32, count: u32, writable: bool, ops: &mut Vec<HostOp>) {
        let range = lin_page as usize..(lin_page + count) as usize;
        let same = self.state[range.clone()].iter().zip(pa_page..).all(|(&s, p)| s & PA_MASK == p + 1);
        ops.push(if same {
            HostOp::Protect { lin_page, count, access: Some(writable) }
        } else {
            HostOp::Map { lin_page, pa_page, count, writable }
        });
        for (s, p) in self.state[range].iter_mut().zip(pa_page..) {
            if *s == 0 {
                self.touched.push(lin_page + (p - pa_page));
            } else if *s & ACCESSIBLE == 0 {
                self.ghosts -= 1;
            }
            *s = (p + 1) | ACCESSIBLE;
        }
    }

    /// Makes `count` linear pages from `lin_page` unreachable; the RAM pages they mapped stay
    /// mapped as ghosts (small ranges) until the limit sends all ghosts back to the
    /// reservation.
    pub fn unmap(&mut self, lin_page: u32, count: u32, ops: &mut Vec<HostOp>) {
        if count > RESERVE_PAGES {
            ops.push(HostOp::Reserve { lin_page, count });
            let end = lin_page + count;
            let (state, mut ghosts) = (&mut self.state, self.ghosts);
            self.touched.retain(|&lp| {
                if !(lin_page..end).contains(&lp) {
                    return true;
                }
                let s = &mut state[lp as usize];
                if *s != 0 && *s & ACCESSIBLE == 0 {
                    ghosts -= 1;
                }
                *s = 0;
                false
            });
            self.ghosts = ghosts;
            return;
        }
        ops.push(HostOp::Protect { lin_page, count, access: None });
        for s in &mut self.state[lin_page as usize..(lin_page + count) as usize] {
            if *s & ACCESSIBLE != 0 {
                *s &= PA_MASK;
                self.ghosts += 1;
            }
        }
        if self.ghosts > self.limit {
            self.reap(ops);
        }
    }

    /// Sends every ghost back to the reservation (one call per run of consecutive pages).
    fn reap(&mut self, ops: &mut Vec<HostOp>) {
        self.touched.sort_unstable();
        self.touched.dedup();
        let mut run: Option<(u32, u32)> = None;
        let state = &mut self.state;
        self.touched.retain(|&lp| {
            let s = &mut state[lp as usize];
            if *s & ACCESSIBLE != 0 {
                return true;
            }
            if *s != 0 {
                *s = 0;
                match &mut run {
                    Some((start, n)) if *start + *n == lp => *n += 1,
                    _ => {
                        if let Some((start, n)) = run.replace((lp, 1)) {
                            ops.push(HostOp::Reserve { lin_page: start, count: n });
                        }
                    }
                }
            }
            false
        });
        if let Some((start, n)) = run {
            ops.push(HostOp::Reserve { lin_page: start, count: n });
        }
        self.ghosts = 0;
    }

    /// Forgets everything: the caller replaced the whole range with something this table
    /// does not describe (the paging-off identity view, the reservation).
    pub fn reset(&mut self) {
        for lp in self.touched.drain(..) {
            self.state[lp as usize] = 0;
        }
        self.ghosts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(h: &mut HostPages, f: impl FnOnce(&mut HostPages, &mut Vec<HostOp>)) -> Vec<HostOp> {
        let mut ops = Vec::new();
        f(h, &mut ops);
        ops
    }

    #[test]
    fn a_page_mapped_again_to_the_same_ram_is_only_protected() {
        let mut h = HostPages::new(1 << 20);
        assert_eq!(run(&mut h, |h, o| h.map(0x100, 0x12c2, 1, true, o)),
            [HostOp::Map { lin_page: 0x100, pa_page: 0x12c2, count: 1, writable: true }]);
        assert_eq!(run(&mut h, |h, o| h.unmap(0x100, 1, o)), [HostOp::Protect { lin_page: 0x100, count: 1, access: None }]);
        assert_eq!(h.ghosts(), 1);
        assert_eq!(h.get(0x100), Some((0x12c2, false)));
        assert_eq!(run(&mut h, |h, o| h.map(0x100, 0x12c2, 1, false, o)),
            [HostOp::Protect { lin_page: 0x100, count: 1, access: Some(false) }]);
        assert_eq!(h.ghosts(), 0);
        // Another RAM page at the same linear page needs a real mapping.
        h.unmap(0x100, 1, &mut Vec::new());
        assert_eq!(run(&mut h, |h, o| h.map(0x100, 0x500, 1, true, o)),
            [HostOp::Map { lin_page: 0x100, pa_page: 0x500, count: 1, writable: true }]);
        assert_eq!(h.ghosts(), 0);
        assert_eq!(h.get(0x100), Some((0x500, true)));
    }

    #[test]
    fn a_run_is_protected_only_if_every_page_held_the_same_ram() {
        let mut h = HostPages::new(1 << 20);
        let mut o = Vec::new();
        h.map(0x200, 0x40, 2, true, &mut o);
        h.map(0x202, 0x90, 1, true, &mut o); // not contiguous in RAM
        h.unmap(0x200, 3, &mut o);
        assert_eq!(h.ghosts(), 3);
        assert_eq!(run(&mut h, |h, o| h.map(0x200, 0x40, 3, true, o)),
            [HostOp::Map { lin_page: 0x200, pa_page: 0x40, count: 3, writable: true }]);
        assert_eq!(h.ghosts(), 0);
        h.unmap(0x200, 3, &mut o);
        assert_eq!(run(&mut h, |h, o| h.map(0x200, 0x40, 3, true, o)),
            [HostOp::Protect { lin_page: 0x200, count: 3, access: Some(true) }]);
        // A never-mapped page is not a ghost of anything.
        assert_eq!(run(&mut h, |h, o| h.map(0x300, 0, 1, true, o)),
            [HostOp::Map { lin_page: 0x300, pa_page: 0, count: 1, writable: true }]);
    }

    #[test]
    fn past_the_limit_every_ghost_goes_back_to_the_reservation_in_runs() {
        let mut h = HostPages::with_limit(1 << 20, 4);
        let mut o = Vec::new();
        for lp in [0x10, 0x11, 0x12, 0x20, 0x30] {
            h.map(lp, lp + 0x1000, 1, true, &mut o);
        }
        h.map(0x40, 0x9000, 1, true, &mut o); // stays mapped throughout
        o.clear();
        h.unmap(0x20, 1, &mut o);
        h.unmap(0x10, 3, &mut o);
        assert_eq!(h.ghosts(), 4);
        o.clear();
        h.unmap(0x30, 1, &mut o);
        assert_eq!(o, [
            HostOp::Protect { lin_page: 0x30, count: 1, access: None },
            HostOp::Reserve { lin_page: 0x10, count: 3 },
            HostOp::Reserve { lin_page: 0x20, count: 1 },
            HostOp::Reserve { lin_page: 0x30, count: 1 },
        ]);
        assert_eq!(h.ghosts(), 0);
        assert_eq!(h.get(0x10), None);
        assert_eq!(h.get(0x40), Some((0x9000, true)));
        // The reaped page maps afresh.
        assert_eq!(run(&mut h, |h, o| h.map(0x30, 0x1030, 1, true, o)),
            [HostOp::Map { lin_page: 0x30, pa_page: 0x1030, count: 1, writable: true }]);
    }

    #[test]
    fn large_unmaps_and_resets_forget_the_pages() {
        let mut h = HostPages::new(1 << 20);
        let mut o = Vec::new();
        h.map(0x1000, 0x10, 4, true, &mut o);
        h.map(0x5000, 0x20, 1, true, &mut o);
        h.unmap(0x5000, 1, &mut o);
        o.clear();
        h.unmap(0x800, 0x4000, &mut o);
        assert_eq!(o, [HostOp::Reserve { lin_page: 0x800, count: 0x4000 }]);
        assert_eq!(h.get(0x1002), None);
        assert_eq!(h.get(0x5000), Some((0x20, false)));
        assert_eq!(h.ghosts(), 1);
        h.reset();
        assert_eq!((h.get(0x5000), h.ghosts()), (None, 0));
        assert_eq!(run(&mut h, |h, o| h.map(0x5000, 0x20, 1, true, o)),
            [HostOp::Map { lin_page: 0x5000, pa_page: 0x20, count: 1, writable: true }]);
    }
}
