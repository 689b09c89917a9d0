//! The C API test suite: C programs under `tests/c/` and the example under `examples/`,
//! compiled with the system compiler against this build's static library
//! (`libsocknotify_c.a`) and run one case per process (so a crash or a hang in one case is
//! reported under its own name).

mod support;

mod example;
mod header;
mod install;
mod porting;

use support::{check_listed, run_case};

/// One Rust test per C case, plus a check that the list matches what the C program has.
macro_rules! c_cases {
    ($prog:literal: $($test:ident => $case:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                run_case($prog, $case);
            }
        )*
        #[test]
        fn every_c_case_has_a_rust_test() {
            check_listed($prog, &[$($case),*]);
        }
    };
}

/// Whole-call validation (T01-T07, V4, V7) and per-entry validation (T08-T19).
mod psn_validation {
    use super::*;
    c_cases!("psn_validation":
        t01_empty_call_succeeds_without_effect => "T01",
        t02_count_array_null_mismatch_is_wsaeinval => "T02",
        t03_timeout_without_completions_is_wsaeinval => "T03",
        t04_count_pointer_without_completions_is_wsaeinval => "T04",
        t05_entries_without_completions_is_wsaeinval => "T05",
        t06_missing_output_pointer_is_wsaefault => "T06",
        t07_closed_port_is_invalid_handle => "T07",
        v4_overlapping_arrays_are_wsaeinval => "V4",
        v7_both_counts_zero_and_last_error => "V7",
        t08_level_and_edge_refused => "T08",
        t09_no_level_or_edge_refused => "T09",
        t10_oneshot_and_persistent_refused => "T10",
        t11_level_alone_is_persistent => "T11",
        t12_filter_outside_0x7_refused => "T12",
        t13_trigger_outside_0xf_refused => "T13",
        t14_enable_or_remove_refused_state_unchanged => "T14",
        t15_unknown_operations_refused => "T15",
        t16_op_none_changes_nothing => "T16",
        t17_remove_unregistered_is_not_found => "T17",
        t18_non_sockets_are_wsaenotsock => "T18",
        t19_failing_entry_does_not_stop_others => "T19",
    );
}

/// The notification flow on real sockets (T20-T24, T40-T43, T52-T55, T66, T67).
mod psn_flow {
    use super::*;
    c_cases!("psn_flow":
        t20_nothing_ready_times_out => "T20",
        t21_peer_data_delivers_in => "T21",
        t22_level_persistent_refires_until_drained => "T22",
        t23_level_oneshot_disabled_after_delivery => "T23",
        t24_reenable_same_call_returns_in => "T24",
        t40_remove_is_terminal => "T40",
        t41_remove_and_wait_in_one_call => "T41",
        t42_remove_of_disabled_registration => "T42",
        t43_closesocket_keeps_queued_packet_no_remove => "T43",
        t52_notifications_and_posts_share_fifo => "T52",
        t53_partial_batch_leaves_rest_queued => "T53",
        t54_timeout_is_wait_timeout_never_early => "T54",
        t55_registrations_before_dequeue => "T55",
        t66_retrieve_events_is_byte_count => "T66",
        t67_remove_packet_format => "T67",
    );
}

/// Several entries for one socket in one call (issue 8): the reused-number and
/// ENABLE-then-DISABLE reproductions and the other orders of the family.
mod psn_batches {
    use super::*;
    c_cases!("psn_batches":
        reused_number_in_one_batch_keeps_first_key => "reuse_key",
        reused_number_disable_then_enable_keeps_disable_key => "reuse_disable_enable",
        enable_level_then_disable_in_one_call_delivers_packet => "enable_disable",
        enable_level_then_disable_in_one_waiting_call_delivers_packet => "enable_disable_wait",
        enable_level_then_remove_delivers_one_remove_packet => "enable_remove",
        disable_then_enable_delivers_with_the_disable_key => "disable_enable",
        enable_then_reenable_with_another_filter_uses_the_second => "reenable_filter",
        enable_level_then_reenable_edge_delivers_once => "level_then_edge",
        remove_then_enable_is_refused_until_the_remove_packet => "remove_enable",
    );
}

/// Completion-port behaviour with real threads (T56-T61, T64, T72) and a wake-up race.
mod iocp {
    use super::*;
    c_cases!("iocp":
        t56_gqcs_abandoned_on_close => "T56",
        t57_gqcsex_abandoned_on_close => "T57",
        t58_psn_abandoned_on_close => "T58",
        t59_stale_handle_is_invalid_handle => "T59",
        t60_waiters_released_lifo => "T60",
        t61_gqcsex_batch_fifo_fields_preserved => "T61",
        t64_concurrency_limit_holds_waiter => "T64",
        t72_gqcs_on_notification => "T72",
        wake_handoff_survives_concurrent_poll => "wake_handoff",
    );
}

/// The porting headers' mapped Winsock calls and the thread calls (`tests/c/porting.c`).
mod porting_cases {
    use super::*;
    c_cases!("porting":
        wsastartup_fills_wsadata => "wsastartup",
        socket_errors_are_wsae_codes => "error_codes",
        nonblocking_mode_and_fionread => "nonblocking",
        socket_options_in_windows_units => "socket_options",
        so_error_and_select => "so_error_and_select",
        send_never_raises_sigpipe => "no_sigpipe",
        thread_handles => "threads",
        interlocked_and_time => "interlocked_and_time",
    );
}

/// The C API's own rules: handles, arguments, timeouts, last error, closesocket.
mod capi {
    use super::*;
    c_cases!("capi":
        garbage_handles_are_invalid_handle => "garbage_handles",
        handle_values_unique_never_reused => "handle_values",
        create_association_forms_refused => "create_forms",
        gqcs_argument_checks => "gqcs_arguments",
        gqcs_timeouts => "timeouts",
        last_error_per_thread => "last_error",
        closesocket_errors => "closesocket_errors",
        closesocket_forgets_registration => "closesocket_forgets",
        close_port_frees_sockets => "close_port_frees_sockets",
        misaligned_pointers_are_wsaefault => "misaligned",
        port_options_only_before_the_first_registration => "port_options",
        port_descriptor_quiet_when_idle_readable_with_a_packet => "port_descriptor",
    );
}
