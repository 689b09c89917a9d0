//! Unit tests that need both crates: the header against the code table, and garbage handles.

use crate::*;
use std::collections::HashMap;

/// `#define NAME VALUE` of the header, with aliases and `|` expressions resolved.
fn header_defines() -> HashMap<String, i128> {
    let text = include_str!("../include/socknotify.h");
    let mut raw: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("#define ") else { continue };
        let rest = rest.split("/*").next().unwrap_or("").trim();
        let mut it = rest.splitn(2, char::is_whitespace);
        let (Some(name), Some(value)) = (it.next(), it.next()) else { continue };
        if name.contains('(') {
            continue; // function-like macro
        }
        raw.push((name.to_string(), value.trim().to_string()));
    }
    let mut values: HashMap<String, i128> = HashMap::new();
    // Resolve in passes: a value is a literal, a known name, or "(A | B | ...)".
    for _ in 0..8 {
        for (name, value) in &raw {
            if values.contains_key(name) {
                continue;
            }
            let v = value.trim_start_matches('(').trim_end_matches(')');
            let mut acc: Option<i128> = Some(0);
            for part in v.split('|').map(str::trim) {
                let x = if let Some(h) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
                    i128::from_str_radix(h, 16).ok()
                } else if let Ok(d) = part.parse::<i128>() {
                    Some(d)
                } else {
                    values.get(part).copied()
                };
                acc = match (acc, x) {
                    (Some(a), Some(b)) => Some(a | b),
                    _ => None,
                };
            }
            if let Some(a) = acc {
                values.insert(name.clone(), a);
            }
        }
    }
    values
}

/// Every code of the project's one code table (`socknotify/src/abi/codes.rs`) is in the header
/// with the same value, and so are the SOCK_NOTIFY_* values of the core.
#[test]
fn header_values_match_the_code_table() {
    use socknotify::winsock as w;
    let defines = header_defines();
    let codes_rs = include_str!("../../socknotify/src/abi/codes.rs");
    let mut checked = 0;
    for line in codes_rs.lines() {
        let Some(rest) = line.trim().strip_prefix("pub const ") else { continue };
        let (name, value) = rest.split_once(':').expect("pub const NAME: u32 = VALUE;");
        let value = value.split('=').nth(1).expect("= VALUE").trim().trim_end_matches(';').replace('_', "");
        let value: i128 = value.parse().unwrap_or_else(|_| panic!("codes.rs value of {name}: {value}"));
        let name = name.trim();
        assert_eq!(defines.get(name), Some(&value), "{name}: header and codes.rs disagree");
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} codes found in codes.rs");
    let core: &[(&str, i128)] = &[
        ("SOCK_NOTIFY_REGISTER_EVENT_NONE", w::SOCK_NOTIFY_REGISTER_EVENT_NONE.into()),
        ("SOCK_NOTIFY_REGISTER_EVENT_IN", w::SOCK_NOTIFY_REGISTER_EVENT_IN.into()),
        ("SOCK_NOTIFY_REGISTER_EVENT_OUT", w::SOCK_NOTIFY_REGISTER_EVENT_OUT.into()),
        ("SOCK_NOTIFY_REGISTER_EVENT_HANGUP", w::SOCK_NOTIFY_REGISTER_EVENT_HANGUP.into()),
        ("SOCK_NOTIFY_REGISTER_EVENTS_ALL", w::SOCK_NOTIFY_REGISTER_EVENTS_ALL.into()),
        ("SOCK_NOTIFY_EVENT_IN", w::SOCK_NOTIFY_EVENT_IN.into()),
        ("SOCK_NOTIFY_EVENT_OUT", w::SOCK_NOTIFY_EVENT_OUT.into()),
        ("SOCK_NOTIFY_EVENT_HANGUP", w::SOCK_NOTIFY_EVENT_HANGUP.into()),
        ("SOCK_NOTIFY_EVENT_ERR", w::SOCK_NOTIFY_EVENT_ERR.into()),
        ("SOCK_NOTIFY_EVENT_REMOVE", w::SOCK_NOTIFY_EVENT_REMOVE.into()),
        ("SOCK_NOTIFY_EVENTS_ALL", w::SOCK_NOTIFY_EVENTS_ALL.into()),
        ("SOCK_NOTIFY_OP_NONE", w::SOCK_NOTIFY_OP_NONE.into()),
        ("SOCK_NOTIFY_OP_ENABLE", w::SOCK_NOTIFY_OP_ENABLE.into()),
        ("SOCK_NOTIFY_OP_DISABLE", w::SOCK_NOTIFY_OP_DISABLE.into()),
        ("SOCK_NOTIFY_OP_REMOVE", w::SOCK_NOTIFY_OP_REMOVE.into()),
        ("SOCK_NOTIFY_TRIGGER_ONESHOT", w::SOCK_NOTIFY_TRIGGER_ONESHOT.into()),
        ("SOCK_NOTIFY_TRIGGER_PERSISTENT", w::SOCK_NOTIFY_TRIGGER_PERSISTENT.into()),
        ("SOCK_NOTIFY_TRIGGER_LEVEL", w::SOCK_NOTIFY_TRIGGER_LEVEL.into()),
        ("SOCK_NOTIFY_TRIGGER_EDGE", w::SOCK_NOTIFY_TRIGGER_EDGE.into()),
        ("SOCK_NOTIFY_TRIGGER_ALL", w::SOCK_NOTIFY_TRIGGER_ALL.into()),
        ("INFINITE", w::INFINITE.into()),
        ("ERROR_INTERNAL_ERROR", ERROR_INTERNAL_ERROR.into()),
        ("SOCKET_ERROR", SOCKET_ERROR.into()),
        ("TRUE", TRUE.into()),
        ("FALSE", FALSE.into()),
    ];
    for (name, value) in core {
        assert_eq!(defines.get(*name), Some(value), "{name}: header and the Rust crates disagree");
    }
    assert!(!defines.contains_key("SOCK_NOTIFY_EVENT_DISABLE"), "D1: there is no SOCK_NOTIFY_EVENT_DISABLE");
}

#[test]
fn garbage_handles_are_rejected_without_touching_the_core() {
    for h in [std::ptr::null_mut(), INVALID_HANDLE_VALUE, 0x1234_5678 as HANDLE, 3 as HANDLE] {
        SetLastError(0);
        assert_eq!(CloseHandle(h), FALSE);
        assert_eq!(GetLastError(), ERROR_INVALID_HANDLE);
        assert_eq!(PostQueuedCompletionStatus(h, 1, 2, std::ptr::null_mut()), FALSE);
        assert_eq!(GetLastError(), ERROR_INVALID_HANDLE);
    }
}
