//! Building and running the C programs of the test suite.
//!
//! The C sources are compiled with the system C compiler (`$CC`, default `cc`; `$CXX`,
//! default `c++`) against the static library that cargo built for this test run (cargo names
//! it `libsocknotify_c.a`; it sits beside the test binary in `deps/`), once per program and
//! per test process, into `CARGO_TARGET_TMPDIR`. `SOCKNOTIFY_LIB_DIR=DIR` runs the suite
//! against the libraries in DIR instead (for example a `panic = "abort"` build). No network
//! is needed.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// System libraries a program linking the static library needs (rustc's
/// `--print native-static-libs` for this crate, less `-lc`).
pub const NATIVE_LIBS: &[&str] = &["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl"];

/// Warnings every C file of the suite must compile cleanly under.
pub const C_WARNINGS: &[&str] = &["-Wall", "-Wextra", "-Werror", "-pedantic"];

pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn include_dir() -> PathBuf {
    crate_dir().join("include")
}

/// The file names cargo gives the libraries (the crate's library is `socknotify_c`; the
/// install step installs them as `libsocknotify.*`).
pub const STATIC_LIB: &str = "libsocknotify_c.a";

/// The folder holding the libraries the suite links: `$SOCKNOTIFY_LIB_DIR` if set, else the
/// ones built for this test run in `target/<profile>/deps`, beside the test binary (`cargo
/// test` builds every crate type of the library there but copies them up to
/// `target/<profile>` only for `cargo build`).
pub fn lib_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SOCKNOTIFY_LIB_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent().expect("target/<profile>/deps/<test>").to_path_buf()
}

pub fn static_lib() -> PathBuf {
    let lib = lib_dir().join(STATIC_LIB);
    assert!(lib.exists(), "{} is missing: cargo should build the staticlib before the tests", lib.display());
    lib
}

/// A scratch folder for compiled programs and installs.
pub fn out_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("socknotify-c");
    std::fs::create_dir_all(&d).expect("create CARGO_TARGET_TMPDIR/socknotify-c");
    d
}

pub fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".to_string())
}

pub fn cxx() -> String {
    std::env::var("CXX").unwrap_or_else(|_| "c++".to_string())
}

/// What a finished (or killed) child did.
pub struct Outcome {
    pub status: Option<std::process::ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn success(&self) -> bool {
        !self.timed_out && self.status.is_some_and(|s| s.success())
    }

    /// Everything useful for a failure message.
    pub fn describe(&self) -> String {
        format!(
            "status: {}{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status.map_or("none".to_string(), |s| s.to_string()),
            if self.timed_out { format!(" (killed after {:?}: timed out)", self.elapsed) } else { String::new() },
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Runs `cmd` to completion, killing it (by its own pid) after `limit`.
pub fn run(mut cmd: Command, limit: Duration) -> Outcome {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    // Drain both pipes in threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut timed_out = false;
    let status = loop {
        match child.try_wait().expect("try_wait") {
            Some(s) => break Some(s),
            None if start.elapsed() > limit => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    Outcome {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
        timed_out,
        elapsed: start.elapsed(),
    }
}

/// Compiles `sources` (paths relative to the crate) into `out_dir()/name` with `compiler`
/// and `flags`, linking the static library. Panics with the compiler's output on failure.
pub fn compile(name: &str, compiler: &str, flags: &[&str], sources: &[&str]) -> PathBuf {
    let exe = out_dir().join(name);
    let mut cmd = Command::new(compiler);
    cmd.args(flags)
        .arg("-g")
        .arg("-I")
        .arg(include_dir())
        .arg("-I")
        .arg(crate_dir().join("tests/c"))
        .args(sources.iter().map(|s| crate_dir().join(s)))
        // (a `-x c++` among the flags must not apply to the archive)
        .args(["-x", "none"])
        .arg(static_lib())
        .args(NATIVE_LIBS)
        .arg("-o")
        .arg(&exe);
    let o = run(cmd, Duration::from_secs(120));
    assert!(o.success(), "compiling {name} with {compiler} {flags:?} failed:\n{}", o.describe());
    exe
}

/// Like [`compile`], but once per test process for each `name` (tests run in parallel, and
/// rewriting an executable another test is running fails with ETXTBSY).
pub fn compile_once(name: &str, compiler: &str, flags: &[&str], sources: &[&str]) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.get(name) {
        return p.clone();
    }
    let p = compile(name, compiler, flags, sources);
    built.insert(name.to_string(), p.clone());
    p
}

/// A C test program (`tests/c/<name>.c` + the harness), compiled once per test process.
pub fn c_program(name: &str) -> PathBuf {
    let mut flags = vec!["-std=c99"];
    flags.extend_from_slice(C_WARNINGS);
    compile_once(name, &cc(), &flags, &["tests/c/harness.c", &format!("tests/c/{name}.c")])
}

/// The case names a C test program lists (`prog --list`).
pub fn listed_cases(prog: &Path) -> Vec<String> {
    let mut cmd = Command::new(prog);
    cmd.arg("--list");
    let o = run(cmd, Duration::from_secs(30));
    assert!(o.success(), "{} --list failed:\n{}", prog.display(), o.describe());
    o.stdout.lines().filter_map(|l| l.split('\t').next()).map(str::to_string).collect()
}

/// Runs one case of a C test program in its own process and fails with its output.
pub fn run_case(prog: &str, case: &str) {
    let exe = c_program(prog);
    let mut cmd = Command::new(&exe);
    cmd.arg(case);
    let o = run(cmd, Duration::from_secs(120));
    assert!(o.success(), "C case {prog} {case} failed\n{}", o.describe());
    assert!(
        o.stdout.lines().any(|l| l.starts_with(&format!("ok {case} "))),
        "C case {prog} {case} did not report success\n{}",
        o.describe()
    );
}

/// Fails unless the Rust side declares exactly the cases the C program lists.
pub fn check_listed(prog: &str, declared: &[&str]) {
    let listed = listed_cases(&c_program(prog));
    let mut l: Vec<&str> = listed.iter().map(String::as_str).collect();
    let mut d = declared.to_vec();
    l.sort_unstable();
    d.sort_unstable();
    assert_eq!(l, d, "the cases of tests/c/{prog}.c and the Rust test list differ");
}
