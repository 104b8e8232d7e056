//! Shadowing guest data segments as host LDT entries.
//!
//! The guest runs natively, so its DS/ES/FS/GS/SS loads must resolve to
//! host LDT entries installed with `modify_ldt(2)`. Those entries must keep
//! the guest confined: no access through them may reach the monitor region
//! (linear addresses `>= monitor_start`) or wrap around 4 GiB to low memory.
//! A shadow may be *stricter* than the guest descriptor: an access the guest
//! allows but the shadow forbids faults on the host, and the monitor then
//! emulates it. It must never be *looser*.
//!
//! The kernel builds the descriptor from `struct user_desc` itself (DPL 3,
//! accessed set, L clear); [`installed_descriptor`] models that so tests can
//! check the result with [`Descriptor::contains`].
//!
//! Use `modify_ldt` function `0x11` (new mode): function 1 clears the entry
//! whenever base and limit are both 0, and forces AVL to 0. Kernels built
//! without `CONFIG_X86_16BIT` reject `seg_32bit == false` with `EINVAL`.

use crate::descriptor::Descriptor;
use core::fmt;

/// `contents` value: normal (expand-up) data.
pub const CONTENTS_DATA: u8 = 0;
/// `contents` value: expand-down data ("stack").
pub const CONTENTS_STACK: u8 = 1;
/// `contents` value: code.
pub const CONTENTS_CODE: u8 = 2;

/// The fields of Linux's `struct user_desc` (minus `entry_number` and the
/// 64-bit-only `lm` bit, which is always 0 here).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct UserDescFields {
    /// Segment base.
    pub base_addr: u32,
    /// Raw 20-bit limit (bytes, or pages if `limit_in_pages`).
    pub limit: u32,
    /// D/B bit.
    pub seg_32bit: bool,
    /// [`CONTENTS_DATA`], [`CONTENTS_STACK`] or [`CONTENTS_CODE`].
    pub contents: u8,
    /// Data: read-only. Code: execute-only.
    pub read_exec_only: bool,
    /// G bit.
    pub limit_in_pages: bool,
    /// Inverse of P.
    pub seg_not_present: bool,
    /// AVL bit.
    pub useable: bool,
}

impl UserDescFields {
    /// The "admits no offset" form: expand-down, B=1, page-granular limit
    /// 0xFFFFF gives the valid range (0xFFFFFFFF, 0xFFFFFFFF], which is
    /// empty. Loading it succeeds (so segment register loads stay native) but
    /// every access faults and is emulated. Not the kernel's "empty entry"
    /// pattern, so it is really installed.
    pub const fn trap_all(read_exec_only: bool, seg_not_present: bool, useable: bool) -> Self {
        UserDescFields {
            base_addr: 0,
            limit: 0xF_FFFF,
            seg_32bit: true,
            contents: CONTENTS_STACK,
            read_exec_only,
            limit_in_pages: true,
            seg_not_present,
            useable,
        }
    }

    /// True if the kernel treats these fields as "clear the entry"
    /// (`LDT_empty`): it then installs an all-zero descriptor instead.
    pub const fn is_kernel_empty(&self) -> bool {
        self.base_addr == 0
            && self.limit == 0
            && self.contents == 0
            && self.read_exec_only
            && !self.seg_32bit
            && !self.limit_in_pages
            && self.seg_not_present
            && !self.useable
    }
}

/// How faithfully the shadow represents the guest segment.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ShadowKind {
    /// Exactly the guest's valid offsets are valid on the host.
    Exact,
    /// A prefix of the guest's valid offsets is valid (limit cut below the
    /// monitor region or to a page boundary); faults above it need emulation.
    Truncated,
    /// No offset is valid on the host; every access must be emulated.
    TrapAll,
}

/// Why a descriptor cannot be shadowed as a data segment.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ShadowError {
    /// S=0: LDT/TSS/gate descriptors cannot be loaded into data registers.
    SystemDescriptor,
    /// Execute-only code cannot be loaded into a data segment register.
    ExecuteOnlyCode,
}

impl fmt::Display for ShadowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShadowError::SystemDescriptor => {
                "system descriptor cannot be shadowed as a data segment"
            }
            ShadowError::ExecuteOnlyCode => "execute-only code segment cannot be loaded as data",
        })
    }
}

impl std::error::Error for ShadowError {}

/// Computes the host LDT entry for a guest data segment (or readable code
/// segment being loaded into DS/ES/FS/GS/SS).
///
/// * Expand-up: byte limit becomes `min(guest_limit, monitor_start - 1 - base)`;
///   above 0xFFFFF it is expressed in pages rounded down (losing at most the
///   partial last page). `base >= monitor_start` gives the trap-all form.
/// * Expand-down: valid offsets are `(limit, upper]` and cannot be
///   truncated without admitting offsets the guest forbids, so the segment
///   is copied exactly if `base + upper < monitor_start` (64-bit sum, so a
///   wrapping segment also fails), otherwise trap-all.
/// * Readable code becomes read-only expand-up data.
///
/// `seg_32bit` follows the guest D/B bit, `useable` follows AVL and
/// `seg_not_present` follows P (the monitor should raise #NP itself before
/// loading a non-present segment; note a not-present, read-only, 16-bit,
/// base 0, limit 0, AVL 0 segment matches the kernel's "clear entry"
/// pattern, see [`UserDescFields::is_kernel_empty`]).
pub fn shadow_data_segment(
    desc: &Descriptor,
    monitor_start: u32,
) -> Result<(UserDescFields, ShadowKind), ShadowError> {
    if desc.is_system() {
        return Err(ShadowError::SystemDescriptor);
    }
    if desc.is_code() && !desc.readable() {
        return Err(ShadowError::ExecuteOnlyCode);
    }
    let read_exec_only = !desc.writable();
    let seg_not_present = !desc.present;
    let useable = desc.avl;
    let trap_all = || {
        (
            UserDescFields::trap_all(read_exec_only, seg_not_present, useable),
            ShadowKind::TrapAll,
        )
    };

    if desc.expand_down() {
        let top = desc.base as u64 + desc.upper_bound() as u64;
        if top >= monitor_start as u64 {
            return Ok(trap_all());
        }
        return Ok((
            UserDescFields {
                base_addr: desc.base,
                limit: desc.limit_raw & 0xF_FFFF,
                seg_32bit: desc.db,
                contents: CONTENTS_STACK,
                read_exec_only,
                limit_in_pages: desc.granularity,
                seg_not_present,
                useable,
            },
            ShadowKind::Exact,
        ));
    }

    // Expand-up data or readable code.
    if desc.base >= monitor_start {
        return Ok(trap_all());
    }
    let guest_limit = desc.limit();
    // base < monitor_start, so this cannot underflow; and base + max <
    // monitor_start <= 2^32 - 1, so no access can wrap.
    let max = monitor_start - 1 - desc.base;
    let lim = guest_limit.min(max);
    let (limit, limit_in_pages, effective) = if lim > 0xF_FFFF {
        // Round down to whole pages: the host limit must not exceed `lim`.
        let pages = ((lim as u64 + 1) >> 12) as u32 - 1;
        (pages, true, (pages << 12) | 0xFFF)
    } else {
        (lim, false, lim)
    };
    let kind = if effective == guest_limit {
        ShadowKind::Exact
    } else {
        ShadowKind::Truncated
    };
    Ok((
        UserDescFields {
            base_addr: desc.base,
            limit,
            seg_32bit: desc.db,
            contents: CONTENTS_DATA,
            read_exec_only,
            limit_in_pages,
            seg_not_present,
            useable,
        },
        kind,
    ))
}

/// The `flags` bitfield word of `struct user_desc`.
pub const fn user_desc_flags(f: &UserDescFields) -> u32 {
    (f.seg_32bit as u32)
        | ((f.contents as u32 & 3) << 1)
        | ((f.read_exec_only as u32) << 3)
        | ((f.limit_in_pages as u32) << 4)
        | ((f.seg_not_present as u32) << 5)
        | ((f.useable as u32) << 6)
}

/// The 16-byte `struct user_desc` as four native-endian `u32`s:
/// `[entry_number, base_addr, limit, flags]`. The host is x86-64, so
/// `u32::to_le_bytes` of each word gives the in-memory layout.
pub const fn to_user_desc_words(entry_number: u32, f: &UserDescFields) -> [u32; 4] {
    [entry_number, f.base_addr, f.limit, user_desc_flags(f)]
}

/// The same structure as bytes, ready to pass to `modify_ldt`.
pub fn to_user_desc_bytes(entry_number: u32, f: &UserDescFields) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (chunk, w) in out
        .chunks_exact_mut(4)
        .zip(to_user_desc_words(entry_number, f))
    {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// The raw descriptor Linux installs for `f` via `modify_ldt(0x11)`:
/// S=1, DPL 3, accessed set, type bit 1 = !read_exec_only, type bits 2..3 =
/// contents, P = !seg_not_present, AVL = useable, L = 0, D/B = seg_32bit,
/// G = limit_in_pages. Returns 0 for the kernel's "clear entry" pattern.
pub const fn installed_descriptor(f: &UserDescFields) -> u64 {
    if f.is_kernel_empty() {
        return 0;
    }
    let typ = 1 | ((!f.read_exec_only) as u8) << 1 | (f.contents & 3) << 2;
    Descriptor {
        base: f.base_addr,
        limit_raw: f.limit & 0xF_FFFF,
        granularity: f.limit_in_pages,
        typ,
        s: true,
        dpl: 3,
        present: !f.seg_not_present,
        avl: f.useable,
        l: false,
        db: f.seg_32bit,
    }
    .to_raw()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::types;

    const MS: u32 = 0xFF00_0000;

    fn seg(base: u32, limit_raw: u32, g: bool, typ: u8, db: bool) -> Descriptor {
        Descriptor::new_segment(base, limit_raw, g, typ, 3, db)
    }

    fn host(f: &UserDescFields) -> Descriptor {
        Descriptor::from_raw(installed_descriptor(f))
    }

    #[test]
    fn flat_data_truncated_to_monitor() {
        let g = seg(0, 0xFFFFF, true, types::DATA_RW, true);
        let (f, k) = shadow_data_segment(&g, MS).unwrap();
        assert_eq!(k, ShadowKind::Truncated);
        assert_eq!(f.base_addr, 0);
        assert!(f.limit_in_pages);
        assert_eq!(f.limit, 0xFEFFF);
        assert_eq!(f.contents, CONTENTS_DATA);
        assert!(!f.read_exec_only && f.seg_32bit && !f.seg_not_present);
        let h = host(&f);
        assert_eq!(h.limit(), MS - 1);
        assert!(h.contains(MS - 4, 4));
        assert!(!h.contains(MS - 3, 4));
        assert!(!h.contains(MS, 1));
    }

    #[test]
    fn small_segment_exact_byte_granular() {
        let g = seg(0x0001_0000, 0xFFFF, false, types::DATA_RO, false);
        let (f, k) = shadow_data_segment(&g, MS).unwrap();
        assert_eq!(k, ShadowKind::Exact);
        assert_eq!(
            (f.base_addr, f.limit, f.limit_in_pages),
            (0x10000, 0xFFFF, false)
        );
        assert!(f.read_exec_only && !f.seg_32bit);
        let h = host(&f);
        assert!(h.is_data() && !h.writable() && h.accessed());
        assert_eq!(h.dpl, 3);
    }

    #[test]
    fn page_granular_below_monitor_exact() {
        let g = seg(0x0040_0000, 0x0FFF, true, types::DATA_RW, true); // 16 MiB
        let (f, k) = shadow_data_segment(&g, MS).unwrap();
        assert_eq!(k, ShadowKind::Exact);
        assert!(f.limit_in_pages);
        assert_eq!(f.limit, 0x0FFF);
    }

    #[test]
    fn granular_guest_small_limit_stays_byte_granular() {
        let g = seg(0, 0, true, types::DATA_RW, true); // byte limit 0xFFF
        let (f, k) = shadow_data_segment(&g, MS).unwrap();
        assert_eq!(k, ShadowKind::Exact);
        assert_eq!((f.limit, f.limit_in_pages), (0xFFF, false));
    }

    #[test]
    fn unaligned_base_loses_partial_page() {
        let g = seg(0x100, 0xFFFFF, true, types::DATA_RW, true);
        let (f, k) = shadow_data_segment(&g, MS).unwrap();
        assert_eq!(k, ShadowKind::Truncated);
        let h = host(&f);
        // max byte limit would be MS - 1 - 0x100; pages round it down.
        assert_eq!(h.limit(), 0xFEFF_EFFF);
        assert!(0x100u64 + h.limit() as u64 <= (MS - 1) as u64);
    }

    #[test]
    fn truncation_into_byte_granular_range() {
        // Base just below the monitor: only 0x800 bytes fit.
        let g = seg(MS - 0x800, 0xFFFFF, true, types::DATA_RW, true);
        let (f, k) = shadow_data_segment(&g, MS).unwrap();
        assert_eq!(k, ShadowKind::Truncated);
        assert_eq!((f.limit, f.limit_in_pages), (0x7FF, false));
        let g1 = seg(MS - 1, 0xFFFF, false, types::DATA_RW, false);
        let (f1, k1) = shadow_data_segment(&g1, MS).unwrap();
        assert_eq!(k1, ShadowKind::Truncated);
        assert_eq!(f1.limit, 0);
        assert!(host(&f1).contains(0, 1) && !host(&f1).contains(0, 2));
    }

    #[test]
    fn wrapping_expand_up_is_cut() {
        // Base 0x1000 with a 4 GiB limit wraps around to low memory.
        let g = seg(0x1000, 0xFFFFF, true, types::DATA_RW, true);
        let (f, _) = shadow_data_segment(&g, MS).unwrap();
        let h = host(&f);
        assert!(0x1000u64 + h.limit() as u64 <= (MS - 1) as u64);
    }

    #[test]
    fn base_at_or_above_monitor_traps_all() {
        for base in [MS, MS + 0x1000, 0xFFFF_FFFF] {
            let g = seg(base, 0xFFFF, false, types::DATA_RW, false);
            let (f, k) = shadow_data_segment(&g, MS).unwrap();
            assert_eq!(k, ShadowKind::TrapAll);
            assert_eq!(f, UserDescFields::trap_all(false, false, false));
            let h = host(&f);
            for off in [0, 1, 0xFFFF, 0x8000_0000, 0xFFFF_FFFE, 0xFFFF_FFFF] {
                assert!(!h.contains(off, 1));
            }
        }
    }

    #[test]
    fn expand_down_exact() {
        // 16-bit stack: valid (0x0FFF, 0xFFFF].
        let g = seg(0x0010_0000, 0x0FFF, false, types::DATA_RW_DOWN, false);
        let (f, k) = shadow_data_segment(&g, MS).unwrap();
        assert_eq!(k, ShadowKind::Exact);
        assert_eq!(f.contents, CONTENTS_STACK);
        assert_eq!(
            (f.limit, f.limit_in_pages, f.seg_32bit),
            (0x0FFF, false, false)
        );
        let h = host(&f);
        assert!(h.expand_down() && h.writable());
        assert!(!h.contains(0x0FFF, 1) && h.contains(0x1000, 2) && h.contains(0xFFFF, 1));
        // Granular 16-bit expand-down reaching exactly up to MS - 1.
        let g2 = seg(MS - 0x10000, 0x1, true, types::DATA_RO_DOWN, false);
        let (f2, k2) = shadow_data_segment(&g2, MS).unwrap();
        assert_eq!(k2, ShadowKind::Exact);
        assert!(f2.limit_in_pages && f2.read_exec_only);
    }

    #[test]
    fn expand_down_reaching_monitor_traps_all() {
        // 32-bit expand-down always reaches base + 4 GiB - 1.
        let g = seg(0, 0x0FFF, false, types::DATA_RW_DOWN, true);
        let (f, k) = shadow_data_segment(&g, MS).unwrap();
        assert_eq!(k, ShadowKind::TrapAll);
        assert_eq!(f, UserDescFields::trap_all(false, false, false));
        // 16-bit expand-down whose top byte is the first monitor byte.
        let g2 = seg(MS - 0xFFFF, 0x0FFF, false, types::DATA_RW_DOWN, false);
        assert_eq!(shadow_data_segment(&g2, MS).unwrap().1, ShadowKind::TrapAll);
        let g3 = seg(MS - 0x10000, 0x0FFF, false, types::DATA_RW_DOWN, false);
        assert_eq!(shadow_data_segment(&g3, MS).unwrap().1, ShadowKind::Exact);
        // 16-bit expand-down wrapping past 4 GiB.
        let g4 = seg(0xFFFF_8000, 0x0FFF, false, types::DATA_RW_DOWN, false);
        assert_eq!(
            shadow_data_segment(&g4, 0xFFFF_F000).unwrap().1,
            ShadowKind::TrapAll
        );
    }

    #[test]
    fn readable_code_becomes_read_only_data() {
        for typ in [
            types::CODE_XR,
            types::CODE_XR_CONFORMING,
            types::CODE_XR | 1,
        ] {
            let g = seg(0, 0xFFFFF, true, typ, true);
            let (f, k) = shadow_data_segment(&g, MS).unwrap();
            assert_eq!(k, ShadowKind::Truncated);
            assert_eq!(f.contents, CONTENTS_DATA);
            assert!(f.read_exec_only);
            let h = host(&f);
            assert!(h.is_data() && !h.writable() && !h.expand_down());
        }
        let small = seg(0x2000, 0xFFF, false, types::CODE_XR, false);
        let (f, k) = shadow_data_segment(&small, MS).unwrap();
        assert_eq!(k, ShadowKind::Exact);
        assert!(!f.seg_32bit && f.read_exec_only);
    }

    #[test]
    fn rejects_unshadowable() {
        let xo = seg(0, 0xFFFFF, true, types::CODE_XO, true);
        assert_eq!(
            shadow_data_segment(&xo, MS),
            Err(ShadowError::ExecuteOnlyCode)
        );
        let xoc = seg(0, 0xFFFFF, true, types::CODE_XO_CONFORMING, true);
        assert_eq!(
            shadow_data_segment(&xoc, MS),
            Err(ShadowError::ExecuteOnlyCode)
        );
        let tss = Descriptor::new_system(crate::SystemKind::Tss32Avail, 0, 0x67, 0);
        assert_eq!(
            shadow_data_segment(&tss, MS),
            Err(ShadowError::SystemDescriptor)
        );
        assert!(!ShadowError::SystemDescriptor.to_string().is_empty());
    }

    #[test]
    fn passes_through_present_and_avl() {
        let mut g = seg(0x1000, 0xFF, false, types::DATA_RW, true);
        g.present = false;
        g.avl = true;
        let (f, _) = shadow_data_segment(&g, MS).unwrap();
        assert!(f.seg_not_present && f.useable);
        let h = host(&f);
        assert!(!h.present && h.avl);
        // Trap-all also keeps them.
        g.base = MS;
        let (f, _) = shadow_data_segment(&g, MS).unwrap();
        assert!(f.seg_not_present && f.useable);
    }

    #[test]
    fn monitor_start_zero_traps_everything() {
        let g = seg(0, 0xFFFF, false, types::DATA_RW, false);
        assert_eq!(shadow_data_segment(&g, 0).unwrap().1, ShadowKind::TrapAll);
        let d = seg(0, 0xFFFF, false, types::DATA_RW_DOWN, false);
        assert_eq!(shadow_data_segment(&d, 0).unwrap().1, ShadowKind::TrapAll);
    }

    #[test]
    fn user_desc_layout() {
        let f = UserDescFields {
            base_addr: 0x1234_5678,
            limit: 0xABCDE,
            seg_32bit: true,
            contents: CONTENTS_STACK,
            read_exec_only: true,
            limit_in_pages: true,
            seg_not_present: true,
            useable: true,
        };
        assert_eq!(user_desc_flags(&f), 0b111_1011);
        assert_eq!(to_user_desc_words(7, &f), [7, 0x1234_5678, 0xABCDE, 0x7B]);
        let b = to_user_desc_bytes(7, &f);
        assert_eq!(&b[0..4], &[7, 0, 0, 0]);
        assert_eq!(&b[4..8], &[0x78, 0x56, 0x34, 0x12]);
        assert_eq!(&b[8..12], &[0xDE, 0xBC, 0x0A, 0]);
        assert_eq!(&b[12..16], &[0x7B, 0, 0, 0]);
        let code = UserDescFields {
            contents: CONTENTS_CODE,
            ..Default::default()
        };
        assert_eq!(user_desc_flags(&code), 0b100);
        assert_eq!(
            user_desc_flags(&UserDescFields {
                seg_32bit: true,
                ..Default::default()
            }),
            1
        );
    }

    #[test]
    fn installed_descriptor_types() {
        let base = UserDescFields {
            base_addr: 0x10,
            limit: 0x20,
            ..Default::default()
        };
        let d = host(&base);
        assert_eq!(d.typ, 0b0011); // RW data, accessed
        assert!(d.s && d.present && !d.l && !d.db && !d.granularity);
        assert_eq!((d.base, d.limit_raw, d.dpl), (0x10, 0x20, 3));
        let ro = host(&UserDescFields {
            read_exec_only: true,
            ..base
        });
        assert_eq!(ro.typ, 0b0001);
        let stack = host(&UserDescFields {
            contents: CONTENTS_STACK,
            ..base
        });
        assert_eq!(stack.typ, 0b0111);
        let code = host(&UserDescFields {
            contents: CONTENTS_CODE,
            ..base
        });
        assert_eq!(code.typ, 0b1011);
        let xo = host(&UserDescFields {
            contents: CONTENTS_CODE,
            read_exec_only: true,
            ..base
        });
        assert_eq!(xo.typ, 0b1001);
        let trap = host(&UserDescFields::trap_all(true, false, false));
        assert!(trap.expand_down() && trap.db && trap.granularity);
        assert_eq!(trap.limit(), 0xFFFF_FFFF);
    }

    #[test]
    fn kernel_empty_pattern() {
        let e = UserDescFields {
            read_exec_only: true,
            seg_not_present: true,
            ..Default::default()
        };
        assert!(e.is_kernel_empty());
        assert_eq!(installed_descriptor(&e), 0);
        assert!(!UserDescFields::trap_all(true, true, false).is_kernel_empty());
        assert!(!UserDescFields { useable: true, ..e }.is_kernel_empty());
    }

    /// Randomised check of the safety invariants against the descriptor
    /// limit semantics, independent of how the shadow is computed.
    #[test]
    fn invariants_randomised() {
        let mut x: u64 = 0x0123_4567_89AB_CDEF;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let interesting = [
            0u32,
            1,
            0xFFF,
            0x1000,
            0xFFFF,
            0x1_0000,
            0xF_FFFF,
            0x10_0000,
            0x7FFF_FFFF,
            0xFEFF_FFFF,
            0xFF00_0000,
            0xFFFF_F000,
            0xFFFF_FFFF,
        ];
        let mut seen = [0u32; 3];
        let mut seen_down_exact = 0;
        for i in 0..20_000 {
            let r = next();
            let pick = |v: u64| -> u32 {
                if v & 3 == 0 {
                    interesting[(v >> 2) as usize % interesting.len()]
                        .wrapping_add(((v >> 8) % 3) as u32)
                        .wrapping_sub(1)
                } else {
                    (v >> 16) as u32
                }
            };
            let base = pick(r);
            let ms = if i % 3 == 0 {
                MS
            } else {
                pick(next()) & !0xFFF
            };
            let typ = [
                types::DATA_RO,
                types::DATA_RW,
                types::DATA_RO_DOWN,
                types::DATA_RW_DOWN,
                types::CODE_XR,
            ][(r >> 60) as usize % 5];
            let mut g = seg(
                base,
                (r >> 40) as u32 & 0xFFFFF,
                r & (1 << 5) != 0,
                typ,
                r & (1 << 6) != 0,
            );
            if r & (1 << 7) != 0 {
                g.limit_raw = if r & (1 << 8) != 0 { 0xFFFFF } else { 0 };
            }
            let (f, kind) = shadow_data_segment(&g, ms).unwrap();
            seen[kind as usize] += 1;
            if kind == ShadowKind::Exact && g.expand_down() {
                seen_down_exact += 1;
            }
            assert!(!f.is_kernel_empty());
            let h = host(&f);
            if kind != ShadowKind::TrapAll {
                assert_eq!(f.seg_32bit, g.db);
            }
            assert!(
                !h.writable() || g.writable(),
                "shadow more writable than guest"
            );
            assert!(h.is_data());
            if kind != ShadowKind::TrapAll {
                assert_eq!(h.base, g.base);
            }
            let mut offs = vec![
                0u32,
                1,
                0xFFFF,
                0x1_0000,
                g.limit(),
                g.limit().wrapping_add(1),
                h.limit(),
                h.limit().wrapping_add(1),
                ms.wrapping_sub(base),
                ms.wrapping_sub(base).wrapping_sub(1),
                ms.wrapping_sub(base).wrapping_sub(4),
                0xFFFF_FFFC,
                0xFFFF_FFFF,
            ];
            for _ in 0..8 {
                offs.push(next() as u32);
            }
            for &off in &offs {
                for size in [1u32, 2, 4] {
                    let hv = h.contains(off, size);
                    let gv = g.contains(off, size);
                    if hv {
                        assert!(
                            gv,
                            "host admits what guest forbids: {g:?} {f:?} off={off:#x}"
                        );
                        let last = h.base as u64 + off as u64 + size as u64 - 1;
                        assert!(
                            last < ms as u64,
                            "reaches monitor: {g:?} ms={ms:#x} off={off:#x}"
                        );
                    }
                    match kind {
                        ShadowKind::Exact => {
                            assert_eq!(hv, gv, "{g:?} {f:?} off={off:#x} size={size}")
                        }
                        ShadowKind::TrapAll => assert!(!hv),
                        ShadowKind::Truncated => {}
                    }
                }
            }
            if kind == ShadowKind::Truncated {
                // Expand-up truncation keeps everything but at most a page
                // below the tighter of the two bounds.
                assert!(!g.expand_down());
                let bound = g.limit().min(ms - 1 - base);
                assert!(h.limit() <= bound && bound - h.limit() < 0x1000);
            }
        }
        assert!(seen.iter().all(|&n| n > 1000), "coverage {seen:?}");
        assert!(seen_down_exact > 100, "expand-down exact {seen_down_exact}");
    }
}
