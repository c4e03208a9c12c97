//! The examine hook: an examiner sees every bdev registered after it is added, on the
//! registering thread before `register` returns; registration does not wait for it;
//! `examine::wait` answers once every examination's token is dropped; adding an
//! examiner under the same module name replaces it. (Every step runs on the one app
//! thread, so the flags need no ordering.)

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bdev::examine::{self, ExamineDone};
use bdev::modules::malloc::{self, MallocOpts};
use common::{run_steps, Next, Step};

fn step(f: impl FnOnce(Next) + Send + 'static) -> Step {
    Box::new(f)
}

fn malloc(name: &str) {
    malloc::create(MallocOpts::new(name, 64, 512)).unwrap();
}

#[test]
fn examiners_see_new_bdevs_and_wait_follows_them() {
    let Some(eal) = common::eal("examiners_see_new_bdevs_and_wait_follows_them", "0") else {
        return;
    };
    let seen = Arc::new(Mutex::new(Vec::<(String, u64)>::new()));
    let held = Arc::new(Mutex::new(Vec::<ExamineDone>::new()));
    let waited = Arc::new(AtomicBool::new(false));
    let (s1, h1, w1, w2, s2) = (
        seen.clone(),
        held.clone(),
        waited.clone(),
        waited.clone(),
        seen.clone(),
    );
    let steps: Vec<Step> = vec![
        step(move |next| {
            malloc("ExBefore");
            let (s, h) = (s1.clone(), h1.clone());
            examine::add_examiner(
                "test",
                Arc::new(move |b, done| {
                    let tid = framework::thread::current().map(|t| t.id()).unwrap();
                    s.lock().unwrap().push((b.name().to_string(), tid));
                    h.lock().unwrap().push(done);
                }),
            );
            malloc("Ex0");
            malloc("Ex1");
            let me = framework::thread::current().unwrap().id();
            assert_eq!(
                *s1.lock().unwrap(),
                vec![("Ex0".to_string(), me), ("Ex1".to_string(), me)],
                "each new bdev, once, on the registering thread, before register returns"
            );
            examine::wait(move || w1.store(true, Ordering::Relaxed)).unwrap();
            assert!(
                !waited.load(Ordering::Relaxed),
                "two examinations still run"
            );
            drop(h1.lock().unwrap().pop());
            assert!(
                !waited.load(Ordering::Relaxed),
                "one examination still runs"
            );
            // The last token: the waiter is sent to this thread, ahead of the next step.
            drop(h1.lock().unwrap().pop());
            next.go();
        }),
        step(move |next| {
            assert!(
                w2.load(Ordering::Relaxed),
                "wait answered after the last token"
            );
            // Replaced: the new examiner drops its token at once; wait answers at once.
            examine::add_examiner("test", Arc::new(|_, _| {}));
            malloc("Ex2");
            assert_eq!(s2.lock().unwrap().len(), 2, "the old examiner is gone");
            let now = Arc::new(AtomicBool::new(false));
            let n2 = now.clone();
            examine::wait(move || n2.store(true, Ordering::Relaxed)).unwrap();
            assert!(
                now.load(Ordering::Relaxed),
                "nothing runs: answered in the call"
            );
            next.go();
        }),
    ];
    assert_eq!(run_steps(&eal, steps), 0);
}
