//! The header: compiles as C99/C11/C++11/C++17 under strict warnings, its layouts are right
//! at run time, and every declaration is documented. (That its values are the project's code
//! table is a unit test of the library, `header_values_match_the_code_table`, which can name
//! both crates.)

use crate::support::{cc, compile, cxx, include_dir, run, C_WARNINGS};
use std::process::Command;
use std::time::Duration;

fn run_all_cases(exe: &std::path::Path) {
    let o = run(Command::new(exe), Duration::from_secs(60));
    assert!(o.success(), "{} failed\n{}", exe.display(), o.describe());
    assert!(o.stdout.contains("ok "), "{} ran nothing\n{}", exe.display(), o.describe());
}

fn layout_program(name: &str, extra: &[&str]) {
    let mut flags: Vec<&str> = extra.to_vec();
    flags.extend_from_slice(C_WARNINGS);
    let exe = compile(name, &cc(), &flags, &["tests/c/harness.c", "tests/c/layout.c"]);
    run_all_cases(&exe);
}

#[test]
fn layout_c99_pedantic() {
    layout_program("layout_c99", &["-std=c99"]);
}

#[test]
fn layout_c11_pedantic() {
    layout_program("layout_c11", &["-std=c11"]);
}

#[test]
fn layout_c99_nonamelessunion() {
    layout_program("layout_c99_nonameless", &["-std=c99", "-DNONAMELESSUNION"]);
}

fn cxx_program(std: &str) {
    let flag = format!("-std={std}");
    let mut flags = vec![flag.as_str()];
    flags.extend_from_slice(C_WARNINGS);
    let exe = compile(&format!("header_{std}"), &cxx(), &flags, &["tests/c/header_cpp.cpp"]);
    let o = run(Command::new(&exe), Duration::from_secs(60));
    assert!(o.success() && o.stdout.contains("ok header_cpp"), "C++ program failed\n{}", o.describe());
}

#[test]
fn header_from_cxx11() {
    cxx_program("c++11");
}

#[test]
fn header_from_cxx17() {
    cxx_program("c++17");
}

/// The header alone under warnings beyond -Wall -Wextra, in C and C++.
#[test]
fn header_alone_extra_warnings() {
    let strict = [
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pedantic",
        "-Wconversion",
        "-Wsign-conversion",
        "-Wshadow",
        "-Wundef",
        "-Wcast-qual",
        "-Wredundant-decls",
    ];
    let header = include_dir().join("socknotify.h");
    for (compiler, lang, std, extra) in [
        (cc(), "c", "-std=c99", &["-Wstrict-prototypes", "-Wmissing-prototypes"][..]),
        (cc(), "c", "-std=c17", &["-Wstrict-prototypes"][..]),
        (cxx(), "c++", "-std=c++11", &["-Wold-style-cast", "-Wzero-as-null-pointer-constant"][..]),
    ] {
        let mut cmd = Command::new(&compiler);
        cmd.args(["-x", lang, std, "-fsyntax-only"]).args(strict).args(extra).arg(&header);
        let o = run(cmd, Duration::from_secs(60));
        assert!(o.success(), "{compiler} -x {lang} {std} on the header failed\n{}", o.describe());
    }
}

/// Every macro, typedef and function of the header has a comment right before it (or a
/// trailing `/**<` comment).
#[test]
fn every_declaration_is_documented() {
    let text = std::fs::read_to_string(include_dir().join("socknotify.h")).expect("read header");
    let lines: Vec<&str> = text.lines().collect();
    let is_conditional = |l: &str| {
        ["#if", "#ifdef", "#ifndef", "#elif", "#else", "#endif"].iter().any(|p| l.trim_start().starts_with(p))
    };
    let mut missing = Vec::new();
    let mut checked = 0;
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let name = if let Some(r) = t.strip_prefix("#define ") {
            r.split(|c: char| c.is_whitespace() || c == '(').next().unwrap_or("").to_string()
        } else if t.starts_with("typedef ")
            || (t.contains('(') && (t.contains("WINAPI") || t.contains("WSAAPI")))
            || t.starts_with("static inline")
            || t.starts_with("UINT32 socknotify_")
        {
            t.to_string()
        } else {
            continue;
        };
        if name == "SOCKNOTIFY_H" || t.starts_with("typedef char socknotify_static_assert") {
            continue;
        }
        checked += 1;
        if line.contains("/**<") {
            continue;
        }
        // Walk back over blank lines, conditionals and alternative definitions of the same macro.
        let mut j = i;
        let documented = loop {
            if j == 0 {
                break false;
            }
            j -= 1;
            let p = lines[j].trim();
            if p.is_empty()
                || is_conditional(p)
                || (t.starts_with("#define ") && p.starts_with(&format!("#define {name}")))
            {
                continue;
            }
            break p.ends_with("*/");
        };
        if !documented {
            missing.push(format!("line {}: {}", i + 1, line.trim()));
        }
    }
    assert!(checked > 80, "only {checked} declarations found");
    assert!(missing.is_empty(), "undocumented declarations:\n{}", missing.join("\n"));
}
