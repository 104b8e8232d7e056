//! Shadow MMU bookkeeping: which guest linear pages are mapped on the host, to which
//! guest-physical pages, with which protection, and what must happen when the guest's
//! translation changes. Pure logic over a [`HostMapper`]; unit-tested with a recording
//! mapper.
//!
//! Rules:
//! * a linear page is mapped only after a successful guest page walk for an access, with
//!   host write permission only if the guest entry allows writes at every level, the page
//!   is already dirty (or the access writes, which sets D), and the physical page is neither
//!   a page-table page the shadow depends on nor a page holding translated code;
//! * coherence follows the TLB rules of the architecture: a mapping stays until the guest
//!   invalidates it (INVLPG, MOV CR3, paging mode changes), exactly when a real TLB entry
//!   may stay. Changes that need no invalidation on hardware (not-present -> present,
//!   permission upgrades) need none here either: unmapped or read-only host pages fault,
//!   and every host fault walks the guest's tables afresh. Page-table pages are therefore
//!   not write-protected (yet: saving shadows across CR3 reloads will need it);
//! * user/supervisor separation: guest CPL3 segments are truncated below `user_top`;
//!   supervisor pages mapped below it are unmapped whenever guest CPL3 code is entered.

use crate::fxhash::{FxHashMap as HashMap, FxHashSet as HashSet};
use ringfold_arch::paging::Translation;

/// Host operations the shadow needs (page granular, linear pages as page numbers).
pub trait HostMapper {
    fn map(&mut self, lin_page: u32, pa_page: u32, writable: bool);
    fn unmap(&mut self, lin_page: u32);
    fn protect(&mut self, lin_page: u32, writable: bool);
    /// Unmaps every shadow page at once (one host call instead of one per page).
    fn unmap_all(&mut self);
    /// Maps `count` consecutive linear pages to consecutive physical pages (one host call).
    fn map_run(&mut self, lin_page: u32, pa_page: u32, count: u32, writable: bool) {
        for k in 0..count {
            self.map(lin_page + k, pa_page + k, writable);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub pa: u32,
    pub writable: bool,
    pub user: bool,
    pub global: bool,
}

/// Supervisor pages at or above this linear address may raise `user_top` (kernel halves).
const HIGH_HALF: u32 = 0x8000_0000;

pub struct ShadowMmu {
    map: HashMap<u32, Mapping>,
    by_phys: HashMap<u32, Vec<u32>>,
    /// Linear page of a large guest page's base -> host pages mapped from it (INVLPG of
    /// any address in a large page invalidates all of it).
    large: HashMap<u32, Vec<u32>>,
    /// Physical pages holding translated code (read-only in every mapping).
    code: HashSet<u32>,
    sup_low: HashSet<u32>,
    /// Guest CPL3 data segments are truncated below this linear address.
    pub user_top: u32,
    max_user_page: u32,
    monitor_top: u32,
}

impl ShadowMmu {
    pub fn new(monitor_start: u32) -> Self {
        ShadowMmu {
            map: HashMap::default(),
            by_phys: HashMap::default(),
            large: HashMap::default(),
            code: HashSet::default(),
            sup_low: HashSet::default(),
            user_top: monitor_start,
            max_user_page: 0,
            monitor_top: monitor_start,
        }
    }

    pub fn mapped(&self, lin_page: u32) -> Option<Mapping> {
        self.map.get(&lin_page).copied()
    }

    pub fn mapped_pages(&self) -> usize {
        self.map.len()
    }

    fn read_only_phys(&self, pa: u32) -> bool {
        self.code.contains(&pa)
    }

    pub fn is_code_page(&self, pa: u32) -> bool {
        self.code.contains(&pa)
    }

    /// Downgrades every writable mapping of physical page `pa` to read-only.
    fn protect_phys(&mut self, h: &mut impl HostMapper, pa: u32) {
        if let Some(lins) = self.by_phys.get(&pa) {
            for l in lins {
                if let Some(m) = self.map.get_mut(l) {
                    if m.pa == pa && m.writable {
                        m.writable = false;
                        h.protect(*l, false);
                    }
                }
            }
        }
    }

    /// Maps `lin_page` after a successful walk `t` for an access (`write`).
    pub fn install(&mut self, h: &mut impl HostMapper, lin_page: u32, t: &Translation, write: bool, pge: bool) {
        let pa = (t.pa >> 12) as u32;
        self.install_run(h, lin_page, pa, 1, t, write, pge);
    }

    /// Maps `count` pages from `lin_page` (a run inside one guest page of `t`: a large page
    /// maps contiguously, the Linux direct map case) with one host call. Pages holding
    /// translated code in the run stay read-only.
    #[allow(clippy::too_many_arguments)]
    pub fn install_run(&mut self, h: &mut impl HostMapper, lin_page: u32, pa: u32, count: u32, t: &Translation, write: bool, pge: bool) {
        // Host write permission: the guest entry must allow writes at every level (for a
        // supervisor page also when CR0.WP=0 lets CPL0 write a read-only page: CPL3 never
        // reaches supervisor pages), D must already be set (or this write sets it), and the
        // page must not hold translated code.
        let guest_w = t.rw || (!t.user && t.writable);
        let writable = guest_w && (t.dirty || write);
        for k in 0..count {
            if let Some(old) = self.map.remove(&(lin_page + k)) {
                if let Some(v) = self.by_phys.get_mut(&old.pa) {
                    v.retain(|l| *l != lin_page + k);
                }
            }
        }
        h.map_run(lin_page, pa, count, writable);
        for k in 0..count {
            let (lp, p) = (lin_page + k, pa + k);
            let w = writable && !self.read_only_phys(p);
            if writable && !w {
                h.protect(lp, false);
            }
            self.map.insert(lp, Mapping { pa: p, writable: w, user: t.user, global: t.global && pge });
            self.by_phys.entry(p).or_default().push(lp);
            if t.page_size > 4096 {
                self.large.entry(t.page_base_lin >> 12).or_default().push(lp);
            }
            self.note_privilege(lp, t.user);
        }
    }

    /// Keeps `user_top` and the set of low supervisor pages right for a new mapping.
    fn note_privilege(&mut self, lin_page: u32, user: bool) {
        let lin = lin_page << 12;
        if user {
            self.max_user_page = self.max_user_page.max(lin_page);
            if lin >= self.user_top {
                // A user page above the truncation: give up the truncation; every
                // supervisor page below the monitor is then unmapped on entry to CPL3.
                self.user_top = self.monitor_top;
                let sups: Vec<u32> = self.map.iter().filter(|(_, m)| !m.user).map(|(l, _)| *l).collect();
                self.sup_low.extend(sups);
            }
        } else if lin < self.user_top {
            let aligned = lin & !0x3F_FFFF;
            if lin >= HIGH_HALF && aligned > self.max_user_page << 12 {
                self.user_top = aligned;
                let top = self.user_top;
                self.sup_low.retain(|l| (l << 12) < top);
            } else {
                self.sup_low.insert(lin_page);
            }
        }
    }

    /// Removes one linear page from the host mapping.
    pub fn drop_page(&mut self, h: &mut impl HostMapper, lin_page: u32) -> bool {
        let Some(m) = self.map.remove(&lin_page) else { return false };
        if let Some(v) = self.by_phys.get_mut(&m.pa) {
            v.retain(|l| *l != lin_page);
        }
        self.sup_low.remove(&lin_page);
        h.unmap(lin_page);
        true
    }

    /// INVLPG: drops the page, or every host page of a large guest page containing it.
    /// Returns the linear pages dropped.
    pub fn invlpg(&mut self, h: &mut impl HostMapper, lin: u32) -> Vec<u32> {
        let mut dropped = Vec::new();
        if self.drop_page(h, lin >> 12) {
            dropped.push(lin >> 12);
        }
        for size in [0x20_0000u32, 0x40_0000] {
            if let Some(pages) = self.large.remove(&((lin & !(size - 1)) >> 12)) {
                for p in pages {
                    if self.drop_page(h, p) {
                        dropped.push(p);
                    }
                }
            }
        }
        dropped
    }

    /// MOV CR3 (keep_global) or a paging mode change: drops mappings; returns the pages dropped.
    pub fn flush(&mut self, h: &mut impl HostMapper, keep_global: bool) -> Vec<u32> {
        let victims: Vec<u32> = self.map.iter().filter(|(_, m)| !(keep_global && m.global)).map(|(l, _)| *l).collect();
        if !keep_global || victims.len() == self.map.len() {
            if !self.map.is_empty() {
                h.unmap_all();
            }
            self.map.clear();
            self.sup_low.clear();
        } else {
            for l in &victims {
                self.drop_page(h, *l);
            }
        }
        if !keep_global {
            self.by_phys.clear();
            self.large.clear();
            self.user_top = self.monitor_top;
            self.max_user_page = 0;
        }
        victims
    }

    /// Physical page `pa` now holds translated code: read-only everywhere.
    pub fn add_code(&mut self, h: &mut impl HostMapper, pa: u32) {
        if self.code.insert(pa) {
            self.protect_phys(h, pa);
        }
    }

    /// Translations of `pa` were dropped: it may become writable again (lazily, on the next
    /// write fault). Returns the linear pages currently mapping it.
    pub fn remove_code(&mut self, pa: u32) -> Vec<u32> {
        self.code.remove(&pa);
        self.lin_pages_of(pa)
    }

    pub fn lin_pages_of(&self, pa: u32) -> Vec<u32> {
        self.by_phys.get(&pa).map(|v| v.iter().copied().filter(|l| self.map.get(l).is_some_and(|m| m.pa == pa)).collect()).unwrap_or_default()
    }

    pub fn clear_code(&mut self) {
        self.code.clear();
    }

    /// Before running guest CPL3 code: supervisor pages below `user_top` disappear.
    pub fn enter_user(&mut self, h: &mut impl HostMapper) {
        if self.sup_low.is_empty() {
            return;
        }
        let v: Vec<u32> = self.sup_low.drain().collect();
        for l in v {
            self.drop_page(h, l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringfold_arch::paging::NO_TABLE;

    #[derive(Default)]
    struct Rec {
        mapped: HashMap<u32, (u32, bool)>,
    }
    impl HostMapper for Rec {
        fn map(&mut self, l: u32, p: u32, w: bool) {
            self.mapped.insert(l, (p, w));
        }
        fn unmap(&mut self, l: u32) {
            self.mapped.remove(&l);
        }
        fn protect(&mut self, l: u32, w: bool) {
            self.mapped.get_mut(&l).unwrap().1 = w;
        }
        fn unmap_all(&mut self) {
            self.mapped.clear();
        }
    }

    fn tr(pa: u64, rw: bool, user: bool, dirty: bool, tables: [u64; 3]) -> Translation {
        Translation {
            pa,
            page_size: 4096,
            page_base_lin: 0,
            page_base_pa: pa,
            writable: rw,
            rw,
            user,
            nx: false,
            global: false,
            dirty,
            leaf_entry_pa: 0,
            leaf_entry: 0,
            table_pas: tables,
        }
    }

    #[test]
    fn clean_pages_map_read_only_until_written() {
        let (mut s, mut h) = (ShadowMmu::new(0xFF00_0000), Rec::default());
        s.install(&mut h, 0x400, &tr(0x5000, true, true, false, [NO_TABLE, 0x1000, 0x2000]), false, false);
        assert_eq!(h.mapped[&0x400], (5, false), "D=0: read-only so the first write sets D");
        s.install(&mut h, 0x400, &tr(0x5000, true, true, true, [NO_TABLE, 0x1000, 0x2000]), true, false);
        assert_eq!(h.mapped[&0x400], (5, true));
    }

    #[test]
    fn read_only_guest_pages_map_read_only_except_supervisor_with_wp0() {
        let (mut s, mut h) = (ShadowMmu::new(0xFF00_0000), Rec::default());
        let t = [NO_TABLE, 0x1000, 0x2000];
        // A user read-only page stays read-only even after a CPL0 write with WP=0.
        let mut u = tr(0x5000, false, true, true, t);
        u.writable = true;
        s.install(&mut h, 0x400, &u, true, false);
        assert_eq!(h.mapped[&0x400], (5, false));
        // A supervisor read-only page written by CPL0 with WP=0 can be host-writable.
        let mut k = tr(0x6000, false, false, true, t);
        k.writable = true;
        s.install(&mut h, 0xC0000, &k, true, false);
        assert_eq!(h.mapped[&0xC0000], (6, true));
    }

    #[test]
    fn large_page_runs_map_in_one_call_and_keep_code_read_only() {
        #[derive(Default)]
        struct Count {
            inner: Rec,
            runs: u32,
        }
        impl HostMapper for Count {
            fn map(&mut self, l: u32, p: u32, w: bool) {
                self.inner.map(l, p, w)
            }
            fn unmap(&mut self, l: u32) {
                self.inner.unmap(l)
            }
            fn protect(&mut self, l: u32, w: bool) {
                self.inner.protect(l, w)
            }
            fn unmap_all(&mut self) {
                self.inner.unmap_all()
            }
            fn map_run(&mut self, l: u32, p: u32, n: u32, w: bool) {
                self.runs += 1;
                for k in 0..n {
                    self.inner.map(l + k, p + k, w);
                }
            }
        }
        let (mut s, mut h) = (ShadowMmu::new(0xFF00_0000), Count::default());
        s.add_code(&mut h, 0x105);
        let mut t = tr(0x40_0000, true, false, true, [NO_TABLE, 0x1000, NO_TABLE]);
        t.page_size = 0x40_0000;
        t.page_base_lin = 0xC040_0000;
        s.install_run(&mut h, 0xC0400, 0x100, 1024, &t, false, false);
        assert_eq!(h.runs, 1);
        assert_eq!(s.mapped_pages(), 1024);
        assert_eq!(h.inner.mapped[&0xC0400], (0x100, true));
        assert_eq!(h.inner.mapped[&0xC0405], (0x105, false), "code page stays read-only");
        assert_eq!(s.invlpg(&mut h, 0xC07F_F000).len(), 1024, "INVLPG anywhere drops the large page");
    }

    #[test]
    fn supervisor_pages_and_user_top() {
        let (mut s, mut h) = (ShadowMmu::new(0xFF00_0000), Rec::default());
        let t = [NO_TABLE, 0x1000, 0x2000];
        s.install(&mut h, 0x08048, &tr(0x9000, true, true, true, t), false, false);
        s.install(&mut h, 0xC0100, &tr(0x100000, true, false, true, t), false, false);
        assert_eq!(s.user_top, 0xC000_0000, "kernel half: truncate user segments");
        s.install(&mut h, 0x00100, &tr(0x100000, true, false, true, t), false, false);
        s.enter_user(&mut h);
        assert!(!h.mapped.contains_key(&0x00100), "low supervisor page unmapped for CPL3");
        assert!(h.mapped.contains_key(&0xC0100), "high supervisor page stays (truncation)");
        // A user page above user_top ends the truncation.
        s.install(&mut h, 0xD0000, &tr(0xA000, true, true, true, t), false, false);
        assert_eq!(s.user_top, 0xFF00_0000);
        s.enter_user(&mut h);
        assert!(!h.mapped.contains_key(&0xC0100));
        assert!(h.mapped.contains_key(&0xD0000));
    }

    #[test]
    fn code_pages_are_read_only_everywhere_and_flush_keeps_globals() {
        let (mut s, mut h) = (ShadowMmu::new(0xFF00_0000), Rec::default());
        let t = [NO_TABLE, 0x1000, 0x2000];
        s.install(&mut h, 0x400, &tr(0x7000, true, true, true, t), true, false);
        s.install(&mut h, 0x500, &tr(0x7000, true, true, true, t), true, false);
        s.add_code(&mut h, 7);
        assert_eq!((h.mapped[&0x400].1, h.mapped[&0x500].1), (false, false));
        let mut g = tr(0x8000, true, false, true, t);
        g.global = true;
        s.install(&mut h, 0xC0000, &g, true, true);
        let dropped = s.flush(&mut h, true);
        assert_eq!(dropped.len(), 2);
        assert!(h.mapped.contains_key(&0xC0000));
        assert_eq!(s.lin_pages_of(7), Vec::<u32>::new());
    }
}
