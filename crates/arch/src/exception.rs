//! Exception vectors, error codes and double-fault rules (SDM Vol. 3A
//! Chapter 6).

use core::fmt;

/// Architectural exception vectors relevant to a 32-bit guest.
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
#[repr(u8)]
pub enum Exception {
    /// Divide error.
    DE = 0,
    /// Debug.
    DB = 1,
    /// Non-maskable interrupt.
    NMI = 2,
    /// Breakpoint (INT3).
    BP = 3,
    /// Overflow (INTO).
    OF = 4,
    /// BOUND range exceeded.
    BR = 5,
    /// Invalid opcode.
    UD = 6,
    /// Device (FPU) not available.
    NM = 7,
    /// Double fault.
    DF = 8,
    /// Coprocessor segment overrun (386 only; benign).
    CSO = 9,
    /// Invalid TSS.
    TS = 10,
    /// Segment not present.
    NP = 11,
    /// Stack-segment fault.
    SS = 12,
    /// General protection.
    GP = 13,
    /// Page fault.
    PF = 14,
    /// x87 floating-point error.
    MF = 16,
    /// Alignment check.
    AC = 17,
    /// Machine check.
    MC = 18,
    /// SIMD floating-point.
    XM = 19,
}

impl Exception {
    /// All variants in vector order.
    pub const ALL: [Exception; 19] = [
        Exception::DE,
        Exception::DB,
        Exception::NMI,
        Exception::BP,
        Exception::OF,
        Exception::BR,
        Exception::UD,
        Exception::NM,
        Exception::DF,
        Exception::CSO,
        Exception::TS,
        Exception::NP,
        Exception::SS,
        Exception::GP,
        Exception::PF,
        Exception::MF,
        Exception::AC,
        Exception::MC,
        Exception::XM,
    ];

    /// The IDT vector number.
    pub const fn vector(self) -> u8 {
        self as u8
    }

    /// Maps a vector back to an exception, if it is one of the above.
    pub const fn from_vector(v: u8) -> Option<Exception> {
        Some(match v {
            0 => Exception::DE,
            1 => Exception::DB,
            2 => Exception::NMI,
            3 => Exception::BP,
            4 => Exception::OF,
            5 => Exception::BR,
            6 => Exception::UD,
            7 => Exception::NM,
            8 => Exception::DF,
            9 => Exception::CSO,
            10 => Exception::TS,
            11 => Exception::NP,
            12 => Exception::SS,
            13 => Exception::GP,
            14 => Exception::PF,
            16 => Exception::MF,
            17 => Exception::AC,
            18 => Exception::MC,
            19 => Exception::XM,
            _ => return None,
        })
    }

    /// Whether delivery pushes an error code.
    pub const fn pushes_error_code(self) -> bool {
        pushes_error_code(self as u8)
    }

    /// Double-fault class.
    pub const fn class(self) -> ExceptionClass {
        classify(self as u8)
    }

    /// Conventional mnemonic, e.g. `"#GP"`.
    pub const fn mnemonic(self) -> &'static str {
        match self {
            Exception::DE => "#DE",
            Exception::DB => "#DB",
            Exception::NMI => "NMI",
            Exception::BP => "#BP",
            Exception::OF => "#OF",
            Exception::BR => "#BR",
            Exception::UD => "#UD",
            Exception::NM => "#NM",
            Exception::DF => "#DF",
            Exception::CSO => "CSO",
            Exception::TS => "#TS",
            Exception::NP => "#NP",
            Exception::SS => "#SS",
            Exception::GP => "#GP",
            Exception::PF => "#PF",
            Exception::MF => "#MF",
            Exception::AC => "#AC",
            Exception::MC => "#MC",
            Exception::XM => "#XM",
        }
    }
}

impl fmt::Display for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mnemonic())
    }
}

impl From<Exception> for u8 {
    fn from(e: Exception) -> u8 {
        e as u8
    }
}

/// Whether the CPU pushes an error code when delivering `vector` as an
/// exception: #DF, #TS, #NP, #SS, #GP, #PF, #AC. (INT n, external
/// interrupts and NMI never push one, even for these vector numbers; that
/// distinction is the caller's.)
pub const fn pushes_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17)
}

/// Exception classes used to decide double faults (SDM Table 6-4).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ExceptionClass {
    /// #DB, NMI, #BP, #OF, #BR, #UD, #NM, CSO, #MF, #AC, #MC, #XM, INT n,
    /// external interrupts and every other vector.
    Benign,
    /// #DE, #TS, #NP, #SS, #GP.
    Contributory,
    /// #PF.
    PageFault,
    /// #DF itself (the first exception being #DF leads to shutdown).
    DoubleFault,
}

/// Classifies a vector for double-fault detection.
pub const fn classify(vector: u8) -> ExceptionClass {
    match vector {
        0 | 10..=13 => ExceptionClass::Contributory,
        14 => ExceptionClass::PageFault,
        8 => ExceptionClass::DoubleFault,
        _ => ExceptionClass::Benign,
    }
}

/// What happens when `second` is raised while delivering `first`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Outcome {
    /// Handle serially: deliver `second` normally (the first is lost or
    /// re-raised when the faulting instruction restarts).
    Serial,
    /// Deliver #DF (error code 0) instead.
    DoubleFault,
    /// Shutdown: the guest is dead (a PC resets).
    TripleFault,
}

/// SDM Table 6-5, plus the #DF row from the #DF description: a
/// contributory exception or page fault while delivering #DF shuts the
/// processor down; a benign one is handled serially.
///
/// | first \ second | benign | contributory | page fault |
/// |----------------|--------|--------------|------------|
/// | benign         | serial | serial       | serial     |
/// | contributory   | serial | #DF          | serial     |
/// | page fault     | serial | #DF          | #DF        |
/// | double fault   | serial | triple       | triple     |
///
/// A `second` of vector 8 cannot arise from delivery; it is treated as
/// contributory.
pub const fn double_fault_outcome(first: u8, second: u8) -> Outcome {
    use ExceptionClass::*;
    let second = match classify(second) {
        DoubleFault => Contributory,
        c => c,
    };
    match (classify(first), second) {
        (_, Benign) | (Benign, _) => Outcome::Serial,
        (Contributory, Contributory) => Outcome::DoubleFault,
        (Contributory, PageFault) => Outcome::Serial,
        (PageFault, _) => Outcome::DoubleFault,
        (DoubleFault, _) => Outcome::TripleFault,
        // `second` was mapped away from DoubleFault above.
        (Contributory, DoubleFault) => Outcome::DoubleFault,
    }
}

/// Error-code bit: the event was external to the program (hardware
/// interrupt, or an exception during delivery of another event).
pub const ERR_EXT: u32 = 1 << 0;
/// Error-code bit: the index refers to an IDT gate.
pub const ERR_IDT: u32 = 1 << 1;
/// Error-code bit: the index refers to the LDT (only if `ERR_IDT` clear).
pub const ERR_TI: u32 = 1 << 2;

/// Selector-format error code (SDM §6.13): bit 0 EXT, bit 1 IDT, bit 2 TI,
/// bits 3..=15 index. `index_sel` is a selector whose TI and index bits are
/// used (RPL is replaced). With `idt`, pass `vector << 3` and TI is
/// meaningless (forced 0), see [`idt_error_code`].
pub const fn selector_error_code(index_sel: u16, idt: bool, ext: bool) -> u32 {
    let sel = if idt {
        index_sel & 0xFFF8
    } else {
        index_sel & 0xFFFC
    } as u32;
    sel | if idt { ERR_IDT } else { 0 } | if ext { ERR_EXT } else { 0 }
}

/// Error code referring to IDT entry `vector`.
pub const fn idt_error_code(vector: u8, ext: bool) -> u32 {
    selector_error_code((vector as u16) << 3, true, ext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors() {
        let expect = [
            (Exception::DE, 0),
            (Exception::DB, 1),
            (Exception::NMI, 2),
            (Exception::BP, 3),
            (Exception::OF, 4),
            (Exception::BR, 5),
            (Exception::UD, 6),
            (Exception::NM, 7),
            (Exception::DF, 8),
            (Exception::TS, 10),
            (Exception::NP, 11),
            (Exception::SS, 12),
            (Exception::GP, 13),
            (Exception::PF, 14),
            (Exception::MF, 16),
            (Exception::AC, 17),
            (Exception::MC, 18),
            (Exception::XM, 19),
        ];
        for (e, v) in expect {
            assert_eq!(e.vector(), v);
            assert_eq!(u8::from(e), v);
            assert_eq!(Exception::from_vector(v), Some(e));
        }
        for e in Exception::ALL {
            assert_eq!(Exception::from_vector(e.vector()), Some(e));
            assert!(!e.mnemonic().is_empty());
        }
        for v in [15u8, 20, 31, 32, 255] {
            assert_eq!(Exception::from_vector(v), None);
        }
        assert_eq!(Exception::GP.to_string(), "#GP");
    }

    #[test]
    fn error_codes_pushed() {
        let with: Vec<u8> = (0..=255u8).filter(|&v| pushes_error_code(v)).collect();
        assert_eq!(with, vec![8, 10, 11, 12, 13, 14, 17]);
        assert!(Exception::PF.pushes_error_code());
        assert!(!Exception::UD.pushes_error_code());
    }

    #[test]
    fn classes() {
        use ExceptionClass::*;
        for v in [0u8, 10, 11, 12, 13] {
            assert_eq!(classify(v), Contributory, "{v}");
        }
        assert_eq!(classify(14), PageFault);
        assert_eq!(classify(8), DoubleFault);
        for v in [1u8, 2, 3, 4, 5, 6, 7, 9, 16, 17, 18, 19, 32, 0x80, 255] {
            assert_eq!(classify(v), Benign, "{v}");
        }
        assert_eq!(Exception::GP.class(), Contributory);
    }

    #[test]
    fn double_fault_table() {
        use Outcome::*;
        let benign = 6u8; // #UD
        let contrib = [0u8, 10, 11, 12, 13];
        let pf = 14u8;
        let df = 8u8;
        // Benign first: always serial.
        for s in [benign, pf, 0x20].into_iter().chain(contrib) {
            assert_eq!(double_fault_outcome(benign, s), Serial);
            assert_eq!(double_fault_outcome(0x80, s), Serial, "INT n is benign");
        }
        // Benign second: always serial.
        for f in [benign, pf, df].into_iter().chain(contrib) {
            assert_eq!(double_fault_outcome(f, benign), Serial);
            assert_eq!(double_fault_outcome(f, 2), Serial, "NMI");
        }
        for f in contrib {
            for s in contrib {
                assert_eq!(double_fault_outcome(f, s), DoubleFault, "{f} {s}");
            }
            assert_eq!(double_fault_outcome(f, pf), Serial);
            assert_eq!(double_fault_outcome(pf, f), DoubleFault);
            assert_eq!(double_fault_outcome(df, f), TripleFault);
        }
        assert_eq!(double_fault_outcome(pf, pf), DoubleFault);
        assert_eq!(double_fault_outcome(df, pf), TripleFault);
        assert_eq!(double_fault_outcome(df, df), TripleFault);
        assert_eq!(double_fault_outcome(13, df), DoubleFault);
    }

    #[test]
    fn selector_error_codes() {
        // GDT selector 0x2B (index 5, RPL 3): RPL dropped.
        assert_eq!(selector_error_code(0x2B, false, false), 0x28);
        // LDT selector 0x0F: TI kept.
        assert_eq!(selector_error_code(0x0F, false, false), 0x0C);
        assert_eq!(selector_error_code(0x0F, false, true), 0x0D);
        // IDT vector 13 from an external event.
        assert_eq!(idt_error_code(13, true), (13 << 3) | 3);
        assert_eq!(idt_error_code(0x80, false), 0x402);
        assert_eq!(selector_error_code(0x80 << 3 | 4, true, false), 0x402);
        assert_eq!(selector_error_code(0xFFFF, false, true), 0xFFFD);
        assert_eq!(selector_error_code(0, false, false), 0);
        assert_eq!(ERR_TI, 4);
    }
}
