//! External interrupt delivery: a test platform requests vector 0x40 every millisecond.
//! The guest spins in a chained translation that never exits on its own (only the kick
//! timer gets it out), or halts with IF=1 (the VM thread idles until the next event); the
//! guest's handler counts interrupts. Also: no delivery while IF=0.

use ringfold_devices::PortBus;
use ringfold_vmm::cpu::{Cpu, TableReg};
use ringfold_vmm::machine::Platform;
use ringfold_vmm::vm::Vm;
use ringfold_vmm::{Memory, Stop};

const GDT: u32 = 0x1000;
const IDT: u32 = 0x2000;
const HANDLER: u32 = 0x3000;
const MAIN: u32 = 0x4000;
const COUNTER: u32 = 0x5000;

struct Ticker {
    next: u64,
    period: u64,
    pending: bool,
}

impl Platform for Ticker {
    fn update(&mut self, now: u64) -> bool {
        if now >= self.next {
            self.pending = true;
        }
        self.pending
    }
    fn acknowledge(&mut self) -> Option<u8> {
        if !self.pending {
            return None;
        }
        self.pending = false;
        self.next += self.period;
        Some(0x40)
    }
    fn next_deadline(&self) -> Option<u64> {
        Some(self.next)
    }
}

fn setup(vm: &mut Vm, main: &[u8]) {
    let w = |vm: &mut Vm, a: u32, b: &[u8]| vm.m.mem.write(a, b);
    w(vm, GDT, &[0u8; 8]);
    w(vm, GDT + 8, &0x00CF_9A00_0000_FFFFu64.to_le_bytes());
    w(vm, GDT + 16, &0x00CF_9200_0000_FFFFu64.to_le_bytes());
    w(vm, IDT, &[0u8; 2048]);
    // 0x40: 32-bit interrupt gate, DPL0, selector 0x08.
    let gate = (HANDLER as u64 & 0xFFFF) | (0x08 << 16) | (0x8E00u64 << 32) | ((HANDLER as u64 >> 16) << 48);
    w(vm, IDT + 0x40 * 8, &gate.to_le_bytes());
    let mut h = vec![0xFF, 0x05];
    h.extend_from_slice(&COUNTER.to_le_bytes()); // inc dword [COUNTER]
    h.push(0xCF); // iret
    w(vm, HANDLER, &h);
    w(vm, COUNTER, &[0; 4]);
    w(vm, MAIN, main);
    let tsc = vm.cpu_mut().tsc_offset;
    let mut c = Cpu::multiboot_entry(MAIN, 0, 0);
    c.gdtr = TableReg { base: GDT, limit: 0x17 };
    c.idtr = TableReg { base: IDT, limit: 0x7FF };
    c.gpr[4] = 0x9000;
    c.tsc_offset = tsc;
    *vm.cpu_mut() = c;
    let now = ringfold_host::timer::now_ns();
    vm.platform = Some(Box::new(Ticker { next: now + 1_000_000, period: 1_000_000, pending: false }));
}

fn counter(vm: &mut Vm) -> u32 {
    let mut b = [0u8; 4];
    vm.m.mem.read(COUNTER, &mut b);
    u32::from_le_bytes(b)
}

/// `sti; L: cmp dword [COUNTER], n; jb L; ud2` (or with `hlt` in the loop).
fn wait_loop(n: u8, halt: bool, sti: bool) -> (Vec<u8>, u32) {
    let mut c = Vec::new();
    if sti {
        c.push(0xFB);
    }
    let l = c.len();
    if halt {
        c.push(0xF4);
    }
    c.extend_from_slice(&[0x83, 0x3D]);
    c.extend_from_slice(&COUNTER.to_le_bytes());
    c.push(n);
    let rel = l as i32 - (c.len() as i32 + 2);
    c.extend_from_slice(&[0x72, rel as i8 as u8]);
    let end = MAIN + c.len() as u32;
    c.extend_from_slice(&[0x0F, 0x0B]);
    (c, end)
}

#[test]
fn interrupts_reach_spinning_and_halted_guests() {
    let mut vm = Vm::new(16 << 20, PortBus::new()).expect("vm");

    // A tight chained loop: only the kick timer can get the guest out of it.
    let (code, end) = wait_loop(20, false, true);
    setup(&mut vm, &code);
    let t0 = std::time::Instant::now();
    let stop = vm.run();
    assert!(matches!(stop, Stop::TripleFault { eip, .. } if eip == end), "{stop}");
    assert_eq!(counter(&mut vm), 20);
    assert!(t0.elapsed().as_millis() >= 19, "interrupts are paced by the platform's deadlines");
    assert!(vm.stats.kicks > 0, "{:?}", vm.stats);

    // HLT with IF=1: the VM thread idles until the next interrupt.
    let (code, end) = wait_loop(10, true, true);
    setup(&mut vm, &code);
    let idles = vm.stats.idles;
    let stop = vm.run();
    assert!(matches!(stop, Stop::TripleFault { eip, .. } if eip == end), "{stop}");
    assert_eq!(counter(&mut vm), 10);
    assert!(vm.stats.idles > idles);

    // Interrupts landing inside the inline PUSHFD/CLI/POPFD/STI translations (fast ticks,
    // so that kicks hit every point of those sequences): the stack pointer must come out
    // exact, and no kick may be lost (one landing in the entry trampoline is covered by
    // the timer's periodic backstop).
    // L: pushfd; cli; inc esi; popfd; cli; sti; cmp [COUNTER], 200; jb L; ud2
    let mut code = vec![0xFB, 0x31, 0xF6]; // sti; xor esi, esi
    let l = code.len();
    code.extend_from_slice(&[0x9C, 0xFA, 0x46, 0x9D, 0xFA, 0xFB]);
    code.extend_from_slice(&[0x81, 0x3D]);
    code.extend_from_slice(&COUNTER.to_le_bytes());
    code.extend_from_slice(&200u32.to_le_bytes());
    let rel = l as i32 - (code.len() as i32 + 2);
    code.extend_from_slice(&[0x72, rel as i8 as u8]);
    let end = MAIN + code.len() as u32;
    code.extend_from_slice(&[0x0F, 0x0B]);
    setup(&mut vm, &code);
    let now = ringfold_host::timer::now_ns();
    vm.platform = Some(Box::new(Ticker { next: now + 50_000, period: 50_000, pending: false }));
    let stop = vm.run();
    assert!(matches!(stop, Stop::TripleFault { eip, .. } if eip == end), "{stop}");
    // At this rate delivery can fall behind, so a few more may arrive before the UD2.
    assert!(counter(&mut vm) >= 200);
    assert_eq!(vm.cpu_mut().gpr[4], 0x9000, "ESP exact after kicks inside inline flag sequences");
    assert!(vm.cpu_mut().gpr[6] > 200, "the loop ran between interrupts");

    // IF=0: nothing is delivered; HLT then cannot be woken.
    let (code, _) = wait_loop(1, true, false);
    setup(&mut vm, &code);
    let stop = vm.run();
    assert!(matches!(stop, Stop::HaltedForever(_)), "{stop}");
    assert_eq!(counter(&mut vm), 0);
}
