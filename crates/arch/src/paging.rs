//! Guest page-table walker for 32-bit paging and PAE paging (SDM Vol. 3A
//! §4.3, §4.4), with the access-rights rules of §4.6, the page-fault error
//! code of §4.7, the accessed/dirty flags of §4.8 and global pages
//! (§4.10.2.2).
//!
//! The walker is pure: it reads (and, if asked, updates) guest page tables
//! through the [`PhysMem`] trait and keeps no state. There is no TLB here.
//!
//! Model (the CPU ringfold presents to the guest):
//! * MAXPHYADDR is [`MAXPHYADDR`] (36). PAE entries' bits 62:36 are reserved.
//! * PSE-36 is supported: a 4-MiB PDE supplies physical-address bits
//!   (M-1):32 in its bits (M-20):13 with M = min(MAXPHYADDR, 40) = 36, i.e.
//!   PA bits 35:32 come from PDE bits 16:13 and PDE bits 21:17 are reserved.
//! * No SMEP, SMAP, protection keys, PAT checks or 4-level paging.
//! * 32-bit paging has no execute-disable bit: EFER.NXE is ignored there
//!   (and the I/D error-code bit is never set, per §4.7).
//!
//! Interpretation choices that the SDM leaves open or that differ between
//! hardware, the SDM and QEMU are documented on the items they affect:
//! [`walk`] (PDPTE handling, order of checks), [`AdUpdate`] (accessed flags
//! on a faulting walk) and [`PageFault`] (error code of reserved-bit faults).

use crate::exception::Exception;

/// Physical-address width of the modelled CPU.
pub const MAXPHYADDR: u32 = 36;

/// Present.
pub const PTE_P: u64 = 1 << 0;
/// Read/write.
pub const PTE_RW: u64 = 1 << 1;
/// User/supervisor.
pub const PTE_US: u64 = 1 << 2;
/// Page-level write-through.
pub const PTE_PWT: u64 = 1 << 3;
/// Page-level cache disable.
pub const PTE_PCD: u64 = 1 << 4;
/// Accessed.
pub const PTE_A: u64 = 1 << 5;
/// Dirty (leaf entries only).
pub const PTE_D: u64 = 1 << 6;
/// Page size (PDEs); PAT (4-KiB PTEs).
pub const PTE_PS: u64 = 1 << 7;
/// Global (leaf entries only).
pub const PTE_G: u64 = 1 << 8;
/// PAT bit of a large-page PDE.
pub const PTE_LARGE_PAT: u64 = 1 << 12;
/// Execute-disable (PAE PDEs and PTEs, with EFER.NXE).
pub const PTE_XD: u64 = 1 << 63;

/// Page-fault error code: the fault was not caused by a not-present entry.
pub const PF_P: u32 = 1 << 0;
/// Page-fault error code: the access was a write.
pub const PF_W: u32 = 1 << 1;
/// Page-fault error code: the access was a user-mode access.
pub const PF_U: u32 = 1 << 2;
/// Page-fault error code: a reserved bit was set in a paging-structure entry.
pub const PF_RSVD: u32 = 1 << 3;
/// Page-fault error code: instruction fetch (with PAE paging and EFER.NXE).
pub const PF_ID: u32 = 1 << 4;

/// 4 KiB.
pub const SIZE_4K: u32 = 1 << 12;
/// 2 MiB (PAE large page).
pub const SIZE_2M: u32 = 1 << 21;
/// 4 MiB (32-bit paging large page, CR4.PSE).
pub const SIZE_4M: u32 = 1 << 22;

/// "No table at this level" marker in [`Translation::table_pas`].
pub const NO_TABLE: u64 = u64::MAX;

/// All physical-address bits the model implements.
const PHYS_MASK: u64 = (1 << MAXPHYADDR) - 1;
/// Address field of a PAE entry (bits M-1:12).
const PAE_ADDR: u64 = PHYS_MASK & !0xfff;
/// PAE PDE/PTE bits 62:M.
const PAE_HIGH_RSVD: u64 = !PHYS_MASK & !PTE_XD;
/// PAE PDPTE reserved bits: 2:1, 8:5 and 63:M (there is no XD in a PAE PDPTE).
const PDPTE_RSVD: u64 = 0b1_1110_0110 | !PHYS_MASK;
/// Bits 20:13 of a 2-MiB PDE.
const PDE_2M_RSVD: u64 = ((1 << 21) - 1) & !((1 << 13) - 1);
/// M for PSE-36 (SDM Table 4-4 footnote).
const PSE36_M: u32 = if MAXPHYADDR < 40 { MAXPHYADDR } else { 40 };
/// Bits (M-20):13 of a 4-MiB PDE: physical-address bits (M-1):32.
const PDE_4M_HIGH: u32 = ((1 << (PSE36_M - 32)) - 1) << 13;
/// Bits 21:(M-19) of a 4-MiB PDE (reserved).
const PDE_4M_RSVD: u32 = ((1 << 22) - 1) & !((1 << (PSE36_M - 32 + 13)) - 1);

/// Guest-physical memory as seen by the page walker. Addresses may exceed
/// 4 GiB (up to 2^MAXPHYADDR); the implementation decides what non-RAM reads
/// return. Entries are naturally aligned: u32 at multiples of 4 (32-bit
/// paging), u64 at multiples of 8 (PAE).
pub trait PhysMem {
    /// Reads a 32-bit little-endian value.
    fn read_u32(&mut self, pa: u64) -> u32;
    /// Reads a 64-bit little-endian value.
    fn read_u64(&mut self, pa: u64) -> u64;
    /// Writes a 32-bit value (A/D updates of 32-bit paging entries).
    fn write_u32(&mut self, pa: u64, v: u32);
    /// Writes a 64-bit value (A/D updates of PAE entries; the whole entry is
    /// written back with only A and/or D changed).
    fn write_u64(&mut self, pa: u64, v: u64);
}

/// The control-register bits that select and parameterize paging. CR0.PG is
/// assumed to be 1: the caller does not walk when paging is off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PagingMode {
    /// CR4.PAE: PAE paging instead of 32-bit paging.
    pub pae: bool,
    /// CR4.PSE: 4-MiB pages with 32-bit paging. Ignored with PAE (2-MiB pages
    /// are always allowed).
    pub pse: bool,
    /// IA32_EFER.NXE: enables the XD bit. Only meaningful with PAE; with
    /// 32-bit paging it is ignored.
    pub nxe: bool,
    /// CR0.WP: supervisor writes honour R/W.
    pub wp: bool,
    /// CR4.PGE: the G bit of leaf entries is honoured.
    pub pge: bool,
}

impl PagingMode {
    /// CR0.WP.
    pub const CR0_WP: u32 = 1 << 16;
    /// CR4.PSE.
    pub const CR4_PSE: u32 = 1 << 4;
    /// CR4.PAE.
    pub const CR4_PAE: u32 = 1 << 5;
    /// CR4.PGE.
    pub const CR4_PGE: u32 = 1 << 7;
    /// IA32_EFER.NXE.
    pub const EFER_NXE: u64 = 1 << 11;

    /// Extracts the paging parameters from CR0, CR4 and IA32_EFER.
    pub fn from_regs(cr0: u32, cr4: u32, efer: u64) -> PagingMode {
        PagingMode {
            pae: cr4 & Self::CR4_PAE != 0,
            pse: cr4 & Self::CR4_PSE != 0,
            nxe: efer & Self::EFER_NXE != 0,
            wp: cr0 & Self::CR0_WP != 0,
            pge: cr4 & Self::CR4_PGE != 0,
        }
    }

    /// Whether the XD bit is in effect (PAE paging with EFER.NXE = 1).
    pub fn xd_enabled(&self) -> bool {
        self.pae && self.nxe
    }
}

/// One linear-address access. At most one of `write` and `fetch` should be
/// set; if both are, the access is treated as an instruction fetch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Access {
    /// Data write (including the write half of a read-modify-write).
    pub write: bool,
    /// User-mode access: CPL 3 and not an implicit supervisor access.
    /// Implicit supervisor accesses (descriptor tables, TSS, ...) are
    /// `user = false` even at CPL 3.
    pub user: bool,
    /// Instruction fetch.
    pub fetch: bool,
}

impl Access {
    /// A data read.
    pub fn read(user: bool) -> Access {
        Access {
            write: false,
            user,
            fetch: false,
        }
    }
    /// A data write.
    pub fn write(user: bool) -> Access {
        Access {
            write: true,
            user,
            fetch: false,
        }
    }
    /// An instruction fetch.
    pub fn fetch(user: bool) -> Access {
        Access {
            write: false,
            user,
            fetch: true,
        }
    }
    /// A data write (and not a fetch).
    fn is_write(&self) -> bool {
        self.write && !self.fetch
    }
}

/// When [`walk`] writes accessed/dirty flags back into the guest's tables.
///
/// In every mode the dirty flag is only set in the leaf entry, only for a
/// permitted write, and the leaf's accessed flag only for a permitted access.
/// PAE PDPTEs have no accessed flag (bit 5 is reserved) and are never
/// written. Entries whose flags are already set are not written at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdUpdate {
    /// Never write (debugger lookups, probes).
    None,
    /// Write only when the walk succeeds; a faulting walk leaves memory
    /// untouched. This is the default model for ringfold.
    OnSuccess,
    /// What hardware (SDM §4.8: "whenever the processor uses a
    /// paging-structure entry") and QEMU TCG do: the accessed flag of a
    /// non-leaf PDE is set as soon as the PDE has passed its present and
    /// reserved-bit checks and is used to read the PTE, even if the walk then
    /// faults at the PTE or on access rights.
    AsWalked,
}

/// A successful translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Translation {
    /// Physical address of the accessed byte.
    pub pa: u64,
    /// Size of the page: [`SIZE_4K`], [`SIZE_2M`] or [`SIZE_4M`].
    pub page_size: u32,
    /// Linear address of the start of the page.
    pub page_base_lin: u32,
    /// Physical address of the start of the page.
    pub page_base_pa: u64,
    /// Whether a write with the privilege of the walked access would be
    /// permitted: R/W = 1 at every level, or a supervisor access with
    /// CR0.WP = 0.
    pub writable: bool,
    /// R/W = 1 in every PDE and PTE used (raw, independent of CR0.WP).
    pub rw: bool,
    /// U/S = 1 in every PDE and PTE used.
    pub user: bool,
    /// XD = 1 in some PDE or PTE used, with PAE paging and EFER.NXE = 1.
    pub nx: bool,
    /// G = 1 in the leaf entry and CR4.PGE = 1.
    pub global: bool,
    /// D flag of the leaf entry after the walk (including a D just set).
    pub dirty: bool,
    /// Physical address of the leaf entry (PTE, or PDE of a large page).
    pub leaf_entry_pa: u64,
    /// Value of the leaf entry after the walk (zero-extended with 32-bit
    /// paging).
    pub leaf_entry: u64,
    /// Base physical addresses of the paging structures walked: PDPT (the
    /// 32-byte table at `CR3[31:5]`; not page-aligned), page directory, page
    /// table. [`NO_TABLE`] where a level was not used (PDPT with 32-bit
    /// paging, page table for large pages).
    pub table_pas: [u64; 3],
}

/// A page fault to deliver: vector 14, CR2 = `cr2`, with `error_code`.
///
/// Reserved-bit faults have both P and RSVD set (SDM §4.7: "bit 3 of the
/// error code can be set only if bit 0 is also set"). Current QEMU TCG
/// reports them without P; this walker follows the SDM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PageFault {
    /// Faulting linear address (the value for CR2).
    pub cr2: u32,
    /// Error code: [`PF_P`] | [`PF_W`] | [`PF_U`] | [`PF_RSVD`] | [`PF_ID`].
    pub error_code: u32,
}

impl PageFault {
    /// The exception vector (#PF).
    pub const VECTOR: Exception = Exception::PF;
}

/// A present PAE PDPTE with a reserved bit set, found when loading the
/// PDPTE registers (MOV to CR3/CR0/CR4 with PAE paging): the instruction
/// raises #GP(0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BadPdpte {
    /// Which of the four PDPTEs (0..=3).
    pub index: usize,
    /// Its value.
    pub entry: u64,
}

/// Index of the PDPTE (PAE only): linear-address bits 31:30.
pub fn pdpte_index(lin: u32) -> usize {
    (lin >> 30) as usize
}

/// Index of the PDE: bits 31:22 (32-bit paging) or 29:21 (PAE).
pub fn pde_index(pae: bool, lin: u32) -> usize {
    if pae {
        ((lin >> 21) & 0x1ff) as usize
    } else {
        (lin >> 22) as usize
    }
}

/// Index of the PTE: bits 21:12 (32-bit paging) or 20:12 (PAE).
pub fn pte_index(pae: bool, lin: u32) -> usize {
    if pae {
        ((lin >> 12) & 0x1ff) as usize
    } else {
        ((lin >> 12) & 0x3ff) as usize
    }
}

/// Physical address of the page directory (32-bit paging) or of the PDPT
/// (PAE) designated by CR3.
pub fn cr3_table(pae: bool, cr3: u32) -> u64 {
    if pae {
        u64::from(cr3 & !0x1f)
    } else {
        u64::from(cr3 & !0xfff)
    }
}

/// Reads and checks the four PDPTEs that a MOV to CR3 (or a MOV to CR0/CR4
/// that enables PAE paging) loads into the PDPTE registers (SDM §4.4.1).
/// A present PDPTE with a reserved bit set makes that instruction raise
/// #GP(0); not-present PDPTEs are not checked.
///
/// [`walk`] does not use the returned values: it re-reads the PDPT on every
/// walk (like QEMU; see [`walk`]).
pub fn load_pdptes<M: PhysMem + ?Sized>(mem: &mut M, cr3: u32) -> Result<[u64; 4], BadPdpte> {
    let base = cr3_table(true, cr3);
    let mut out = [0u64; 4];
    for (index, slot) in out.iter_mut().enumerate() {
        let entry = mem.read_u64(base + 8 * index as u64);
        if entry & PTE_P != 0 && entry & PDPTE_RSVD != 0 {
            return Err(BadPdpte { index, entry });
        }
        *slot = entry;
    }
    Ok(out)
}

/// Access-rights check (SDM §4.6, no SMEP/SMAP) for an existing translation:
/// * user accesses need U/S = 1 at every level;
/// * writes need R/W = 1 at every level, except supervisor writes with
///   CR0.WP = 0, which are always allowed;
/// * instruction fetches (user or supervisor) are refused when XD = 1 at
///   some level and XD is enabled (PAE paging with EFER.NXE = 1);
/// * supervisor reads are always allowed.
///
/// Uses the raw `user`, `rw` and `nx` fields, so a translation obtained
/// with one access can be checked against another (and another CR0.WP).
pub fn permits(t: &Translation, mode: &PagingMode, acc: Access) -> bool {
    if acc.user && !t.user {
        return false;
    }
    if acc.fetch {
        return !(t.nx && mode.xd_enabled());
    }
    if acc.write && (acc.user || mode.wp) {
        return t.rw;
    }
    true
}

/// One paging-structure entry read during a walk.
#[derive(Clone, Copy)]
struct Entry {
    pa: u64,
    val: u64,
    wide: bool,
}

impl Entry {
    fn read<M: PhysMem + ?Sized>(mem: &mut M, pa: u64, wide: bool) -> Entry {
        let val = if wide {
            mem.read_u64(pa)
        } else {
            u64::from(mem.read_u32(pa))
        };
        Entry { pa, val, wide }
    }

    fn present(&self) -> bool {
        self.val & PTE_P != 0
    }

    /// Sets `bits` in the entry, writing it back only if something changes.
    fn set<M: PhysMem + ?Sized>(&mut self, mem: &mut M, bits: u64) {
        if self.val & bits != bits {
            self.val |= bits;
            if self.wide {
                mem.write_u64(self.pa, self.val);
            } else {
                mem.write_u32(self.pa, self.val as u32);
            }
        }
    }
}

/// Walks the guest page tables for `lin` and checks `acc` against them.
///
/// Order of checks, level by level from the top: a not-present entry faults
/// with P = 0 (its other bits are ignored); a present entry with a reserved
/// bit faults with P = 1, RSVD = 1; access rights are checked only once the
/// whole translation is known (P = 1, RSVD = 0). The W/R, U/S and I/D bits
/// of the error code always describe the access: I/D is set for an
/// instruction fetch iff PAE paging and EFER.NXE = 1 (SDM §4.7, no SMEP).
///
/// PAE PDPTEs: hardware loads them at MOV CR3 time, where a reserved bit
/// raises #GP(0) (use [`load_pdptes`] for that check). This walker re-reads
/// them from memory on every walk, as QEMU TCG does, and reports a present
/// PDPTE with a reserved bit (bits 2:1, 8:5, 63:36) as a reserved-bit page
/// fault. A caller that validated the PDPTEs at CR3 load only sees this if
/// the guest rewrites its PDPT without reloading CR3 (where real hardware
/// would keep using the old values).
///
/// Accessed/dirty flags are written according to `ad` (see [`AdUpdate`]).
pub fn walk<M: PhysMem + ?Sized>(
    mem: &mut M,
    cr3: u32,
    mode: &PagingMode,
    lin: u32,
    acc: Access,
    ad: AdUpdate,
) -> Result<Translation, PageFault> {
    let mut access_bits = 0;
    if acc.is_write() {
        access_bits |= PF_W;
    }
    if acc.user {
        access_bits |= PF_U;
    }
    if acc.fetch && mode.xd_enabled() {
        access_bits |= PF_ID;
    }
    let fault = |bits: u32| PageFault {
        cr2: lin,
        error_code: bits | access_bits,
    };
    let not_present = || fault(0);
    let reserved = || fault(PF_P | PF_RSVD);

    let mut table_pas = [NO_TABLE; 3];
    // The non-leaf PDE, when the leaf is a PTE.
    let mut pointer: Option<Entry> = None;
    let mut leaf: Entry;
    let page_size: u32;
    let page_base_pa: u64;

    if mode.pae {
        let xd_rsvd = if mode.nxe { 0 } else { PTE_XD };
        let pdpt = cr3_table(true, cr3);
        table_pas[0] = pdpt;
        let pdpte = Entry::read(mem, pdpt + 8 * pdpte_index(lin) as u64, true);
        if !pdpte.present() {
            return Err(not_present());
        }
        if pdpte.val & PDPTE_RSVD != 0 {
            return Err(reserved());
        }
        let pd = pdpte.val & PAE_ADDR;
        table_pas[1] = pd;
        let pde = Entry::read(mem, pd + 8 * pde_index(true, lin) as u64, true);
        if !pde.present() {
            return Err(not_present());
        }
        if pde.val & PTE_PS != 0 {
            if pde.val & (PAE_HIGH_RSVD | xd_rsvd | PDE_2M_RSVD) != 0 {
                return Err(reserved());
            }
            leaf = pde;
            page_size = SIZE_2M;
            page_base_pa = pde.val & PAE_ADDR & !u64::from(SIZE_2M - 1);
        } else {
            if pde.val & (PAE_HIGH_RSVD | xd_rsvd) != 0 {
                return Err(reserved());
            }
            let mut pde = pde;
            if ad == AdUpdate::AsWalked {
                pde.set(mem, PTE_A);
            }
            let pt = pde.val & PAE_ADDR;
            table_pas[2] = pt;
            let pte = Entry::read(mem, pt + 8 * pte_index(true, lin) as u64, true);
            if !pte.present() {
                return Err(not_present());
            }
            if pte.val & (PAE_HIGH_RSVD | xd_rsvd) != 0 {
                return Err(reserved());
            }
            pointer = Some(pde);
            leaf = pte;
            page_size = SIZE_4K;
            page_base_pa = pte.val & PAE_ADDR;
        }
    } else {
        let pd = cr3_table(false, cr3);
        table_pas[1] = pd;
        let pde = Entry::read(mem, pd + 4 * pde_index(false, lin) as u64, false);
        if !pde.present() {
            return Err(not_present());
        }
        if mode.pse && pde.val & PTE_PS != 0 {
            let v = pde.val as u32;
            if v & PDE_4M_RSVD != 0 {
                return Err(reserved());
            }
            leaf = pde;
            page_size = SIZE_4M;
            page_base_pa =
                u64::from(v & !(SIZE_4M - 1)) | (u64::from((v & PDE_4M_HIGH) >> 13) << 32);
        } else {
            // Without CR4.PSE the PS bit is ignored: always a page table.
            let mut pde = pde;
            if ad == AdUpdate::AsWalked {
                pde.set(mem, PTE_A);
            }
            let pt = pde.val & 0xffff_f000;
            table_pas[2] = pt;
            let pte = Entry::read(mem, pt + 4 * pte_index(false, lin) as u64, false);
            if !pte.present() {
                return Err(not_present());
            }
            pointer = Some(pde);
            leaf = pte;
            page_size = SIZE_4K;
            page_base_pa = pte.val & 0xffff_f000;
        }
    }

    // Combine the rights of the PDE and PTE (PDPTEs carry none).
    let levels = pointer.iter().chain(core::iter::once(&leaf));
    let (mut rw, mut user, mut xd) = (true, true, false);
    for e in levels {
        rw &= e.val & PTE_RW != 0;
        user &= e.val & PTE_US != 0;
        xd |= e.val & PTE_XD != 0;
    }
    let offset_mask = page_size - 1;
    let mut t = Translation {
        pa: page_base_pa | u64::from(lin & offset_mask),
        page_size,
        page_base_lin: lin & !offset_mask,
        page_base_pa,
        writable: rw || (!acc.user && !mode.wp),
        rw,
        user,
        nx: xd && mode.xd_enabled(),
        global: mode.pge && leaf.val & PTE_G != 0,
        dirty: false,
        leaf_entry_pa: leaf.pa,
        leaf_entry: 0,
        table_pas,
    };
    if !permits(&t, mode, acc) {
        return Err(fault(PF_P));
    }

    if ad != AdUpdate::None {
        if let Some(mut pde) = pointer {
            pde.set(mem, PTE_A);
        }
        let bits = if acc.is_write() { PTE_A | PTE_D } else { PTE_A };
        leaf.set(mem, bits);
    }
    t.dirty = leaf.val & PTE_D != 0;
    t.leaf_entry = leaf.val;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Sparse little-endian guest-physical memory (reads of untouched bytes
    /// return 0) that logs every write.
    #[derive(Default, Clone)]
    struct Mem {
        bytes: HashMap<u64, u8>,
        writes: Vec<(u64, u64)>,
    }

    impl Mem {
        fn get(&self, pa: u64, n: u64) -> u64 {
            (0..n).fold(0u64, |v, i| {
                v | u64::from(*self.bytes.get(&(pa + i)).unwrap_or(&0)) << (8 * i)
            })
        }
        fn put(&mut self, pa: u64, n: u64, v: u64) {
            for i in 0..n {
                self.bytes.insert(pa + i, (v >> (8 * i)) as u8);
            }
        }
        fn poke32(&mut self, pa: u64, v: u32) {
            self.put(pa, 4, u64::from(v));
        }
        fn poke64(&mut self, pa: u64, v: u64) {
            self.put(pa, 8, v);
        }
        fn peek32(&self, pa: u64) -> u32 {
            self.get(pa, 4) as u32
        }
        fn peek64(&self, pa: u64) -> u64 {
            self.get(pa, 8)
        }
    }

    impl PhysMem for Mem {
        fn read_u32(&mut self, pa: u64) -> u32 {
            assert_eq!(pa % 4, 0, "misaligned 32-bit entry read at {pa:#x}");
            self.peek32(pa)
        }
        fn read_u64(&mut self, pa: u64) -> u64 {
            assert_eq!(pa % 8, 0, "misaligned 64-bit entry read at {pa:#x}");
            self.peek64(pa)
        }
        fn write_u32(&mut self, pa: u64, v: u32) {
            self.writes.push((pa, u64::from(v)));
            self.poke32(pa, v);
        }
        fn write_u64(&mut self, pa: u64, v: u64) {
            self.writes.push((pa, v));
            self.poke64(pa, v);
        }
    }

    fn mode(pae: bool, pse: bool, nxe: bool, wp: bool, pge: bool) -> PagingMode {
        PagingMode {
            pae,
            pse,
            nxe,
            wp,
            pge,
        }
    }

    const ALL_POLICIES: [AdUpdate; 3] = [AdUpdate::None, AdUpdate::OnSuccess, AdUpdate::AsWalked];

    fn all_accesses() -> Vec<Access> {
        let mut v = Vec::new();
        for user in [false, true] {
            v.push(Access::read(user));
            v.push(Access::write(user));
            v.push(Access::fetch(user));
        }
        v
    }

    fn bit(n: u32) -> u64 {
        1u64 << n
    }

    // ---------------------------------------------------------------------
    // Fixed layouts used by the table-driven tests.
    //
    // 32-bit paging: PD at 1 MiB; the PDE for LIN points at 4 MiB, which is
    // both the page table (4-KiB case, and the "PS=1 without CR4.PSE" case)
    // and the 4-MiB page (CR4.PSE, PS=1). The PTE maps DATA.
    // PAE: PDPT at 0x30_0fe0 (32-byte aligned, not page aligned), PD at
    // 0x50_0000, PT at 0x60_0000, 2-MiB page at 0x80_0000 (PDE bits).
    const LIN: u32 = 0xc0ab_c123;
    const CR3_32: u32 = 0x0010_0000;
    const PT_32: u64 = 0x0040_0000;
    const CR3_PAE: u32 = 0x0030_0fe0;
    const PD_PAE: u64 = 0x0050_0000;
    const PT_PAE: u64 = 0x0060_0000;
    const BIG_PAE: u64 = 0x0080_0000;
    const DATA: u64 = 0x0123_4000;

    #[derive(Clone, Copy, Debug)]
    struct Rights {
        us: bool,
        rw: bool,
        xd: bool,
    }

    impl Rights {
        fn bits(&self) -> u64 {
            let mut b = 0;
            if self.us {
                b |= PTE_US;
            }
            if self.rw {
                b |= PTE_RW;
            }
            if self.xd {
                b |= PTE_XD;
            }
            b
        }
        const FULL: Rights = Rights {
            us: true,
            rw: true,
            xd: false,
        };
    }

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Kind {
        Small,
        /// PS = 1 in the PDE (4 MiB, 2 MiB, or ignored without CR4.PSE).
        Large,
    }

    struct Built {
        mem: Mem,
        cr3: u32,
        pdpte_pa: Option<u64>,
        pde_pa: u64,
        pte_pa: Option<u64>,
    }

    /// Builds tables mapping LIN. `extra_*` bits are ORed into the entries.
    fn build(
        m: &PagingMode,
        kind: Kind,
        pde_r: Rights,
        pte_r: Rights,
        extra_pde: u64,
        extra_pte: u64,
    ) -> Built {
        let mut mem = Mem::default();
        if m.pae {
            let pdpte_pa = u64::from(CR3_PAE) + 8 * 3;
            mem.poke64(pdpte_pa, PD_PAE | PTE_P);
            let pde_pa = PD_PAE + 8 * 0x05;
            let pte_pa = PT_PAE + 8 * 0xbc;
            assert_eq!(
                (LIN >> 30, (LIN >> 21) & 0x1ff, (LIN >> 12) & 0x1ff),
                (3, 5, 0xbc)
            );
            match kind {
                Kind::Small => {
                    mem.poke64(pde_pa, PT_PAE | PTE_P | pde_r.bits() | extra_pde);
                    mem.poke64(pte_pa, DATA | PTE_P | pte_r.bits() | extra_pte);
                    Built {
                        mem,
                        cr3: CR3_PAE,
                        pdpte_pa: Some(pdpte_pa),
                        pde_pa,
                        pte_pa: Some(pte_pa),
                    }
                }
                Kind::Large => {
                    mem.poke64(pde_pa, BIG_PAE | PTE_P | PTE_PS | pde_r.bits() | extra_pde);
                    Built {
                        mem,
                        cr3: CR3_PAE,
                        pdpte_pa: Some(pdpte_pa),
                        pde_pa,
                        pte_pa: None,
                    }
                }
            }
        } else {
            assert!(!pde_r.xd && !pte_r.xd);
            let pde_pa = u64::from(CR3_32) + 4 * 0x302;
            let pte_pa = PT_32 + 4 * 0x2bc;
            assert_eq!((LIN >> 22, (LIN >> 12) & 0x3ff), (0x302, 0x2bc));
            let ps = if kind == Kind::Large { PTE_PS } else { 0 };
            mem.poke32(
                pde_pa,
                (PT_32 | PTE_P | ps | pde_r.bits() | extra_pde) as u32,
            );
            let large = kind == Kind::Large && m.pse;
            // With PS=1 but no CR4.PSE the PDE is a page-table pointer: give
            // its PTE full rights so only the PDE's rights matter.
            let pte = if kind == Kind::Large {
                Rights::FULL
            } else {
                pte_r
            };
            mem.poke32(pte_pa, (DATA | PTE_P | pte.bits() | extra_pte) as u32);
            Built {
                mem,
                cr3: CR3_32,
                pdpte_pa: None,
                pde_pa,
                pte_pa: if large { None } else { Some(pte_pa) },
            }
        }
    }

    // ---------------------------------------------------------------------
    // Reference model, written as a per-level fold of permission sets.

    const R: u8 = 1;
    const W: u8 = 2;
    const X: u8 = 4;

    /// What one level lets the access's privilege do.
    fn level_perms(r: Rights, user: bool, m: &PagingMode) -> u8 {
        let exec = if r.xd && m.pae && m.nxe { 0 } else { X };
        if user {
            if !r.us {
                0
            } else {
                R | exec | if r.rw { W } else { 0 }
            }
        } else {
            R | exec | if r.rw || !m.wp { W } else { 0 }
        }
    }

    fn op(acc: Access) -> u8 {
        if acc.fetch {
            X
        } else if acc.write {
            W
        } else {
            R
        }
    }

    fn ref_error_code(present: bool, rsvd: bool, acc: Access, m: &PagingMode) -> u32 {
        let mut e = 0;
        if present {
            e += 1;
        }
        if acc.write && !acc.fetch {
            e += 2;
        }
        if acc.user {
            e += 4;
        }
        if rsvd {
            e += 8;
        }
        if acc.fetch && m.pae && m.nxe {
            e += 16;
        }
        e
    }

    // ---------------------------------------------------------------------
    // Table-driven: every combination of mode, page kind, rights at each
    // level, access and A/D policy.

    #[test]
    fn exhaustive_rights_matrix() {
        let rights: Vec<Rights> = (0..8u8)
            .map(|i| Rights {
                us: i & 1 != 0,
                rw: i & 2 != 0,
                xd: i & 4 != 0,
            })
            .collect();
        let mut cases = 0u32;
        let mut ok_cases = 0u32;
        for mi in 0..32u8 {
            let m = mode(
                mi & 1 != 0,
                mi & 2 != 0,
                mi & 4 != 0,
                mi & 8 != 0,
                mi & 16 != 0,
            );
            for kind in [Kind::Small, Kind::Large] {
                for &pde_r in &rights {
                    for &pte_r in &rights {
                        if !m.pae && (pde_r.xd || pte_r.xd) {
                            continue; // no XD bit in 32-bit entries
                        }
                        let leaf_is_pde = kind == Kind::Large && (m.pae || m.pse);
                        if leaf_is_pde && pte_r.us as u8 + pte_r.rw as u8 + pte_r.xd as u8 != 0 {
                            continue; // no PTE: one representative is enough
                        }
                        // Vary G and an initial D bit across cases.
                        let g_leaf = (pde_r.us as u8 ^ pte_r.rw as u8) != 0;
                        let d0 = (pde_r.rw as u8 ^ pte_r.us as u8) != 0;
                        // G and D in a non-leaf PDE are ignored; set them to check.
                        let (extra_pde, extra_pte) = if leaf_is_pde {
                            (
                                (if g_leaf { PTE_G } else { 0 }) | (if d0 { PTE_D } else { 0 }),
                                0,
                            )
                        } else {
                            (
                                PTE_G | PTE_D,
                                (if g_leaf { PTE_G } else { 0 }) | (if d0 { PTE_D } else { 0 }),
                            )
                        };
                        for acc in all_accesses() {
                            for ad in ALL_POLICIES {
                                cases += 1;
                                let mut b = build(&m, kind, pde_r, pte_r, extra_pde, extra_pte);
                                let before = b.mem.clone();
                                let res = walk(&mut b.mem, b.cr3, &m, LIN, acc, ad);
                                ok_cases += res.is_ok() as u32;
                                check_matrix_case(
                                    &m, kind, pde_r, pte_r, g_leaf, d0, acc, ad, &before, &b, res,
                                );
                            }
                        }
                    }
                }
            }
        }
        // 32-bit: 16 modes x 16 small + 8 (PSE) x 4 large + 8 x 16 "large" pointers;
        // PAE: 16 modes x (64 + 8); each x 6 accesses x 3 policies.
        assert_eq!(cases, (16 * 16 + 8 * 4 + 8 * 16 + 16 * 72) * 18);
        assert!(
            ok_cases > 5_000 && ok_cases < cases - 5_000,
            "{ok_cases}/{cases}"
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn check_matrix_case(
        m: &PagingMode,
        kind: Kind,
        pde_r: Rights,
        pte_r: Rights,
        g_leaf: bool,
        d0: bool,
        acc: Access,
        ad: AdUpdate,
        before: &Mem,
        b: &Built,
        res: Result<Translation, PageFault>,
    ) {
        let ctx = format!("{m:?} {kind:?} pde={pde_r:?} pte={pte_r:?} {acc:?} {ad:?} -> {res:?}");
        let leaf_is_pde = b.pte_pa.is_none();
        let pte_eff = if kind == Kind::Large && !leaf_is_pde {
            Rights::FULL
        } else {
            pte_r
        };
        let levels: Vec<Rights> = if leaf_is_pde {
            vec![pde_r]
        } else {
            vec![pde_r, pte_eff]
        };
        // Reserved: XD set in a PAE PDE/PTE without NXE. The PDE is checked first.
        let pde_rsvd = m.pae && !m.nxe && pde_r.xd;
        let pte_rsvd = m.pae && !m.nxe && !leaf_is_pde && pte_eff.xd;
        let allowed = levels
            .iter()
            .fold(R | W | X, |acc_m, &r| acc_m & level_perms(r, acc.user, m));
        let permitted = allowed & op(acc) != 0;
        let is_write = acc.write && !acc.fetch;

        let pde_now = b.mem.peek64(b.pde_pa) & 0xffff_ffff;
        let pde_then = before.peek64(b.pde_pa) & 0xffff_ffff;
        if pde_rsvd || pte_rsvd {
            let f = res.expect_err(&ctx);
            assert_eq!(
                f,
                PageFault {
                    cr2: LIN,
                    error_code: ref_error_code(true, true, acc, m)
                },
                "{ctx}"
            );
        } else if !permitted {
            let f = res.expect_err(&ctx);
            assert_eq!(
                f,
                PageFault {
                    cr2: LIN,
                    error_code: ref_error_code(true, false, acc, m)
                },
                "{ctx}"
            );
        } else {
            let t = res.expect(&ctx);
            let (size, base) = match (kind, m.pae, leaf_is_pde) {
                (Kind::Large, true, _) => (SIZE_2M, BIG_PAE),
                (Kind::Large, false, true) => (SIZE_4M, PT_32),
                _ => (SIZE_4K, DATA),
            };
            assert_eq!(t.page_size, size, "{ctx}");
            assert_eq!(t.page_base_pa, base, "{ctx}");
            assert_eq!(t.pa, base + u64::from(LIN % size), "{ctx}");
            assert_eq!(t.page_base_lin, LIN / size * size, "{ctx}");
            assert_eq!(t.user, levels.iter().all(|r| r.us), "{ctx}");
            assert_eq!(t.rw, levels.iter().all(|r| r.rw), "{ctx}");
            assert_eq!(t.writable, allowed & W != 0, "{ctx}");
            assert_eq!(t.nx, m.pae && m.nxe && levels.iter().any(|r| r.xd), "{ctx}");
            assert_eq!(t.global, m.pge && g_leaf, "{ctx}");
            let set = ad != AdUpdate::None;
            assert_eq!(t.dirty, d0 || (set && is_write), "{ctx}");
            assert_eq!(t.leaf_entry_pa, b.pte_pa.unwrap_or(b.pde_pa), "{ctx}");
            let pdpt = if m.pae { u64::from(CR3_PAE) } else { NO_TABLE };
            let pd = if m.pae { PD_PAE } else { u64::from(CR3_32) };
            let pt = match (leaf_is_pde, m.pae) {
                (true, _) => NO_TABLE,
                (false, true) => PT_PAE,
                (false, false) => PT_32,
            };
            assert_eq!(t.table_pas, [pdpt, pd, pt], "{ctx}");
            // Accessed/dirty in memory.
            let leaf_pa = t.leaf_entry_pa;
            let leaf_now = b.mem.peek64(leaf_pa) & if m.pae { u64::MAX } else { 0xffff_ffff };
            assert_eq!(t.leaf_entry, leaf_now, "{ctx}");
            assert_eq!(leaf_now & PTE_A != 0, set, "{ctx}");
            assert_eq!(leaf_now & PTE_D != 0, d0 || (set && is_write), "{ctx}");
            if !leaf_is_pde {
                assert_eq!(pde_now & PTE_A != 0, set, "{ctx}");
                assert_eq!(
                    pde_now & PTE_D,
                    pde_then & PTE_D,
                    "{ctx}: D of a non-leaf PDE"
                );
            }
            // Nothing but A/D changed, PDPTE untouched.
            for pa in [Some(b.pde_pa), b.pte_pa].into_iter().flatten() {
                assert_eq!(
                    b.mem.peek64(pa) & !(PTE_A | PTE_D),
                    before.peek64(pa) & !(PTE_A | PTE_D),
                    "{ctx}"
                );
            }
            if let Some(p) = b.pdpte_pa {
                assert_eq!(b.mem.peek64(p), before.peek64(p), "{ctx}");
            }
            // permits() agrees with the reference for every other access too.
            for other in all_accesses() {
                let expect = allowed_for(&levels, other, m);
                assert_eq!(permits(&t, m, other), expect, "{ctx}: permits({other:?})");
            }
            return;
        }
        // Failed walk: only AsWalked may have set A, and only in a non-leaf
        // PDE that passed its own checks.
        let mut expect_writes = 0;
        if ad == AdUpdate::AsWalked && !leaf_is_pde && !pde_rsvd && pde_then & PTE_A == 0 {
            expect_writes = 1;
            assert_eq!(pde_now, pde_then | PTE_A, "{ctx}");
        } else {
            assert_eq!(pde_now, pde_then, "{ctx}");
        }
        assert_eq!(
            b.mem.writes.len(),
            expect_writes,
            "{ctx}: {:x?}",
            b.mem.writes
        );
        if let Some(p) = b.pte_pa {
            assert_eq!(b.mem.peek64(p), before.peek64(p), "{ctx}");
        }
    }

    fn allowed_for(levels: &[Rights], acc: Access, m: &PagingMode) -> bool {
        levels
            .iter()
            .fold(R | W | X, |a, &r| a & level_perms(r, acc.user, m))
            & op(acc)
            != 0
    }

    // ---------------------------------------------------------------------
    // Not-present entries at each level.

    #[test]
    fn not_present_at_each_level() {
        for mi in 0..32u8 {
            let m = mode(
                mi & 1 != 0,
                mi & 2 != 0,
                mi & 4 != 0,
                mi & 8 != 0,
                mi & 16 != 0,
            );
            for kind in [Kind::Small, Kind::Large] {
                let b0 = build(&m, kind, Rights::FULL, Rights::FULL, 0, 0);
                let mut targets = vec![b0.pde_pa];
                targets.extend(b0.pdpte_pa);
                targets.extend(b0.pte_pa);
                for target in targets {
                    for garbage in [0u64, 0xffff_fffe, 0xffff_ffff_ffff_fffe] {
                        for acc in all_accesses() {
                            for ad in ALL_POLICIES {
                                let mut b = build(&m, kind, Rights::FULL, Rights::FULL, 0, 0);
                                // Every other bit set (including reserved ones): ignored when P=0.
                                if m.pae {
                                    b.mem.poke64(target, garbage);
                                } else {
                                    b.mem.poke32(target, garbage as u32);
                                }
                                let before = b.mem.clone();
                                let f = walk(&mut b.mem, b.cr3, &m, LIN, acc, ad).unwrap_err();
                                let ctx = format!(
                                    "{m:?} {kind:?} target={target:#x} {garbage:#x} {acc:?} {ad:?}"
                                );
                                assert_eq!(f.cr2, LIN, "{ctx}");
                                assert_eq!(
                                    f.error_code,
                                    ref_error_code(false, false, acc, &m),
                                    "{ctx}"
                                );
                                // Only a non-leaf PDE above a missing PTE may get A (AsWalked).
                                let pde_above = Some(target) == b.pte_pa;
                                if ad == AdUpdate::AsWalked && pde_above {
                                    assert_eq!(b.mem.writes.len(), 1, "{ctx}");
                                    assert_eq!(
                                        b.mem.peek64(b.pde_pa),
                                        before.peek64(b.pde_pa) | PTE_A,
                                        "{ctx}"
                                    );
                                } else {
                                    assert!(b.mem.writes.is_empty(), "{ctx}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------------
    // Reserved bits at each level and mode, written as explicit bit lists.

    /// Reserved bits, by SDM table, for each entry format.
    fn reserved_bits(format: &str, nxe: bool) -> Vec<u32> {
        let mut v: Vec<u32> = match format {
            "pde32" | "pte32" => vec![],
            "pde4m" => vec![17, 18, 19, 20, 21],
            "pdpte" => [1, 2, 5, 6, 7, 8].into_iter().chain(36..=63).collect(),
            "pde_pae" | "pte_pae" => (36..=62).collect(),
            "pde2m" => (13..=20).chain(36..=62).collect(),
            _ => unreachable!(),
        };
        if !nxe && matches!(format, "pde_pae" | "pte_pae" | "pde2m") {
            v.push(63);
        }
        v
    }

    /// Bits that may be set freely (not P, not address bits that would move
    /// the next table, not PS which changes the format).
    fn free_bits(format: &str, nxe: bool) -> Vec<u32> {
        let mut v: Vec<u32> = match format {
            "pde32" => vec![1, 2, 3, 4, 5, 6, 8, 9, 10, 11],
            "pte32" => vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
            "pde4m" => vec![1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16],
            "pdpte" => vec![3, 4, 9, 10, 11],
            "pde_pae" => vec![1, 2, 3, 4, 5, 6, 8, 9, 10, 11],
            "pte_pae" => vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
            "pde2m" => vec![1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12],
            _ => unreachable!(),
        };
        if nxe && matches!(format, "pde_pae" | "pte_pae" | "pde2m") {
            v.push(63);
        }
        v
    }

    #[test]
    fn reserved_bits_at_each_level() {
        let mut checked = 0;
        for mi in 0..32u8 {
            let m = mode(
                mi & 1 != 0,
                mi & 2 != 0,
                mi & 4 != 0,
                mi & 8 != 0,
                mi & 16 != 0,
            );
            for kind in [Kind::Small, Kind::Large] {
                let b0 = build(&m, kind, Rights::FULL, Rights::FULL, 0, 0);
                let mut targets: Vec<(u64, &str)> = Vec::new();
                if let Some(p) = b0.pdpte_pa {
                    targets.push((p, "pdpte"));
                }
                let pde_fmt = match (m.pae, b0.pte_pa.is_none()) {
                    (true, true) => "pde2m",
                    (true, false) => "pde_pae",
                    (false, true) => "pde4m",
                    (false, false) => "pde32",
                };
                targets.push((b0.pde_pa, pde_fmt));
                if let Some(p) = b0.pte_pa {
                    targets.push((p, if m.pae { "pte_pae" } else { "pte32" }));
                }
                for (target, fmt) in targets {
                    let width = if m.pae { 64 } else { 32 };
                    for n in 0..width {
                        let rsvd = reserved_bits(fmt, m.nxe).contains(&n);
                        let free = free_bits(fmt, m.nxe).contains(&n);
                        if !rsvd && !free {
                            continue;
                        }
                        for acc in all_accesses() {
                            for ad in ALL_POLICIES {
                                let mut b = build(&m, kind, Rights::FULL, Rights::FULL, 0, 0);
                                let old = b.mem.peek64(target);
                                if m.pae {
                                    b.mem.poke64(target, old | bit(n));
                                } else {
                                    b.mem.poke32(target, (old | bit(n)) as u32);
                                }
                                let before = b.mem.clone();
                                let r = walk(&mut b.mem, b.cr3, &m, LIN, acc, ad);
                                let ctx = format!("{m:?} {fmt} bit {n} {acc:?} {ad:?} -> {r:?}");
                                checked += 1;
                                if rsvd {
                                    let f = r.expect_err(&ctx);
                                    assert_eq!(f.cr2, LIN, "{ctx}");
                                    assert_eq!(
                                        f.error_code,
                                        ref_error_code(true, true, acc, &m),
                                        "{ctx}"
                                    );
                                    let pde_above = Some(target) == b.pte_pa;
                                    if ad == AdUpdate::AsWalked && pde_above {
                                        assert_eq!(
                                            b.mem.writes,
                                            vec![(b.pde_pa, before.peek64(b.pde_pa) | PTE_A)]
                                        );
                                    } else {
                                        assert!(b.mem.writes.is_empty(), "{ctx}");
                                    }
                                } else if let Err(f) = r {
                                    // A free bit may still remove rights (R/W, U/S, XD);
                                    // it must never be a reserved-bit or not-present fault.
                                    assert_eq!(f.error_code & (PF_P | PF_RSVD), PF_P, "{ctx}");
                                    assert!(matches!(n, 1 | 2 | 63), "{ctx}");
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 50_000, "{checked}");
    }

    // ---------------------------------------------------------------------
    // Hand-written cases.

    fn sup_read() -> Access {
        Access::read(false)
    }

    #[test]
    fn basic_32bit_4k() {
        let m = mode(false, false, false, true, false);
        let mut mem = Mem::default();
        // CR3 low bits (PWT, PCD, ignored bits) do not affect the PD address.
        let cr3 = 0x0020_0000 | 0x18 | 0x7;
        mem.poke32(0x0020_0000 + 4 * 0x3ff, 0x0030_0000 | 0x7);
        mem.poke32(0x0030_0000 + 4 * 0x3ff, 0xfedc_b000 | 0x7);
        let t = walk(
            &mut mem,
            cr3,
            &m,
            0xffff_ffff,
            Access::write(true),
            AdUpdate::OnSuccess,
        )
        .unwrap();
        assert_eq!(t.pa, 0xfedc_bfff);
        assert_eq!(t.page_base_lin, 0xffff_f000);
        assert_eq!(t.page_base_pa, 0xfedc_b000);
        assert_eq!(t.page_size, SIZE_4K);
        assert_eq!(t.leaf_entry_pa, 0x0030_0ffc);
        assert_eq!(t.leaf_entry, 0xfedc_b067);
        assert_eq!(t.table_pas, [NO_TABLE, 0x0020_0000, 0x0030_0000]);
        assert!(t.writable && t.rw && t.user && !t.nx && !t.global && t.dirty);
        assert_eq!(mem.peek32(0x0020_0ffc), 0x0030_0027);
        assert_eq!(mem.peek32(0x0030_0ffc), 0xfedc_b067);
        assert_eq!(mem.writes.len(), 2);
        // Second access: nothing left to set, no writes.
        mem.writes.clear();
        walk(
            &mut mem,
            cr3,
            &m,
            0xffff_f000,
            Access::write(true),
            AdUpdate::OnSuccess,
        )
        .unwrap();
        assert!(mem.writes.is_empty());
        // Linear address 0 uses entry 0 of each table.
        let f = walk(&mut mem, cr3, &m, 0, sup_read(), AdUpdate::OnSuccess).unwrap_err();
        assert_eq!(
            f,
            PageFault {
                cr2: 0,
                error_code: 0
            }
        );
    }

    #[test]
    fn pse36_4m_page() {
        let m = mode(false, true, false, false, true);
        let mut mem = Mem::default();
        // PDE bits 16:13 = 0xa -> PA bits 35:32; G honoured with PGE.
        let pde = 0xffc0_0000u32 | (0xa << 13) | 0x1e3 | 0x1000; // P RW A D PS G PAT
        mem.poke32(0x1000 + 4 * 0x3ff, pde);
        let t = walk(
            &mut mem,
            0x1000,
            &m,
            0xffe1_2345,
            Access::write(false),
            AdUpdate::OnSuccess,
        )
        .unwrap();
        assert_eq!(t.page_size, SIZE_4M);
        assert_eq!(t.page_base_pa, 0xa_ffc0_0000);
        assert_eq!(t.pa, 0xa_ffe1_2345);
        assert_eq!(t.page_base_lin, 0xffc0_0000);
        assert!(t.global && t.dirty && !t.user && t.rw);
        assert_eq!(t.table_pas, [NO_TABLE, 0x1000, NO_TABLE]);
        assert!(mem.writes.is_empty(), "A and D were already set");
        // Each of bits 21:17 is reserved.
        for n in 17..=21 {
            mem.poke32(0x1000 + 4 * 0x3ff, pde | (1 << n));
            let f = walk(
                &mut mem,
                0x1000,
                &m,
                0xffe1_2345,
                Access::fetch(true),
                AdUpdate::OnSuccess,
            )
            .unwrap_err();
            assert_eq!(f.error_code, PF_P | PF_RSVD | PF_U, "bit {n}");
        }
    }

    #[test]
    fn ps_without_pse_is_a_page_table_pointer() {
        let m = mode(false, false, false, false, false);
        let mut mem = Mem::default();
        // Bits 21:13 would be reserved/PSE-36 in a 4-MiB PDE; here they are
        // page-table address bits.
        let pt = 0x003f_e000u32;
        mem.poke32(0x1000, pt | 0x87); // P RW US PS
        mem.poke32(u64::from(pt) + 4 * 5, 0x0055_5000 | 0x3);
        let t = walk(
            &mut mem,
            0x1000,
            &m,
            0x5abc,
            sup_read(),
            AdUpdate::OnSuccess,
        )
        .unwrap();
        assert_eq!(t.page_size, SIZE_4K);
        assert_eq!(t.pa, 0x0055_5abc);
        assert_eq!(t.table_pas[2], u64::from(pt));
        assert!(!t.user); // PTE U/S = 0
                          // The PDE gets A but never D, even for a write.
        walk(
            &mut mem,
            0x1000,
            &m,
            0x5abc,
            Access::write(false),
            AdUpdate::OnSuccess,
        )
        .unwrap();
        assert_eq!(mem.peek32(0x1000), pt | 0xa7);
        assert_eq!(mem.peek32(u64::from(pt) + 20), 0x0055_5063);
        // The same PDE with CR4.PSE is a 4-MiB page with reserved bits set.
        let m2 = PagingMode { pse: true, ..m };
        let f = walk(
            &mut mem,
            0x1000,
            &m2,
            0x5abc,
            sup_read(),
            AdUpdate::OnSuccess,
        )
        .unwrap_err();
        assert_eq!(f.error_code, PF_P | PF_RSVD);
    }

    #[test]
    fn no_reserved_bits_in_32bit_entries() {
        let m = mode(false, false, true, true, true);
        for n in 1..32 {
            let mut mem = Mem::default();
            let extra = if n >= 12 { 0 } else { 1u32 << n };
            mem.poke32(0x1000, 0x2000 | 1 | extra);
            mem.poke32(0x2000, 0x3000 | 1 | (1 << n));
            let r = walk(&mut mem, 0x1000, &m, 0x0, sup_read(), AdUpdate::None).unwrap();
            assert_eq!(
                r.page_base_pa,
                u64::from((0x3000 | (1u32 << n)) & 0xffff_f000)
            );
        }
    }

    #[test]
    fn pae_addresses_above_4g_and_indices() {
        let m = mode(true, false, true, true, false);
        let mut mem = Mem::default();
        let cr3 = 0xffff_ffe0u32; // PDPT in the last 32 bytes of the 4-GiB space
        let lin = 0x9876_5432; // PDPTE 2, PDE 0x0c3, PTE 0x165
        assert_eq!(
            (pdpte_index(lin), pde_index(true, lin), pte_index(true, lin)),
            (2, 0xc3, 0x165)
        );
        let pd = 0xf_0000_0000u64;
        let pt = 0x8_1234_5000u64;
        mem.poke64(0xffff_fff0, pd | 1 | PTE_PWT | PTE_PCD | (0x7 << 9));
        mem.poke64(pd + 8 * 0xc3, pt | 0x7 | PTE_G | PTE_D);
        mem.poke64(pt + 8 * 0x165, 0xf_ffff_f000 | 0x5 | PTE_XD);
        let t = walk(
            &mut mem,
            cr3,
            &m,
            lin,
            Access::read(true),
            AdUpdate::OnSuccess,
        )
        .unwrap();
        assert_eq!(t.pa, 0xf_ffff_f432);
        assert_eq!(t.table_pas, [0xffff_ffe0, pd, pt]);
        assert_eq!(t.leaf_entry_pa, pt + 8 * 0x165);
        assert!(t.nx && t.user && !t.rw && !t.writable && !t.global && !t.dirty);
        // A written back with the high bits (XD, address) intact; PDPTE untouched.
        assert_eq!(mem.peek64(pt + 8 * 0x165), 0xf_ffff_f000 | 0x25 | PTE_XD);
        assert_eq!(mem.peek64(pd + 8 * 0xc3), pt | 0x27 | PTE_G | PTE_D);
        assert_eq!(
            mem.peek64(0xffff_fff0),
            pd | 1 | PTE_PWT | PTE_PCD | (0x7 << 9)
        );
        // Fetch: XD with NXE -> protection fault with I/D.
        let f = walk(
            &mut mem,
            cr3,
            &m,
            lin,
            Access::fetch(false),
            AdUpdate::OnSuccess,
        )
        .unwrap_err();
        assert_eq!(
            f,
            PageFault {
                cr2: lin,
                error_code: PF_P | PF_ID
            }
        );
        // Without NXE the same PTE has a reserved bit (and I/D is not reported).
        let m2 = PagingMode { nxe: false, ..m };
        let f = walk(
            &mut mem,
            cr3,
            &m2,
            lin,
            Access::fetch(false),
            AdUpdate::OnSuccess,
        )
        .unwrap_err();
        assert_eq!(
            f,
            PageFault {
                cr2: lin,
                error_code: PF_P | PF_RSVD
            }
        );
    }

    #[test]
    fn pae_2m_page() {
        let m = mode(true, false, false, true, true);
        let mut mem = Mem::default();
        mem.poke64(0x20, 0x5000 | 1);
        mem.poke64(
            0x5000 + 8 * 0x1ff,
            0x9_ffe0_0000 | 0x83 | PTE_G | PTE_LARGE_PAT,
        );
        let lin = 0x3fff_ffff;
        let t = walk(
            &mut mem,
            0x20,
            &m,
            lin,
            Access::write(false),
            AdUpdate::OnSuccess,
        )
        .unwrap();
        assert_eq!(t.page_size, SIZE_2M);
        assert_eq!(t.page_base_pa, 0x9_ffe0_0000);
        assert_eq!(t.pa, 0x9_ffff_ffff);
        assert_eq!(t.page_base_lin, 0x3fe0_0000);
        assert_eq!(t.table_pas, [0x20, 0x5000, NO_TABLE]);
        assert!(t.global && t.dirty && !t.user);
        assert_eq!(mem.peek64(0x5000 + 8 * 0x1ff) & 0x60, 0x60);
    }

    #[test]
    fn precedence() {
        let m = mode(true, false, true, true, false);
        // Not-present PTE under a supervisor-only PDE: not-present wins.
        let mut b = build(
            &m,
            Kind::Small,
            Rights {
                us: false,
                rw: false,
                xd: true,
            },
            Rights::FULL,
            0,
            0,
        );
        let pte_pa = b.pte_pa.unwrap();
        b.mem.poke64(pte_pa, 0);
        let f = walk(
            &mut b.mem,
            b.cr3,
            &m,
            LIN,
            Access::fetch(true),
            AdUpdate::OnSuccess,
        )
        .unwrap_err();
        assert_eq!(f.error_code, PF_U | PF_ID);
        // Reserved bit in the PDE, PTE not present: RSVD (upper level first).
        b.mem.poke64(b.pde_pa, b.mem.peek64(b.pde_pa) | bit(40));
        let f = walk(
            &mut b.mem,
            b.cr3,
            &m,
            LIN,
            Access::write(true),
            AdUpdate::OnSuccess,
        )
        .unwrap_err();
        assert_eq!(f.error_code, PF_P | PF_RSVD | PF_W | PF_U);
        // Reserved bit in the PTE plus a rights violation: RSVD.
        let mut b = build(
            &m,
            Kind::Small,
            Rights {
                us: false,
                rw: false,
                xd: false,
            },
            Rights::FULL,
            0,
            0,
        );
        let pte_pa = b.pte_pa.unwrap();
        b.mem.poke64(pte_pa, b.mem.peek64(pte_pa) | bit(50));
        let f = walk(
            &mut b.mem,
            b.cr3,
            &m,
            LIN,
            Access::write(true),
            AdUpdate::OnSuccess,
        )
        .unwrap_err();
        assert_eq!(f.error_code, PF_P | PF_RSVD | PF_W | PF_U);
        // Not-present PDPTE with reserved garbage: not-present.
        let mut b = build(&m, Kind::Small, Rights::FULL, Rights::FULL, 0, 0);
        b.mem.poke64(b.pdpte_pa.unwrap(), 0x8000_0000_0000_01e6);
        let f = walk(&mut b.mem, b.cr3, &m, LIN, sup_read(), AdUpdate::OnSuccess).unwrap_err();
        assert_eq!(f.error_code, 0);
    }

    #[test]
    fn wp_and_supervisor_writes() {
        for pae in [false, true] {
            for wp in [false, true] {
                let m = mode(pae, false, false, wp, false);
                let ro_user = Rights {
                    us: true,
                    rw: false,
                    xd: false,
                };
                let mut b = build(&m, Kind::Small, Rights::FULL, ro_user, 0, 0);
                let r = walk(
                    &mut b.mem,
                    b.cr3,
                    &m,
                    LIN,
                    Access::write(false),
                    AdUpdate::OnSuccess,
                );
                if wp {
                    assert_eq!(r.unwrap_err().error_code, PF_P | PF_W);
                    assert!(b.mem.writes.is_empty());
                } else {
                    let t = r.unwrap();
                    assert!(t.writable && !t.rw && t.dirty);
                    assert_eq!(b.mem.peek64(b.pte_pa.unwrap()) & PTE_D, PTE_D);
                    // The same translation does not permit a user write.
                    assert!(!permits(&t, &m, Access::write(true)));
                    assert!(permits(&t, &m, Access::read(true)));
                }
                // User writes fail regardless of WP.
                let r = walk(
                    &mut b.mem,
                    b.cr3,
                    &m,
                    LIN,
                    Access::write(true),
                    AdUpdate::OnSuccess,
                );
                assert_eq!(r.unwrap_err().error_code, PF_P | PF_W | PF_U);
            }
        }
    }

    #[test]
    fn id_bit_rules() {
        // 32-bit paging: NXE is ignored, never I/D, fetch from anywhere.
        let m = mode(false, false, true, true, false);
        let mut b = build(
            &m,
            Kind::Small,
            Rights {
                us: false,
                rw: false,
                xd: false,
            },
            Rights::FULL,
            0,
            0,
        );
        let f = walk(
            &mut b.mem,
            b.cr3,
            &m,
            LIN,
            Access::fetch(true),
            AdUpdate::OnSuccess,
        )
        .unwrap_err();
        assert_eq!(f.error_code, PF_P | PF_U);
        assert!(walk(
            &mut b.mem,
            b.cr3,
            &m,
            LIN,
            Access::fetch(false),
            AdUpdate::OnSuccess
        )
        .is_ok());
        // PAE without NXE: no I/D.
        let m = mode(true, false, false, true, false);
        let mut b = build(&m, Kind::Small, Rights::FULL, Rights::FULL, 0, 0);
        b.mem.poke64(b.pte_pa.unwrap(), 0);
        let f = walk(
            &mut b.mem,
            b.cr3,
            &m,
            LIN,
            Access::fetch(false),
            AdUpdate::OnSuccess,
        )
        .unwrap_err();
        assert_eq!(f.error_code, 0);
        // PAE with NXE: I/D on every kind of fetch fault, never on data.
        let m = PagingMode { nxe: true, ..m };
        let f = walk(
            &mut b.mem,
            b.cr3,
            &m,
            LIN,
            Access::fetch(false),
            AdUpdate::OnSuccess,
        )
        .unwrap_err();
        assert_eq!(f.error_code, PF_ID);
        let f = walk(
            &mut b.mem,
            b.cr3,
            &m,
            LIN,
            Access::read(false),
            AdUpdate::OnSuccess,
        )
        .unwrap_err();
        assert_eq!(f.error_code, 0);
        // write+fetch together counts as a fetch.
        let both = Access {
            write: true,
            user: true,
            fetch: true,
        };
        let f = walk(&mut b.mem, b.cr3, &m, LIN, both, AdUpdate::OnSuccess).unwrap_err();
        assert_eq!(f.error_code, PF_U | PF_ID);
        // Supervisor fetch from an XD page fails too (XD at the PDE level).
        let mut b = build(
            &m,
            Kind::Small,
            Rights {
                us: true,
                rw: true,
                xd: true,
            },
            Rights::FULL,
            0,
            0,
        );
        let f = walk(
            &mut b.mem,
            b.cr3,
            &m,
            LIN,
            Access::fetch(false),
            AdUpdate::OnSuccess,
        )
        .unwrap_err();
        assert_eq!(f.error_code, PF_P | PF_ID);
        // Supervisor fetch from a user page is allowed (no SMEP).
        let mut b = build(&m, Kind::Small, Rights::FULL, Rights::FULL, 0, 0);
        assert!(walk(
            &mut b.mem,
            b.cr3,
            &m,
            LIN,
            Access::fetch(false),
            AdUpdate::OnSuccess
        )
        .is_ok());
    }

    #[test]
    fn global_only_from_leaf_and_with_pge() {
        for pae in [false, true] {
            let m = mode(pae, true, false, false, true);
            let mut b = build(&m, Kind::Small, Rights::FULL, Rights::FULL, PTE_G, 0);
            assert!(
                !walk(&mut b.mem, b.cr3, &m, LIN, sup_read(), AdUpdate::None)
                    .unwrap()
                    .global
            );
            let mut b = build(&m, Kind::Small, Rights::FULL, Rights::FULL, 0, PTE_G);
            assert!(
                walk(&mut b.mem, b.cr3, &m, LIN, sup_read(), AdUpdate::None)
                    .unwrap()
                    .global
            );
            let m0 = PagingMode { pge: false, ..m };
            assert!(
                !walk(&mut b.mem, b.cr3, &m0, LIN, sup_read(), AdUpdate::None)
                    .unwrap()
                    .global
            );
            let mut b = build(&m, Kind::Large, Rights::FULL, Rights::FULL, PTE_G, 0);
            assert!(
                walk(&mut b.mem, b.cr3, &m, LIN, sup_read(), AdUpdate::None)
                    .unwrap()
                    .global
            );
        }
    }

    #[test]
    fn accessed_dirty_policies() {
        for pae in [false, true] {
            let m = mode(pae, true, false, true, false);
            // AsWalked: PTE denies the write; the PDE gets A, the PTE nothing.
            let ro = Rights {
                us: true,
                rw: false,
                xd: false,
            };
            let mut b = build(&m, Kind::Small, Rights::FULL, ro, 0, 0);
            let pde0 = b.mem.peek64(b.pde_pa);
            walk(
                &mut b.mem,
                b.cr3,
                &m,
                LIN,
                Access::write(true),
                AdUpdate::AsWalked,
            )
            .unwrap_err();
            assert_eq!(b.mem.writes.len(), 1);
            assert_eq!(b.mem.peek64(b.pde_pa), pde0 | PTE_A);
            // OnSuccess: same failure writes nothing.
            let mut b = build(&m, Kind::Small, Rights::FULL, ro, 0, 0);
            walk(
                &mut b.mem,
                b.cr3,
                &m,
                LIN,
                Access::write(true),
                AdUpdate::OnSuccess,
            )
            .unwrap_err();
            assert!(b.mem.writes.is_empty());
            // Read then write: A on the read, D added on the write.
            let mut b = build(&m, Kind::Small, Rights::FULL, Rights::FULL, 0, 0);
            let pte_pa = b.pte_pa.unwrap();
            let t = walk(
                &mut b.mem,
                b.cr3,
                &m,
                LIN,
                Access::read(true),
                AdUpdate::OnSuccess,
            )
            .unwrap();
            assert!(!t.dirty);
            assert_eq!(b.mem.peek64(pte_pa) & 0x60, 0x20);
            let t = walk(
                &mut b.mem,
                b.cr3,
                &m,
                LIN,
                Access::write(true),
                AdUpdate::OnSuccess,
            )
            .unwrap();
            assert!(t.dirty);
            assert_eq!(b.mem.peek64(pte_pa) & 0x60, 0x60);
            assert_eq!(b.mem.peek64(b.pde_pa) & 0x60, 0x20);
            assert_eq!(b.mem.writes.len(), 3); // PDE A, PTE A, PTE D
                                               // None: nothing written, dirty reflects memory.
            let mut b = build(&m, Kind::Large, Rights::FULL, Rights::FULL, 0, 0);
            let t = walk(
                &mut b.mem,
                b.cr3,
                &m,
                LIN,
                Access::write(false),
                AdUpdate::None,
            )
            .unwrap();
            assert!(!t.dirty && b.mem.writes.is_empty());
            // Large page: A and D in the PDE in one write.
            walk(
                &mut b.mem,
                b.cr3,
                &m,
                LIN,
                Access::write(false),
                AdUpdate::OnSuccess,
            )
            .unwrap();
            assert_eq!(b.mem.writes.len(), 1);
            assert_eq!(b.mem.peek64(b.pde_pa) & 0x60, 0x60);
            // A fetch never sets D.
            let mut b = build(&m, Kind::Large, Rights::FULL, Rights::FULL, 0, 0);
            walk(
                &mut b.mem,
                b.cr3,
                &m,
                LIN,
                Access::fetch(false),
                AdUpdate::OnSuccess,
            )
            .unwrap();
            assert_eq!(b.mem.peek64(b.pde_pa) & 0x60, 0x20);
            // Neither does an access with both `write` and `fetch` (a fetch).
            let both = Access {
                write: true,
                user: false,
                fetch: true,
            };
            let t = walk(&mut b.mem, b.cr3, &m, LIN, both, AdUpdate::OnSuccess).unwrap();
            assert!(!t.dirty);
            assert_eq!(b.mem.peek64(b.pde_pa) & 0x60, 0x20);
        }
    }

    #[test]
    fn cr2_is_the_linear_address() {
        for pae in [false, true] {
            let m = mode(pae, true, true, true, true);
            let mut mem = Mem::default();
            for lin in [
                0u32,
                1,
                0xfff,
                0x1000,
                0x7fff_ffff,
                0x8000_0000,
                0xdead_beef,
                0xffff_ffff,
            ] {
                let f = walk(
                    &mut mem,
                    0x1000,
                    &m,
                    lin,
                    Access::write(true),
                    AdUpdate::OnSuccess,
                )
                .unwrap_err();
                assert_eq!(
                    f,
                    PageFault {
                        cr2: lin,
                        error_code: PF_W | PF_U
                    }
                );
            }
        }
    }

    #[test]
    fn pdpte_load_check() {
        let mut mem = Mem::default();
        let cr3 = 0x4fe0;
        mem.poke64(0x4fe0, 0x1000 | 1 | PTE_PWT | PTE_PCD | (7 << 9));
        mem.poke64(0x4fe8, 0xffff_ffff_ffff_fffe); // not present: not checked
        mem.poke64(0x4ff0, 0xf_ffff_f001);
        assert_eq!(
            load_pdptes(&mut mem, cr3),
            Ok([0x1000 | 0xe19, 0xffff_ffff_ffff_fffe, 0xf_ffff_f001, 0])
        );
        for n in [1u32, 2, 5, 6, 7, 8, 36, 51, 52, 62, 63] {
            mem.poke64(0x4ff8, 0x2000 | 1 | bit(n));
            assert_eq!(
                load_pdptes(&mut mem, cr3 | 0x1f),
                Err(BadPdpte {
                    index: 3,
                    entry: 0x2000 | 1 | bit(n)
                }),
                "bit {n}"
            );
        }
    }

    #[test]
    fn permits_matches_walk() {
        // For every rights combination, a translation obtained with one access
        // predicts the outcome of a walk with any other access.
        for mi in 0..32u8 {
            let m = mode(
                mi & 1 != 0,
                mi & 2 != 0,
                mi & 4 != 0,
                mi & 8 != 0,
                mi & 16 != 0,
            );
            for i in 0..64u32 {
                let r = |k: u32| Rights {
                    us: k & 1 != 0,
                    rw: k & 2 != 0,
                    xd: m.pae && m.nxe && k & 4 != 0,
                };
                for kind in [Kind::Small, Kind::Large] {
                    let mut b = build(&m, kind, r(i), r(i >> 3), 0, 0);
                    let t = walk(&mut b.mem, b.cr3, &m, LIN, sup_read(), AdUpdate::None).unwrap();
                    for acc in all_accesses() {
                        let w = walk(&mut b.mem, b.cr3, &m, LIN, acc, AdUpdate::None);
                        assert_eq!(permits(&t, &m, acc), w.is_ok(), "{m:?} {i} {acc:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn permits_rechecks_xd_enable() {
        // A translation made with XD in effect only forbids fetches while
        // XD stays enabled in the mode passed to `permits`.
        let m = mode(true, false, true, true, false);
        let xd = Rights {
            us: true,
            rw: true,
            xd: true,
        };
        let mut b = build(&m, Kind::Small, Rights::FULL, xd, 0, 0);
        let t = walk(&mut b.mem, b.cr3, &m, LIN, sup_read(), AdUpdate::None).unwrap();
        assert!(t.nx);
        assert!(!permits(&t, &m, Access::fetch(true)));
        assert!(permits(
            &t,
            &PagingMode { nxe: false, ..m },
            Access::fetch(true)
        ));
        assert!(permits(
            &t,
            &PagingMode { pae: false, ..m },
            Access::fetch(false)
        ));
    }

    #[test]
    fn mode_from_regs() {
        let m = PagingMode::from_regs(0x8001_0011, 0xb0, 0x800);
        assert_eq!(m, mode(true, true, true, true, true));
        assert_eq!(
            PagingMode::from_regs(0x8000_0011, 0, 0),
            PagingMode::default()
        );
        assert!(!mode(false, false, true, false, false).xd_enabled());
    }

    #[test]
    fn derived_masks() {
        assert_eq!(PAE_ADDR, 0x0000_000f_ffff_f000);
        assert_eq!(PAE_HIGH_RSVD, 0x7fff_fff0_0000_0000);
        assert_eq!(PDPTE_RSVD, 0xffff_fff0_0000_01e6);
        assert_eq!(PDE_2M_RSVD, 0x001f_e000);
        assert_eq!(PDE_4M_HIGH, 0x0001_e000);
        assert_eq!(PDE_4M_RSVD, 0x003e_0000);
    }
}
