//! Segment-register loads with the protection checks of MOV/POP/LxS (SDM Vol. 2, MOV).

use crate::cpu::{SegReg, Sreg};
use crate::machine::{Ex, Fault, Machine, Memory};
use ringfold_arch::Selector;

impl<M: Memory> Machine<M> {
    /// Loads data-segment register `s` (DS ES FS GS or SS) with `sel`, as MOV Sreg does.
    pub fn load_data_seg(&mut self, s: Sreg, sel: u16) -> Ex<()> {
        let selector = Selector(sel);
        let err = sel as u32 & 0xFFFC;
        let cpl = self.cpu.cpl;
        if selector.is_null() {
            if s == Sreg::Ss {
                return Err(Fault::gp(0));
            }
            self.cpu.seg[s as usize] = SegReg { sel, desc: Default::default(), valid: false };
            return Ok(());
        }
        let (d, addr) = self.read_descriptor(selector)?;
        let rpl = selector.rpl();
        if s == Sreg::Ss {
            if rpl != cpl || !d.s || d.is_code() || !d.writable() || d.dpl != cpl {
                return Err(Fault::gp(err));
            }
            if !d.present {
                return Err(Fault::ss(err));
            }
        } else {
            if !d.s || (d.is_code() && !d.readable()) {
                return Err(Fault::gp(err));
            }
            if (d.is_data() || !d.conforming()) && (rpl > d.dpl || cpl > d.dpl) {
                return Err(Fault::gp(err));
            }
            if !d.present {
                return Err(Fault::np(err));
            }
        }
        self.set_accessed(addr, &d)?;
        let desc = ringfold_arch::Descriptor::from_raw(d.with_accessed());
        self.cpu.seg[s as usize] = SegReg { sel, desc, valid: true };
        if s == Sreg::Ss {
            self.cpu.shadow = true;
        }
        Ok(())
    }

    /// After a privilege change to an outer level, data segments the new CPL may not use
    /// are nulled (IRET / RET far to outer level).
    pub fn null_inaccessible_segs(&mut self) {
        for s in [Sreg::Es, Sreg::Ds, Sreg::Fs, Sreg::Gs] {
            let r = self.cpu.seg[s as usize];
            if !r.valid {
                continue;
            }
            let d = r.desc;
            if (d.is_data() || !d.conforming()) && d.dpl < self.cpu.cpl {
                self.cpu.seg[s as usize] = SegReg { sel: 0, desc: Default::default(), valid: false };
            }
        }
    }
}
