//! Code the sample applications and tools share. Each binary in `src/bin/` is one
//! program; what several of them would otherwise repeat lives here.

pub mod mp;
pub mod mp_end;
