//! System calls, one safe function per call.
