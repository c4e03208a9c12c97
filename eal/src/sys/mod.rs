//! System calls, one safe function per call.

pub mod cpu;
pub mod dev;
pub mod ipc;
pub mod mem;
