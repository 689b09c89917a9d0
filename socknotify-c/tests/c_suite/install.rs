//! install.sh and the pkg-config file: a C program compiles and runs against the installed copy.

use crate::support::{cc, crate_dir, lib_dir, out_dir, run};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn pkg_config(prefix: &Path, args: &[&str]) -> Vec<String> {
    let mut cmd = Command::new("pkg-config");
    cmd.args(args).arg("socknotify").env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"));
    let o = run(cmd, Duration::from_secs(30));
    assert!(o.success(), "pkg-config {args:?} socknotify failed (is pkg-config installed?)\n{}", o.describe());
    o.stdout.split_whitespace().map(str::to_string).collect()
}

#[test]
fn install_then_build_with_pkg_config() {
    let prefix = out_dir().join("prefix");
    let _ = std::fs::remove_dir_all(&prefix);
    // Install this build's libraries (SOCKNOTIFY_LIB_DIR: no second cargo build).
    let mut cmd = Command::new("sh");
    cmd.arg(crate_dir().join("install.sh")).arg(&prefix).env("SOCKNOTIFY_LIB_DIR", lib_dir());
    let o = run(cmd, Duration::from_secs(120));
    assert!(o.success(), "install.sh failed\n{}", o.describe());
    for f in ["lib/libsocknotify.a", "lib/libsocknotify.so", "include/socknotify.h", "lib/pkgconfig/socknotify.pc"] {
        assert!(prefix.join(f).is_file(), "{f} was not installed");
    }
    let pc = std::fs::read_to_string(prefix.join("lib/pkgconfig/socknotify.pc")).unwrap();
    assert!(pc.contains(&format!("prefix={}", prefix.display())), "prefix not substituted:\n{pc}");
    assert!(!pc.contains('@'), "unsubstituted placeholder:\n{pc}");

    let cflags = pkg_config(&prefix, &["--cflags"]);
    let libs = pkg_config(&prefix, &["--libs"]);
    assert_eq!(cflags, vec![format!("-I{}", prefix.join("include").display())]);
    assert!(libs.contains(&"-lsocknotify".to_string()), "{libs:?}");
    let static_libs = pkg_config(&prefix, &["--static", "--libs"]);
    assert!(static_libs.contains(&"-lpthread".to_string()), "{static_libs:?}");

    // Dynamic: the way most programs use pkg-config.
    let exe = out_dir().join("installed_consumer");
    let mut cmd = Command::new(cc());
    cmd.args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .args(&cflags)
        .arg(crate_dir().join("tests/c/installed_consumer.c"))
        .args(&libs)
        .arg("-o")
        .arg(&exe);
    let o = run(cmd, Duration::from_secs(120));
    assert!(o.success(), "compiling against the installed copy failed\n{}", o.describe());
    let mut cmd = Command::new("readelf");
    cmd.arg("-d").arg(&exe);
    let o = run(cmd, Duration::from_secs(30));
    assert!(o.stdout.contains("[libsocknotify.so]"), "not linked to the shared library\n{}", o.describe());
    let mut cmd = Command::new(&exe);
    cmd.env("LD_LIBRARY_PATH", prefix.join("lib"));
    let o = run(cmd, Duration::from_secs(60));
    assert!(o.success() && o.stdout.contains("ok installed_consumer"), "{}", o.describe());

    // Static: the archive plus Libs.private.
    let exe = out_dir().join("installed_consumer_static");
    let mut cmd = Command::new(cc());
    cmd.args(["-std=c99", "-Wall", "-Wextra", "-Werror"])
        .args(&cflags)
        .arg(crate_dir().join("tests/c/installed_consumer.c"))
        .arg(prefix.join("lib/libsocknotify.a"))
        .args(static_libs.iter().filter(|a| *a != "-lsocknotify" && !a.starts_with("-L")))
        .arg("-o")
        .arg(&exe);
    let o = run(cmd, Duration::from_secs(120));
    assert!(o.success(), "static link against the installed copy failed\n{}", o.describe());
    let o = run(Command::new(&exe), Duration::from_secs(60));
    assert!(o.success() && o.stdout.contains("ok installed_consumer"), "{}", o.describe());
}

#[test]
fn install_sh_needs_a_prefix() {
    let o = run(
        {
            let mut c = Command::new("sh");
            c.arg(crate_dir().join("install.sh"));
            c
        },
        Duration::from_secs(30),
    );
    assert_eq!(o.status.and_then(|s| s.code()), Some(2), "{}", o.describe());
}
