//! Replays the committed seed corpus (`corpus/<target>/`) through both fuzz harnesses with
//! plain `cargo test`: no nightly, no libFuzzer, deterministic. So every invariant the fuzzers
//! check is checked in CI on inputs that reach deep states, and the `machine` harness can run
//! under miri (`cargo +nightly miri test --test replay machine`).
//!
//! FUZZ_REPLAY_DIR=<dir> replays the files of another directory too (for example a crash
//! under `artifacts/<target>/`) with the harness named by FUZZ_REPLAY_TARGET (default machine).

use std::path::{Path, PathBuf};

/// Small hand-written seeds that miri replays (listing a directory of 1,200 files alone takes
/// miri many minutes).
const MIRI_SEEDS: [&str; 6] =
    ["enable-remove", "reuse-two-ports", "race-close-before-add", "race-close-after-add", "random-1", "random-2"];

/// Hand-written seeds first (named), then the ones libFuzzer found (named by their SHA-1).
fn files(dir: &Path) -> Vec<PathBuf> {
    if cfg!(miri) {
        return MIRI_SEEDS.iter().map(|n| dir.join(n)).filter(|p| p.is_file()).collect();
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    let found = |p: &PathBuf| {
        let n = p.file_name().unwrap().to_string_lossy();
        n.len() == 40 && n.bytes().all(|b| b.is_ascii_hexdigit())
    };
    v.sort_by_key(|p| (found(p), p.clone()));
    v
}

fn replay(dir: &Path, run: fn(&[u8])) -> usize {
    let list = files(dir);
    for p in &list {
        let data = std::fs::read(p).unwrap();
        eprintln!("replay {}", p.display());
        run(&data);
    }
    list.len()
}

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target)
}

#[test]
fn machine_seed_corpus() {
    let n = replay(&corpus("machine"), socknotify_fuzz::machine::run);
    assert!(n > 0, "empty seed corpus");
}

#[test]
#[cfg_attr(miri, ignore = "real sockets and SO_COOKIE: not under miri")]
fn capi_seed_corpus() {
    let n = replay(&corpus("capi"), socknotify_fuzz::capi::run);
    assert!(n > 0, "empty seed corpus");
}

#[test]
fn extra_directory() {
    let Some(dir) = std::env::var_os("FUZZ_REPLAY_DIR") else { return };
    let run = match std::env::var("FUZZ_REPLAY_TARGET").as_deref() {
        Ok("capi") => socknotify_fuzz::capi::run,
        _ => socknotify_fuzz::machine::run,
    };
    replay(Path::new(&dir), run);
}
