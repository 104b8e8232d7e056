//! Shadow-paging benchmark (not a test): `cargo bench --bench paging`.
//!
//! A guest at CPL0 with 32-bit paging writes one word to each of N pages of a working set
//! mapped with 4 KiB PTEs at linear 0x40000000. Reports:
//! * the cost of a shadow fault (a guest touch of a page not yet mapped on the host);
//! * the cost of a guest CR3 switch between two address spaces of N touched pages each,
//!   without the shadow cache (every switch drops the old space's mappings, so each space
//!   refaults its pages) and with it (the old space is saved, the new one restored from
//!   its saved mappings: host mmap calls for runs, no faults);
//! * the number of host VMAs (lines of /proc/self/maps) at a 512 MiB working set, with
//!   linear and physical pages lined up (the kernel merges adjacent file mappings) and with
//!   a scattered physical layout (one VMA per page).

use ringfold_arch::descriptor::types::{CODE_XR, DATA_RW};
use ringfold_devices::PortBus;
use ringfold_vmm::cpu::{Cpu, SegReg, TableReg};
use ringfold_vmm::machine::TlbEvent;
use ringfold_vmm::vm::Vm;
use ringfold_vmm::{Memory, Stop};

const CODE: u32 = 0x0040_0000;
const PD_A: u32 = 0x0020_0000;
const PD_B: u32 = 0x0020_1000;
const PTS: u32 = 0x0030_0000; // page tables for the working set: 1 MiB (256 PTs = 1 GiB)
const FRAMES: u32 = 0x0100_0000; // working-set frames from 16 MiB
const WS: u32 = 0x4000_0000;

fn w32(vm: &mut Vm, pa: u32, v: u32) {
    vm.m.mem.write(pa, &v.to_le_bytes());
}

/// Builds page directory `pd`: 4 MiB identity pages for the first 16 MiB (code, tables,
/// stack), and `pages` 4 KiB PTEs at WS mapping frame `frame(i)`.
fn build(vm: &mut Vm, pd: u32, pts: u32, pages: u32, frame: impl Fn(u32) -> u32) {
    for i in 0..1024 {
        w32(vm, pd + i * 4, 0);
    }
    for i in 0..4 {
        w32(vm, pd + i * 4, (i << 22) | 0x83); // P RW PS, supervisor
    }
    let nts = pages.div_ceil(1024);
    for t in 0..nts {
        w32(vm, pd + ((WS >> 22) + t) * 4, (pts + t * 4096) | 0x03);
        let mut pte = vec![0u8; 4096];
        for k in 0..1024 {
            let i = t * 1024 + k;
            if i < pages {
                pte[k as usize * 4..k as usize * 4 + 4].copy_from_slice(&(frame(i) | 0x03).to_le_bytes());
            }
        }
        vm.m.mem.write(pts + t * 4096, &pte);
    }
}

fn paged_cpu(ebx: u32, ecx: u32) -> Cpu {
    let mut c = Cpu::multiboot_entry(CODE, 0, 0);
    let data = SegReg::flat(0x10, DATA_RW, 0);
    c.seg = [data, SegReg::flat(0x08, CODE_XR, 0), data, data, data, data];
    c.cr0 |= 1 << 31;
    c.cr3 = PD_A;
    c.cr4 = 1 << 4; // PSE
    c.gpr[1] = ecx;
    c.gpr[3] = ebx;
    c.gpr[4] = 0x00C0_0000;
    c.idtr = TableReg { base: 0, limit: 0 };
    c
}

fn run(vm: &mut Vm, code: &[u8], ebx: u32, ecx: u32, flush: bool) -> u64 {
    vm.m.mem.write(CODE, code);
    let end = CODE + code.len() as u32 - 2;
    let tsc = vm.cpu_mut().tsc_offset;
    *vm.cpu_mut() = paged_cpu(ebx, ecx);
    vm.cpu_mut().tsc_offset = tsc;
    if flush {
        vm.m.tlb_events.push(TlbEvent::FlushAll);
    }
    let t0 = ringfold_host::rdtsc();
    let stop = vm.run();
    let t = ringfold_host::rdtsc() - t0;
    assert!(matches!(stop, Stop::TripleFault { eip, .. } if eip == end), "{stop} (host VMAs {}, {:?})", vmas(), vm.stats);
    t
}

/// `outer: mov esi, WS; mov edx, ecx; inner: mov [esi], eax; add esi, 4096; dec edx;
/// jnz inner; [switch] dec ebx; jnz outer; ud2`. With `switch`, each outer iteration first
/// loads CR3 with PD_A or PD_B alternately (xor edi, PD_A^PD_B; mov cr3, edi).
fn touch_loop(switch: bool) -> Vec<u8> {
    let mut c = Vec::new();
    if switch {
        c.extend_from_slice(&[0xBF]);
        c.extend_from_slice(&PD_A.to_le_bytes()); // mov edi, PD_A
    }
    let outer = c.len();
    if switch {
        c.extend_from_slice(&[0x81, 0xF7]);
        c.extend_from_slice(&(PD_A ^ PD_B).to_le_bytes()); // xor edi, A^B
        c.extend_from_slice(&[0x0F, 0x22, 0xDF]); // mov cr3, edi
    }
    c.push(0xBE);
    c.extend_from_slice(&WS.to_le_bytes()); // mov esi, WS
    c.extend_from_slice(&[0x89, 0xCA]); // mov edx, ecx
    let inner = c.len();
    c.extend_from_slice(&[0x89, 0x06]); // mov [esi], eax
    c.extend_from_slice(&[0x81, 0xC6, 0x00, 0x10, 0x00, 0x00]); // add esi, 4096
    c.push(0x4A); // dec edx
    let rel = inner as i32 - (c.len() as i32 + 2);
    c.extend_from_slice(&[0x75, rel as i8 as u8]); // jnz inner
    c.push(0x4B); // dec ebx
    let rel = outer as i32 - (c.len() as i32 + 6);
    c.extend_from_slice(&[0x0F, 0x85]);
    c.extend_from_slice(&rel.to_le_bytes()); // jnz outer
    c.extend_from_slice(&[0x0F, 0x0B]); // ud2
    c
}

fn vmas() -> usize {
    std::fs::read_to_string("/proc/self/maps").map(|s| s.lines().count()).unwrap_or(0)
}

fn main() {
    let mut vm = Vm::new(640 << 20, PortBus::new()).expect("vm");
    let n = 4096u32;
    build(&mut vm, PD_A, PTS, n, |i| FRAMES + i * 4096);
    build(&mut vm, PD_B, PTS + 0x8_0000, n, |i| FRAMES + 0x0100_0000 + i * 4096);
    let touch = touch_loop(false);
    let fresh = run(&mut vm, &touch, 1, n, true);
    let mapped = (0..3).map(|_| run(&mut vm, &touch, 1, n, false)).min().unwrap();
    println!("shadow fault: {} cycles per page ({n} fresh pages: {fresh} cycles; same pages mapped: {mapped} cycles)",
        fresh.saturating_sub(mapped) / n as u64);
    println!("  monitor: {:?}; host VMAs now {}", vm.stats, vmas());

    for pages in [16u32, 256, 1024] {
        build(&mut vm, PD_A, PTS, pages, |i| FRAMES + i * 4096);
        build(&mut vm, PD_B, PTS + 0x8_0000, pages, |i| FRAMES + 0x0100_0000 + i * 4096);
        let switches = 200u32;
        let mut per = [0u64; 2];
        for (k, cache) in [false, true].into_iter().enumerate() {
            vm.set_shadow_cache(cache);
            let faults = vm.stats.shadow_faults;
            per[k] = run(&mut vm, &touch_loop(true), switches, pages, true) / switches as u64;
            let f = vm.stats.shadow_faults - faults;
            println!("CR3 switch between two spaces of {pages} touched pages, {} shadow cache: {} cycles per switch ({f} shadow faults in {switches} switches)",
                if cache { "with" } else { "without" }, per[k]);
        }
        println!("  shadow cache speed-up at {pages} pages: {:.1}x; {:?}", per[0] as f64 / per[1].max(1) as f64, vm.mmu_stats());
    }
    vm.set_shadow_cache(true);

    // The same touch loop over 64 MiB mapped by 4 MiB PSE pages: one shadow fault maps a
    // whole large page (the Linux direct-map case).
    let large_pages = 16u32;
    for t in 0..large_pages {
        w32(&mut vm, PD_A + ((WS >> 22) + t) * 4, (FRAMES + t * 0x40_0000) | 0x83);
    }
    let before = vm.stats.shadow_faults;
    let t_large = run(&mut vm, &touch, 1, large_pages * 1024, true);
    println!("64 MiB in 4 MiB pages, first touch: {} shadow faults, {} cycles per 4 KiB page touched",
        vm.stats.shadow_faults - before, t_large / (large_pages as u64 * 1024));

    // 512 MiB working set = 131072 pages.
    let big = 131072u32;
    let base = vmas();
    build(&mut vm, PD_A, PTS, big, |i| FRAMES + i * 4096);
    run(&mut vm, &touch, 1, big, true);
    println!("512 MiB working set in 4 KiB pages, linear/physical lined up: {} host VMAs at the end (+{} over the set-up), {} evictions of the shadow (limit 32768 mapped pages)",
        vmas(), vmas() - base, vm.stats.evictions);
    // Scattered frames: a permutation inside 64 MiB blocks defeats VMA merging.
    let scattered = 16384u32;
    build(&mut vm, PD_A, PTS, scattered, |i| FRAMES + ((i * 7919) % scattered) * 4096);
    run(&mut vm, &touch, 1, scattered, true);
    println!("{scattered} pages scattered in physical memory: {} host VMAs (one per page; vm.max_map_count is {})",
        vmas(), std::fs::read_to_string("/proc/sys/vm/max_map_count").unwrap_or_default().trim());
}
