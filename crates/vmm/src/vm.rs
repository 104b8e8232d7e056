//! The run loop: translate, enter the guest through the host layer, handle exits.

use crate::cpu::{cr0, cr4, Cpu, SegReg, Sreg};
use crate::machine::{Fault, Machine, Memory, Platform, Stop, TlbEvent, UNASSIGNED_PA};
use crate::mmu::{HostMapper, ShadowMmu};
use crate::translate::{Key, SiteKind, TCache, TranslateError, FAST_RECORD, SEG_REV, SEG_TABLE, TLS_BASE, USER_SEL};
use crate::{fastsys, segcache};
use iced_x86::{Decoder, DecoderOptions, InstructionInfoFactory, Mnemonic, OpAccess};
use ringfold_arch::{eflags, shadow};
use ringfold_devices::PortBus;
use ringfold_host::ctx::EXIT_SIGNAL;
use ringfold_host::layout::{HOST_CS64, MONITOR_START, TC_SIZE, TC_START};
use ringfold_host::{ldt_selector, HostError, HostVm, LdtEntry, FIRST_SHADOW_SLOT, SYSENTER_SS_SLOT, SYSEXIT_SS_SLOT, TC_CS_SLOT};
use crate::fxhash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// Guest RAM backed by the host memfd, with the shadow MMU and the tracking of monitor
/// writes to pages holding translated code or page tables.
pub struct HostMemory {
    host: HostVm,
    ram_size: u32,
    pub(crate) mmu: ShadowMmu,
    /// Whether the host view is shadow paging (true) or the identity view (false).
    host_paged: bool,
    /// Physical pages of translated code the monitor wrote (translations to drop).
    code_dirty: Vec<u32>,
}

impl HostMemory {
    fn copy_in(&mut self, pa: u32, data: &[u8]) -> usize {
        let start = pa as usize;
        let avail = (self.ram_size as usize).saturating_sub(start).min(data.len());
        if avail > 0 {
            self.host.space_mut().ram_mut()[start..start + avail].copy_from_slice(&data[..avail]);
        }
        avail
    }

    /// Runs a shadow-MMU operation with the host mapper; host mapping errors stop the VM.
    fn with_mmu<R>(&mut self, f: impl FnOnce(&mut ShadowMmu, &mut Mapper) -> R) -> Result<R, Stop> {
        let mut mp = Mapper { space: self.host.space_mut(), paged: self.host_paged, err: None };
        let r = f(&mut self.mmu, &mut mp);
        mp.done()?;
        Ok(r)
    }
}

impl Memory for HostMemory {
    fn read(&mut self, pa: u32, buf: &mut [u8]) {
        let ram = self.host.space().ram();
        let start = pa as usize;
        let avail = (self.ram_size as usize).saturating_sub(start).min(buf.len());
        if avail > 0 {
            buf[..avail].copy_from_slice(&ram[start..start + avail]);
        }
        buf[avail..].fill(0xFF);
    }

    fn write(&mut self, pa: u32, data: &[u8]) {
        let avail = self.copy_in(pa, data);
        if avail == 0 {
            return;
        }
        for p in (pa >> 12)..=((pa + avail as u32 - 1) >> 12) {
            if self.mmu.is_code_page(p) {
                self.code_dirty.push(p);
            }
            self.mmu.note_store(p);
        }
    }

    fn write_ad(&mut self, pa: u32, data: &[u8]) {
        self.copy_in(pa, data);
        if let Some(&low) = data.first() {
            self.mmu.note_ad(pa, low);
        }
    }

    fn is_ram(&self, pa: u32) -> bool {
        pa < self.ram_size
    }
}

/// The host side of the shadow MMU: page mappings in the low 4 GiB of the process.
struct Mapper<'a> {
    space: &'a mut ringfold_host::AddressSpace,
    paged: bool,
    err: Option<ringfold_host::MemError>,
}

impl HostMapper for Mapper<'_> {
    fn map(&mut self, l: u32, p: u32, w: bool) {
        if let Err(e) = self.space.map_guest_page(l << 12, p << 12, w) {
            self.err.get_or_insert(e);
        }
    }
    fn unmap(&mut self, l: u32) {
        if let Err(e) = self.space.unmap_guest(l << 12, 4096) {
            self.err.get_or_insert(e);
        }
    }
    fn map_run(&mut self, l: u32, p: u32, n: u32, w: bool) {
        if let Err(e) = self.space.map_guest_run(l << 12, p << 12, n << 12, w) {
            self.err.get_or_insert(e);
        }
    }
    fn unmap_run(&mut self, l: u32, n: u32) {
        if let Err(e) = self.space.unmap_guest(l << 12, n << 12) {
            self.err.get_or_insert(e);
        }
    }
    fn read_phys(&self, pa: u32, out: &mut [u8]) {
        let ram = self.space.ram();
        let start = pa as usize;
        match ram.get(start..start + out.len()) {
            Some(p) => out.copy_from_slice(p),
            None => out.fill(0xFF),
        }
    }
    fn unmap_all(&mut self) {
        let len = ringfold_host::layout::MONITOR_START - ringfold_host::layout::LOW_LIMIT;
        if let Err(e) = self.space.unmap_guest(ringfold_host::layout::LOW_LIMIT, len) {
            self.err.get_or_insert(e);
        }
    }
    fn protect(&mut self, l: u32, w: bool) {
        let r = if self.paged { self.space.protect_guest_page(l << 12, w) } else { self.space.set_page_writable(l, w) };
        if let Err(e) = r {
            self.err.get_or_insert(e);
        }
    }
}

impl Mapper<'_> {
    fn done(self) -> Result<(), Stop> {
        self.err.map_or(Ok(()), |e| Err(host_stop(e)))
    }
}

/// Shadow descriptors in the process LDT, shared between segment registers whose converted
/// descriptors are identical. A slot never changes while a segment register uses it, which
/// gives the guest the descriptor-cache semantics of a real CPU.
struct Shadows {
    /// What each slot holds: the guest segment register and the truncation top it was
    /// converted with. One slot per (register, top), so a host selector names exactly one
    /// guest segment register state (inline segment loads are read back that way).
    slots: Vec<Option<(SegReg, u32)>>,
    by_seg: HashMap<(SegReg, u32), u16>,
    clock: usize,
    /// Per segment register: the guest register, truncation top and host selector used at
    /// the last two entries with different values (most entries load the same segments
    /// again; system calls alternate between the user and the kernel truncation).
    last: [[(SegReg, u32, u16); 2]; 6],
    /// Bumped when a slot gets new contents (the guest-selector table must be rewritten).
    generation: u64,
    /// A slot was reused: inline segment-load entries naming it are stale (`evicted`), and
    /// so is the user context an inline SYSEXIT compares with (`reused`).
    evicted: bool,
    reused: bool,
    /// Which null stand-in slots (`NULL_SLOTS`) are installed.
    null_installed: [bool; 3],
}

const SHADOW_SLOTS: usize = 64;

impl Shadows {
    fn new() -> Self {
        Shadows {
            slots: vec![None; SHADOW_SLOTS],
            by_seg: HashMap::default(),
            clock: 0,
            last: [[(SegReg::default(), 0, u16::MAX); 2]; 6],
            generation: 0,
            evicted: false,
            reused: false,
            null_installed: [false; 3],
        }
    }

    /// Host selector for a guest segment register. A null guest selector with RPL 0 is the
    /// host's null selector; with RPL 1..3 it is a trap-all slot of its own (the host kernel
    /// turns a null selector's RPL to 0 at context switches, and translated code reads the
    /// guest's selector back from the host's).
    fn selector(&mut self, host: &mut HostVm, r: &SegReg, top: u32, in_use: &[u16]) -> Result<u16, Stop> {
        if !r.valid {
            let rpl = r.sel & 3;
            if rpl == 0 {
                return Ok(0);
            }
            let slot = NULL_SLOTS + rpl - 1;
            if !self.null_installed[rpl as usize - 1] {
                let f = shadow::UserDescFields::trap_all(false, false, false);
                host.set_ldt(slot, Some(&ldt_entry(&f))).map_err(|e| Stop::Unsupported { eip: 0, what: e.to_string() })?;
                self.null_installed[rpl as usize - 1] = true;
            }
            return Ok(ldt_selector(slot));
        }
        if let Some(&slot) = self.by_seg.get(&(*r, top)) {
            return Ok(ldt_selector(slot));
        }
        let (f, _kind) = shadow::shadow_data_segment(&r.desc, top).map_err(|e| Stop::Unsupported {
            eip: 0,
            what: format!("segment {:#x} cannot be shadowed: {e:?}", r.sel),
        })?;
        // Pick a free slot, or evict one not loaded in any segment register.
        let idx = match self.slots.iter().position(|s| s.is_none()) {
            Some(i) => i,
            None => loop {
                self.clock = (self.clock + 1) % SHADOW_SLOTS;
                let sel = ldt_selector(FIRST_SHADOW_SLOT + self.clock as u16);
                if !in_use.contains(&sel) {
                    if let Some(old) = self.slots[self.clock].take() {
                        self.by_seg.remove(&old);
                    }
                    for l in self.last.iter_mut().flatten().filter(|l| l.2 == sel) {
                        l.2 = u16::MAX;
                    }
                    self.evicted = true;
                    self.reused = true;
                    break self.clock;
                }
            },
        };
        let slot = FIRST_SHADOW_SLOT + idx as u16;
        host.set_ldt(slot, Some(&ldt_entry(&f))).map_err(|e| Stop::Unsupported { eip: 0, what: e.to_string() })?;
        self.slots[idx] = Some((*r, top));
        self.by_seg.insert((*r, top), slot);
        self.generation += 1;
        Ok(ldt_selector(slot))
    }

    /// Notes the host selector of (register, top) in segment register `s`'s recent pair.
    fn remember(&mut self, s: Sreg, r: SegReg, top: u32, sel: u16) {
        let l = &mut self.last[s as usize];
        if l[0].0 != r || l[0].1 != top {
            l[1] = l[0];
        }
        l[0] = (r, top, sel);
    }

    /// The guest segment register (and top) a host data-segment selector stands for.
    fn guest_of(&self, host_sel: u16) -> Option<(SegReg, u32)> {
        let null = |sel| Some((SegReg { sel, desc: Default::default(), valid: false }, 0));
        if host_sel == 0 {
            return null(0);
        }
        if host_sel & 7 != 7 {
            return None;
        }
        match (host_sel >> 3).checked_sub(FIRST_SHADOW_SLOT)? as usize {
            k if k < SHADOW_SLOTS => *self.slots.get(k)?,
            k if k < SHADOW_SLOTS + 3 && self.null_installed[k - SHADOW_SLOTS] => null((k - SHADOW_SLOTS) as u16 + 1),
            _ => None,
        }
    }

    /// (host selector, `USER_SEL` entry) for every host selector value below
    /// `fastsys::USER_SEL_ENTRIES`: the slot holding the same guest segment truncated below
    /// `user_top` (null selectors and their stand-ins are themselves), else a miss.
    fn user_selectors(&self, user_top: u32) -> impl Iterator<Item = (u16, u32)> + '_ {
        (0..fastsys::USER_SEL_ENTRIES as u16).map(move |h| {
            let to = match self.guest_of(h) {
                Some((r, _)) if !r.valid => Some(h),
                Some((_, t)) if t == user_top => Some(h),
                Some((r, _)) => self.by_seg.get(&(r, user_top)).map(|&slot| ldt_selector(slot)),
                None => None,
            };
            (h, to.map_or(fastsys::USER_SEL_MISS, u32::from))
        })
    }

    /// (host selector, guest selector) for every host selector a data segment may hold.
    fn reverse(&self) -> impl Iterator<Item = (u16, u16)> + '_ {
        let nulls = (1..4u16).map(|rpl| (ldt_selector(NULL_SLOTS + rpl - 1), rpl));
        let slots = self.slots.iter().enumerate().filter_map(|(k, s)| s.map(|(r, _)| (ldt_selector(FIRST_SHADOW_SLOT + k as u16), r.sel)));
        std::iter::once((0, 0)).chain(nulls).chain(slots)
    }
}

/// LDT slots of the trap-all stand-ins for null selectors with RPL 1, 2, 3.
const NULL_SLOTS: u16 = FIRST_SHADOW_SLOT + SHADOW_SLOTS as u16;
const _: () = assert!(NULL_SLOTS + 3 <= SYSENTER_SS_SLOT && SYSEXIT_SS_SLOT < fastsys::USER_SEL_ENTRIES as u16 / 8);

fn ldt_entry(f: &shadow::UserDescFields) -> LdtEntry {
    LdtEntry {
        base: f.base_addr,
        limit: f.limit,
        seg_32bit: f.seg_32bit,
        contents: f.contents,
        read_exec_only: f.read_exec_only,
        limit_in_pages: f.limit_in_pages,
        seg_not_present: f.seg_not_present,
        useable: f.useable,
    }
}

/// Bytes typed for the guest's console; `None` asks the monitor to quit (Ctrl-A x).
pub type ConsoleQueue = std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<Option<u8>>>>;

/// Counters of monitor activity.
#[derive(Clone, Copy, Debug, Default)]
pub struct VmStats {
    pub entries: u64,
    pub site_exits: u64,
    pub signal_exits: u64,
    pub smc_faults: u64,
    pub shadow_faults: u64,
    pub evictions: u64,
    pub kicks: u64,
    pub raw_resumes: u64,
    pub interrupts: u64,
    pub idles: u64,
    /// Site exits to chain a direct branch / to re-translate an invalidated or parked block.
    pub link_exits: u64,
    pub dispatch_exits: u64,
}

/// Most host pages the shadow keeps mapped before it drops them all (vm.max_map_count is
/// 65530 by default; scattered pages cost one VMA each).
const MAX_SHADOW_PAGES: usize = 32768;
/// Pages remembered per address space for prefetching at a switch (`Vm::switch_hints`),
/// and address spaces remembered.
const SWITCH_HINTS: usize = 4;
const MAX_HINTED_SPACES: usize = 256;
/// A run of an address space shorter than this makes the next switch to it lazy: two
/// processes handing a pipe back and forth page by page run a few microseconds each, and
/// restoring each one's saved pages at every switch would cost far more than the few
/// pages each run touches (which fault in, and are restored eagerly again once its runs
/// are longer).
const SHORT_RUN: std::time::Duration = std::time::Duration::from_micros(100);

/// A virtual machine: one vCPU, guest RAM, ports, translation cache.
pub struct Vm {
    pub m: Machine<HostMemory>,
    tc: TCache,
    shadows: Shadows,
    pub stats: VmStats,
    /// Site exits to the interpreter counted by (mnemonic, CPL), when profiling (`--stats`).
    pub exit_profile: Option<std::collections::HashMap<(iced_x86::Mnemonic, u8), u64>>,
    /// Run the next instruction from a one-shot translation (after a store into a page of
    /// translated code, so that the store can complete while the page is writable).
    single_once: bool,
    /// Run the next instruction from a one-shot block with `Key::tls` set to this: false
    /// after the scratch store of a TLS sequence faulted where the guest's instruction
    /// would not; true (at any CPL) for a GS access that wraps and that the monitor cannot
    /// emulate (`memory_fault`).
    tls_once: Option<bool>,
    /// This entry starts with such a one-shot block with the rewrite forced; and the host
    /// entry of the last such one-shot (a fault inside it that another one-shot would
    /// not help ends the run instead of looping).
    tls_forced: bool,
    tls_forced_block: Option<u32>,
    /// The GS base last written to the cache's `TLS_BASE` (None: not yet), and the GS base
    /// of the CPL3 context entered last (what inline SYSEXIT continues into).
    tls_mirrored: Option<u32>,
    user_tls: u32,
    /// Physical page of translated code -> linear pages it was translated at.
    code_lin: HashMap<u32, HashSet<u32>>,
    /// Linear code page -> the physical page its translations came from (with paging).
    code_pa: HashMap<u32, u32>,
    /// Linear code pages whose translation is global (survives MOV CR3).
    global_code: HashSet<u32>,
    /// The last MOV CR3's table bits (tells a PTI kernel/user switch from a reload).
    last_raw_space: u32,
    /// Per address space, the first pages it shadow-faulted on after it was last switched
    /// to; they are prefetched at the next switch to it (see `ShadowMmu::prefetch`).
    switch_hints: HashMap<u32, [u32; SWITCH_HINTS]>,
    /// Shadow faults since the last switch of address space.
    faults_since_switch: usize,
    /// When the switch to the current address space finished.
    space_since: std::time::Instant,
    /// Address spaces whose last run (from a switch to them to the next switch) was short:
    /// the next switch to them restores nothing (see `SHORT_RUN`).
    short_runs: HashSet<u32>,
    /// Live non-global linear code pages (what a MOV CR3 must check) -> whether CPL3 code
    /// was translated there (the check walks with user privilege then).
    local_code: HashMap<u32, bool>,
    /// A page made host-writable for one instruction only (see `shadow_fault`).
    unmap_after_single: Option<u32>,
    /// Linear code pages translated from large (2/4 MiB) guest pages.
    large_code_pages: HashSet<u32>,
    /// Announcements read from the guest's console (a panic ends the run).
    pub guest_events: Option<ringfold_devices::GuestEvents>,
    /// Interrupt sources (PIC, timers); none for bare Multiboot test guests.
    pub platform: Option<Box<dyn Platform>>,
    /// Kick timer for the VM thread (interrupt delivery into chained translations).
    timer: Option<ringfold_host::timer::Timer>,
    /// Re-enter at this host EIP without translation: a kick interrupted guest code where
    /// its state is not precise.
    resume_raw: Option<u32>,
    /// The deadline the kick timer is armed for.
    armed: Option<u64>,
    /// CS and SS selectors last written to the selector mirrors (CPL0 blocks', CPL3 blocks').
    mirrored: [u32; 4],
    /// CR0..CR4 as last written to the cache's `CR_MIRROR`.
    crs_mirrored: [u32; 5],
    /// Inline SYSENTER/SYSEXIT (see `fastsys`): the translation of SYSENTER_EIP the record
    /// may jump to, what the record holds, the IA32_SYSENTER_CS and user top the two
    /// dedicated SS slots were written for, the shadow generation and user top `USER_SEL`
    /// was built for, and whether the last exit left a data segment register truncated for
    /// another CPL than the one the guest is at now.
    fast_enter: Option<FastEnter>,
    fast_record: [u32; 6],
    fast_slots: Option<(u32, u32)>,
    user_sel_for: Option<(u64, u32)>,
    seg_top_stale: bool,
    /// `Shadows::generation` the guest-selector table (`SEG_REV`) was last written for.
    rev_generation: u64,
    /// GDTR and LDTR when the segment-load table was last filled (None: it is empty).
    seg_tables: Option<(u32, u32, u16, u32, u32)>,
    /// A kick arrived since the last `service_interrupts` (device state may be due).
    kick_seen: bool,
    /// The platform had an interrupt request pending at the last check (for inline STI).
    irq_pending: bool,
    /// Device state last computed by `Platform::update`: at `io_count` accesses, valid
    /// until the next timer deadline (`u64::MAX`: none; 0: recompute).
    dev_io: u64,
    dev_due: u64,
    dev_deadline: Option<u64>,
    /// Console input (from a reader thread) for the UART registered as `input_uart`; a
    /// `None` byte in the queue means the user asked to quit (Ctrl-A x).
    pub input: Option<(ConsoleQueue, ringfold_devices::DeviceId)>,
}

/// The translation an inline SYSENTER jumps to, valid while the MSRs, the CPL0 key bits
/// and the cache (no flush) stay as they were when it was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FastEnter {
    msrs: (u32, u32, u32),
    fpu: u8,
    flushes: u64,
    target: u32,
}

const ARITH: u32 = eflags::CF | eflags::PF | eflags::AF | eflags::ZF | eflags::SF | eflags::DF | eflags::OF;

fn exit_stub(site: u32) -> [u8; 19] {
    let mut s = [0u8; ringfold_host::EXIT_STUB_LEN];
    ringfold_host::write_exit_stub(&mut s, site);
    s
}

impl Vm {
    /// Creates the VM (reserving the process's low 4 GiB) with `ram_size` bytes of RAM.
    pub fn new(ram_size: u64, ports: PortBus) -> Result<Vm, HostError> {
        let host = HostVm::new(ram_size)?;
        let mem = HostMemory {
            host,
            ram_size: ram_size as u32,
            mmu: ShadowMmu::new(MONITOR_START),
            host_paged: false,
            code_dirty: Vec::new(),
        };
        let mut m = Machine::new(mem, ports);
        // Guest TSC = host TSC (offset 0) until the guest writes IA32_TSC: RDTSC then runs
        // natively, and the TSC stays consistent with the PIT and RTC, which follow host time.
        m.clock = ringfold_host::rdtsc;
        let mut vm = Vm {
            m,
            tc: TCache::new(TC_START, TC_SIZE, exit_stub, HOST_CS64),
            shadows: Shadows::new(),
            stats: VmStats::default(),
            exit_profile: None,
            single_once: false,
            tls_once: None,
            tls_forced: false,
            tls_forced_block: None,
            tls_mirrored: None,
            user_tls: 0,
            code_lin: HashMap::default(),
            code_pa: HashMap::default(),
            global_code: HashSet::default(),
            local_code: HashMap::default(),
            last_raw_space: u32::MAX,
            switch_hints: HashMap::default(),
            faults_since_switch: 0,
            space_since: std::time::Instant::now(),
            short_runs: HashSet::default(),
            unmap_after_single: None,
            large_code_pages: HashSet::default(),
            platform: None,
            timer: None,
            resume_raw: None,
            armed: None,
            mirrored: [u32::MAX; 4],
            crs_mirrored: [u32::MAX; 5],
            fast_enter: None,
            fast_record: [u32::MAX; 6],
            fast_slots: None,
            user_sel_for: None,
            seg_top_stale: false,
            irq_pending: false,
            guest_events: None,
            dev_io: 0,
            dev_due: 0,
            dev_deadline: None,
            input: None,
            rev_generation: u64::MAX,
            seg_tables: None,
            kick_seen: false,
        };
        vm.flush_seg_loads();
        Ok(vm)
    }

    /// Empties the inline segment-load table (see `segcache`).
    fn flush_seg_loads(&mut self) {
        let (tc, _) = self.m.mem.host.space_mut().tc_and_ram();
        let e = segcache::empty();
        for k in 0..segcache::ENTRIES {
            let at = SEG_TABLE + k * segcache::ENTRY_BYTES;
            tc[at..at + segcache::ENTRY_BYTES].copy_from_slice(&e);
        }
        self.seg_tables = None;
    }

    /// The descriptor-table registers the segment-load table's entries depend on.
    fn seg_table_regs(&self) -> (u32, u32, u16, u32, u32) {
        let c = &self.m.cpu;
        (c.gdtr.base, c.gdtr.limit as u32, c.ldtr.sel, c.ldtr.base, c.ldtr.limit)
    }

    /// Empties the segment-load table if a shadow slot was reused or GDTR/LDTR changed since
    /// it was filled.
    fn drop_stale_seg_loads(&mut self) {
        if std::mem::take(&mut self.shadows.evicted) || self.seg_tables.is_some_and(|t| t != self.seg_table_regs()) {
            self.flush_seg_loads();
        }
    }

    /// Before an entry: the segment-load table and the guest-selector table agree with the
    /// shadow slots and the descriptor-table registers.
    fn sync_seg_tables(&mut self) {
        self.drop_stale_seg_loads();
        if self.rev_generation != self.shadows.generation {
            let (tc, _) = self.m.mem.host.space_mut().tc_and_ram();
            for (h, g) in self.shadows.reverse() {
                let at = SEG_REV + 2 * h as usize;
                tc[at..at + 2].copy_from_slice(&g.to_le_bytes());
            }
            self.rev_generation = self.shadows.generation;
        }
    }

    /// After the interpreter performed an inline segment load's miss path at CPL0: enter
    /// the result in the segment-load table, so that the next load of the selector runs
    /// inline while the descriptor stays the same.
    fn fill_seg_load(&mut self, s: Sreg) -> Result<(), Stop> {
        let r = *self.m.cpu.sreg(s);
        let desc = if r.valid {
            let Ok((d, lin)) = self.m.read_descriptor(ringfold_arch::Selector(r.sel)) else { return Ok(()) };
            // The translated check reads both dwords through the host mapping of `lin`.
            if d.to_raw() != r.desc.to_raw() || lin & 0xFFF > 0xFF8 || !self.prefault_read(lin)? {
                return Ok(());
            }
            Some((lin, d.to_raw()))
        } else {
            None
        };
        let host_sel = self.shadows.selector(&mut self.m.mem.host, &r, MONITOR_START, &[])?;
        self.drop_stale_seg_loads();
        self.seg_tables = Some(self.seg_table_regs());
        let at = SEG_TABLE + segcache::index(r.sel) * segcache::ENTRY_BYTES;
        let e = segcache::encode(r.sel, 0, desc, host_sel, self.tc.host_base + at as u32);
        let (tc, _) = self.m.mem.host.space_mut().tc_and_ram();
        tc[at..at + segcache::ENTRY_BYTES].copy_from_slice(&e);
        Ok(())
    }

    /// Makes sure the host maps guest linear `lin` for a supervisor read (translated code
    /// reads descriptors there). False if it cannot be mapped natively.
    fn prefault_read(&mut self, lin: u32) -> Result<bool, Stop> {
        if !(ringfold_host::layout::LOW_LIMIT..MONITOR_START - 8).contains(&lin) {
            return Ok(false);
        }
        if !self.m.mem.host_paged {
            return Ok(lin as u64 + 8 <= self.m.mem.ram_size as u64);
        }
        if self.m.mem.mmu.mapped(lin >> 12).is_some() {
            return Ok(true);
        }
        let acc = ringfold_arch::paging::Access { write: false, user: false, fetch: false };
        if self.m.walk(lin, acc).is_err() || self.m.cpu.cpl != 0 {
            return Ok(false);
        }
        match self.shadow_fault(0, lin) {
            Some(r) => r.map(|_| self.m.mem.mmu.mapped(lin >> 12).is_some()),
            None => Ok(false),
        }
    }

    pub fn ram_mut(&mut self) -> &mut [u8] {
        self.m.mem.host.space_mut().ram_mut()
    }

    pub fn cpu_mut(&mut self) -> &mut Cpu {
        &mut self.m.cpu
    }

    /// See `TCache::enable_perf_map`.
    pub fn enable_perf_map(&mut self) -> std::io::Result<std::path::PathBuf> {
        self.tc.enable_perf_map()
    }

    pub fn flush_perf_map(&mut self) {
        self.tc.flush_perf_map();
    }

    pub fn tc_stats(&self) -> crate::translate::TcStats {
        self.tc.stats
    }

    pub fn mmu_stats(&self) -> crate::mmu::MmuStats {
        self.m.mem.mmu.stats
    }

    /// Whether MOV CR3 keeps the old address space's shadow for a later switch back (on by
    /// default; benchmarks turn it off to compare).
    pub fn set_shadow_cache(&mut self, on: bool) {
        self.m.mem.mmu.cache_spaces = on;
    }

    /// Installs the seccomp filter: from here on the process can make no system call from
    /// below 4 GiB or through a 32-bit ABI.
    pub fn lock_down(&mut self) -> Result<(), HostError> {
        self.m.mem.host.lock_down()
    }

    /// The key's mode bits for code at `cpl` (see `Key::fpu`).
    fn fpu_bits(&self, cpl: u8) -> u8 {
        let c = &self.m.cpu;
        ((c.cr0 & cr0::TS != 0) as u8)
            | (((c.cr0 & cr0::EM != 0) as u8) << 1)
            | (((c.cr4 & cr4::OSFXSR != 0) as u8) << 2)
            | (((c.cr0 & cr0::MP != 0) as u8) << 3)
            | (((c.tsc_offset == 0 && (c.cr4 & cr4::TSD == 0 || cpl == 0)) as u8) << 4)
    }

    /// Whether GS:-prefixed operands can address through DS with the GS base added: DS is
    /// flat and GS is a 4 GiB writable expand-up data segment (translate::emit_tls).
    fn tls_possible(&self) -> bool {
        let c = &self.m.cpu;
        let flat4g = |r: &SegReg| r.valid && r.desc.is_data() && r.desc.writable() && !r.desc.expand_down() && r.desc.limit() == u32::MAX;
        flat4g(c.sreg(Sreg::Ds)) && c.sreg(Sreg::Ds).desc.base == 0 && flat4g(c.sreg(Sreg::Gs))
    }

    fn key(&self) -> Key {
        let c = &self.m.cpu;
        let cs = c.sreg(Sreg::Cs);
        let fpu = self.fpu_bits(c.cpl);
        Key {
            lin: cs.desc.base.wrapping_add(c.eip),
            cs_base: cs.desc.base,
            cs_limit: cs.desc.limit(),
            cpl: c.cpl,
            fpu,
            // Only user-mode GS (i386 TLS, negative offsets) needs it.
            tls: c.cpl == 3 && self.tls_possible(),
        }
    }

    /// The current address space as the shadow MMU names it: CR3 without the bits that do
    /// not select the top-level table.
    fn space_key(&mut self) -> u32 {
        let raw = self.raw_space();
        match raw & 0x1000 {
            0x1000 if self.pti_twin(raw) => raw & !0x1000,
            _ => raw,
        }
    }

    fn raw_space(&self) -> u32 {
        self.m.cpu.cr3 & if self.m.cpu.cr4 & cr4::PAE != 0 { !0x1F } else { !0xFFF }
    }

    /// Page-table isolation (Linux PTI with PAE): a process has a kernel PDPT at an
    /// 8 KiB-aligned page and a user PDPT in the next page whose user entries (below
    /// 3 GiB) are the same page directories. Such a user CR3 shares the kernel CR3's shadow
    /// space, so the two switches of every system call cost a resync instead of swapping
    /// thousands of mappings. The union keeps kernel-half mappings the user PDPT lacks:
    /// guest CPL3 cannot reach them (segments truncated below `user_top`, low supervisor
    /// pages unmapped on entry to CPL3); only guest CPL0 code touching kernel memory
    /// unmapped in the user tables — which would fault on hardware — sees a difference.
    /// Not applied when user pages were ever mapped at or above 3 GiB.
    fn pti_twin(&mut self, user: u32) -> bool {
        if self.m.cpu.cr4 & cr4::PAE == 0 || self.m.mem.mmu.user_pages_above(0xC000_0000) {
            return false;
        }
        let (mut a, mut b) = ([0u8; 24], [0u8; 24]);
        self.m.mem.read(user, &mut a);
        self.m.mem.read(user & !0x1000, &mut b);
        a == b
    }

    /// Applies what happened since the last entry: translation changes (MOV CR3, INVLPG,
    /// paging mode changes) and monitor writes to code or page-table pages.
    fn sync(&mut self) -> Result<(), Stop> {
        for ev in std::mem::take(&mut self.m.tlb_events) {
            match ev {
                TlbEvent::FlushAll => self.flush_all()?,
                TlbEvent::FlushGlobal => {
                    self.m.mem.with_mmu(|mmu, mp| mmu.drop_current(mp))?;
                    // Translations are parked, not dropped: most code maps where it did.
                    // Every code page is checked once; those still mapped as they were stay
                    // global (else every later MOV CR3 would check them all again).
                    let globals = std::mem::take(&mut self.global_code);
                    self.switch_code(true)?;
                    if self.m.cpu.cr4 & cr4::PGE != 0 {
                        self.global_code = globals.into_iter().filter(|lp| self.tc.page_live(*lp)).collect();
                    }
                }
                TlbEvent::FlushNonGlobal => {
                    let (raw, space) = (self.raw_space(), self.space_key());
                    let twin = space == self.m.mem.mmu.space() && raw != self.last_raw_space;
                    self.last_raw_space = raw;
                    let mode = self.m.paging_mode();
                    let ram_pages = self.m.mem.ram_size >> 12;
                    // Another address space (not a reload, not a PTI twin): the run that ends
                    // is timed. Every switch prefetches what the space faulted on first.
                    let real = self.m.mem.mmu.space() != space;
                    let lazy = real && self.end_run(space);
                    let hints = self.switch_hints.get(&space).copied();
                    let dropped = self.m.mem.with_mmu(|mmu, mp| {
                        mmu.walk_mode = Some(mode);
                        let dropped = mmu.switch_space_lazy(mp, space, lazy);
                        for lp in hints.iter().flatten().filter(|&&lp| lp != 0) {
                            if mmu.mapped_pages() + 16 < MAX_SHADOW_PAGES {
                                mmu.prefetch(mp, *lp, ram_pages);
                            }
                        }
                        dropped
                    })?;
                    self.faults_since_switch = 0;
                    if twin {
                        // Kernel <-> user tables of one process: only what the resync
                        // dropped can have changed (see `pti_twin`).
                        for lp in dropped {
                            if self.code_pa.contains_key(&lp) && self.park_lin(lp)? {
                                break;
                            }
                        }
                    } else {
                        self.switch_code(false)?;
                    }
                    if real {
                        // A run is timed from here: the switch's own work is not part of it.
                        self.space_since = std::time::Instant::now();
                    }
                }
                TlbEvent::Invlpg(l) => {
                    let mut pages = self.m.mem.with_mmu(|mmu, mp| mmu.invlpg(mp, l))?;
                    pages.push(l >> 12);
                    // Translations of code in a large page go with the whole page.
                    let (b4, b2) = (l & !0x3F_FFFF, l & !0x1F_FFFF);
                    for &lp in &self.large_code_pages {
                        let a = lp << 12;
                        if (a & !0x3F_FFFF == b4 || a & !0x1F_FFFF == b2) && !pages.contains(&lp) {
                            pages.push(lp);
                        }
                    }
                    for lp in pages {
                        self.global_code.remove(&lp);
                        self.park_lin(lp)?;
                    }
                }
            }
        }
        while let Some(p) = self.m.mem.code_dirty.pop() {
            self.code_written(p)?;
        }
        Ok(())
    }

    /// MOV CR3: translations of non-global code pages stay live where the new address
    /// space maps the page to the same physical page (executable, accessed); the others
    /// are parked, to be revived when the page maps that physical page again (processes
    /// running the same program share code pages). `all`: global pages too (CR4.PGE).
    fn switch_code(&mut self, all: bool) -> Result<(), Stop> {
        let pages: Vec<(u32, bool)> = if all {
            self.tc.code_pages().into_iter().map(|lp| (lp, self.tc.page_user(lp))).collect()
        } else {
            self.local_code.iter().map(|(&lp, &user)| (lp, user)).collect()
        };
        for (lp, user) in pages {
            let Some(&pa) = self.code_pa.get(&lp) else {
                self.invalidate_lin(lp)?;
                continue;
            };
            let acc = ringfold_arch::paging::Access { write: false, user, fetch: true };
            let same = self.m.peek_walk(lp << 12, acc).is_ok_and(|t| (t.pa >> 12) as u32 == pa && t.leaf_entry & ringfold_arch::paging::PTE_A != 0);
            if !same && self.park_lin(lp)? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Before translating at `key`: parked blocks of its page come back if the page maps
    /// the physical page they were translated from, else they die.
    fn revive_code(&mut self, key: &Key) -> Result<(), Stop> {
        let lp = key.lin >> 12;
        let Some((pa, user)) = self.tc.suspended(lp) else { return Ok(()) };
        let acc = ringfold_arch::paging::Access { write: false, user: user || key.cpl == 3, fetch: true };
        let same = match self.m.mem.host_paged.then(|| self.m.walk(lp << 12, acc)) {
            Some(Ok(t)) => (t.pa >> 12) as u32 == pa,
            // Not mapped (yet: demand paging): the fetch faults and the guest maps the
            // page, usually the same physical page again. Stay parked.
            Some(Err(_)) => return Ok(()),
            None => false,
        };
        let flushed = self.tc_op(|t, tc| if same { t.revive_page(tc, lp, key.tls) } else { t.invalidate_page(tc, lp); })?;
        if same && !flushed {
            self.protect_code_page(lp)?;
        }
        Ok(())
    }

    /// The mapping of linear page `lp` may have changed (INVLPG): its translations are
    /// parked, to come back if it maps the same physical page when next executed.
    /// Returns whether the cache was flushed instead.
    fn park_lin(&mut self, lp: u32) -> Result<bool, Stop> {
        self.local_code.remove(&lp);
        let Some(&pa) = self.code_pa.get(&lp) else { return self.invalidate_lin(lp) };
        self.tc_op(|t, tc| t.suspend_page(tc, lp, pa))
    }

    /// Drops the translations made from linear page `lp`. Returns whether the cache was
    /// flushed instead.
    fn invalidate_lin(&mut self, lp: u32) -> Result<bool, Stop> {
        self.local_code.remove(&lp);
        self.tc_op(|t, tc| {
            t.invalidate_page(tc, lp);
        })
    }

    /// Runs a translation-cache operation that may flush the whole cache (no room for
    /// stubs); a flush takes the code-page bookkeeping with it. Returns whether it flushed.
    fn tc_op(&mut self, f: impl FnOnce(&mut TCache, &mut [u8])) -> Result<bool, Stop> {
        let (tc, _) = self.m.mem.host.space_mut().tc_and_ram();
        let flushes = self.tc.stats.flushes;
        f(&mut self.tc, tc);
        let flushed = self.tc.stats.flushes != flushes;
        if flushed {
            self.forget_code()?;
        }
        Ok(flushed)
    }

    /// Physical page `pa` holding translated code was written: drop its translations and
    /// let it become writable again.
    fn code_written(&mut self, pa: u32) -> Result<(), Stop> {
        for lp in self.code_lin.remove(&pa).unwrap_or_default() {
            self.invalidate_lin(lp)?;
        }
        self.m.mem.mmu.remove_code(pa);
        if !self.m.mem.host_paged {
            self.m.mem.host.space_mut().set_page_writable(pa, true).map_err(host_stop)?;
        }
        Ok(())
    }

    /// Every translation and code-page protection is dropped (TC full or paging mode change).
    fn forget_code(&mut self) -> Result<(), Stop> {
        // Host addresses start over after a flush.
        self.tls_forced_block = None;
        let pages: Vec<u32> = self.code_lin.drain().map(|(pa, _)| pa).collect();
        if !self.m.mem.host_paged {
            for pa in pages {
                self.m.mem.host.space_mut().set_page_writable(pa, true).map_err(host_stop)?;
            }
        }
        self.m.mem.mmu.clear_code();
        self.code_pa.clear();
        self.global_code.clear();
        self.local_code.clear();
        self.large_code_pages.clear();
        Ok(())
    }

    /// Paging mode change: all shadow mappings and translations go; the host view follows
    /// CR0.PG (identity RAM view when paging is off).
    fn flush_all(&mut self) -> Result<(), Stop> {
        let (space, pae) = (self.space_key(), self.m.cpu.cr4 & cr4::PAE != 0);
        self.m.mem.with_mmu(|mmu, mp| {
            mmu.flush(mp);
            mmu.set_space(space, pae);
        })?;
        self.forget_code()?;
        self.tc.flush();
        let paged = self.m.cpu.cr0 & cr0::PG != 0;
        if paged != self.m.mem.host_paged {
            let space = self.m.mem.host.space_mut();
            if paged { space.unmap_identity() } else { space.map_identity() }.map_err(host_stop)?;
            self.m.mem.host_paged = paged;
        }
        Ok(())
    }

    /// Looks up or translates the block at `key` (`once`: a one-shot single-instruction
    /// block), and protects the physical pages its code came from.
    fn translate_with(&mut self, key: Key, once: bool) -> Result<u32, Stop> {
        if !once {
            if let Some(h) = self.tc.lookup(&key) {
                return Ok(h);
            }
            self.revive_code(&key)?;
            if let Some(h) = self.tc.lookup(&key) {
                return Ok(h);
            }
        }
        // The block may use the rest of the page plus one straddling instruction: both
        // pages are walked once, and the bytes read straight from RAM.
        let first = 4096 - (key.lin & 0xFFF) as usize;
        let pas = match self.m.fetch_pa(key.lin) {
            None => [None, None],
            Some(p0) => [Some(p0), self.m.fetch_pa(key.lin.wrapping_add(first as u32))],
        };
        let valid = match pas {
            [None, _] => 0,
            [Some(_), None] => first,
            _ => first + 16,
        };
        let flushes = self.tc.stats.flushes;
        let (tc, ram) = self.m.mem.host.space_mut().tc_and_ram();
        let fetch = |lin: u32, out: &mut [u8]| {
            let off = lin.wrapping_sub(key.lin) as usize;
            if off >= valid {
                return 0;
            }
            let n = (valid - off).min(out.len());
            // Split at the page boundary; bytes outside RAM read as 0xFF (as fetch_bytes).
            let mut k = 0;
            while k < n {
                let o = off + k;
                // Inside one page: the page's physical address plus the offset in it.
                let (pa, at, len) = if o < first { (pas[0], o, (first - o).min(n - k)) } else { (pas[1], o - first, n - k) };
                let dst = &mut out[k..k + len];
                match pa.filter(|&p| p != UNASSIGNED_PA).and_then(|p| ram.get(p as usize + at..p as usize + at + len)) {
                    Some(src) => dst.copy_from_slice(src),
                    None => dst.fill(0xFF),
                }
                k += len;
            }
            n
        };
        let r = if once { self.tc.translate_once(tc, key, fetch) } else { self.tc.translate(tc, key, fetch) };
        let h = r.map_err(|e| Stop::Unsupported { eip: key.eip(), what: e.to_string() })?;
        if self.tc.stats.flushes != flushes {
            self.forget_code()?;
        }
        if once {
            return Ok(h);
        }
        let last = match self.tc.blocks.last() {
            Some(b) if b.lin_end != key.lin => b.lin_end.wrapping_sub(1) >> 12,
            _ => key.lin >> 12,
        };
        let mut lp = key.lin >> 12;
        loop {
            self.protect_code_page(lp)?;
            if lp == last {
                break;
            }
            lp = lp.wrapping_add(1);
        }
        Ok(h)
    }

    /// Makes the physical page behind linear code page `lp` read-only everywhere and
    /// remembers the translation for self-modifying-code detection.
    fn protect_code_page(&mut self, lp: u32) -> Result<(), Stop> {
        let (pa, global) = if self.m.mem.host_paged {
            let user = self.m.cpu.cpl == 3;
            *self.local_code.entry(lp).or_insert(user) |= user;
            match self.m.walk(lp << 12, ringfold_arch::paging::Access { write: false, user, fetch: true }) {
                Ok(t) if t.pa < self.m.mem.ram_size as u64 => {
                    if t.page_size > 4096 {
                        self.large_code_pages.insert(lp);
                    }
                    ((t.pa >> 12) as u32, t.global && self.m.cpu.cr4 & cr4::PGE != 0)
                }
                _ => return Ok(()),
            }
        } else {
            (lp, false)
        };
        if (pa as u64) << 12 >= self.m.mem.ram_size as u64 {
            return Ok(());
        }
        self.code_lin.entry(pa).or_default().insert(lp);
        self.code_pa.insert(lp, pa);
        if global {
            self.global_code.insert(lp);
            self.local_code.remove(&lp);
        }
        self.m.mem.with_mmu(|mmu, mp| mmu.add_code(mp, pa))?;
        if !self.m.mem.host_paged {
            self.m.mem.host.space_mut().set_page_writable(pa, false).map_err(host_stop)?;
        }
        Ok(())
    }

    fn translate(&mut self, key: Key) -> Result<u32, Stop> {
        self.translate_with(key, false)
    }

    /// Runs the guest until it stops. Returns the reason (Stop::Exit for a guest exit).
    pub fn run(&mut self) -> Stop {
        loop {
            if let Err(s) = self.step() {
                self.m.ports.flush_all();
                return s;
            }
        }
    }

    /// Delivers a pending external interrupt if the guest can take it now, idles a halted
    /// guest until the next event, and keeps the kick timer armed for the next deadline.
    fn service_interrupts(&mut self) -> Result<(), Stop> {
        // The common exit touched no device, no kick arrived (the timer is armed for the
        // cached deadline, so that deadline is still ahead): the pending state stands and
        // there is nothing to poll, not even the clock.
        let kicked = std::mem::take(&mut self.kick_seen);
        let cached = !kicked
            && !self.m.cpu.halted
            && self.m.io_count == self.dev_io
            && self.dev_due != 0
            && self.armed == self.dev_deadline
            && self.timer.is_some();
        if cached {
            if self.irq_pending && self.m.cpu.eflags & eflags::IF != 0 {
                return self.take_interrupt();
            }
            return Ok(());
        }
        if let Some((q, id)) = &self.input {
            let bytes: Vec<Option<u8>> = q.lock().map(|mut q| q.drain(..).collect()).unwrap_or_default();
            if bytes.contains(&None) {
                return Err(Stop::UserQuit);
            }
            if !bytes.is_empty() {
                self.dev_due = 0;
                let data: Vec<u8> = bytes.into_iter().flatten().collect();
                if let Some(u) = self.m.ports.device_mut::<ringfold_devices::Uart16550>(*id) {
                    u.enqueue_input(&data);
                }
            }
        }
        let Some(p) = self.platform.as_mut() else {
            if self.m.cpu.halted {
                // No interrupt sources: a halted CPU never wakes.
                return Err(Stop::HaltedForever(self.m.cpu.eip));
            }
            return Ok(());
        };
        if p.reset_requested() {
            return Err(Stop::Reset);
        }
        if self.guest_events.as_ref().is_some_and(|e| e.get() == ringfold_devices::GuestEvent::Panic) {
            return Err(Stop::GuestPanic);
        }
        let now = ringfold_host::timer::now_ns();
        // Most exits touch no device and come before the next timer edge: nothing to redo.
        let (pending, deadline) = if self.m.io_count == self.dev_io && now < self.dev_due {
            (self.irq_pending, self.dev_deadline)
        } else {
            let pending = p.update(now);
            let deadline = p.next_deadline();
            (self.dev_io, self.dev_due, self.dev_deadline) = (self.m.io_count, deadline.unwrap_or(u64::MAX), deadline);
            (pending, deadline)
        };
        self.irq_pending = pending;
        let can_take = self.m.cpu.eflags & eflags::IF != 0;
        if pending && can_take {
            self.take_interrupt()?;
        } else if self.m.cpu.halted {
            if !can_take {
                return Err(Stop::HaltedForever(self.m.cpu.eip));
            }
            // HLT with IF=1: sleep until the next timer event (a kick ends it early).
            self.stats.idles += 1;
            let wait = deadline.map_or(10_000_000, |d| d.saturating_sub(now).min(10_000_000));
            ringfold_host::timer::idle(wait.max(1_000));
            return Ok(());
        }
        if self.timer.is_none() {
            self.timer = Some(ringfold_host::timer::Timer::new().map_err(|e| Stop::Unsupported {
                eip: self.m.cpu.eip,
                what: format!("cannot create the VM timer: {e}"),
            })?);
        }
        // Re-arm only when the deadline moved or the armed one has passed (one syscall per
        // timer event, not per monitor entry).
        if let (Some(t), Some(d)) = (self.timer.as_mut(), deadline) {
            if self.armed != Some(d) || now >= d {
                t.arm(d.saturating_sub(now).max(1_000));
                self.armed = Some(d);
            }
        }
        Ok(())
    }

    /// A pending interrupt and IF=1: deliver it (after the STI / MOV SS shadow).
    fn take_interrupt(&mut self) -> Result<(), Stop> {
        self.dev_due = 0;
        if self.m.cpu.shadow {
            // STI / MOV SS shadow: run exactly one more instruction first.
            self.single_once = true;
        } else if let Some(v) = self.platform.as_mut().and_then(|p| p.acknowledge()) {
            self.stats.interrupts += 1;
            self.m.external_interrupt(v)?;
        }
        Ok(())
    }

    fn step(&mut self) -> Result<(), Stop> {
        let host_eip = if let Some(h) = self.resume_raw.take() {
            h
        } else {
            self.sync()?;
            if self.m.mem.host.take_kick() {
                // The timer fired while the monitor ran: re-arm for the next deadline.
                self.armed = None;
                self.kick_seen = true;
            }
            self.service_interrupts()?;
            if self.m.cpu.halted {
                return Ok(());
            }
            // In an STI / MOV SS shadow the next instruction runs alone, so that a kick
            // cannot deliver an interrupt before it has completed (one that becomes
            // pending meanwhile is taken after it).
            if std::mem::take(&mut self.m.cpu.shadow) {
                self.single_once = true;
            }
            let cs = *self.m.cpu.sreg(Sreg::Cs);
            if !cs.desc.db {
                return Err(Stop::Unsupported { eip: self.m.cpu.eip, what: TranslateError::Code16.to_string() });
            }
            let mut key = self.key();
            self.tls_forced = false;
            if let Some(tls) = self.tls_once.take() {
                key.tls = tls;
                self.tls_forced = tls;
                self.single_once = true;
            }
            let (tc, _) = self.m.mem.host.space_mut().tc_and_ram();
            self.tc.set_tls_context(tc, &key);
            let once = std::mem::take(&mut self.single_once);
            let h = self.translate_with(key, once)?;
            if self.tls_forced {
                self.tls_forced_block = Some(h);
            }
            if once {
                self.enter(h)?;
                if let Some(lp) = self.unmap_after_single.take() {
                    self.m.mem.with_mmu(|mmu, mp| mmu.drop_page(mp, lp))?;
                }
                return self.dispatch_exit();
            }
            h
        };
        self.enter(host_eip)?;
        self.dispatch_exit()
    }

    fn dispatch_exit(&mut self) -> Result<(), Stop> {
        let ctx = self.m.mem.host.ctx_mut();
        if ctx.exit_site == EXIT_SIGNAL {
            self.stats.signal_exits += 1;
            let (signo, trapno, err, cr2, heip) = (ctx.signo, ctx.trapno, ctx.err, ctx.cr2, ctx.eip);
            if signo == ringfold_host::timer::KICK_SIGNAL as u32 {
                return self.kick_exit(heip);
            }
            self.host_fault(trapno, err, cr2, heip)
        } else {
            self.stats.site_exits += 1;
            let site = ctx.exit_site as usize;
            self.site_exit(site)
        }
    }

    /// The kick timer interrupted guest code at host EIP `heip`. At a precise point the
    /// guest EIP becomes that instruction (pending interrupts are then delivered); inside an
    /// instruction's expansion the guest is resumed exactly where it was and kicked again
    /// shortly.
    fn kick_exit(&mut self, heip: u32) -> Result<(), Stop> {
        self.stats.kicks += 1;
        self.kick_seen = true;
        match self.tc.boundary(heip) {
            Some((geip, sc)) if sc.done != 0 => self.complete_fast(sc, geip),
            Some((geip, sc)) => {
                if sc.in_seq && (sc.pushes > 0 || sc.if_seq) {
                    self.rewind_scratch(sc);
                }
                self.m.cpu.eip = geip;
                // In an inline STI's shadow: the instruction runs before any interrupt.
                self.m.cpu.shadow |= sc.sti_shadow;
            }
            None => {
                self.stats.raw_resumes += 1;
                self.resume_raw = Some(heip);
                if let Some(t) = self.timer.as_mut() {
                    t.arm(20_000);
                    self.armed = None;
                }
            }
        }
        Ok(())
    }

    fn enter(&mut self, host_eip: u32) -> Result<(), Stop> {
        // Guest CPL3 must not reach supervisor pages: they are either above `user_top`, to
        // which CPL3 segments are truncated, or unmapped now.
        if self.m.cpu.cpl == 3 && self.m.mem.host_paged {
            self.m.mem.with_mmu(|mmu, mp| mmu.enter_user(mp))?;
        }
        let user_top = if self.m.mem.host_paged { self.m.mem.mmu.user_top } else { MONITOR_START };
        let top = if self.m.cpu.cpl == 3 { user_top } else { MONITOR_START };
        let mut sels = [0u16; 6];
        for s in [Sreg::Es, Sreg::Ss, Sreg::Ds, Sreg::Fs, Sreg::Gs] {
            let r = *self.m.cpu.sreg(s);
            let last = &self.shadows.last[s as usize];
            sels[s as usize] = match last.iter().find(|(lr, lt, ls)| *lr == r && *lt == top && *ls != u16::MAX) {
                Some(l) => l.2,
                None => {
                    let sel = self.shadows.selector(&mut self.m.mem.host, &r, top, &sels)?;
                    self.shadows.remember(s, r, top, sel);
                    sel
                }
            };
        }
        self.sync_seg_tables();
        self.sync_fast(&sels, user_top)?;
        let vif = (self.m.cpu.eflags & eflags::IF != 0) as u8;
        let pending = self.irq_pending as u8;
        let vsys = self.m.cpu.eflags & crate::translate::VSYS_MASK;
        let page = self.m.mem.host.space_mut().vcpu_page();
        page[ringfold_host::layout::VCPU_VIF as usize] = vif;
        page[ringfold_host::layout::VCPU_PENDING as usize] = pending;
        let v = ringfold_host::layout::VCPU_VSYS as usize;
        page[v..v + 4].copy_from_slice(&vsys.to_le_bytes());
        let cpu = &self.m.cpu;
        let ctx = self.m.mem.host.ctx_mut();
        ctx.gpr = cpu.gpr;
        ctx.eflags = (cpu.eflags & ARITH) | 0x202;
        ctx.es = sels[0];
        ctx.ss = sels[2];
        ctx.ds = sels[3];
        ctx.fs = sels[4];
        ctx.gs = sels[5];
        ctx.cs = ldt_selector(TC_CS_SLOT);
        ctx.eip = host_eip;
        self.stats.entries += 1;
        self.m.mem.host.enter();
        let ctx = self.m.mem.host.ctx_mut();
        self.m.cpu.gpr = ctx.gpr;
        self.m.cpu.eflags = (self.m.cpu.eflags & !ARITH) | (ctx.eflags & ARITH);
        let exit_sels = [(Sreg::Es, ctx.es), (Sreg::Ds, ctx.ds), (Sreg::Fs, ctx.fs), (Sreg::Gs, ctx.gs)];
        let (exit_ss, exit_eip) = (ctx.ss, ctx.eip);
        // Inline SYSENTER/SYSEXIT: only they load the dedicated SS slots, so SS names the
        // last transition (each sets CS, SS and the CPL completely).
        if exit_ss != sels[Sreg::Ss as usize] {
            let msr = self.m.cpu.sysenter_cs;
            let (cpl, (cs, ss)) = match exit_ss {
                s if s == ldt_selector(SYSENTER_SS_SLOT) => (0, fastsys::kernel_state(msr)),
                s if s == ldt_selector(SYSEXIT_SS_SLOT) => (3, fastsys::user_state(msr)),
                s => return Err(Stop::Unsupported { eip: self.m.cpu.eip, what: format!("SS holds host selector {s:#x} after an exit") }),
            };
            self.m.cpu.cpl = cpl;
            self.m.cpu.seg[Sreg::Cs as usize] = cs;
            self.m.cpu.seg[Sreg::Ss as usize] = ss;
        }
        // Inline segment loads may have changed DS/ES/FS/GS: the host selectors at the exit
        // name the guest registers. After an inline CPL change they may be truncated for
        // the other CPL (then a limit fault only needs a re-entry: `seg_top_stale`).
        let want_top = if self.m.cpu.cpl == 3 { user_top } else { MONITOR_START };
        self.seg_top_stale = false;
        for (s, mut h) in exit_sels {
            if s == Sreg::Ds && h == ringfold_host::VCPU_SEL {
                // Stopped inside an inline flags sequence: the guest's DS is on the stack.
                h = self.saved_ds(exit_eip).unwrap_or(sels[s as usize]);
            }
            if h != sels[s as usize] || want_top != top {
                let Some((r, t)) = self.shadows.guest_of(h) else {
                    return Err(Stop::Unsupported { eip: self.m.cpu.eip, what: format!("{s:?} holds host selector {h:#x} after an exit") });
                };
                self.m.cpu.seg[s as usize] = r;
                self.seg_top_stale |= r.valid && t != want_top;
                self.shadows.remember(s, r, if r.valid { t } else { want_top }, h);
            }
        }
        // Inline CLI/STI/POPFD may have changed the virtual IF and system flags.
        let page = *self.m.mem.host.space_mut().vcpu_page();
        if page[ringfold_host::layout::VCPU_VIF as usize] != 0 {
            self.m.cpu.eflags |= eflags::IF;
        } else {
            self.m.cpu.eflags &= !eflags::IF;
        }
        let v = ringfold_host::layout::VCPU_VSYS as usize;
        let vsys = u32::from_le_bytes(page[v..v + 4].try_into().unwrap());
        self.m.cpu.eflags = (self.m.cpu.eflags & !crate::translate::VSYS_MASK) | (vsys & crate::translate::VSYS_MASK);
        Ok(())
    }

    /// Before an entry: the selector and control-register mirrors, the dedicated SS slots,
    /// `USER_SEL` and the SYSENTER/SYSEXIT record agree with the state about to run (see
    /// `fastsys`).
    fn sync_fast(&mut self, sels: &[u16; 6], user_top: u32) -> Result<(), Stop> {
        let c = &self.m.cpu;
        let msr = c.sysenter_cs;
        let (kernel, user) = (fastsys::kernel_state(msr), fastsys::user_state(msr));
        let cur = [c.sreg(Sreg::Cs).sel as u32, c.sreg(Sreg::Ss).sel as u32];
        // CPL0 blocks read the first mirror, CPL3 blocks the second; the one for the other
        // CPL holds what an inline transition gives CS and SS.
        let mirror = if c.cpl == 3 { [kernel.0.sel as u32, kernel.1.sel as u32, cur[0], cur[1]] } else { [cur[0], cur[1], user.0.sel as u32, user.1.sel as u32] };
        let cond = fastsys::Conditions {
            sysenter_cs: msr,
            cpl: c.cpl,
            canonical: fastsys::canonical(c),
            sup_low_empty: !self.m.mem.host_paged || !self.m.mem.mmu.has_sup_low(),
            same_mode: self.fpu_bits(0) == self.fpu_bits(3),
        };
        let (enter_ok, exit_ok) = fastsys::enabled(&cond);
        let crs = [c.cr0, 0, c.cr2, c.cr3, c.cr4];
        let (tc, _) = self.m.mem.host.space_mut().tc_and_ram();
        if c.cpl == 3 {
            self.user_tls = c.sreg(Sreg::Gs).desc.base;
        }
        // A forced one-shot at CPL0 reads the current GS base; otherwise CPL0 code keeps
        // the user context's for an inline SYSEXIT.
        let tls = if self.tls_forced { c.sreg(Sreg::Gs).desc.base } else { self.user_tls };
        if self.tls_mirrored != Some(tls) {
            tc[TLS_BASE..TLS_BASE + 4].copy_from_slice(&tls.to_le_bytes());
            self.tls_mirrored = Some(tls);
        }
        if crs != self.crs_mirrored {
            for (n, v) in crs.into_iter().enumerate() {
                let at = crate::translate::CR_MIRROR + 4 * n;
                tc[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
            self.crs_mirrored = crs;
        }
        if mirror != self.mirrored {
            for (k, v) in mirror.into_iter().enumerate() {
                let at = [crate::translate::SELECTOR_MIRROR, crate::translate::SELECTOR_MIRROR3][k / 2] + 4 + 4 * (k % 2);
                tc[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
            self.mirrored = mirror;
        }
        if (enter_ok || exit_ok) && self.fast_slots != Some((msr & 0xFFFC, user_top)) {
            for (slot, ss, top) in [(SYSENTER_SS_SLOT, kernel.1, MONITOR_START), (SYSEXIT_SS_SLOT, user.1, user_top)] {
                let (f, _) = shadow::shadow_data_segment(&ss.desc, top).map_err(|e| Stop::Unsupported { eip: 0, what: format!("SYSENTER stack segment: {e:?}") })?;
                self.m.mem.host.set_ldt(slot, Some(&ldt_entry(&f))).map_err(|e| Stop::Unsupported { eip: 0, what: e.to_string() })?;
            }
            self.fast_slots = Some((msr & 0xFFFC, user_top));
        }
        if exit_ok && self.user_sel_for != Some((self.shadows.generation, user_top)) {
            let (tc, _) = self.m.mem.host.space_mut().tc_and_ram();
            let table = &mut tc[USER_SEL..USER_SEL + 4 * fastsys::USER_SEL_ENTRIES];
            for (h, to) in self.shadows.user_selectors(user_top) {
                let at = 4 * h as usize;
                table[at..at + 4].copy_from_slice(&to.to_le_bytes());
            }
            self.user_sel_for = Some((self.shadows.generation, user_top));
        }
        let c = &self.m.cpu;
        let (enter_ss, enter_esp, target) = match self.fast_enter {
            Some(f) if enter_ok && f.msrs == (msr, c.sysenter_esp, c.sysenter_eip) && f.fpu == self.fpu_bits(0) && f.flushes == self.tc.stats.flushes => {
                (ldt_selector(SYSENTER_SS_SLOT) as u32, c.sysenter_esp, f.target)
            }
            _ => (0, 0, 0),
        };
        let exit_ss = if exit_ok { ldt_selector(SYSEXIT_SS_SLOT) as u32 } else { 0 };
        // The shared CPL3 lookup table may name blocks made for the folded GS base of the
        // user context entered last (`TCache::fill_table_ctx`): inline SYSEXIT continues
        // through it only into that context (same DS and GS shadows). A reused slot may
        // name another state now.
        let (mut neg_ds, mut neg_gs) = (self.fast_record[4], self.fast_record[5]);
        if c.cpl == 3 {
            (neg_ds, neg_gs) = ((sels[Sreg::Ds as usize] as u32).wrapping_neg(), (sels[Sreg::Gs as usize] as u32).wrapping_neg());
        } else if std::mem::take(&mut self.shadows.reused) || self.tls_forced {
            // (A forced TLS one-shot at CPL0 changes TLS_BASE for this entry.)
            (neg_ds, neg_gs) = (fastsys::NEG_NONE, fastsys::NEG_NONE);
        }
        let record = [enter_ss, enter_esp, target, exit_ss, neg_ds, neg_gs];
        if record != self.fast_record {
            let (tc, _) = self.m.mem.host.space_mut().tc_and_ram();
            for (k, v) in record.into_iter().enumerate() {
                let at = FAST_RECORD + 4 * k;
                tc[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
            self.fast_record = record;
        }
        Ok(())
    }

    /// After an inline lookup missed: translates the target `to` (the current context) and
    /// enters it in the table the missing sequence reads. A block shared by all FS/GS
    /// contexts (`agnostic`) uses the shared table, which names a block made for the
    /// current bases only until the context changes.
    fn fill_lookup(&mut self, to: Key, agnostic: bool) -> Result<(), Stop> {
        let flushes = self.tc.stats.flushes;
        let h = self.translate(to)?;
        if self.tc.stats.flushes == flushes && self.tc.lookup(&to) == Some(h) {
            let (tc, _) = self.m.mem.host.space_mut().tc_and_ram();
            if !agnostic {
                self.tc.fill_table(tc, &to, h);
            } else if self.tc.is_agnostic(&to, h) {
                self.tc.fill_table(tc, &to.agnostic(), h);
            } else {
                self.tc.fill_table_ctx(tc, &to, h);
            }
        }
        Ok(())
    }

    /// After an interpreted SYSENTER: the translation of SYSENTER_EIP for the record, so
    /// that the next SYSENTER runs inline.
    fn fill_fast_enter(&mut self) -> Result<(), Stop> {
        if self.m.cpu.cpl != 0 {
            return Ok(());
        }
        let key = self.key();
        let h = self.translate(key)?;
        if self.tc.lookup(&key) == Some(h) {
            let c = &self.m.cpu;
            self.fast_enter = Some(FastEnter { msrs: (c.sysenter_cs, c.sysenter_esp, c.sysenter_eip), fpu: key.fpu, flushes: self.tc.stats.flushes, target: h });
        }
        Ok(())
    }

    /// A kick or fault past the commit point of an inline SYSENTER/SYSEXIT (the CPL, CS
    /// and SS were read back from SS) or past an inline STI's store (at `geip`, the next
    /// instruction): undo the sequence's scratch state and finish the instruction.
    fn complete_fast(&mut self, sc: crate::translate::Scratch, geip: u32) {
        if sc.pushes > 0 || sc.if_seq {
            self.rewind_scratch(sc);
        }
        let c = &mut self.m.cpu;
        match sc.done {
            fastsys::DONE_SYSENTER => {
                c.eip = c.sysenter_eip;
                c.gpr[4] = c.sysenter_esp;
                c.eflags &= !(eflags::IF | eflags::VM | eflags::RF);
            }
            fastsys::DONE_SYSEXIT => {
                c.eip = c.gpr[2];
                c.gpr[4] = c.gpr[1];
            }
            _ => {
                c.eip = geip;
                c.shadow = true;
            }
        }
    }

    fn site_exit(&mut self, site: usize) -> Result<(), Stop> {
        let Some(kind) = self.tc.sites.get(site) else {
            return Err(Stop::Unsupported { eip: self.m.cpu.eip, what: format!("exit from unknown translator site {site}") });
        };
        // Copy what is needed out of the site without allocating (this is the hot path).
        let kind = match kind {
            SiteKind::Emulate(i, fill, agnostic) => {
                let (i, fill, agnostic): (iced_x86::Instruction, bool, bool) = (**i, *fill, *agnostic);
                self.m.cpu.eip = i.ip32();
                if let Some(p) = self.exit_profile.as_mut() {
                    *p.entry((i.mnemonic(), self.m.cpu.cpl)).or_insert(0) += 1;
                }
                let from = self.key();
                self.m.exec(&i)?;
                if fill {
                    // Miss path of an inline lookup: enter the target in the table, if the
                    // branch stayed in the same context and did not fault.
                    let to = self.key();
                    if to.context() == from.context()
                        && self.m.cpu.eip != i.ip32()
                    {
                        self.fill_lookup(to, agnostic)?;
                    }
                }
                return Ok(());
            }
            SiteKind::SegLoad(i) => {
                let i: iced_x86::Instruction = **i;
                self.m.cpu.eip = i.ip32();
                if let Some(p) = self.exit_profile.as_mut() {
                    *p.entry((i.mnemonic(), self.m.cpu.cpl)).or_insert(0) += 1;
                }
                self.m.exec(&i)?;
                if self.m.cpu.eip == i.next_ip32() && self.m.cpu.cpl == 0 {
                    let s = [Sreg::Es, Sreg::Cs, Sreg::Ss, Sreg::Ds, Sreg::Fs, Sreg::Gs];
                    let k = crate::translate::inline_seg_load(&i).expect("an inline segment load");
                    self.fill_seg_load(s[k as usize])?;
                }
                return Ok(());
            }
            SiteKind::Fpu { eip, sse } => SiteKind::Fpu { eip: *eip, sse: *sse },
            SiteKind::FetchFault { eip } => SiteKind::FetchFault { eip: *eip },
            SiteKind::Dispatch { key } => SiteKind::Dispatch { key: *key },
            SiteKind::StiPending { next } => SiteKind::StiPending { next: *next },
            SiteKind::SysexitMiss => SiteKind::SysexitMiss,
            SiteKind::Link { target, branch_eip, patch, undo_push } => {
                SiteKind::Link { target: *target, branch_eip: *branch_eip, patch: *patch, undo_push: *undo_push }
            }
        };
        match kind {
            SiteKind::Emulate(..) | SiteKind::SegLoad(..) => unreachable!(),
            SiteKind::Fpu { eip, sse } => {
                self.m.cpu.eip = eip;
                self.m.fpu_unavailable(sse)
            }
            SiteKind::FetchFault { eip } => {
                // Beyond the CS limit -> #GP(0); otherwise a page fault on the bytes.
                self.m.cpu.eip = eip;
                let cs = *self.m.cpu.sreg(Sreg::Cs);
                let lin = cs.desc.base.wrapping_add(eip);
                let mut b = [0u8; 16];
                let n = self.m.fetch_bytes(lin, &mut b);
                let mut d = Decoder::with_ip(32, &b[..n], eip as u64, DecoderOptions::NONE);
                let i = d.decode();
                let complete = d.last_error() != iced_x86::DecoderError::NoMoreBytes;
                if eip > cs.desc.limit() || (complete && eip as u64 + i.len() as u64 - 1 > cs.desc.limit() as u64) {
                    return self.m.raise(Fault::gp(0));
                }
                let user = self.m.cpu.cpl == 3;
                match self.m.translate(lin.wrapping_add(n as u32), false, user, true) {
                    Err(f) => self.m.raise(f),
                    Ok(_) => Ok(()), // the mapping changed meanwhile: just retry
                }
            }
            SiteKind::StiPending { next } => {
                // IF is already set (virtual-flags page, read back at the exit).
                self.m.cpu.eip = next;
                self.m.cpu.shadow = true;
                Ok(())
            }
            SiteKind::SysexitMiss => {
                // The inline SYSEXIT is done (CPL3, read back from SS); EDX had no entry
                // in the CPL3 lookup table: translate it and enter it there.
                self.m.cpu.eip = self.m.cpu.gpr[2];
                if let Some(p) = self.exit_profile.as_mut() {
                    *p.entry((Mnemonic::Sysexit, 3)).or_insert(0) += 1;
                }
                let to = self.key();
                self.fill_lookup(to, true)
            }
            SiteKind::Dispatch { key } => {
                self.stats.dispatch_exits += 1;
                // An invalidated block was entered (through a lookup-table entry or a
                // chain): translate it afresh and repair the table entry, so that returns
                // and indirect jumps to it do not keep exiting here.
                // The block may have been shared by all FS/GS contexts: translate for the
                // current one, and repair the table only with a block valid for the key.
                self.m.cpu.eip = key.eip();
                let cur = self.key();
                let flushes = self.tc.stats.flushes;
                let same_ctx = cur.agnostic() == key.agnostic();
                let h = self.translate(if same_ctx { cur } else { key })?;
                if self.tc.stats.flushes == flushes {
                    let (tc, _) = self.m.mem.host.space_mut().tc_and_ram();
                    if self.tc.lookup(&key) == Some(h) {
                        self.tc.fill_table(tc, &key, h);
                        if key != key.agnostic() {
                            self.tc.fill_table_ctx(tc, &key, h);
                        }
                    } else if same_ctx && key == key.agnostic() && self.tc.lookup(&cur) == Some(h) {
                        self.tc.fill_table_ctx(tc, &cur, h);
                    }
                }
                Ok(())
            }
            SiteKind::Link { target, branch_eip, patch, undo_push } => {
                self.stats.link_exits += 1;
                if target.eip() > target.cs_limit {
                    if undo_push {
                        self.m.cpu.gpr[4] = self.m.cpu.gpr[4].wrapping_add(4);
                    }
                    self.m.cpu.eip = branch_eip;
                    return self.m.raise(Fault::gp(0));
                }
                self.m.cpu.eip = target.eip();
                let cur = self.key();
                let same_ctx = cur.agnostic() == target.agnostic();
                let h = self.translate(if same_ctx { cur } else { target })?;
                // The site may belong to a block flushed by that translation, and only a
                // cached translation may be chained to. A block shared by all FS/GS
                // contexts chains to one made for the current context only until the
                // context changes.
                let site_ok = self.tc.sites.get(site).is_some_and(|s| matches!(s, SiteKind::Link { patch: p, .. } if *p == patch));
                let valid = self.tc.lookup(&target) == Some(h);
                let ctx_only = !valid && same_ctx && target == target.agnostic() && self.tc.lookup(&cur) == Some(h);
                if site_ok && (valid || ctx_only) {
                    let (tc, _) = self.m.mem.host.space_mut().tc_and_ram();
                    if ctx_only {
                        self.tc.patch_link_ctx(tc, patch, &cur);
                    }
                    self.tc.patch_link(tc, patch, h, target, branch_eip, undo_push);
                }
                Ok(())
            }
        }
    }

    /// The guest's DS (host selector) saved by the inline flags sequence that a signal
    /// interrupted at `host_eip`.
    fn saved_ds(&mut self, host_eip: u32) -> Option<u16> {
        let (_, _, sc) = self.tc.guest_eip_of(host_eip)?;
        self.esp_slot(sc.ds_at?, 2).map(|v| v as u16)
    }

    /// `size` bytes at SS:ESP + `at`, where an inline sequence saved guest state.
    fn esp_slot(&mut self, at: i8, size: u32) -> Option<u32> {
        let ss = self.m.cpu.sreg(Sreg::Ss).desc.base;
        self.m.read_sys(ss.wrapping_add(self.m.cpu.gpr[4]).wrapping_add(at as i32 as u32), size).ok()
    }

    /// A fault in translated code, delivered by the host as a signal.
    fn host_fault(&mut self, trapno: u32, err: u32, cr2: u64, host_eip: u32) -> Result<(), Stop> {
        let Some((_key, geip, scratch)) = self.tc.guest_eip_of(host_eip) else {
            return Err(Stop::Unsupported {
                eip: self.m.cpu.eip,
                what: format!("host fault {trapno} at {host_eip:#x} outside translated code"),
            });
        };
        self.m.cpu.eip = geip;
        let in_forced = self.tls_forced_block.is_some() && self.tc.block_entry(host_eip) == self.tls_forced_block;
        if let Some((r, at)) = scratch.saved {
            // Inside a TLS access: the guest's register comes back first.
            self.restore_saved(r, at);
        }
        if scratch.scratch_store {
            // A TLS sequence's save below ESP: the guest does not write there. If the guest
            // maps the page, map it; otherwise run the instruction once without the
            // sequence.
            let write = ringfold_arch::paging::Access { write: true, user: self.m.cpu.cpl == 3, fetch: false };
            let lin = self.m.cpu.sreg(Sreg::Ss).desc.base.wrapping_add(self.m.cpu.gpr[4]).wrapping_sub(8);
            if trapno == 14 && self.m.mem.host_paged && cr2 as u32 == lin && self.m.peek_walk(lin, write).is_ok() {
                if let Some(r) = self.shadow_fault(err, lin) {
                    return r;
                }
            }
            if in_forced {
                return Err(Stop::Unsupported { eip: geip, what: format!("a GS access that ringfold cannot emulate, with no writable stack 8 bytes below ESP {:#x} (host trap {trapno})", self.m.cpu.gpr[4]) });
            }
            self.tls_once = Some(false);
            return Ok(());
        }
        if scratch.done != 0 {
            self.complete_fast(scratch, geip);
            return Ok(());
        }
        if scratch.in_seq {
            return self.rewind_and_interpret(scratch);
        }
        match trapno {
            0 => self.m.raise(Fault { vector: 0, error: None }),
            6 => self.m.raise(Fault::ud()),
            16 => self.m.raise(Fault { vector: 16, error: None }),
            17 => self.m.raise(Fault { vector: 17, error: Some(0) }),
            19 => self.m.raise(Fault { vector: 19, error: None }),
            11..=14 => self.memory_fault(trapno, err, cr2 as u32, in_forced),
            _ => Err(Stop::Unsupported { eip: geip, what: format!("unexpected host trap {trapno} in guest code") }),
        }
    }

    /// A fault inside an inline lookup sequence: undo its scratch pushes and interpret the
    /// guest instruction (the interpreter raises the guest's own fault, if any).
    fn rewind_and_interpret(&mut self, sc: crate::translate::Scratch) -> Result<(), Stop> {
        self.rewind_scratch(sc);
        let i = self.decode_current();
        self.m.exec(&i)?;
        if i.mnemonic() == Mnemonic::Sysenter {
            // The disabled inline SYSENTER faulted on purpose: enable it.
            self.fill_fast_enter()?;
        }
        Ok(())
    }

    /// A TLS access was interrupted (fault or kick): the guest's GPR `r` comes back from
    /// where the sequence saved it, ESP + `at` (see `translate::emit_tls`).
    fn restore_saved(&mut self, r: u8, at: i8) {
        if let Some(v) = self.esp_slot(at, 4) {
            self.m.cpu.gpr[r as usize] = v;
        }
    }

    /// Undoes the scratch pushes of an inline lookup sequence (see `Scratch`).
    fn rewind_scratch(&mut self, sc: crate::translate::Scratch) {
        if sc.if_seq {
            let esp = self.m.cpu.gpr[4];
            for (r, at) in [(0, sc.eax_at), (1, sc.ecx_at), (2, sc.edx_at), (3, sc.ebx_at)] {
                if let Some(o) = at {
                    self.restore_saved(r, o);
                }
            }
            if let Some(o) = sc.flags_at {
                if let Some(f) = self.esp_slot(o, 4) {
                    self.m.cpu.eflags = (self.m.cpu.eflags & !ARITH) | (f & ARITH);
                }
            }
            self.m.cpu.gpr[4] = esp.wrapping_add(sc.undo as u32);
            return;
        }
        let esp = self.m.cpu.gpr[4];
        let guest_esp = esp.wrapping_add(sc.reserve as u32 + 4 * sc.pushes as u32);
        let ss = self.m.cpu.sreg(Sreg::Ss).desc.base;
        let slot = |k: u32| ss.wrapping_add(guest_esp.wrapping_sub(sc.reserve as u32 + 4 * k));
        if sc.pushes >= 1 {
            self.m.cpu.gpr[0] = self.m.read_lin(slot(1), 4).unwrap_or(0);
        }
        if sc.pushes >= 2 {
            self.m.cpu.gpr[1] = self.m.read_lin(slot(2), 4).unwrap_or(0);
        }
        if sc.pushes >= 3 {
            self.m.cpu.gpr[2] = self.m.read_lin(slot(3), 4).unwrap_or(0);
        }
        self.m.cpu.gpr[4] = guest_esp;
    }

    /// Decodes the guest instruction at CS:EIP (it was just executing, so it is fetchable).
    fn decode_current(&mut self) -> iced_x86::Instruction {
        let cs = *self.m.cpu.sreg(Sreg::Cs);
        let mut bytes = [0u8; 16];
        let n = self.m.fetch_bytes(cs.desc.base.wrapping_add(self.m.cpu.eip), &mut bytes);
        Decoder::with_ip(32, &bytes[..n], self.m.cpu.eip as u64, DecoderOptions::NONE).decode()
    }

    /// A host page fault with shadow paging on: walk the guest's tables for the access.
    /// Returns None when the access must be emulated (the page cannot be mapped natively).
    fn shadow_fault(&mut self, err: u32, lin: u32) -> Option<Result<(), Stop>> {
        if !(ringfold_host::layout::LOW_LIMIT..MONITOR_START).contains(&lin) {
            return None;
        }
        let acc = ringfold_arch::paging::Access { write: err & 2 != 0, user: self.m.cpu.cpl == 3, fetch: false };
        let t = match self.m.walk(lin, acc) {
            Ok(t) => t,
            Err(pf) => {
                self.m.cpu.cr2 = pf.cr2;
                return Some(self.m.raise(Fault { vector: 14, error: Some(pf.error_code) }));
            }
        };
        if t.pa + 4096 > self.m.mem.ram_size as u64 {
            return None; // not RAM (MMIO / unassigned)
        }
        let pa = (t.pa >> 12) as u32;
        let r = (|| {
            if acc.write && self.m.mem.mmu.is_table(pa) {
                // A paging structure a shadow mapping came from: the write goes ahead;
                // what it changed is compared at the next address-space switch.
                self.m.mem.with_mmu(|mmu, mp| mmu.table_written(mp, pa))?;
                if !self.m.mem.mmu.is_code_page(pa) && self.m.mem.mmu.mapped(lin >> 12).is_some_and(|m| m.pa == pa && m.writable) {
                    // Only the protection was in the way (the mapping is current: its
                    // tables are protected too). Re-installing would redo a whole large
                    // page run: Linux's text_poke writes a page table through the 4 MiB
                    // direct map at every patch.
                    return Ok(());
                }
            }
            if acc.write && self.m.mem.mmu.is_code_page(pa) {
                // Self-modifying code: drop the translations; the store runs from a
                // one-shot translation so that re-translating cannot re-protect the page
                // before the store completes.
                self.stats.smc_faults += 1;
                self.single_once = true;
                self.code_written(pa)?;
            }
            self.stats.shadow_faults += 1;
            if self.m.mem.mmu.mapped_pages() >= MAX_SHADOW_PAGES {
                // Eviction: stay far below vm.max_map_count whatever the guest's layout (in
                // the worst case every page is its own host VMA). Dropping shadow mappings is
                // invisible to the guest: they refault from its page tables.
                self.stats.evictions += 1;
                let (space, pae) = (self.space_key(), self.m.cpu.cr4 & cr4::PAE != 0);
                self.m.mem.with_mmu(|mmu, mp| {
                    mmu.flush(mp);
                    mmu.set_space(space, pae);
                })?;
            }
            let pge = self.m.cpu.cr4 & cr4::PGE != 0;
            let lp = lin >> 12;
            if t.page_size > 4096 {
                // A large page maps contiguously: map all of it that is RAM and below the
                // monitor region in one host call (the Linux direct map case).
                let base_lp = t.page_base_lin >> 12;
                let base_pa = (t.page_base_pa >> 12) as u32;
                let ram_pages = self.m.mem.ram_size >> 12;
                let lo = base_lp.max(ringfold_host::layout::LOW_LIMIT >> 12);
                let hi = (base_lp + (t.page_size >> 12)).min(MONITOR_START >> 12);
                let hi = hi.min(base_lp + ram_pages.saturating_sub(base_pa));
                if lo <= lp && lp < hi {
                    // Only the unmapped pages around the fault: after a single page went
                    // (a stale entry, INVLPG, a code page written) the rest of the large
                    // page is still mapped, and redoing it would cost one host call per
                    // read-only page in it (code, page tables).
                    let mmu = &self.m.mem.mmu;
                    let lo = (lo..lp).rev().take_while(|&p| mmu.mapped(p).is_none()).last().unwrap_or(lp);
                    let hi = (lp + 1..hi).take_while(|&p| mmu.mapped(p).is_none()).last().map_or(lp + 1, |p| p + 1);
                    let pa0 = base_pa + (lo - base_lp);
                    self.m.mem.with_mmu(|mmu, mp| mmu.install_run(mp, lo, pa0, hi - lo, &t, acc.write, pge))?;
                } else {
                    self.m.mem.with_mmu(|mmu, mp| mmu.install(mp, lp, &t, acc.write, pge))?;
                }
            } else {
                // Following pages of the same page table that the guest already accessed
                // (A=1), with the same rights and physically contiguous, map in the same
                // host call: no guest-visible state changes, fewer faults later.
                let n = self.run_after(lp, &t, acc);
                self.m.mem.with_mmu(|mmu, mp| mmu.install_run(mp, lp, pa, n, &t, acc.write, pge))?;
                self.note_switch_fault(lp);
            }
            if acc.write && !self.m.mem.mmu.mapped(lp).is_some_and(|m| m.writable) {
                // A write the guest allows but the host mapping cannot (CPL0 writing a
                // read-only user page with CR0.WP=0): run it once from a one-shot
                // translation with the page writable, then drop the mapping again.
                self.m.mem.with_mmu(|_, mp| mp.protect(lp, true))?;
                self.single_once = true;
                self.unmap_after_single = Some(lp);
            }
            Ok(())
        })();
        Some(r)
    }

    /// The current address space's run ends (a switch to `next`): remembers whether it was
    /// short, and returns whether `next`'s last run was (then the switch to it is lazy).
    fn end_run(&mut self, next: u32) -> bool {
        let old = self.m.mem.mmu.space();
        if self.space_since.elapsed() < SHORT_RUN {
            if self.short_runs.len() >= MAX_HINTED_SPACES {
                self.short_runs.clear();
            }
            self.short_runs.insert(old);
        } else {
            self.short_runs.remove(&old);
        }
        self.short_runs.contains(&next)
    }

    /// Remembers one of the first shadow faults after a switch of address space (a 4 KiB
    /// page) for prefetching at the next switch to this space.
    fn note_switch_fault(&mut self, lp: u32) {
        if self.faults_since_switch >= SWITCH_HINTS || self.m.cpu.cr0 & cr0::PG == 0 {
            return;
        }
        self.faults_since_switch += 1;
        if self.switch_hints.len() >= MAX_HINTED_SPACES {
            self.switch_hints.clear();
        }
        let h = self.switch_hints.entry(self.m.mem.mmu.space()).or_default();
        if !h.contains(&lp) {
            h.rotate_right(1);
            h[0] = lp;
        }
    }

    /// How many pages from `lp` (at least 1, at most 16) can map as one run with the
    /// rights of walk `t` (see `shadow_fault`).
    fn run_after(&mut self, lp: u32, t: &ringfold_arch::paging::Translation, acc: ringfold_arch::paging::Access) -> u32 {
        let pa = (t.pa >> 12) as u32;
        let per_table = if self.m.cpu.cr4 & cr4::PAE != 0 { 512 } else { 1024 };
        let ram_pages = self.m.mem.ram_size >> 12;
        let dirty = t.dirty || acc.write;
        let mut n = 1u32;
        while n < 16 && !(lp + n).is_multiple_of(per_table) && lp + n < MONITOR_START >> 12 && pa + n < ram_pages && self.m.mem.mmu.mapped(lp + n).is_none() {
            let a = ringfold_arch::paging::Access { write: false, user: acc.user, fetch: false };
            match self.m.peek_walk((lp + n) << 12, a) {
                Ok(u) if u.page_size == 4096
                    && (u.pa >> 12) as u32 == pa + n
                    && u.leaf_entry & ringfold_arch::paging::PTE_A != 0
                    && (u.rw, u.user, u.global, u.writable, u.table_pas) == (t.rw, t.user, t.global, t.writable, t.table_pas)
                    && (u.dirty || !(u.rw || u.writable) || !dirty) && (u.dirty == dirty || !(u.rw || u.writable)) => n += 1,
                _ => break,
            }
        }
        n
    }

    /// `in_forced`: the fault is inside a one-shot block whose TLS rewrite was forced.
    fn memory_fault(&mut self, trapno: u32, err: u32, cr2: u32, in_forced: bool) -> Result<(), Stop> {
        if self.seg_top_stale && matches!(trapno, 12 | 13) {
            // A data segment still truncated for the CPL before an inline SYSENTER: the
            // re-entry loads the shadows for this CPL, and the instruction runs again.
            return Ok(());
        }
        if trapno == 14 {
            if self.m.mem.host_paged {
                if let Some(r) = self.shadow_fault(err, cr2) {
                    return r;
                }
            } else if err & 2 != 0 && self.m.mem.mmu.is_code_page(cr2 >> 12) {
                // Paging off: the guest wrote a page holding translated code.
                self.stats.smc_faults += 1;
                self.single_once = true;
                return self.code_written(cr2 >> 12);
            }
        }
        let i = self.decode_current();
        // First: would the guest itself fault (segment checks against its own descriptors)?
        let mut f = InstructionInfoFactory::new();
        let info = f.info(&i);
        for mem in info.used_memory() {
            let seg = Sreg::from_iced(mem.segment()).unwrap_or(Sreg::Ds);
            let reg = |r: iced_x86::Register| {
                if r == iced_x86::Register::None { 0 } else { self.m.cpu.get_reg(r.number(), r.size() as u32) }
            };
            let mut off = reg(mem.base())
                .wrapping_add(reg(mem.index()).wrapping_mul(mem.scale()))
                .wrapping_add(mem.displacement() as u32);
            if mem.address_size() == iced_x86::CodeSize::Code16 {
                off &= 0xFFFF;
            }
            let write = matches!(mem.access(), OpAccess::Write | OpAccess::ReadWrite | OpAccess::CondWrite | OpAccess::ReadCondWrite);
            let size = mem.memory_size().size() as u32;
            let lin = match self.m.seg_addr(seg, off, size.max(1), write) {
                Ok(l) => l,
                Err(fault) => return self.m.raise(fault),
            };
            // Then the guest's page-level checks (a CPL3 access beyond a truncated segment
            // to a supervisor page is a guest #PF).
            if self.m.mem.host_paged {
                let user = self.m.cpu.cpl == 3;
                // An access that crosses into a faulting page reports that page's first
                // byte in CR2 (as hardware and QEMU do), not the access's last byte.
                let last = lin.wrapping_add(size.max(1) - 1);
                let second = (last >> 12 != lin >> 12).then_some(last & !0xFFF);
                for l in std::iter::once(lin).chain(second) {
                    if let Err(fault) = self.m.translate(l, write, user, false) {
                        return self.m.raise(fault);
                    }
                }
            }
        }
        // The access is legal for the guest but reaches memory the host cannot map
        // natively (page 0, non-RAM, the monitor region, a truncated segment's tail).
        if let Some(r) = self.emulate_data_access(&i) {
            return match r {
                Ok(()) => Ok(()),
                Err(f) => self.m.raise(f),
            };
        }
        // A GS access wrapping around 4 GiB (negative offsets: thread-local storage)
        // through an instruction not emulated here: once more with the GS base added at
        // run time, as CPL3 TLS accesses always are.
        if !in_forced && i.segment_prefix() == iced_x86::Register::GS && self.tls_possible() {
            self.tls_once = Some(true);
            return Ok(());
        }
        Err(Stop::Unsupported {
            eip: self.m.cpu.eip,
            what: format!(
                "`{i}` at CPL{} (SS {:#x} base {:#x} limit {:#x}, ESP {:#x}) accesses linear memory ringfold cannot map natively (host trap {trapno}, address {cr2:#x}); emulated there: MOV MOVZX MOVSX ALU TEST XCHG CMPXCHG PUSH/POP m XLAT STOS MOVS LODS",
                self.m.cpu.cpl,
                self.m.cpu.sreg(Sreg::Ss).sel,
                self.m.cpu.sreg(Sreg::Ss).desc.base,
                self.m.cpu.sreg(Sreg::Ss).desc.limit(),
                self.m.cpu.gpr[4]
            ),
        })
    }

    fn emulate_data_access(&mut self, i: &iced_x86::Instruction) -> Option<Result<(), Fault>> {
        let m = &mut self.m;
        let r = match i.mnemonic() {
            Mnemonic::Mov => {
                let size = Machine::<HostMemory>::op_size(i, 0).min(Machine::<HostMemory>::op_size(i, 1).max(1));
                let size = if i.op0_kind() == iced_x86::OpKind::Memory { i.memory_size().size() as u32 } else { size };
                m.read_op(i, 1, size).and_then(|v| m.write_op(i, 0, size, v))
            }
            Mnemonic::Movzx | Mnemonic::Movsx => {
                let src = i.memory_size().size() as u32;
                m.read_op(i, 1, src).map(|v| {
                    let v = match (i.mnemonic(), src) {
                        (Mnemonic::Movsx, 1) => v as u8 as i8 as i32 as u32,
                        (Mnemonic::Movsx, 2) => v as u16 as i16 as i32 as u32,
                        _ => v,
                    };
                    let d = i.op0_register();
                    m.cpu.set_reg(d.number(), d.size() as u32, v);
                })
            }
            Mnemonic::Add | Mnemonic::Or | Mnemonic::Adc | Mnemonic::Sbb | Mnemonic::And | Mnemonic::Sub
            | Mnemonic::Xor | Mnemonic::Cmp | Mnemonic::Test | Mnemonic::Inc | Mnemonic::Dec | Mnemonic::Neg
            | Mnemonic::Not => {
                use crate::alu::{alu, AluOp};
                let op = match i.mnemonic() {
                    Mnemonic::Add => AluOp::Add,
                    Mnemonic::Or => AluOp::Or,
                    Mnemonic::Adc => AluOp::Adc,
                    Mnemonic::Sbb => AluOp::Sbb,
                    Mnemonic::And => AluOp::And,
                    Mnemonic::Sub => AluOp::Sub,
                    Mnemonic::Xor => AluOp::Xor,
                    Mnemonic::Cmp => AluOp::Cmp,
                    Mnemonic::Test => AluOp::Test,
                    Mnemonic::Inc => AluOp::Inc,
                    Mnemonic::Dec => AluOp::Dec,
                    Mnemonic::Neg => AluOp::Neg,
                    _ => AluOp::Not,
                };
                let size = if i.op0_kind() == iced_x86::OpKind::Memory {
                    i.memory_size().size() as u32
                } else {
                    i.op0_register().size() as u32
                };
                
                (|| {
                    let a = m.read_op(i, 0, size)?;
                    let b = if i.op_count() > 1 { m.read_op(i, 1, size)? } else { 0 };
                    let cf = m.cpu.eflags & eflags::CF != 0;
                    let (res, flags, written) = alu(op, a, b, cf, size);
                    if !matches!(op, AluOp::Cmp | AluOp::Test) {
                        m.write_op(i, 0, size, res)?;
                    }
                    m.cpu.eflags = (m.cpu.eflags & !written) | (flags & written);
                    Ok(())
                })()
            }
            Mnemonic::Push if i.op0_kind() == iced_x86::OpKind::Memory => {
                let size = i.memory_size().size() as u32;
                m.read_op(i, 0, size).and_then(|v| m.push(size, v))
            }
            Mnemonic::Pop if i.op0_kind() == iced_x86::OpKind::Memory => {
                // The destination address is computed with ESP already incremented.
                let size = i.memory_size().size() as u32;
                (|| {
                    let v = m.peek(0, size)?;
                    let old = m.cpu.gpr[4];
                    m.set_sp(m.sp().wrapping_add(size));
                    m.write_op(i, 0, size, v).inspect_err(|_| m.cpu.gpr[4] = old)
                })()
            }
            // AL = [seg:EBX + AL] (the decoder's operand: base EBX or BX, index AL).
            Mnemonic::Xlatb => m.read_op(i, 0, 1).map(|v| m.cpu.set_reg(0, 1, v)),
            Mnemonic::Xchg => {
                let size = i.memory_size().size() as u32;
                let (mem_op, reg_op) = if i.op0_kind() == iced_x86::OpKind::Memory { (0, 1) } else { (1, 0) };
                (|| {
                    let mv = m.read_op(i, mem_op, size)?;
                    let rv = m.read_op(i, reg_op, size)?;
                    m.write_op(i, mem_op, size, rv)?;
                    m.write_op(i, reg_op, size, mv)
                })()
            }
            Mnemonic::Cmpxchg => {
                let size = i.memory_size().size() as u32;
                (|| {
                    let mv = m.read_op(i, 0, size)?;
                    let acc = m.cpu.get_reg(0, size);
                    let (_, flags, written) = crate::alu::alu(crate::alu::AluOp::Cmp, acc, mv, false, size);
                    if flags & eflags::ZF != 0 {
                        let src = m.read_op(i, 1, size)?;
                        m.write_op(i, 0, size, src)?;
                    } else {
                        // The destination is written back unchanged, as the CPU does.
                        m.write_op(i, 0, size, mv)?;
                        m.cpu.set_reg(0, size, mv);
                    }
                    m.cpu.eflags = (m.cpu.eflags & !written) | (flags & written);
                    Ok(())
                })()
            }
            _ => return self.m.string_data(i),
        };
        if r.is_ok() {
            self.m.cpu.eip = i.next_ip32();
        }
        Some(r)
    }
}

fn host_stop(e: ringfold_host::MemError) -> Stop {
    Stop::Unsupported { eip: 0, what: format!("host memory operation failed: {e}") }
}

/// Exit-site value the native runner's terminator reports.
const NATIVE_DONE: u32 = 0xFFFF_0000;

impl Vm {
    /// Runs raw 32-bit code at `entry` NATIVELY (untranslated, flat CS/DS/ES/SS, CPL3) from
    /// guest RAM, for the differential test's oracle. The runner appends a far jump back to
    /// the host at `end`. Returns the final GPRs and host EFLAGS, or the host trap number.
    pub fn run_native(&mut self, entry: u32, end: u32, gpr: [u32; 8], eflags: u32) -> Result<([u32; 8], u32), u32> {
        self.sync().expect("sync");
        let stub_at = end + 7;
        let mut t = [0u8; 7];
        t[0] = 0xEA;
        t[1..5].copy_from_slice(&stub_at.to_le_bytes());
        t[5..7].copy_from_slice(&HOST_CS64.to_le_bytes());
        let mut s = [0u8; ringfold_host::EXIT_STUB_LEN];
        ringfold_host::write_exit_stub(&mut s, NATIVE_DONE);
        self.m.mem.write(end, &t);
        self.m.mem.write(stub_at, &s);
        self.sync().expect("sync");
        let first = entry & !0xFFF;
        let len = ((stub_at + s.len() as u32 + 0xFFF) & !0xFFF) - first;
        let space = self.m.mem.host.space_mut();
        space.protect_low(first, len, true).expect("mprotect");
        let ds = ldt_selector(ringfold_host::FLAT_DS_SLOT);
        let ctx = self.m.mem.host.ctx_mut();
        ctx.gpr = gpr;
        ctx.eflags = eflags;
        (ctx.ds, ctx.es, ctx.ss, ctx.fs, ctx.gs) = (ds, ds, ds, 0, 0);
        ctx.cs = ldt_selector(TC_CS_SLOT);
        ctx.eip = entry;
        self.m.mem.host.enter();
        let ctx = self.m.mem.host.ctx_mut().clone();
        self.m.mem.host.space_mut().protect_low(first, len, false).expect("mprotect");
        if ctx.exit_site == NATIVE_DONE { Ok((ctx.gpr, ctx.eflags)) } else { Err(ctx.trapno) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::SegReg;
    use ringfold_arch::descriptor::types;

    /// Fills slot `k` as `Shadows::selector` would (without the host LDT write).
    fn put(s: &mut Shadows, k: usize, r: SegReg, top: u32) -> u16 {
        let slot = FIRST_SHADOW_SLOT + k as u16;
        s.slots[k] = Some((r, top));
        s.by_seg.insert((r, top), slot);
        ldt_selector(slot)
    }

    #[test]
    fn user_selectors_map_to_the_cpl3_truncation() {
        let mut s = Shadows::new();
        let user_ds = SegReg::flat(0x7b, types::DATA_RW, 3);
        let kernel_ds = SegReg::flat(0x68, types::DATA_RW, 0);
        let tls = SegReg { desc: ringfold_arch::descriptor::Descriptor { base: 0x0804_0000, ..user_ds.desc }, sel: 0x33, valid: true };
        let ds0 = put(&mut s, 0, user_ds, MONITOR_START);
        let ds3 = put(&mut s, 5, user_ds, 0xC000_0000);
        let k0 = put(&mut s, 1, kernel_ds, MONITOR_START);
        let t3 = put(&mut s, 2, tls, 0xC000_0000);
        s.null_installed[2] = true;
        let map: HashMap<u16, u32> = s.user_selectors(0xC000_0000).collect();
        assert_eq!(map.len(), fastsys::USER_SEL_ENTRIES);
        assert_eq!(map[&ds0], ds3 as u32, "kernel-top shadow of the user DS -> its user-top shadow");
        assert_eq!(map[&ds3], ds3 as u32, "already truncated for CPL3");
        assert_eq!(map[&t3], t3 as u32);
        assert_eq!(map[&k0], fastsys::USER_SEL_MISS, "no CPL3 shadow of the kernel DS yet: exit");
        assert_eq!(map[&0], 0, "null stays null");
        let null3 = ldt_selector(NULL_SLOTS + 2);
        assert_eq!(map[&null3], null3 as u32, "null RPL3 stand-in");
        assert_eq!(map[&ldt_selector(NULL_SLOTS)], fastsys::USER_SEL_MISS, "stand-in not installed");
        for h in [ringfold_host::VCPU_SEL, ldt_selector(TC_CS_SLOT), ldt_selector(SYSEXIT_SS_SLOT), 0x2b, 0x33] {
            assert_eq!(map[&h], fastsys::USER_SEL_MISS, "{h:#x} is never a data segment");
        }
        // Another user_top: the old CPL3 shadows are not truncated right any more.
        let map: HashMap<u16, u32> = s.user_selectors(0xB000_0000).collect();
        assert_eq!(map[&ds0], fastsys::USER_SEL_MISS);
        assert_eq!(map[&ds3], fastsys::USER_SEL_MISS);
    }
}
