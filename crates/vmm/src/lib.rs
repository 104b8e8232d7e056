#![forbid(unsafe_code)]
//! ringfold's monitor: the virtual CPU, exception delivery, the interpreter for sensitive
//! instructions, the translator and the run loop on top of the host layer.

pub mod alu;
pub mod cpu;
pub mod cpuid;
pub mod emulate;
pub mod fastsys;
pub mod fxhash;
pub mod machine;
pub mod mmu;
pub mod platform;
pub mod seg;
pub mod segcache;
pub mod translate;
pub mod vm;
pub mod xfer;

pub use machine::{Fault, Machine, Memory, Stop};
