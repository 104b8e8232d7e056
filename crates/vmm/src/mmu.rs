//! Shadow MMU bookkeeping: which guest linear pages are mapped on the host, to which
//! guest-physical pages, with which protection, derived from which guest paging-structure
//! pages, and what must happen when the guest's translation changes. Pure logic over a
//! [`HostMapper`]; unit-tested with a recording mapper.
//!
//! Rules:
//! * a linear page is mapped only after a successful guest page walk for an access, with
//!   host write permission only if the guest entry allows writes at every level, the page
//!   is already dirty (or the access writes, which sets D), and the physical page is neither
//!   a paging-structure page a shadow mapping depends on nor a page holding translated code;
//! * coherence: every paging-structure page (PDPT, page directory, page table) a mapping
//!   was derived from is write-protected in every host mapping of it. The first write to
//!   it (a host fault, or a monitor store) drops every mapping derived from it, in the
//!   current and in every saved address space, and lifts the protection until a mapping
//!   derived from it is installed again. So shadow mappings always equal what a fresh walk
//!   would give (up to A/D bits, which only make a walk more permissive), which is stricter
//!   than the TLB rules (INVLPG and MOV CR3 still drop what they must);
//!   Global mappings are exempt: like global TLB entries they stay until INVLPG or a
//!   paging mode change, whichever address space's tables they were walked through;
//! * saved address spaces: MOV CR3 moves the non-global mappings of the old space into a
//!   saved set keyed by the old CR3 and brings back the new space's saved mappings (only
//!   the difference is unmapped/mapped on the host, in runs), so switching between
//!   processes does not refault their working sets. The write protection keeps saved
//!   spaces valid;
//! * user/supervisor separation: guest CPL3 segments are truncated below `user_top`;
//!   supervisor pages mapped below it are unmapped whenever guest CPL3 code is entered.

use crate::fxhash::{FxHashMap as HashMap, FxHashSet as HashSet};
use ringfold_arch::paging::{PagingMode, PhysMem, Translation, NO_TABLE};

/// Guest-physical reads through a `HostMapper` for walks that set no A/D bits.
struct ReadOnlyPhys<'a, H: HostMapper>(&'a H);

impl<H: HostMapper> PhysMem for ReadOnlyPhys<'_, H> {
    fn read_u32(&mut self, pa: u64) -> u32 {
        let mut b = [0u8; 4];
        self.0.read_phys(pa as u32, &mut b);
        u32::from_le_bytes(b)
    }
    fn read_u64(&mut self, pa: u64) -> u64 {
        let mut b = [0u8; 8];
        self.0.read_phys(pa as u32, &mut b);
        u64::from_le_bytes(b)
    }
    fn write_u32(&mut self, _: u64, _: u32) {}
    fn write_u64(&mut self, _: u64, _: u64) {}
}

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
    /// Unmaps `count` consecutive linear pages (one host call).
    fn unmap_run(&mut self, lin_page: u32, count: u32) {
        for k in 0..count {
            self.unmap(lin_page + k);
        }
    }
    /// Reads guest-physical bytes at `pa` (paging structures and their snapshots).
    fn read_phys(&self, pa: u32, out: &mut [u8]);
}

/// No table / not a large page.
pub const NONE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub pa: u32,
    /// Host write permission now.
    pub writable: bool,
    /// What the guest entry allows (R/W at every level, D set): `writable` once the page
    /// holds neither translated code nor a protected paging structure.
    pub allow_w: bool,
    pub user: bool,
    pub global: bool,
    /// Paging-structure pages the mapping was derived from: PDPT, page directory, page
    /// table (`NONE` where a level was not used).
    pub tables: [u32; 3],
    /// First linear page of the large guest page the mapping is part of (`NONE`: 4 KiB).
    pub large: u32,
}

/// Supervisor pages at or above this linear address may raise `user_top` (kernel halves).
const HIGH_HALF: u32 = 0x8000_0000;
/// Saved address spaces kept (least recently used ones go first).
const MAX_SAVED_SPACES: usize = 16;
/// Pages kept in saved spaces at most (all spaces together).
const MAX_SAVED_PAGES: usize = 65536;
/// Paging-structure snapshots kept at most before everything is dropped (4 KiB each).
const MAX_TABLES: usize = 8192;
/// Hot (writable, compared at every switch) paging structures at most, and the switches in
/// a row without a change after which one is write-protected again.
const MAX_HOT: usize = 16;
const HOT_QUIET: u8 = 8;
const HOT_RECENT: u64 = 4;

/// The non-global mappings of an address space that is not current.
struct Saved {
    /// (linear page, mapping), sorted by linear page; `pa == NONE` marks a dropped entry.
    entries: Vec<(u32, Mapping)>,
    /// Paging-structure page -> indices into `entries` derived from it.
    by_table: HashMap<u32, Vec<u32>>,
    used: u64,
}

/// Counters of the shadow's work (shown with --stats, used by benches/paging.rs).
#[derive(Clone, Copy, Debug, Default)]
pub struct MmuStats {
    /// MOV CR3 to a different address space.
    pub space_switches: u64,
    /// Supervisor pages kept at a switch because the new space's tables map them the same.
    pub walk_kept: u64,
    /// Pages mapped again from a saved space at a switch (no fault needed).
    pub restored_pages: u64,
    /// Pages identical in the old and the new space, left alone on the host.
    pub kept_pages: u64,
    /// First writes to write-protected paging structures (each lifts the protection
    /// until the next address-space switch).
    pub table_writes: u64,
    /// Mappings dropped because the guest entry they came from changed.
    pub stale_dropped: u64,
    /// Host calls mapping more than one page at a fault, and the pages they mapped.
    pub runs: u64,
    pub run_pages: u64,
    /// Times every current mapping was dropped (`drop_current`: a CR4.PGE toggle, or a
    /// paging-mode change or eviction through `flush`), and the mappings that went.
    pub global_drops: u64,
    pub global_dropped_pages: u64,
    /// Pages mapped at a switch ahead of the fault the space took on them last time.
    pub prefetched: u64,
    /// Switches that forgot the new space's saved mappings instead of restoring them.
    pub lazy_switches: u64,
}

pub struct ShadowMmu {
    map: HashMap<u32, Mapping>,
    /// The non-global pages of `map`.
    local: HashSet<u32>,
    by_phys: HashMap<u32, Vec<u32>>,
    /// Linear page of a large guest page's base -> host pages mapped from it (INVLPG of
    /// any address in a large page invalidates all of it). May hold stale pages.
    large: HashMap<u32, Vec<u32>>,
    /// Physical pages holding translated code (read-only in every mapping).
    code: HashSet<u32>,
    sup_low: HashSet<u32>,
    /// Guest CPL3 data segments are truncated below this linear address.
    pub user_top: u32,
    max_user_page: u32,
    monitor_top: u32,
    /// Current mappings by the paging-structure page they were derived from (may hold
    /// stale pages: checked against `map`).
    by_table: HashMap<u32, Vec<u32>>,
    /// Paging structures some mapping was derived from, with their contents at that time.
    /// Write-protected unless in `unsynced`.
    snapshots: HashMap<u32, Box<[u8; 4096]>>,
    /// Paging structures written since their snapshot (compared at the next switch).
    unsynced: HashSet<u32>,
    /// Paging structures written again and again (`HOT_RECENT`): left writable
    /// and compared at every switch instead of faulting on each first write, with the
    /// number of switches in a row they were found unchanged. Linux's text_poke writes the
    /// same PTE of its temporary mm twice per patch (15.9k switches in a boot). The second
    /// count: switches in a row at which no mapping came from it (reset by a walk through it).
    hot: HashMap<u32, (u8, u8)>,
    /// Structures written lately that are not hot, with the resync (`epoch`) that found it.
    written_recent: HashMap<u32, u64>,
    epoch: u64,
    /// PAE entries are 8 bytes (which entry of a table a mapping used).
    pae: bool,
    /// The current address space (CR3 with the bits that do not select tables cleared).
    space: u32,
    /// The guest's paging mode, for walks of a new space at a switch (`None`: no walks).
    pub walk_mode: Option<PagingMode>,
    /// Current mappings dropped by the last resync (the pages a same-space switch changed).
    dropped: Vec<u32>,
    saved: HashMap<u32, Saved>,
    saved_pages: usize,
    clock: u64,
    /// Keep saved address spaces across MOV CR3 (false: every switch drops the old space's
    /// mappings; benchmarks compare both).
    pub cache_spaces: bool,
    pub stats: MmuStats,
}

/// Byte offset, inside paging structure `level` (0 PDPT, 1 PD, 2 PT), of the entry that
/// translates linear page `lp` (the PDPT's offset inside its page comes from `cr3`).
fn entry_offset(level: usize, lp: u32, pae: bool, cr3: u32) -> usize {
    let lin = lp << 12;
    match (level, pae) {
        (0, _) => (cr3 & 0xFE0) as usize + (lin >> 30) as usize * 8,
        (1, false) => (lin >> 22) as usize * 4,
        (1, true) => ((lin >> 21) & 0x1FF) as usize * 8,
        (_, false) => ((lin >> 12) & 0x3FF) as usize * 4,
        (_, true) => ((lin >> 12) & 0x1FF) as usize * 8,
    }
}

/// Whether a paging-structure entry changed in a way that matters for mappings derived
/// from it: anything but accessed/dirty bits newly set (which only make a walk more
/// permissive); clearing A or D matters.
fn entry_changed(old: &[u8], new: &[u8]) -> bool {
    let rd = |b: &[u8]| {
        let mut v = [0u8; 8];
        v[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(v)
    };
    let (a, b) = (rd(old), rd(new));
    let ad = ringfold_arch::paging::PTE_A | ringfold_arch::paging::PTE_D;
    (a ^ b) & !ad != 0 || (a ^ b) & a & ad != 0
}

/// Unmaps ascending linear pages `pages` on the host, one call per run of consecutive
/// pages.
fn unmap_runs(h: &mut impl HostMapper, pages: &[u32]) {
    let mut k = 0;
    while k < pages.len() {
        let mut n = 1;
        while k + n < pages.len() && pages[k + n] == pages[k] + n as u32 {
            n += 1;
        }
        h.unmap_run(pages[k], n as u32);
        k += n;
    }
}

/// Bit set of the `n`-byte entries of a paging structure that `entry_changed` between
/// `old` and `new` (compared 8 bytes at a time first: a switch usually finds one or two
/// changed entries in a 4 KiB table).
fn changed_entries(old: &[u8], new: &[u8; 4096], n: usize) -> [u64; 16] {
    let mut bits = [0u64; 16];
    for (w, (a, b)) in old.chunks_exact(8).zip(new.chunks_exact(8)).enumerate() {
        if a == b {
            continue;
        }
        for k in 0..8 / n {
            let e = (w * 8) / n + k;
            if entry_changed(&a[k * n..k * n + n], &b[k * n..k * n + n]) {
                bits[e / 64] |= 1 << (e % 64);
            }
        }
    }
    bits
}

impl ShadowMmu {
    pub fn new(monitor_start: u32) -> Self {
        ShadowMmu {
            map: HashMap::default(),
            local: HashSet::default(),
            by_phys: HashMap::default(),
            large: HashMap::default(),
            code: HashSet::default(),
            sup_low: HashSet::default(),
            user_top: monitor_start,
            max_user_page: 0,
            dropped: Vec::new(),
            walk_mode: None,
            monitor_top: monitor_start,
            by_table: HashMap::default(),
            snapshots: HashMap::default(),
            unsynced: HashSet::default(),
            hot: HashMap::default(),
            written_recent: HashMap::default(),
            epoch: 0,
            pae: false,
            space: 0,
            saved: HashMap::default(),
            saved_pages: 0,
            clock: 0,
            cache_spaces: true,
            stats: MmuStats::default(),
        }
    }

    pub fn mapped(&self, lin_page: u32) -> Option<Mapping> {
        self.map.get(&lin_page).copied()
    }

    pub fn mapped_pages(&self) -> usize {
        self.map.len()
    }

    /// Pages held in saved address spaces.
    pub fn saved_pages(&self) -> usize {
        self.saved_pages
    }

    fn read_only_phys(&self, pa: u32) -> bool {
        self.code.contains(&pa) || (self.snapshots.contains_key(&pa) && !self.unsynced.contains(&pa))
    }

    pub fn is_code_page(&self, pa: u32) -> bool {
        self.code.contains(&pa)
    }

    /// Whether physical page `pa` is a write-protected paging structure.
    pub fn is_protected_table(&self, pa: u32) -> bool {
        self.snapshots.contains_key(&pa) && !self.unsynced.contains(&pa)
    }

    /// Whether physical page `pa` is a paging structure shadow mappings were derived from.
    pub fn is_table(&self, pa: u32) -> bool {
        self.snapshots.contains_key(&pa)
    }

    /// Sets the paging mode's entry size and the current address space (after a mode
    /// change, which drops everything: see `flush`).
    pub fn set_space(&mut self, cr3_key: u32, pae: bool) {
        self.space = cr3_key;
        self.pae = pae;
    }

    /// Downgrades every writable mapping of physical page `pa` to read-only.
    /// Sets the host write permission of every mapping of physical page `pa` to what its
    /// guest entry allows, unless the page holds translated code or a protected table.
    fn reprotect_phys(&mut self, h: &mut impl HostMapper, pa: u32) {
        let read_only = self.read_only_phys(pa);
        if let Some(lins) = self.by_phys.get(&pa) {
            for l in lins {
                if let Some(m) = self.map.get_mut(l) {
                    let w = m.allow_w && !read_only;
                    if m.pa == pa && m.writable != w {
                        m.writable = w;
                        h.protect(*l, w);
                    }
                }
            }
        }
    }

    /// Takes a new snapshot of `tp` and write-protects it.
    fn snapshot(&mut self, h: &mut impl HostMapper, tp: u32) {
        let mut snap = self.snapshots.remove(&tp).unwrap_or_else(|| Box::new([0u8; 4096]));
        h.read_phys(tp << 12, &mut snap[..]);
        self.snapshots.insert(tp, snap);
        self.unsynced.remove(&tp);
        self.reprotect_phys(h, tp);
    }

    fn mapping_of(t: &Translation, write: bool, pge: bool) -> Mapping {
        // Host write permission: the guest entry must allow writes at every level (for a
        // supervisor page also when CR0.WP=0 lets CPL0 write a read-only page: CPL3 never
        // reaches supervisor pages) and D must already be set (or this write sets it).
        let guest_w = t.rw || (!t.user && t.writable);
        let tables = t.table_pas.map(|p| if p == NO_TABLE { NONE } else { (p >> 12) as u32 });
        Mapping {
            pa: (t.pa >> 12) as u32,
            writable: false,
            allow_w: guest_w && (t.dirty || write),
            user: t.user,
            global: t.global && pge,
            tables,
            large: if t.page_size > 4096 { t.page_base_lin >> 12 } else { NONE },
        }
    }

    /// Protects the paging structures a mapping of `lin_page` (in space `cr3`) is derived
    /// from: a snapshot of each new one; for one written since its snapshot, the entry the
    /// mapping comes from becomes the baseline, after dropping what came from its old value.
    fn track_tables(&mut self, h: &mut impl HostMapper, tables: &[u32; 3], lin_page: u32, cr3: u32) {
        for (lv, &tp) in tables.iter().enumerate() {
            if tp == NONE {
                continue;
            }
            if !self.snapshots.contains_key(&tp) {
                self.snapshot(h, tp);
            } else if self.unsynced.contains(&tp) {
                if let Some(e) = self.hot.get_mut(&tp) {
                    e.1 = 0;
                }
                self.refresh_entry(h, tp, entry_offset(lv, lin_page, self.pae, cr3));
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
    /// translated code or protected paging structures stay read-only.
    #[allow(clippy::too_many_arguments)]
    pub fn install_run(&mut self, h: &mut impl HostMapper, lin_page: u32, pa: u32, count: u32, t: &Translation, write: bool, pge: bool) {
        let mut m0 = Self::mapping_of(t, write, pge);
        if m0.global {
            // Global mappings follow the TLB rules only (INVLPG, CR4.PGE changes): they
            // outlive the address space whose tables they were walked through.
            m0.tables = [NONE; 3];
        }
        self.track_tables(h, &m0.tables, lin_page, self.space);
        for k in 0..count {
            self.remove_entry(lin_page + k);
        }
        h.map_run(lin_page, pa, count, m0.allow_w);
        if count > 1 {
            self.stats.runs += 1;
            self.stats.run_pages += count as u64;
        }
        for k in 0..count {
            self.insert(h, lin_page + k, Mapping { pa: pa + k, ..m0 }, m0.allow_w);
        }
    }

    /// Records `m` at `lp`, which the host maps with write permission `host_w`; makes the
    /// host page read-only if it must be.
    fn insert(&mut self, h: &mut impl HostMapper, lp: u32, mut m: Mapping, host_w: bool) {
        m.writable = m.allow_w && !self.read_only_phys(m.pa);
        if host_w != m.writable {
            h.protect(lp, m.writable);
        }
        if let Some(old) = self.map.insert(lp, m) {
            if old.global && !m.global {
                self.local.insert(lp);
            }
        }
        if !m.global {
            self.local.insert(lp);
        }
        self.by_phys.entry(m.pa).or_default().push(lp);
        if m.large != NONE {
            self.large.entry(m.large).or_default().push(lp);
        }
        for tp in m.tables {
            if tp != NONE {
                self.by_table.entry(tp).or_default().push(lp);
            }
        }
        self.note_privilege(lp, m.user);
    }

    /// Forgets `lp` (the caller unmaps or remaps it on the host).
    fn remove_entry(&mut self, lp: u32) -> Option<Mapping> {
        let m = self.map.remove(&lp)?;
        self.local.remove(&lp);
        if let Some(v) = self.by_phys.get_mut(&m.pa) {
            v.retain(|l| *l != lp);
        }
        self.sup_low.remove(&lp);
        Some(m)
    }

    /// The space key mappings are kept under.
    pub fn space(&self) -> u32 {
        self.space
    }

    /// Whether a user page was ever mapped at or above linear `lin`.
    pub fn user_pages_above(&self, lin: u32) -> bool {
        self.max_user_page >= lin >> 12
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
        if self.remove_entry(lin_page).is_none() {
            return false;
        }
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

    /// CR4.PGE toggled: every current mapping goes (global ones too); saved address spaces
    /// and paging-structure snapshots stay valid (the walks do not change).
    pub fn drop_current(&mut self, h: &mut impl HostMapper) {
        self.stats.global_drops += 1;
        self.stats.global_dropped_pages += self.map.len() as u64;
        if !self.map.is_empty() {
            h.unmap_all();
        }
        self.map.clear();
        self.local.clear();
        self.sup_low.clear();
        self.by_phys.clear();
        self.large.clear();
        self.by_table.clear();
        self.user_top = self.monitor_top;
        self.max_user_page = 0;
    }

    /// A paging mode change (or eviction): drops every mapping, saved space and snapshot.
    pub fn flush(&mut self, h: &mut impl HostMapper) {
        self.drop_current(h);
        self.snapshots.clear();
        self.unsynced.clear();
        self.hot.clear();
        self.written_recent.clear();
        self.saved.clear();
        self.saved_pages = 0;
    }

    /// A write to paging structure `tp` (a host write fault on it, or a monitor store):
    /// lifts its protection; what changed is found at the next address-space switch.
    pub fn table_written(&mut self, h: &mut impl HostMapper, tp: u32) {
        if !self.snapshots.contains_key(&tp) || !self.unsynced.insert(tp) {
            return;
        }
        self.stats.table_writes += 1;
        self.reprotect_phys(h, tp);
    }

    /// Drops every mapping (current and saved) derived from an entry of a written paging
    /// structure that differs from its snapshot, and protects the structures again.
    fn resync(&mut self, h: &mut impl HostMapper) {
        let written: Vec<u32> = self.unsynced.drain().collect();
        let n = self.entry_bytes();
        let mut now = [0u8; 4096];
        self.epoch += 1;
        for tp in written {
            let Some(snap) = self.snapshots.get(&tp) else { continue };
            h.read_phys(tp << 12, &mut now);
            let differs = now[..] != snap[..];
            if differs {
                let changed = changed_entries(&snap[..], &now, n);
                self.drop_dependents(h, tp, &|off| changed[off / n / 64] & (1 << (off / n % 64)) != 0);
            }
            // A hot structure stays writable (and unsynced) until it has been unchanged, or
            // has had nothing derived from it, for HOT_QUIET switches in a row; one written
            // again within HOT_RECENT switches becomes hot.
            let derives = self.derives_anything(tp);
            let state = match self.hot.get(&tp) {
                Some(&(q, i)) => Some((if differs { 0 } else { q + 1 }, if derives { 0 } else { i + 1 })),
                None if self.written_recent.get(&tp).is_some_and(|&e| self.epoch - e <= HOT_RECENT) && self.hot.len() < MAX_HOT => Some((0, 0)),
                None => None,
            };
            match state {
                Some((q, i)) if q < HOT_QUIET && i < HOT_QUIET => {
                    self.hot.insert(tp, (q, i));
                    if let Some(snap) = self.snapshots.get_mut(&tp) {
                        snap.copy_from_slice(&now);
                    }
                    self.unsynced.insert(tp);
                }
                _ => {
                    self.hot.remove(&tp);
                    self.written_recent.insert(tp, self.epoch);
                    if derives {
                        self.snapshot(h, tp);
                    } else {
                        // No mapping, current or saved, comes from it any more (a freed page
                        // table, reused as a kernel stack say): stop protecting it, or every
                        // write to it would fault again after each switch.
                        self.snapshots.remove(&tp);
                        self.by_table.remove(&tp);
                        self.reprotect_phys(h, tp);
                    }
                }
            }
        }
        if self.written_recent.len() > 4 * MAX_HOT {
            let epoch = self.epoch;
            self.written_recent.retain(|_, e| epoch - *e <= HOT_RECENT);
        }
    }

    /// Whether some current or saved mapping was derived from paging structure `tp`.
    fn derives_anything(&self, tp: u32) -> bool {
        let current = self.by_table.get(&tp).is_some_and(|ls| ls.iter().any(|l| self.map.get(l).is_some_and(|m| m.tables.contains(&tp))));
        current || self.saved.values().any(|s| s.by_table.get(&tp).is_some_and(|is| is.iter().any(|&i| s.entries[i as usize].1.pa != NONE)))
    }

    fn entry_bytes(&self) -> usize {
        if self.pae { 8 } else { 4 }
    }

    /// Compares one entry (at byte `off`) of unsynced table `tp` with its snapshot; if it
    /// changed, drops what was derived from it. The snapshot then holds the current value.
    fn refresh_entry(&mut self, h: &mut impl HostMapper, tp: u32, off: usize) {
        let n = self.entry_bytes();
        let mut now = [0u8; 8];
        h.read_phys((tp << 12) + off as u32, &mut now[..n]);
        let Some(snap) = self.snapshots.get_mut(&tp) else { return };
        let old = &mut snap[off..off + n];
        // Nothing can have come from a not-present entry (demand paging: no search).
        let was_present = old[0] & 1 != 0;
        let changed = entry_changed(old, &now[..n]);
        old.copy_from_slice(&now[..n]);
        if changed && was_present {
            self.drop_dependents(h, tp, &|o| o == off);
        }
    }

    /// Drops every mapping, current or saved, that was derived from an entry of table
    /// `tp` at a byte offset for which `changed` holds.
    fn drop_dependents(&mut self, h: &mut impl HostMapper, tp: u32, changed: &dyn Fn(usize) -> bool) {
        let (pae, space) = (self.pae, self.space);
        let stale = |m: &Mapping, l: u32, cr3: u32| (0..3).any(|lv| m.tables[lv] == tp && changed(entry_offset(lv, l, pae, cr3)));
        let lins = self.by_table.remove(&tp).unwrap_or_default();
        let mut keep = Vec::with_capacity(lins.len());
        let mut gone = Vec::new();
        for l in lins {
            let Some(&m) = self.map.get(&l) else { continue };
            if stale(&m, l, space) {
                self.stats.stale_dropped += 1;
                if self.remove_entry(l).is_some() {
                    gone.push(l);
                }
            } else if m.tables.contains(&tp) {
                keep.push(l);
            }
        }
        // A process exiting or unmapping a region changes whole page tables: one host call
        // per run of pages, not per page.
        gone.sort_unstable();
        unmap_runs(h, &gone);
        self.dropped.extend_from_slice(&gone);
        keep.sort_unstable();
        keep.dedup();
        if !keep.is_empty() {
            self.by_table.insert(tp, keep);
        }
        for (&cr3, s) in self.saved.iter_mut() {
            let Some(idx) = s.by_table.get(&tp) else { continue };
            for &i in idx {
                let (l, m) = &mut s.entries[i as usize];
                if m.pa != NONE && stale(m, *l, cr3) {
                    m.pa = NONE;
                    self.stats.stale_dropped += 1;
                }
            }
        }
    }

    /// The walker set accessed/dirty bits in the entry at guest-physical `pa` (low byte
    /// `low`): the snapshot takes them, so that the guest clearing them again is a change.
    pub fn note_ad(&mut self, pa: u32, low: u8) {
        if let Some(snap) = self.snapshots.get_mut(&(pa >> 12)) {
            snap[(pa & 0xFFF) as usize] |= low & (ringfold_arch::paging::PTE_A | ringfold_arch::paging::PTE_D) as u8;
        }
    }

    /// A monitor store into guest-physical page `pa` (not through a host mapping): if it
    /// is a paging structure, compare it at the next switch.
    pub fn note_store(&mut self, pa: u32) {
        if self.snapshots.contains_key(&pa) {
            self.unsynced.insert(pa);
        }
    }

    /// MOV CR3 (`new_space`: the new CR3 with the bits that do not select tables cleared).
    /// Global mappings stay. With `cache_spaces` the old space's other mappings are saved
    /// and the new space's saved mappings come back; only the difference changes on the
    /// host. `lazy`: the new space's saved mappings are forgotten instead (it faults in
    /// what it uses, and that is what is saved when it is left). Returns the linear pages
    /// whose mapping changed or went away.
    pub fn switch_space_lazy(&mut self, h: &mut impl HostMapper, new_space: u32, lazy: bool) -> Vec<u32> {
        if lazy && new_space != self.space && self.take_saved(new_space).is_some() {
            self.stats.lazy_switches += 1;
        }
        self.switch_space(h, new_space)
    }

    /// `switch_space_lazy` restoring the new space's saved mappings.
    pub fn switch_space(&mut self, h: &mut impl HostMapper, new_space: u32) -> Vec<u32> {
        self.dropped.clear();
        self.resync(h);
        if new_space == self.space && self.cache_spaces {
            // Every mapping equals what a fresh walk gives (resync): nothing else to drop.
            return std::mem::take(&mut self.dropped);
        }
        self.stats.space_switches += 1;
        if self.snapshots.len() > MAX_TABLES {
            let all: Vec<u32> = self.map.keys().copied().collect();
            self.flush(h);
            self.space = new_space;
            return all;
        }
        // Only the non-global pages (the direct map of a kernel is global and large).
        let mut old: Vec<(u32, Mapping)> = self.local.iter().filter_map(|l| self.map.get(l).filter(|m| !m.global).map(|m| (*l, *m))).collect();
        old.sort_unstable_by_key(|e| e.0);
        let incoming = if self.cache_spaces { self.take_saved(new_space) } else { None };
        let new: Vec<(u32, Mapping)> = match incoming {
            Some(s) => s.entries.into_iter().filter(|(_, m)| m.pa != NONE).collect(),
            None => Vec::new(),
        };
        // Merge the two sorted lists: same page and protection on both sides stays.
        let same = |a: &Mapping, b: &Mapping| a.pa == b.pa && a.allow_w == b.allow_w && a.user == b.user;
        let (mut i, mut j) = (0, 0);
        let mut gone = Vec::new();
        let mut add = Vec::new();
        while i < old.len() || j < new.len() {
            match (old.get(i), new.get(j)) {
                (Some(o), Some(n)) if o.0 == n.0 => {
                    if same(&o.1, &n.1) {
                        self.stats.kept_pages += 1;
                        // Keep the host page; the new space's record (tables) replaces the old.
                        self.remove_entry(o.0);
                        self.insert(h, o.0, n.1, o.1.writable);
                    } else {
                        gone.push(o.0);
                        add.push(*n);
                    }
                    i += 1;
                    j += 1;
                }
                (Some(o), Some(n)) if o.0 < n.0 => {
                    if !self.keep_if_same(h, new_space, o.0, &o.1) {
                        gone.push(o.0);
                    }
                    i += 1;
                }
                (Some(o), None) => {
                    if !self.keep_if_same(h, new_space, o.0, &o.1) {
                        gone.push(o.0);
                    }
                    i += 1;
                }
                (_, Some(n)) => {
                    add.push(*n);
                    j += 1;
                }
                (None, None) => unreachable!(),
            }
        }
        unmap_runs(h, &gone);
        for l in &gone {
            self.remove_entry(*l);
        }
        // Map what comes back, in runs of consecutive linear and physical pages.
        let mut k = 0;
        while k < add.len() {
            let (l0, m0) = add[k];
            let w = m0.allow_w;
            let mut n = 1;
            while k + n < add.len() && add[k + n].0 == l0 + n as u32 && add[k + n].1.pa == m0.pa + n as u32 && add[k + n].1.allow_w == w {
                n += 1;
            }
            h.map_run(l0, m0.pa, n as u32, w);
            for (l, m) in &add[k..k + n] {
                self.insert(h, *l, *m, w);
            }
            self.stats.restored_pages += n as u64;
            k += n;
        }
        if self.cache_spaces {
            self.save(self.space, old);
        }
        self.space = new_space;
        gone
    }

    /// Maps `lin_page` of the current space ahead of an access if its guest entry is present
    /// and already accessed (a read-only walk: no A/D bit changes, so nothing the guest can
    /// see; writable only if already dirty), in RAM below `ram_pages`, and a 4 KiB page.
    /// Returns whether it mapped. Used for pages the space faulted on right after a switch
    /// last time (Linux's text_poke maps one page in its temporary mm for every patch).
    pub fn prefetch(&mut self, h: &mut impl HostMapper, lin_page: u32, ram_pages: u32) -> bool {
        if self.map.contains_key(&lin_page) || lin_page >= self.monitor_top >> 12 {
            return false;
        }
        let Some((t, mode)) = self.peek(h, self.space, lin_page) else { return false };
        if t.page_size != 4096 || t.leaf_entry & ringfold_arch::paging::PTE_A == 0 || t.pa >> 12 >= ram_pages as u64 {
            return false;
        }
        self.install(h, lin_page, &t, false, mode.pge);
        self.stats.prefetched += 1;
        true
    }

    /// A supervisor read walk of `lin_page` in space `cr3` that sets no A/D bit (what the
    /// guest can see stays as it is), with the paging mode it used.
    fn peek(&self, h: &impl HostMapper, cr3: u32, lin_page: u32) -> Option<(Translation, PagingMode)> {
        let mode = self.walk_mode?;
        let acc = ringfold_arch::paging::Access { write: false, user: false, fetch: false };
        let t = ringfold_arch::paging::walk(&mut ReadOnlyPhys(h), cr3, &mode, lin_page << 12, acc, ringfold_arch::paging::AdUpdate::None).ok()?;
        Some((t, mode))
    }

    /// Takes space `cr3`'s saved mappings out of the shadow cache.
    fn take_saved(&mut self, cr3: u32) -> Option<Saved> {
        let s = self.saved.remove(&cr3)?;
        self.saved_pages -= s.entries.len();
        Some(s)
    }

    /// A supervisor mapping of the old space that the new space (`cr3`) has no saved record
    /// of: if the new space's tables map the page the same way (same physical page and
    /// permissions, already accessed), the host page stays and is recorded as the new
    /// space's. Kernels whose halves are not global (Linux's direct map before it turns
    /// CR4.PGE on, every kernel page under PTI, text_poke's temporary mm) would otherwise
    /// have every kernel page touched in one space unmapped and faulted in again after
    /// every switch. A walk costs far less than an unmap and a refault.
    fn keep_if_same(&mut self, h: &mut impl HostMapper, cr3: u32, lp: u32, o: &Mapping) -> bool {
        if o.user || !self.cache_spaces {
            return false;
        }
        let Some((t, mode)) = self.peek(h, cr3, lp) else { return false };
        let m = Self::mapping_of(&t, false, mode.pge);
        if m.pa != o.pa || m.allow_w != o.allow_w || m.user || m.global || t.leaf_entry & ringfold_arch::paging::PTE_A == 0 {
            return false;
        }
        self.track_tables(h, &m.tables, lp, cr3);
        // Taking a snapshot may have dropped the page (its entry changed meanwhile).
        let Some(cur) = self.map.get(&lp).copied() else { return false };
        self.remove_entry(lp);
        self.insert(h, lp, m, cur.writable);
        self.stats.kept_pages += 1;
        self.stats.walk_kept += 1;
        true
    }

    /// Keeps the non-global mappings of space `cr3` for a later switch back.
    fn save(&mut self, cr3: u32, entries: Vec<(u32, Mapping)>) {
        if entries.is_empty() {
            return;
        }
        self.clock += 1;
        while self.saved.len() >= MAX_SAVED_SPACES || (self.saved_pages + entries.len() > MAX_SAVED_PAGES && !self.saved.is_empty()) {
            let Some((&victim, _)) = self.saved.iter().min_by_key(|(_, s)| s.used) else { break };
            self.take_saved(victim);
        }
        let mut by_table: HashMap<u32, Vec<u32>> = HashMap::default();
        for (i, (_, m)) in entries.iter().enumerate() {
            for tp in m.tables {
                if tp != NONE {
                    by_table.entry(tp).or_default().push(i as u32);
                }
            }
        }
        self.saved_pages += entries.len();
        self.saved.insert(cr3, Saved { entries, by_table, used: self.clock });
    }

    /// Physical page `pa` now holds translated code: read-only everywhere.
    pub fn add_code(&mut self, h: &mut impl HostMapper, pa: u32) {
        if self.code.insert(pa) {
            self.reprotect_phys(h, pa);
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

    /// Whether supervisor pages are mapped below `user_top` (entering CPL3 unmaps them).
    pub fn has_sup_low(&self) -> bool {
        !self.sup_low.is_empty()
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

    #[test]
    fn changed_entries_finds_each_changed_entry() {
        let old = [0u8; 4096];
        let mut new = [0u8; 4096];
        new[4 * 3] = 0x01; // 32-bit entry 3: present bit set
        new[4 * 1023 + 1] = 0x10; // the last 32-bit entry: frame bits
        new[4 * 700] = ringfold_arch::paging::PTE_A as u8; // A newly set: not a change
        let b = changed_entries(&old, &new, 4);
        let set: Vec<usize> = (0..1024).filter(|e| b[e / 64] & (1 << (e % 64)) != 0).collect();
        assert_eq!(set, vec![3, 1023]);
        // PAE: 8-byte entries; clearing A is a change.
        let mut old8 = [0u8; 4096];
        old8[8 * 5] = ringfold_arch::paging::PTE_A as u8 | 1;
        let mut new8 = [0u8; 4096];
        new8[8 * 5] = 1;
        new8[8 * 511 + 7] = 0x80; // NX (bit 63)
        let b = changed_entries(&old8, &new8, 8);
        let set: Vec<usize> = (0..512).filter(|e| b[e / 64] & (1 << (e % 64)) != 0).collect();
        assert_eq!(set, vec![5, 511]);
    }

    #[derive(Default)]
    struct Rec {
        mapped: HashMap<u32, (u32, bool)>,
        /// Guest-physical pages with content (the rest reads as zeros).
        ram: HashMap<u32, Box<[u8; 4096]>>,
        calls: u32,
    }
    impl Rec {
        fn poke(&mut self, pa_page: u32, off: usize, v: u32) {
            let p = self.ram.entry(pa_page).or_insert_with(|| Box::new([0; 4096]));
            p[off..off + 4].copy_from_slice(&v.to_le_bytes());
        }
    }
    impl HostMapper for Rec {
        fn read_phys(&self, pa: u32, out: &mut [u8]) {
            let off = (pa & 0xFFF) as usize;
            match self.ram.get(&(pa >> 12)) {
                Some(p) => out.copy_from_slice(&p[off..off + out.len()]),
                None => out.fill(0),
            }
        }
        fn map_run(&mut self, l: u32, p: u32, n: u32, w: bool) {
            self.calls += 1;
            for k in 0..n {
                self.mapped.insert(l + k, (p + k, w));
            }
        }
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
            fn read_phys(&self, pa: u32, out: &mut [u8]) {
                self.inner.read_phys(pa, out)
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
        s.cache_spaces = false;
        let dropped = s.switch_space(&mut h, 0x9000);
        assert_eq!(dropped.len(), 2);
        assert!(h.mapped.contains_key(&0xC0000));
        assert_eq!(s.lin_pages_of(7), Vec::<u32>::new());
    }

    /// Page-table page 2 (non-PAE): PTE of linear page `lp` at offset (lp & 0x3FF) * 4.
    fn pte_off(lp: u32) -> usize {
        (lp as usize & 0x3FF) * 4
    }

    /// A supervisor page the new space maps the same way (its page directory points to the
    /// same page table) stays mapped across the switch, recorded with the new space's
    /// tables; one the new space maps elsewhere, or not at all, goes.
    #[test]
    fn supervisor_pages_mapped_alike_by_the_new_space_stay() {
        let (mut s, mut h) = (ShadowMmu::new(0xFF00_0000), Rec::default());
        s.walk_mode = Some(PagingMode::from_regs(1 << 31, 0, 0));
        s.set_space(0x1000, false);
        // Old space: PD page 1; new spaces: PD pages 8 (same PT 2) and 9 (PT 3).
        let pde = |lp: u32| (lp as usize >> 10) * 4;
        for (pd, pt) in [(1, 2), (8, 2), (9, 3)] {
            h.poke(pd, pde(0xC0400), (pt << 12) | 0x23);
        }
        h.poke(2, pte_off(0xC0400), 0x5063); // P RW A D, supervisor
        h.poke(2, pte_off(0xC0401), 0x6003); // never accessed (A=0)
        h.poke(3, pte_off(0xC0400), 0x7063);
        let t = [NO_TABLE, 0x1000, 0x2000];
        s.install(&mut h, 0xC0400, &tr(0x5000, true, false, true, t), true, false);
        s.install(&mut h, 0xC0401, &tr(0x6000, true, false, true, t), true, false);
        let gone = s.switch_space(&mut h, 0x8000);
        assert_eq!(gone, vec![0xC0401], "A=0 in the new tables: not kept");
        assert_eq!(h.mapped.get(&0xC0400), Some(&(5, true)));
        assert_eq!(s.stats.walk_kept, 1);
        assert!(s.is_protected_table(8), "the new space's page directory is tracked now");
        // The new space's PD entry changes: the kept page goes at the next switch.
        s.table_written(&mut h, 8);
        h.poke(8, pde(0xC0400), (3 << 12) | 0x23);
        s.switch_space(&mut h, 0x8000);
        assert!(!h.mapped.contains_key(&0xC0400));
        // Space 9 maps the page elsewhere: going there from space 1's saved page drops it.
        s.switch_space(&mut h, 0x1000);
        assert_eq!(h.mapped.get(&0xC0400), Some(&(5, true)));
        s.switch_space(&mut h, 0x9000);
        assert!(!h.mapped.contains_key(&0xC0400));
    }

    /// Prefetching maps a present, accessed 4 KiB page of the current space with the rights
    /// its entry gives (writable only if dirty), changes no guest entry, and leaves pages
    /// that are not present, never accessed, large or outside RAM alone.
    #[test]
    fn prefetch_maps_only_accessed_pages_and_changes_no_entry() {
        let (mut s, mut h) = (ShadowMmu::new(0xFF00_0000), Rec::default());
        assert!(!s.prefetch(&mut h, 0x400, 64), "no paging mode yet");
        s.walk_mode = Some(PagingMode::from_regs(1 << 31, 1 << 4, 0)); // PG, PSE
        s.set_space(0x1000, false);
        let pde = |lp: u32| (lp as usize >> 10) * 4;
        h.poke(1, pde(0x400), 0x2027); // PT 2, user, RW, A
        h.poke(2, pte_off(0x400), 0x5063); // P RW A D
        h.poke(2, pte_off(0x401), 0x6023); // P RW A, clean
        h.poke(2, pte_off(0x402), 0x7003); // P RW, never accessed
        h.poke(2, pte_off(0x403), 0x0); // not present
        h.poke(2, pte_off(0x404), 0x9000_0063); // beyond RAM
        h.poke(1, pde(0x800), 0x0040_00E3); // a 4 MiB page
        let before = h.ram.clone();
        assert!(s.prefetch(&mut h, 0x400, 64));
        assert!(s.prefetch(&mut h, 0x401, 64));
        for lp in [0x402, 0x403, 0x404] {
            assert!(!s.prefetch(&mut h, lp, 64), "{lp:#x}");
        }
        assert!(!s.prefetch(&mut h, 0x800, 0x10000), "a large page (mapped by its faults' runs)");
        assert!(!s.prefetch(&mut h, 0x400, 64), "already mapped");
        assert_eq!(h.mapped.get(&0x400), Some(&(5, true)));
        assert_eq!(h.mapped.get(&0x401), Some(&(6, false)), "clean: the first write must set D");
        assert_eq!(h.mapped.len(), 2);
        assert!(h.ram == before, "no A/D bit written");
        assert!(s.is_protected_table(2), "its tables are tracked like a fault's");
        assert_eq!(s.stats.prefetched, 2);
    }

    /// A page table nothing derives from any more (its PDE was cleared: the guest freed
    /// it) stops being protected, so its reuse as ordinary data does not fault.
    #[test]
    fn orphaned_page_tables_are_released() {
        let (mut s, mut h) = (ShadowMmu::new(0xFF00_0000), Rec::default());
        s.set_space(0x1000, false);
        h.poke(1, 4, 0x2027);
        h.poke(2, pte_off(0x400), 0x5067);
        s.install(&mut h, 0x400, &tr(0x5000, true, true, true, [NO_TABLE, 0x1000, 0x2000]), true, false);
        s.install(&mut h, 0xC0002, &tr(0x2000, true, false, true, [NO_TABLE, 0x1000, 0x3000]), true, false);
        assert_eq!(h.mapped[&0xC0002], (2, false));
        s.switch_space(&mut h, 0x1000);
        assert!(s.is_protected_table(2), "still in use: stays protected");
        s.table_written(&mut h, 1);
        h.poke(1, 4, 0);
        s.switch_space(&mut h, 0x1000);
        assert!(!h.mapped.contains_key(&0x400));
        // Released when next written (found orphaned at the next comparison).
        s.table_written(&mut h, 2);
        h.poke(2, 0, 0x1234);
        s.switch_space(&mut h, 0x1000);
        assert!(!s.is_protected_table(2));
        assert_eq!(h.mapped[&0xC0002], (2, true), "writable for good");
        assert!(s.is_protected_table(1), "0xC0002 still comes from page directory 1");
    }

    /// Space 0x1000 with a page table at physical page 2 (entries for linear pages 0x400 and
    /// 0x401, user RW), that page also mapped as data at linear page 0xC0002; returns the
    /// tables a mapping through it comes from.
    fn table_mapped_as_data() -> (ShadowMmu, Rec, [u64; 3]) {
        let (mut s, mut h) = (ShadowMmu::new(0xFF00_0000), Rec::default());
        s.set_space(0x1000, false);
        h.poke(2, pte_off(0x400), 0x5067);
        h.poke(2, pte_off(0x401), 0x6067);
        s.install(&mut h, 0xC0002, &tr(0x2000, true, false, true, [NO_TABLE, 0x1000, 0x3000]), true, false);
        (s, h, [NO_TABLE, 0x1000, 0x2000])
    }

    /// A page table written again within HOT_RECENT switches stays writable (no fault per
    /// write), its changes are still found at every switch, and it is protected again
    /// after HOT_QUIET switches without a change.
    #[test]
    fn a_table_written_again_and_again_stays_writable_and_compared() {
        let (mut s, mut h, t) = table_mapped_as_data();
        s.install(&mut h, 0x400, &tr(0x5000, true, true, true, t), true, false);
        s.install(&mut h, 0x401, &tr(0x6000, true, true, true, t), true, false);
        // First epoch with a write: compared and protected again, as before.
        s.table_written(&mut h, 2);
        s.switch_space(&mut h, 0x1000);
        assert!(s.is_protected_table(2));
        // Written again two switches later: now hot, writable across the switch.
        s.switch_space(&mut h, 0x1000);
        s.table_written(&mut h, 2);
        s.switch_space(&mut h, 0x1000);
        assert!(!s.is_protected_table(2) && s.is_table(2));
        assert_eq!(h.mapped[&0xC0002], (2, true), "no fault on the next writes");
        // A write without a fault is still found at the next switch.
        h.poke(2, pte_off(0x401), 0x7067);
        assert_eq!(s.switch_space(&mut h, 0x1000), vec![0x401]);
        assert!(h.mapped.contains_key(&0x400) && !h.mapped.contains_key(&0x401));
        // Quiet for HOT_QUIET switches: protected again; the next write faults as usual.
        for _ in 0..HOT_QUIET {
            assert!(!s.is_protected_table(2));
            s.switch_space(&mut h, 0x1000);
        }
        assert!(s.is_protected_table(2));
        assert_eq!(h.mapped[&0xC0002], (2, false));
        h.poke(2, pte_off(0x400), 0x8067);
        s.table_written(&mut h, 2);
        assert_eq!(s.switch_space(&mut h, 0x1000), vec![0x400]);
    }

    /// Linux's text_poke: the PTE of its temporary mapping is set, used, cleared (nothing
    /// derives from the table then) and set again for the next patch. The table becomes hot
    /// and stays tracked while nothing derives from it between patches.
    #[test]
    fn a_table_set_and_cleared_for_each_use_becomes_hot() {
        let (mut s, mut h) = (ShadowMmu::new(0xFF00_0000), Rec::default());
        s.set_space(0x1000, false);
        let t = [NO_TABLE, 0x1000, 0x2000];
        for round in 0..4u32 {
            h.poke(2, pte_off(0x400), 0x5067 + (round << 12));
            s.install(&mut h, 0x400, &tr(0x5000 + (round as u64) * 0x1000, true, true, true, t), true, false);
            if round < 2 {
                // Not hot yet: the clear faults.
                assert!(s.is_protected_table(2), "round {round}");
                s.table_written(&mut h, 2);
            } else {
                assert!(!s.is_protected_table(2), "round {round}: hot, no fault");
            }
            h.poke(2, pte_off(0x400), 0);
            assert_eq!(s.switch_space(&mut h, 0x1000), vec![0x400], "round {round}");
            assert!(!h.mapped.contains_key(&0x400));
        }
        assert!(s.is_table(2));
    }

    #[test]
    fn paging_structures_are_write_protected_and_written_entries_dropped_at_switch() {
        let (mut s, mut h, t) = table_mapped_as_data();
        assert_eq!(h.mapped[&0xC0002], (2, true));
        s.install(&mut h, 0x400, &tr(0x5000, true, true, true, t), true, false);
        assert_eq!(h.mapped[&0xC0002], (2, false), "page table now write-protected");
        assert!(s.is_protected_table(2) && s.is_protected_table(1));
        s.install(&mut h, 0x401, &tr(0x6000, true, true, true, t), true, false);
        // The guest writes the PTE of 0x401 (host fault -> table_written): writable again.
        s.table_written(&mut h, 2);
        assert_eq!(h.mapped[&0xC0002], (2, true));
        h.poke(2, pte_off(0x401), 0x7067);
        // A/D bits newly set on 0x400's PTE do not matter.
        h.poke(2, pte_off(0x400), 0x5067 | 0x40);
        // MOV CR3 to the same space: the changed entry's mapping goes (and is reported),
        // the other stays.
        assert_eq!(s.switch_space(&mut h, 0x1000), vec![0x401]);
        assert!(!h.mapped.contains_key(&0x401));
        assert!(h.mapped.contains_key(&0x400));
        assert_eq!(s.stats.stale_dropped, 1);
        assert_eq!(h.mapped[&0xC0002], (2, false), "protected again after the comparison");
        // Clearing D is a change.
        s.table_written(&mut h, 2);
        h.poke(2, pte_off(0x400), 0x5027);
        s.switch_space(&mut h, 0x1000);
        assert!(!h.mapped.contains_key(&0x400));
    }

    #[test]
    fn saved_spaces_come_back_and_stale_saved_entries_do_not() {
        let (mut s, mut h) = (ShadowMmu::new(0xFF00_0000), Rec::default());
        s.set_space(0x1000, false);
        let ta = [NO_TABLE, 0x1000, 0x2000];
        let tb = [NO_TABLE, 0x8000, 0x9000];
        for k in 0..4 {
            h.poke(2, pte_off(0x400 + k), (0x10 + k) << 12 | 0x67);
        }
        for k in 0..4 {
            s.install(&mut h, 0x400 + k, &tr(((0x10 + k) as u64) << 12, true, true, true, ta), true, false);
        }
        // Shared page (same physical page and protection in both spaces).
        s.install(&mut h, 0x500, &tr(0x20000, false, true, true, ta), false, false);
        // A global kernel page stays across switches.
        let mut g = tr(0x30000, true, false, true, ta);
        g.global = true;
        s.install(&mut h, 0xC0030, &g, false, true);
        // Switch to space B: A's user pages go (one host call for the run), B is empty.
        let gone = s.switch_space(&mut h, 0x8000);
        assert_eq!(gone.len(), 5);
        assert!(h.mapped.contains_key(&0xC0030));
        assert_eq!(s.saved_pages(), 5);
        s.install(&mut h, 0x500, &tr(0x20000, false, true, true, tb), false, false);
        s.install(&mut h, 0x600, &tr(0x21000, false, true, true, tb), false, false);
        // While B runs, the guest rewrites A's PTE for 0x402 (through the direct map).
        s.table_written(&mut h, 2);
        h.poke(2, pte_off(0x402), 0x99067);
        // Back to A: 0x400, 0x401, 0x403 are restored without faults; 0x402 is not;
        // 0x500 is identical in both and stays; 0x600 goes.
        h.calls = 0;
        let gone = s.switch_space(&mut h, 0x1000);
        assert_eq!(gone, vec![0x600]);
        assert_eq!(h.mapped[&0x400], (0x10, true));
        assert_eq!(h.mapped[&0x403], (0x13, true));
        assert!(!h.mapped.contains_key(&0x402), "stale saved entry dropped");
        assert_eq!(h.mapped[&0x500], (0x20, false));
        assert_eq!(h.calls, 2, "two runs mapped: 0x400-0x401 and 0x403");
        assert_eq!(s.stats.restored_pages, 3);
        assert_eq!(s.stats.kept_pages, 1);
        // A lazy switch to B forgets B's saved pages (0x500, 0x600): nothing is restored,
        // and what B faults in is what it saves when it is left.
        let gone = s.switch_space_lazy(&mut h, 0x8000, true);
        assert_eq!(gone, vec![0x400, 0x401, 0x403, 0x500]);
        assert!(!h.mapped.contains_key(&0x600));
        assert_eq!(s.stats.lazy_switches, 1);
        s.install(&mut h, 0x600, &tr(0x21000, false, true, true, tb), false, false);
        s.switch_space(&mut h, 0x1000);
        h.calls = 0;
        s.switch_space(&mut h, 0x8000);
        assert_eq!(h.calls, 1, "only 0x600 comes back");
        assert_eq!(h.mapped[&0x600], (0x21, false));
        assert!(!h.mapped.contains_key(&0x500));
        s.switch_space(&mut h, 0x1000);
        // Without the cache a switch forgets the old space.
        s.cache_spaces = false;
        s.switch_space(&mut h, 0x8000);
        s.switch_space(&mut h, 0x1000);
        assert!(!h.mapped.contains_key(&0x400));
    }

    #[test]
    fn a_table_written_then_used_again_is_still_compared() {
        let (mut s, mut h) = (ShadowMmu::new(0xFF00_0000), Rec::default());
        s.set_space(0x1000, false);
        let t = [NO_TABLE, 0x1000, 0x2000];
        h.poke(2, pte_off(0x400), 0x5067);
        s.install(&mut h, 0x400, &tr(0x5000, true, true, true, t), true, false);
        s.table_written(&mut h, 2);
        h.poke(2, pte_off(0x400), 0x8067);
        // Another mapping derived from the (unsynced) table must not hide that change.
        s.install(&mut h, 0x401, &tr(0x6000, true, true, true, t), true, false);
        s.switch_space(&mut h, 0x1000);
        assert!(!h.mapped.contains_key(&0x400));
        // Monitor stores are noted the same way.
        s.install(&mut h, 0x400, &tr(0x8000, true, true, true, t), true, false);
        h.poke(2, pte_off(0x400), 0);
        s.note_store(2);
        s.switch_space(&mut h, 0x1000);
        assert!(!h.mapped.contains_key(&0x400));
    }

    #[test]
    fn a_mapping_made_from_an_intermediate_table_state_goes_when_the_entry_changes_back() {
        let (mut s, mut h) = (ShadowMmu::new(0xFF00_0000), Rec::default());
        s.set_space(0x1000, false);
        let lp = 0x400; // PDE index 1 in the directory at physical page 1
        h.poke(1, 4, 0x2067);
        h.poke(2, pte_off(lp), 0x5067);
        s.install(&mut h, lp, &tr(0x5000, true, true, true, [NO_TABLE, 0x1000, 0x2000]), true, false);
        // The guest points the PDE at another table (a write fault on the directory).
        s.table_written(&mut h, 1);
        h.poke(1, 4, 0x3067);
        h.poke(3, pte_off(lp), 0x6067);
        s.invlpg(&mut h, lp << 12);
        s.install(&mut h, lp, &tr(0x6000, true, true, true, [NO_TABLE, 0x1000, 0x3000]), true, false);
        assert_eq!(h.mapped[&lp], (6, true));
        // ... and back (no fault: the directory is not protected now), then MOV CR3.
        h.poke(1, 4, 0x2067);
        s.switch_space(&mut h, 0x1000);
        assert!(!h.mapped.contains_key(&lp), "derived from the PDE's intermediate value");
    }
}
