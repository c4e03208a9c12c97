//! `FP_REQUIRE=1` turns a skip of a required need into a failure and leaves a skip of a
//! need that is not required a skip; without it both are skips. Each case runs this
//! test binary again as a child that calls `testkit::skip` (the child mode is chosen by
//! `FP_TESTKIT_CHILD_NEED`), and checks the child's exit status, its stderr and the
//! `FP_SKIP_LOG` lines it left.

use std::path::Path;
use std::process::Command;

use testkit::Need;

const CHILD: &str = "FP_TESTKIT_CHILD_NEED";

fn need_named(name: &str) -> Need {
    match name {
        "guest" => Need::Guest,
        "hugepages" => Need::Hugepages,
        "cpus" => Need::Cpus,
        "build" => Need::Build,
        other => panic!("unknown need {other}"),
    }
}

struct Outcome {
    success: bool,
    stderr: String,
    log: String,
}

fn run_child(dir: &Path, need: &str, require: Option<&str>) -> Outcome {
    let log = dir.join(format!("skips-{need}-{}", require.unwrap_or("unset")));
    let mut cmd = Command::new(std::env::current_exe().expect("own path"));
    cmd.env(CHILD, need).env("FP_SKIP_LOG", &log);
    match require {
        Some(v) => cmd.env("FP_REQUIRE", v),
        None => cmd.env_remove("FP_REQUIRE"),
    };
    let o = cmd.output().expect("run the child");
    Outcome {
        success: o.status.success(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        log: std::fs::read_to_string(&log).unwrap_or_default(),
    }
}

fn main() {
    if let Ok(need) = std::env::var(CHILD) {
        testkit::skip(
            "child_case",
            need_named(&need),
            "asked for by the parent test",
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("fp-testkit-require-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    let mut failed = Vec::new();
    let mut check = |what: &str, ok: bool, o: &Outcome| {
        let verdict = if ok { "ok" } else { "FAILED" };
        println!("test {what} ... {verdict}");
        if !ok {
            failed.push(format!(
                "{what}: success={} stderr:\n{}\nlog:\n{}",
                o.success, o.stderr, o.log
            ));
        }
    };

    for need in ["guest", "hugepages"] {
        let o = run_child(&dir, need, Some("1"));
        let ok =
            !o.success && o.stderr.contains("FP_REQUIRE=1 forbids skipping it") && o.log.is_empty();
        check(
            &format!("required need {need} under FP_REQUIRE=1 fails"),
            ok,
            &o,
        );
    }
    for need in ["cpus", "build"] {
        let o = run_child(&dir, need, Some("1"));
        let ok = o.success
            && o.stderr
                .contains("SKIP child_case: asked for by the parent test")
            && o.log == format!("child_case\t{need}\tasked for by the parent test\n");
        check(
            &format!("need {need} under FP_REQUIRE=1 stays a skip"),
            ok,
            &o,
        );
    }
    for (need, require) in [("guest", None), ("guest", Some("0"))] {
        let o = run_child(&dir, need, require);
        let ok =
            o.success && o.log == format!("child_case\t{need}\tasked for by the parent test\n");
        check(
            &format!("required need {need} with FP_REQUIRE={require:?} is a skip"),
            ok,
            &o,
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    if !failed.is_empty() {
        eprintln!("{}", failed.join("\n\n"));
        std::process::exit(1);
    }
}
