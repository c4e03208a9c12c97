//! Shared set-up: an EAL with `--no-huge` on lcores given by the test, under a file prefix
//! of its own, so tests run in parallel in one process.

#![allow(dead_code)]

/// An EAL on `lcores` (an `-l` value), or `None` after a counted skip.
pub fn eal(test: &str, lcores: &str) -> Option<eal::Eal> {
    let argv = testkit::eal_env::in_process_args("fwt", lcores);
    testkit::eal_env::init_or_skip(test, eal::Eal::init(&argv)).map(|(e, _)| e)
}

/// Options for tests: short exit timeout, interrupt mode on.
pub fn opts() -> framework::FrameworkOpts {
    framework::FrameworkOpts {
        exit_timeout_ms: 2000,
        ..Default::default()
    }
}
