//! The porting headers (`include/socknotify/*.h`): the multithreaded server written against
//! Windows' headers (`examples/winsock_server.c`) compiles with `-Wall -Wextra -Werror` as
//! C99, C11, C++11 and C++17 and runs a client load on loopback, checking every byte; the
//! headers keep C++'s standard library usable.

use crate::support::{cc, compile_once, cxx, run};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const STRICT: &[&str] = &["-Wall", "-Wextra", "-Werror", "-pedantic"];

fn winsock_server(std: &str) -> PathBuf {
    let is_cxx = std.starts_with("c++");
    let flag = format!("-std={std}");
    let mut flags = vec![flag.as_str(), "-O1"];
    flags.extend_from_slice(STRICT);
    if is_cxx {
        flags.extend_from_slice(&["-x", "c++"]);
    }
    let compiler = if is_cxx { cxx() } else { cc() };
    compile_once(&format!("winsock_server_{std}"), &compiler, &flags, &["examples/winsock_server.c"])
}

/// Runs the server: `args` = server threads, client threads, connections per client, messages.
fn run_server(std: &str, args: [u32; 4]) {
    let exe = winsock_server(std);
    let mut cmd = Command::new(&exe);
    cmd.args(args.map(|a| a.to_string()));
    let o = run(cmd, Duration::from_secs(120));
    assert!(o.success(), "winsock_server ({std}) failed\n{}", o.describe());
    let connections = args[1] * args[2];
    let expected = format!("{} server threads, {connections} connections, ", args[0]);
    assert!(o.stdout.contains(&expected), "unexpected output ({std})\n{}", o.describe());
    assert!(o.stdout.contains(&format!("{connections} contexts freed")), "unexpected output ({std})\n{}", o.describe());
}

#[test]
fn winsock_server_as_c99() {
    run_server("c99", [4, 4, 25, 20]);
}

#[test]
fn winsock_server_as_c11() {
    run_server("c11", [2, 3, 10, 10]);
}

#[test]
fn winsock_server_as_cxx11() {
    run_server("c++11", [3, 2, 10, 10]);
}

#[test]
fn winsock_server_as_cxx17() {
    run_server("c++17", [4, 4, 25, 20]);
}

#[test]
fn winsock_server_one_server_thread() {
    run_server("c99", [1, 4, 10, 10]);
}

#[test]
fn winsock_server_rejects_bad_arguments() {
    let exe = winsock_server("c99");
    for args in [&["0", "1", "1", "1"][..], &["1", "2"][..], &["1", "1", "1", "100000"][..]] {
        let mut cmd = Command::new(&exe);
        cmd.args(args);
        let o = run(cmd, Duration::from_secs(30));
        assert_eq!(o.status.and_then(|s| s.code()), Some(2), "args {args:?}\n{}", o.describe());
    }
}

fn porting_cpp(std: &str) {
    let flag = format!("-std={std}");
    let mut flags = vec![flag.as_str()];
    flags.extend_from_slice(STRICT);
    let exe = compile_once(&format!("porting_{std}"), &cxx(), &flags, &["tests/c/porting_cpp.cpp"]);
    let o = run(Command::new(&exe), Duration::from_secs(60));
    assert!(o.success() && o.stdout.contains("ok porting_cpp"), "porting_cpp ({std}) failed\n{}", o.describe());
}

#[test]
fn porting_headers_from_cxx11_with_the_standard_library() {
    porting_cpp("c++11");
}

#[test]
fn porting_headers_from_cxx17_with_the_standard_library() {
    porting_cpp("c++17");
}

/// The original include lines (`<winsock2.h>`, ...) work unchanged with
/// `-I<includedir>/socknotify`.
#[test]
fn unchanged_windows_include_lines() {
    let src = crate::support::out_dir().join("unchanged_includes.c");
    std::fs::write(
        &src,
        "#include <winsock2.h>\n#include <ws2tcpip.h>\n#include <mswsock.h>\n#include <windows.h>\n\
         int main(void)\n{\n    WSADATA d;\n    SOCKET s;\n    if (WSAStartup(MAKEWORD(2, 2), &d) != 0)\n        return 1;\n\
         \x20   s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);\n    if (s == INVALID_SOCKET || closesocket(s) != 0)\n\
         \x20       return 1;\n    return WSACleanup();\n}\n",
    )
    .expect("write the program");
    let mut cmd = Command::new(cc());
    cmd.args(["-std=c11", "-fsyntax-only"])
        .args(STRICT)
        .arg("-I")
        .arg(crate::support::include_dir().join("socknotify"))
        .arg(&src);
    let o = run(cmd, Duration::from_secs(60));
    assert!(o.success(), "unchanged include lines failed to compile\n{}", o.describe());
}
