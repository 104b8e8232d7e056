#![forbid(unsafe_code)]
//! Pure IA-32 architectural definitions and checks used by the ringfold
//! monitor.
//!
//! Everything here is side-effect free and independent of the host: the
//! functions encode Intel SDM semantics (descriptor layouts, limit checks,
//! POPF masking, exception classification, TSS I/O bitmap rules) and the
//! translation of guest segments into host LDT entries, so that they can be
//! unit-tested exhaustively without running a guest.

pub mod descriptor;
pub mod eflags;
pub mod exception;
pub mod paging;
pub mod selector;
pub mod shadow;
pub mod tss;

pub use descriptor::{Descriptor, Gate, GateKind, GateSize, SystemKind};
pub use exception::{Exception, ExceptionClass, Outcome};
pub use selector::Selector;
pub use shadow::{ShadowError, ShadowKind, UserDescFields};
