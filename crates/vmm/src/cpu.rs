//! Virtual CPU state: everything the guest can observe, kept by the monitor.

use ringfold_arch::{eflags, Descriptor};

/// Segment register numbers in x86 encoding order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Sreg {
    Es = 0,
    Cs = 1,
    Ss = 2,
    Ds = 3,
    Fs = 4,
    Gs = 5,
}

impl Sreg {
    pub const ALL: [Sreg; 6] = [Sreg::Es, Sreg::Cs, Sreg::Ss, Sreg::Ds, Sreg::Fs, Sreg::Gs];
    pub fn from_iced(r: iced_x86::Register) -> Option<Sreg> {
        use iced_x86::Register as R;
        Some(match r {
            R::ES => Sreg::Es,
            R::CS => Sreg::Cs,
            R::SS => Sreg::Ss,
            R::DS => Sreg::Ds,
            R::FS => Sreg::Fs,
            R::GS => Sreg::Gs,
            _ => return None,
        })
    }
}

/// A segment register: the guest-visible selector and its hidden descriptor cache.
/// `valid == false` means a null selector was loaded (any access faults).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SegReg {
    pub sel: u16,
    pub desc: Descriptor,
    pub valid: bool,
}

impl SegReg {
    /// A flat 4 GiB 32-bit segment of the given type and DPL (used at reset / Multiboot entry).
    pub fn flat(sel: u16, typ: u8, dpl: u8) -> Self {
        SegReg { sel, desc: Descriptor::new_segment(0, 0xFFFFF, true, typ | 1, dpl, true), valid: true }
    }
}

/// GDTR / IDTR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableReg {
    pub base: u32,
    pub limit: u16,
}

/// LDTR / TR: selector plus cached base/limit (and the TSS type for TR).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SysSeg {
    pub sel: u16,
    pub base: u32,
    pub limit: u32,
    pub desc: Descriptor,
}

/// MSR numbers the monitor implements.
pub mod msr {
    pub const TSC: u32 = 0x10;
    pub const APIC_BASE: u32 = 0x1B;
    pub const SYSENTER_CS: u32 = 0x174;
    pub const SYSENTER_ESP: u32 = 0x175;
    pub const SYSENTER_EIP: u32 = 0x176;
    pub const MISC_ENABLE: u32 = 0x1A0;
    pub const PAT: u32 = 0x277;
    pub const TSC_DEADLINE: u32 = 0x6E0;
    pub const EFER: u32 = 0xC000_0080;
}

pub mod cr0 {
    pub const PE: u32 = 1 << 0;
    pub const MP: u32 = 1 << 1;
    pub const EM: u32 = 1 << 2;
    pub const TS: u32 = 1 << 3;
    pub const ET: u32 = 1 << 4;
    pub const NE: u32 = 1 << 5;
    pub const WP: u32 = 1 << 16;
    pub const AM: u32 = 1 << 18;
    pub const NW: u32 = 1 << 29;
    pub const CD: u32 = 1 << 30;
    pub const PG: u32 = 1 << 31;
}

pub mod cr4 {
    pub const VME: u32 = 1 << 0;
    pub const PVI: u32 = 1 << 1;
    pub const TSD: u32 = 1 << 2;
    pub const DE: u32 = 1 << 3;
    pub const PSE: u32 = 1 << 4;
    pub const PAE: u32 = 1 << 5;
    pub const MCE: u32 = 1 << 6;
    pub const PGE: u32 = 1 << 7;
    pub const PCE: u32 = 1 << 8;
    pub const OSFXSR: u32 = 1 << 9;
    pub const OSXMMEXCPT: u32 = 1 << 10;
    /// CR4 bits a guest may set (the rest #GP): only what ringfold virtualizes.
    pub const SUPPORTED: u32 = TSD | DE | PSE | PAE | MCE | PGE | PCE | OSFXSR | OSXMMEXCPT;
}

/// The architectural state of one virtual CPU.
#[derive(Clone, Debug)]
pub struct Cpu {
    /// EAX ECX EDX EBX ESP EBP ESI EDI.
    pub gpr: [u32; 8],
    pub eip: u32,
    /// Full guest EFLAGS including the virtual IF, IOPL, NT, AC, VM.
    pub eflags: u32,
    pub seg: [SegReg; 6],
    pub cpl: u8,
    pub cr0: u32,
    pub cr2: u32,
    pub cr3: u32,
    pub cr4: u32,
    pub gdtr: TableReg,
    pub idtr: TableReg,
    pub ldtr: SysSeg,
    pub tr: SysSeg,
    pub dr: [u32; 8],
    pub efer: u64,
    pub sysenter_cs: u32,
    pub sysenter_esp: u32,
    pub sysenter_eip: u32,
    pub pat: u64,
    /// Guest TSC = host TSC + tsc_offset.
    pub tsc_offset: i64,
    /// Set by HLT; cleared by an interrupt.
    pub halted: bool,
    /// Interrupt shadow after MOV SS / POP SS / STI (one instruction).
    pub shadow: bool,
}

impl Default for Cpu {
    fn default() -> Self {
        Cpu {
            gpr: [0; 8],
            eip: 0,
            eflags: eflags::FIXED1,
            seg: [SegReg::default(); 6],
            cpl: 0,
            cr0: cr0::ET | cr0::CD | cr0::NW,
            cr2: 0,
            cr3: 0,
            cr4: 0,
            gdtr: TableReg { base: 0, limit: 0xFFFF },
            idtr: TableReg { base: 0, limit: 0xFFFF },
            ldtr: SysSeg::default(),
            tr: SysSeg::default(),
            dr: [0, 0, 0, 0, 0, 0, 0xFFFF0FF0, 0x400],
            efer: 0,
            sysenter_cs: 0,
            sysenter_esp: 0,
            sysenter_eip: 0,
            pat: 0x0007_0406_0007_0406,
            tsc_offset: 0,
            halted: false,
            shadow: false,
        }
    }
}

impl Cpu {
    /// The state the Multiboot specification prescribes at kernel entry: 32-bit protected
    /// mode, flat CS/DS/ES/FS/GS/SS at CPL0, paging off, IF clear.
    pub fn multiboot_entry(entry: u32, eax: u32, ebx: u32) -> Self {
        let mut c = Cpu { cr0: cr0::PE | cr0::ET, eip: entry, ..Cpu::default() };
        c.gpr[0] = eax;
        c.gpr[3] = ebx;
        let code = SegReg::flat(0x08, ringfold_arch::descriptor::types::CODE_XR, 0);
        let data = SegReg::flat(0x10, ringfold_arch::descriptor::types::DATA_RW, 0);
        c.seg = [data, code, data, data, data, data];
        c
    }

    /// The state the Linux 32-bit boot protocol prescribes at the protected-mode entry:
    /// flat __BOOT_CS (0x10) / __BOOT_DS (0x18) from the loader's GDT, paging off,
    /// interrupts off, ESI = zero page.
    pub fn linux_entry(entry: u32, esi: u32, gdt_base: u32, gdt_limit: u16, stack: u32) -> Self {
        let mut c = Cpu { cr0: cr0::PE | cr0::ET, eip: entry, ..Cpu::default() };
        c.gpr[6] = esi;
        c.gpr[4] = stack;
        let code = SegReg::flat(0x10, ringfold_arch::descriptor::types::CODE_XR, 0);
        let data = SegReg::flat(0x18, ringfold_arch::descriptor::types::DATA_RW, 0);
        c.seg = [data, code, data, data, data, data];
        c.gdtr = TableReg { base: gdt_base, limit: gdt_limit };
        c
    }

    pub fn iopl(&self) -> u8 {
        eflags::iopl(self.eflags)
    }

    pub fn sreg(&self, s: Sreg) -> &SegReg {
        &self.seg[s as usize]
    }

    /// Reads a GPR of `size` bytes; for size 1, registers 4-7 are AH CH DH BH.
    pub fn get_reg(&self, idx: usize, size: u32) -> u32 {
        match size {
            1 if idx >= 4 => (self.gpr[idx - 4] >> 8) & 0xFF,
            1 => self.gpr[idx] & 0xFF,
            2 => self.gpr[idx] & 0xFFFF,
            _ => self.gpr[idx],
        }
    }

    pub fn set_reg(&mut self, idx: usize, size: u32, v: u32) {
        match size {
            1 if idx >= 4 => self.gpr[idx - 4] = (self.gpr[idx - 4] & !0xFF00) | ((v & 0xFF) << 8),
            1 => self.gpr[idx] = (self.gpr[idx] & !0xFF) | (v & 0xFF),
            2 => self.gpr[idx] = (self.gpr[idx] & !0xFFFF) | (v & 0xFFFF),
            _ => self.gpr[idx] = v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn byte_registers_alias_high_halves() {
        let mut c = Cpu::default();
        c.gpr[0] = 0x1234_5678;
        assert_eq!(c.get_reg(4, 1), 0x56); // AH
        c.set_reg(4, 1, 0xAB);
        assert_eq!(c.gpr[0], 0x1234_AB78);
        c.set_reg(0, 2, 0xFFFF);
        assert_eq!(c.gpr[0], 0x1234_FFFF);
    }
    #[test]
    fn multiboot_entry_state() {
        let c = Cpu::multiboot_entry(0x100000, 0x2BADB002, 0x9000);
        assert_eq!(c.cpl, 0);
        assert_eq!(c.eflags & eflags::IF, 0);
        assert!(c.sreg(Sreg::Cs).desc.is_code() && c.sreg(Sreg::Cs).desc.db);
        assert_eq!(c.sreg(Sreg::Ss).desc.limit(), 0xFFFF_FFFF);
    }
}
