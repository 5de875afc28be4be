//! Each misbehaving plugin is stopped by the budget meant for it, with an error naming that
//! budget, its limit and the usage; the host then serves a normal call.

use crate::support::{built, host_over};
use moat::units::{ByteSize, Millis};
use moat::{BudgetKind, Budgets, CallError};
use std::time::{Duration, Instant};

struct Case {
    tool: &'static str,
    args: &'static str,
    budgets: Budgets,
    expect: BudgetKind,
}

fn cases() -> Vec<Case> {
    let base = Budgets { wall_time: Millis(5_000), ..Budgets::default() };
    vec![
        Case {
            tool: "spin",
            args: "{}",
            budgets: Budgets { fuel: 20_000_000, ..base },
            expect: BudgetKind::Fuel,
        },
        Case {
            tool: "spin",
            args: "{}",
            budgets: Budgets { fuel: u64::MAX / 2, wall_time: Millis(1_000), ..base },
            expect: BudgetKind::WallTime,
        },
        Case {
            tool: "grow_memory",
            args: "{}",
            budgets: Budgets { memory: ByteSize::mib(16), ..base },
            expect: BudgetKind::Memory,
        },
        Case { tool: "recurse", args: "{}", budgets: base, expect: BudgetKind::Stack },
        Case {
            tool: "huge_output",
            args: r#"{"bytes": 2000000}"#,
            budgets: Budgets { output: ByteSize::mib(1), ..base },
            expect: BudgetKind::Output,
        },
    ]
}

#[test]
fn every_misbehaving_plugin_is_stopped_by_its_budget_and_the_host_serves_on() {
    for case in cases() {
        let host = host_over(&[built("tests")], case.budgets);
        let started = Instant::now();
        let error = host.call(case.tool, case.args).expect_err(case.tool);
        let elapsed = started.elapsed();
        let exceeded = error
            .budget()
            .unwrap_or_else(|| panic!("{}: expected a budget error, got {error}", case.tool));
        assert_eq!(exceeded.budget, case.expect, "{}: {error}", case.tool);
        assert_eq!(exceeded.tool, case.tool);
        let message = error.to_string();
        assert!(message.contains(&format!("{} budget", case.expect)), "{message}");
        assert!(message.contains("limit"), "{message}");
        let wall_limit = case.budgets.wall_time.duration();
        assert!(
            elapsed < 2 * wall_limit,
            "{}: took {elapsed:?}, wall limit {wall_limit:?}",
            case.tool
        );
        assert_eq!(host.call("ok", "{}").expect("the host serves the next call").output, r#""ok""#);
    }
}

#[test]
fn the_fuel_error_names_the_limit_and_the_usage() {
    let host = host_over(&[built("tests")], Budgets { fuel: 5_000_000, ..Budgets::default() });
    let error = host.call("spin", "{}").unwrap_err();
    assert_eq!(
        error.to_string(),
        "tool `spin` exceeded its fuel budget: limit 5000000 fuel, used 5000000 fuel"
    );
}

#[test]
fn the_memory_error_names_the_limit_and_what_was_asked_for() {
    let host =
        host_over(&[built("tests")], Budgets { memory: ByteSize::mib(8), ..Budgets::default() });
    let exceeded =
        host.call("grow_memory", "{}").unwrap_err().budget().cloned().expect("a budget error");
    assert_eq!(exceeded.limit, 8 << 20);
    assert!(exceeded.used > exceeded.limit, "{exceeded}");
}

#[test]
fn the_wall_clock_stops_a_loop_soon_after_its_limit() {
    let budgets = Budgets { fuel: u64::MAX / 2, wall_time: Millis(300), ..Budgets::default() };
    let host = host_over(&[built("tests")], budgets);
    let error = host.call("spin", "{}").unwrap_err();
    let exceeded = error.budget().expect("a budget error");
    assert_eq!(exceeded.budget, BudgetKind::WallTime);
    assert!(exceeded.used >= 300, "stopped before its limit: {error}");
    assert!(Duration::from_millis(exceeded.used) < Duration::from_millis(600), "{error}");
}

#[test]
fn a_panic_is_a_trap_that_quotes_the_panic_message() {
    let host = host_over(&[built("tests")], Budgets::default());
    match host.call("panic", "{}") {
        Err(CallError::Trapped { tool, reason }) => {
            assert_eq!(tool, "panic");
            assert!(reason.contains("misbehave: deliberate panic"), "{reason}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert!(host.call("ok", "{}").is_ok());
}

#[test]
fn output_within_its_budget_is_returned_whole() {
    let host =
        host_over(&[built("tests")], Budgets { output: ByteSize::kib(64), ..Budgets::default() });
    let response = host.call("huge_output", r#"{"bytes": 60000}"#).unwrap();
    assert_eq!(response.output.len(), 60_002, "60000 bytes plus the JSON quotes");
    assert_eq!(response.usage.output_bytes, 60_002);
}
