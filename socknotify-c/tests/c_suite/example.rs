//! The echo server example, built with the same flags as the tests and run with a small load.

use crate::support::{cc, compile_once, run, C_WARNINGS};
use std::process::Command;
use std::time::Duration;

fn echo_server() -> std::path::PathBuf {
    let mut flags = vec!["-std=c99", "-O2"];
    flags.extend_from_slice(C_WARNINGS);
    compile_once("echo_server", &cc(), &flags, &["examples/echo_server.c"])
}

#[test]
fn echo_server_small_load() {
    let exe = echo_server();
    let mut cmd = Command::new(&exe);
    cmd.args(["-w", "4", "-c", "100", "-m", "20", "-s", "100", "-t", "4", "-T", "60"]);
    let o = run(cmd, Duration::from_secs(90));
    assert!(o.success(), "echo_server failed\n{}", o.describe());
    assert!(o.stdout.contains("2000 messages echoed and checked"), "unexpected output\n{}", o.describe());
    assert!(o.stdout.contains("100 contexts created, 100 freed"), "unexpected output\n{}", o.describe());
    assert!(o.stdout.contains("messages/s"), "unexpected output\n{}", o.describe());
}

#[test]
fn echo_server_one_worker_concurrency_one() {
    let exe = echo_server();
    let mut cmd = Command::new(&exe);
    cmd.args(["-w", "1", "-C", "1", "-c", "20", "-m", "10", "-s", "3000", "-t", "2", "-T", "60"]);
    let o = run(cmd, Duration::from_secs(90));
    assert!(o.success(), "echo_server failed\n{}", o.describe());
    assert!(o.stdout.contains("200 messages echoed and checked"), "unexpected output\n{}", o.describe());
}

#[test]
fn echo_server_rejects_bad_arguments() {
    let exe = echo_server();
    for args in [&["-s", "0"][..], &["-w"][..], &["-x", "1"][..], &["-s", "100000"][..]] {
        let mut cmd = Command::new(&exe);
        cmd.args(args);
        let o = run(cmd, Duration::from_secs(30));
        assert_eq!(o.status.and_then(|s| s.code()), Some(2), "args {args:?}\n{}", o.describe());
    }
}
