//! The CPU model the guest sees: a coherent CPUID that advertises only what ringfold
//! virtualizes correctly.

/// CPUID leaf 1 EDX feature bits advertised.
pub mod edx1 {
    pub const FPU: u32 = 1 << 0;
    pub const PSE: u32 = 1 << 3;
    pub const TSC: u32 = 1 << 4;
    pub const MSR: u32 = 1 << 5;
    pub const PAE: u32 = 1 << 6;
    pub const CX8: u32 = 1 << 8;
    /// Only when the platform has a local APIC (`ringfold run` without `--no-apic`).
    pub const APIC: u32 = 1 << 9;
    pub const SEP: u32 = 1 << 11;
    pub const PGE: u32 = 1 << 13;
    pub const CMOV: u32 = 1 << 15;
    pub const PSE36: u32 = 1 << 17;
    pub const MMX: u32 = 1 << 23;
    pub const FXSR: u32 = 1 << 24;
    pub const SSE: u32 = 1 << 25;
    pub const SSE2: u32 = 1 << 26;
}

/// CPUID leaf 1 ECX feature bits advertised.
pub mod ecx1 {
    /// The local APIC timer's TSC-deadline mode (IA32_TSC_DEADLINE): only with an APIC.
    /// Linux then skips calibrating the APIC timer against the PIT (100 ms of boot).
    pub const TSC_DEADLINE: u32 = 1 << 24;
}

const VENDOR: &[u8; 12] = b"AuthenticAMD";
const BRAND: &[u8; 48] = b"ringfold virtual CPU (IA-32, binary translated)\0";

/// Returns EAX, EBX, ECX, EDX for CPUID leaf `eax`, subleaf `ecx`. `apic`: the platform
/// has a local APIC (leaf 1 EDX bit 9).
pub fn cpuid(leaf: u32, _sub: u32, apic: bool) -> [u32; 4] {
    let w = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    match leaf {
        0 => [1, w(&VENDOR[0..4]), w(&VENDOR[8..12]), w(&VENDOR[4..8])],
        1 => {
            // Family 0xF, model 0x4, stepping 0x8 (a K8-class part that runs 32-bit OSes).
            let eax = (0xF << 8) | (0x4 << 4) | 0x8;
            let ebx = 8 << 8; // CLFLUSH line size 64 bytes, 1 logical CPU, APIC ID 0
            use edx1::*;
            let edx = FPU | PSE | TSC | MSR | PAE | CX8 | SEP | PGE | CMOV | PSE36 | MMX | FXSR | SSE | SSE2
                | if apic { APIC } else { 0 };
            // ECX: the APIC timer's TSC-deadline mode (with the APIC only).
            let ecx = if apic { ecx1::TSC_DEADLINE } else { 0 };
            [eax, ebx, ecx, edx]
        }
        0x8000_0000 => [0x8000_0004, w(&VENDOR[0..4]), w(&VENDOR[8..12]), w(&VENDOR[4..8])],
        // NX (bit 20) only: no SYSCALL in legacy mode, no long mode.
        0x8000_0001 => [0xF48, 0, 0, 1 << 20],
        0x8000_0002..=0x8000_0004 => {
            let o = (leaf - 0x8000_0002) as usize * 16;
            [w(&BRAND[o..]), w(&BRAND[o + 4..]), w(&BRAND[o + 8..]), w(&BRAND[o + 12..])]
        }
        // Out-of-range leaves return the highest basic leaf's data (Intel) / zeros (AMD):
        // we follow AMD.
        _ => [0; 4],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn vendor_and_features_are_coherent() {
        let r = cpuid(0, 0, true);
        assert!(r[0] >= 1);
        let mut v = Vec::new();
        for x in [r[1], r[3], r[2]] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        assert_eq!(&v, VENDOR);
        let f = cpuid(1, 0, true);
        assert_eq!((f[0] >> 8) & 0xF, 0xF);
        // Shadow paging: PSE, PAE, PGE, PSE-36 and NX.
        assert_eq!(f[3] & ((1 << 3) | (1 << 6) | (1 << 13) | (1 << 17)), (1 << 3) | (1 << 6) | (1 << 13) | (1 << 17));
        assert_eq!(cpuid(0x8000_0001, 0, true)[3], 1 << 20);
        assert_eq!(cpuid(0x8000_0001, 0, true)[3] & (1 << 11), 0, "no SYSCALL in legacy mode");
        assert_eq!(cpuid(7, 0, true), [0; 4]);
        assert_eq!(f[3] & edx1::APIC, edx1::APIC);
        assert_eq!(cpuid(1, 0, false)[3], f[3] & !edx1::APIC, "--no-apic clears only the APIC bit");
        assert_eq!(f[2], ecx1::TSC_DEADLINE);
        assert_eq!(cpuid(1, 0, false)[2], 0, "no TSC-deadline timer without an APIC");
    }
}
