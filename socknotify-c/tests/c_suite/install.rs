//! install.sh, the pkg-config files and the CMake package: an install into a temporary
//! prefix (with a custom libdir, and staged with DESTDIR) has the SONAME, symlinks and
//! stripped libraries, and `examples/prog.c` builds and runs against it with pkg-config
//! (shared and static) and with CMake (`find_package(socknotify)`); the static builds need
//! no libsocknotify.so (checked with ldd).

use crate::support::{cc, crate_dir, lib_dir, out_dir, run, Outcome, NATIVE_LIBS};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const MAJOR: &str = env!("CARGO_PKG_VERSION_MAJOR");

fn install(prefix: &Path, extra: &[&str], destdir: Option<&Path>) -> Outcome {
    let mut cmd = Command::new("sh");
    cmd.arg(crate_dir().join("install.sh"))
        .arg(format!("--prefix={}", prefix.display()))
        .args(extra)
        // This build's libraries: no second cargo build.
        .env("SOCKNOTIFY_LIB_DIR", lib_dir())
        .env_remove("PREFIX")
        .env_remove("DESTDIR");
    if let Some(d) = destdir {
        cmd.env("DESTDIR", d);
    }
    run(cmd, Duration::from_secs(120))
}

fn fresh(name: &str) -> PathBuf {
    let d = out_dir().join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn pkg_config(libdir: &Path, args: &[&str], package: &str) -> Vec<String> {
    let mut cmd = Command::new("pkg-config");
    cmd.args(args).arg(package).env("PKG_CONFIG_PATH", libdir.join("pkgconfig"));
    let o = run(cmd, Duration::from_secs(30));
    assert!(o.success(), "pkg-config {args:?} {package} failed (is pkg-config installed?)\n{}", o.describe());
    o.stdout.split_whitespace().map(str::to_string).collect()
}

/// Compiles examples/prog.c with `flags` (pkg-config output) into `exe`.
fn build_prog(exe: &Path, flags: &[String]) {
    let mut cmd = Command::new(cc());
    cmd.args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg(crate_dir().join("examples/prog.c"))
        .args(flags)
        .arg("-o")
        .arg(exe);
    let o = run(cmd, Duration::from_secs(120));
    assert!(o.success(), "compiling prog.c against the installed copy failed\n{}", o.describe());
}

fn run_prog(exe: &Path, ld_library_path: Option<&Path>) {
    let mut cmd = Command::new(exe);
    if let Some(p) = ld_library_path {
        cmd.env("LD_LIBRARY_PATH", p);
    }
    let o = run(cmd, Duration::from_secs(60));
    assert!(o.success() && o.stdout.contains("prog: socket notification received"), "{}", o.describe());
}

fn tool_output(tool: &str, args: &[&str], file: &Path) -> String {
    let mut cmd = Command::new(tool);
    cmd.args(args).arg(file);
    let o = run(cmd, Duration::from_secs(60));
    assert!(o.success(), "{tool} {args:?} {} failed\n{}", file.display(), o.describe());
    o.stdout
}

/// `ldd exe` names no libsocknotify: the program is linked statically against it.
fn assert_static(exe: &Path) {
    let ldd = tool_output("ldd", &[], exe);
    assert!(!ldd.contains("libsocknotify"), "{} needs the shared library:\n{ldd}", exe.display());
    let dynamic = tool_output("readelf", &["-d"], exe);
    assert!(!dynamic.contains("libsocknotify"), "{}", dynamic);
}

#[test]
fn install_layout_soname_and_stripping() {
    let prefix = fresh("prefix-layout");
    let o = install(&prefix, &["--libdir=lib64"], None);
    assert!(o.success(), "install.sh failed\n{}", o.describe());
    let libdir = prefix.join("lib64");
    let so = format!("libsocknotify.so.{VERSION}");
    for f in [
        format!("lib64/{so}"),
        "lib64/libsocknotify.a".to_string(),
        "include/socknotify.h".to_string(),
        "include/socknotify/winsock2.h".to_string(),
        "include/socknotify/ws2tcpip.h".to_string(),
        "include/socknotify/windows.h".to_string(),
        "include/socknotify/mswsock.h".to_string(),
        "lib64/pkgconfig/socknotify.pc".to_string(),
        "lib64/pkgconfig/socknotify-static.pc".to_string(),
        "lib64/cmake/socknotify/socknotify-config.cmake".to_string(),
        "lib64/cmake/socknotify/socknotify-config-version.cmake".to_string(),
    ] {
        assert!(prefix.join(&f).is_file(), "{f} was not installed");
    }
    let link = |name: &str| std::fs::read_link(libdir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(link(&format!("libsocknotify.so.{MAJOR}")), PathBuf::from(&so));
    assert_eq!(link("libsocknotify.so"), PathBuf::from(format!("libsocknotify.so.{MAJOR}")));
    let dynamic = tool_output("readelf", &["-d"], &libdir.join(&so));
    assert!(dynamic.contains(&format!("Library soname: [libsocknotify.so.{MAJOR}]")), "no SONAME:\n{dynamic}");
    let sections = tool_output("readelf", &["-S", "-W"], &libdir.join(&so));
    assert!(!sections.contains(".debug_info") && !sections.contains(".symtab"), "not stripped:\n{sections}");
    let sections = tool_output("readelf", &["-S", "-W"], &libdir.join("libsocknotify.a"));
    assert!(!sections.contains(".debug_info"), "the archive keeps its debug info");
    for pc in ["socknotify.pc", "socknotify-static.pc"] {
        let text = std::fs::read_to_string(libdir.join("pkgconfig").join(pc)).unwrap();
        assert!(text.contains(&format!("libdir={}", libdir.display())), "{pc}: libdir not substituted:\n{text}");
        assert!(!text.contains('@'), "{pc}: unsubstituted placeholder:\n{text}");
    }
    let cmake = std::fs::read_to_string(libdir.join("cmake/socknotify/socknotify-config.cmake")).unwrap();
    assert!(!cmake.contains('@') && cmake.contains(&libdir.display().to_string()), "{cmake}");
}

#[test]
fn pkg_config_shared_and_static() {
    let prefix = fresh("prefix-pkg");
    let o = install(&prefix, &[], None);
    assert!(o.success(), "install.sh failed\n{}", o.describe());
    let libdir = prefix.join("lib");

    let cflags = pkg_config(&libdir, &["--cflags"], "socknotify");
    assert_eq!(cflags, vec![format!("-I{}", prefix.join("include").display())]);
    let libs = pkg_config(&libdir, &["--libs"], "socknotify");
    assert!(libs.contains(&"-lsocknotify".to_string()), "{libs:?}");

    // Shared: records the SONAME and runs against the installed library.
    let exe = out_dir().join("prog-shared");
    build_prog(&exe, &[cflags.clone(), libs].concat());
    let dynamic = tool_output("readelf", &["-d"], &exe);
    assert!(dynamic.contains(&format!("[libsocknotify.so.{MAJOR}]")), "not linked to the SONAME\n{dynamic}");
    run_prog(&exe, Some(&libdir));

    // Static, with and without --static: the archive and the system libraries, nothing else.
    for args in [&["--cflags", "--libs"][..], &["--static", "--cflags", "--libs"][..]] {
        let flags = pkg_config(&libdir, args, "socknotify-static");
        assert!(flags.contains(&libdir.join("libsocknotify.a").display().to_string()), "{flags:?}");
        assert!(!flags.iter().any(|f| f == "-lsocknotify"), "{flags:?}");
        for lib in NATIVE_LIBS {
            assert!(flags.iter().any(|f| f == lib), "{lib} missing from {flags:?}");
        }
        let exe = out_dir().join(format!("prog-static{}", args.len()));
        build_prog(&exe, &flags);
        assert_static(&exe);
        run_prog(&exe, None);
    }
}

#[test]
fn cmake_find_package() {
    let prefix = fresh("prefix-cmake");
    let o = install(&prefix, &[], None);
    assert!(o.success(), "install.sh failed\n{}", o.describe());
    let build = fresh("prog-cmake");
    let mut cmd = Command::new("cmake");
    cmd.arg("-S")
        .arg(crate_dir().join("examples/cmake"))
        .arg("-B")
        .arg(&build)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
        .env("CC", cc());
    let o = run(cmd, Duration::from_secs(120));
    assert!(o.success(), "cmake configure failed (is cmake installed? apt-get install cmake)\n{}", o.describe());
    let mut cmd = Command::new("cmake");
    cmd.arg("--build").arg(&build);
    let o = run(cmd, Duration::from_secs(300));
    assert!(o.success(), "cmake --build failed\n{}", o.describe());
    let dynamic = tool_output("readelf", &["-d"], &build.join("prog"));
    assert!(dynamic.contains(&format!("[libsocknotify.so.{MAJOR}]")), "{dynamic}");
    run_prog(&build.join("prog"), None); // CMake's build-tree rpath finds the library
    assert_static(&build.join("prog_static"));
    run_prog(&build.join("prog_static"), None);
}

#[test]
fn destdir_stages_the_install() {
    let stage = fresh("stage");
    let o = install(Path::new("/opt/socknotify-test"), &["--includedir=/opt/socknotify-test/inc"], Some(&stage));
    assert!(o.success(), "install.sh failed\n{}", o.describe());
    let libdir = stage.join("opt/socknotify-test/lib");
    assert!(libdir.join("libsocknotify.a").is_file());
    assert!(stage.join("opt/socknotify-test/inc/socknotify.h").is_file());
    let pc = std::fs::read_to_string(libdir.join("pkgconfig/socknotify.pc")).unwrap();
    assert!(pc.contains("prefix=/opt/socknotify-test\n"), "{pc}");
    assert!(pc.contains("includedir=/opt/socknotify-test/inc\n"), "{pc}");
    assert!(!pc.contains(&stage.display().to_string()), "DESTDIR leaked into the .pc:\n{pc}");
    assert!(!Path::new("/opt/socknotify-test").exists(), "installed outside DESTDIR");
}

#[test]
fn install_sh_usage_errors() {
    for args in [&[][..], &["--bogus"][..], &["--prefix"][..]] {
        let mut cmd = Command::new("sh");
        cmd.arg(crate_dir().join("install.sh")).args(args).env_remove("PREFIX");
        let o = run(cmd, Duration::from_secs(30));
        assert_eq!(o.status.and_then(|s| s.code()), Some(2), "args {args:?}\n{}", o.describe());
    }
}
