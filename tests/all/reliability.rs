//! Reliability controls: tokens counted with the models' encodings, long outputs read window
//! by window with cursors, and per-task budgets kept in the state database.

use moat::controls::task_budget::{TaskBudgetError, TaskBudgets, TaskLedger};
use moat::controls::tokens::{Tokenizer, TokenizerKind};
use moat::controls::window::{Window, WindowConfig, WindowError, Windows};
use moat::state::StateDb;
use moat::units::{ByteSize, Millis};
use std::sync::Arc;
use std::time::Duration;

fn o200k() -> Tokenizer {
    Tokenizer::new(TokenizerKind::O200kBase)
}

/// Text with what tokenizers find hard: multi-byte characters split over several tokens,
/// combining marks, contractions, numbers, minified JSON.
const MIXED: &str = "{\"id\":42,\"name\":\"Zoë 🦀🦀 naïve café\",\"note\":\"it's 3.14159 — \
    日本語のテキスト 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 e\u{301}te\u{301}\",\"tags\":[\"a\",\"βeta\"]}\n  \
    The quick brown fox 😀 jumps over the lazy dog.\r\n\t<|endoftext|>";

/// About `bytes` of JSON lines with emoji and other multi-byte text.
fn json_output(bytes: usize) -> String {
    output(bytes, false)
}

/// [`json_output`], and every 20,000 lines runs that no tokenizer's regex splits (50,000
/// spaces, 30,000 times one letter, 3,000 family emoji).
fn big_output(bytes: usize) -> String {
    output(bytes, true)
}

fn output(bytes: usize, runs: bool) -> String {
    let mut text = String::with_capacity(bytes + 1024);
    let mut i = 0u64;
    while text.len() < bytes {
        text.push_str(&format!(
            "{{\"id\":{i},\"user\":\"user-{i} 🦀 naïve café 日本語\",\"ok\":{},\"note\":\
             \"The quick brown fox 😀 jumps over the lazy dog; it's {}°C.\"}},\n",
            i.is_multiple_of(3),
            i * 7 % 40
        ));
        if runs && i % 20_000 == 7 {
            text.push_str(&" ".repeat(50_000));
            text.push_str(&"a".repeat(30_000));
            text.push_str(&"👩‍👩‍👧‍👦".repeat(3_000));
        }
        i += 1;
    }
    text
}

// --- tokens -------------------------------------------------------------------------------

#[test]
fn tokens_are_counted_with_the_models_encodings() {
    let cl100k = Tokenizer::new(TokenizerKind::Cl100kBase);
    // The values OpenAI's tiktoken gives.
    assert_eq!(cl100k.count("tiktoken is great!"), 6);
    assert_eq!(o200k().count("tiktoken is great!"), 6);
    assert_eq!(o200k().count("hello world"), 2);
    assert_eq!(o200k().count(""), 0);
    // Special-token text in an output is ordinary text.
    assert!(o200k().count("<|endoftext|>") > 1);
}

#[test]
fn a_cut_never_splits_a_character_and_holds_at_most_the_tokens_asked_for() {
    for tokenizer in [o200k(), Tokenizer::new(TokenizerKind::Cl100kBase)] {
        let total = tokenizer.count(MIXED);
        let mut last = 0;
        for max in 1..=total + 2 {
            let cut = tokenizer.cut(MIXED, max);
            assert!(MIXED.is_char_boundary(cut), "{max} tokens: cut {cut} splits a character");
            assert!(cut > 0 && cut >= last, "{max} tokens: cut {cut} after {last}");
            let (cut_again, counted) = tokenizer.cut_counted(MIXED, max);
            assert_eq!(cut_again, cut);
            assert_eq!(counted, tokenizer.count(&MIXED[..cut]));
            // A character that is itself several tokens may overrun a tiny limit, no more.
            let first = MIXED.chars().next().map_or(0, char::len_utf8);
            assert!(counted <= max || cut == first, "{max} tokens: {counted} in the cut");
            assert_eq!(cut == MIXED.len(), total <= max, "{max} tokens of {total}");
            last = cut;
        }
    }
}

#[test]
fn a_cut_always_moves_on_by_at_least_one_character() {
    let tokenizer = o200k();
    assert_eq!(tokenizer.cut("🦀 crab", 0), "🦀".len());
    assert_eq!(tokenizer.cut("", 5), 0);
    // 𝔘 is several tokens: one token cannot hold it, and the cut still takes it whole.
    assert_eq!(tokenizer.cut("𝔘𝔫𝔦", 1), "𝔘".len());
}

#[test]
fn texts_no_regex_can_split_are_counted_without_crashing_the_tokenizer() {
    // Megabytes of spaces overflow the tokenizer's regex stack when encoded in one piece.
    let tokenizer = o200k();
    for text in [" ".repeat(2 << 20), "a".repeat(1 << 20), "\u{1F980}".repeat(1 << 18)] {
        let count = tokenizer.count(&text);
        assert!(count > 0 && count <= text.len() as u64);
        let cut = tokenizer.cut(&text, 1000);
        assert!(tokenizer.count(&text[..cut]) <= 1000);
    }
}

// --- windows ------------------------------------------------------------------------------

fn windows(tokens: u64) -> Windows {
    Windows::new(WindowConfig { tokens, ..WindowConfig::default() }, o200k())
}

/// Reads `first` and every window after it; checks each against the output it came from.
fn read_all(windows: &Windows, output: &str, first: Window) -> Vec<Window> {
    let limit = windows.config().tokens;
    let tokenizer = o200k();
    let mut read = vec![first];
    loop {
        let window = read.last().expect("one window at least");
        assert_eq!(window.total_bytes, output.len() as u64);
        assert!(window.window_tokens <= limit, "window at {} is over the limit", window.offset);
        assert!(!window.text.is_empty());
        let Some(cursor) = window.cursor.clone() else { break };
        let next = windows.next(&cursor).expect("the next window");
        assert_eq!(next.offset, window.offset + window.text.len() as u64, "windows are adjacent");
        read.push(next);
    }
    // Each window's own count is what it says, within the limit.
    for window in &read {
        assert_eq!(tokenizer.count(&window.text), window.window_tokens);
    }
    read
}

#[test]
fn an_output_that_fits_its_window_comes_whole_without_a_cursor() {
    let windows = windows(1000);
    let window = windows.first("echo", MIXED.to_owned());
    assert_eq!(window.text, MIXED);
    assert_eq!(window.cursor, None);
    assert_eq!((window.offset, window.total_bytes), (0, MIXED.len() as u64));
    assert_eq!(window.total_tokens, o200k().count(MIXED));
    assert_eq!(window.window_tokens, window.total_tokens);
    assert!(!window.truncated());
    assert_eq!(windows.kept_bytes(), 0, "nothing is kept for an output read whole");
}

#[test]
fn a_ten_megabyte_output_read_to_the_end_returns_every_byte_exactly_once() {
    let output = big_output(10 << 20);
    let windows = windows(WindowConfig::default().tokens);
    let first = windows.first("export", output.clone());
    assert!(first.cursor.is_some());
    assert_eq!(first.total_tokens, o200k().count(&output));
    let read = read_all(&windows, &output, first);
    assert!(read.len() > 100, "{} windows", read.len());
    let joined: String = read.iter().map(|w| w.text.as_str()).collect();
    assert!(joined == output, "the windows, joined, are not the output");
    let last = read.last().expect("windows");
    assert_eq!(last.offset + last.text.len() as u64, last.total_bytes);
}

#[test]
fn reading_a_cursor_again_returns_the_same_window() {
    let output = big_output(200_000);
    let windows = windows(500);
    let first = windows.first("export", output.clone());
    let cursor = first.cursor.clone().expect("a cursor");
    let second = windows.next(&cursor).expect("the second window");
    let third = windows.next(second.cursor.as_deref().expect("a third")).expect("the third");
    assert_eq!(windows.next(&cursor), Ok(second.clone()), "retried after reading on");
    assert_eq!(windows.next(second.cursor.as_deref().unwrap()), Ok(third));
    // The whole output still reads back exactly.
    let joined: String =
        read_all(&windows, &output, first).iter().map(|w| w.text.clone()).collect();
    assert!(joined == output);
}

#[test]
fn a_forged_or_malformed_cursor_is_refused_as_unknown() {
    let windows = windows(100);
    let first = windows.first("export", json_output(20_000));
    let cursor = first.cursor.expect("a cursor");
    let (id, _) = cursor.split_once('-').expect("ID-INDEX");
    let mut other_id = id.to_owned().into_bytes();
    other_id[0] = if other_id[0] == b'0' { b'1' } else { b'0' };
    let other_id = String::from_utf8(other_id).unwrap();
    for forged in [
        "".to_owned(),
        "hello".to_owned(),
        format!("{other_id}-1"),
        format!("{id}-0"),
        format!("{id}-7"),
        format!("{id}-x"),
        format!("{id}1-1"),
        "🦀".repeat(1000),
    ] {
        match windows.next(&forged) {
            Err(error @ WindowError::Unknown { .. }) => {
                assert!(error.to_string().chars().count() < 300, "it repeats a bit of it at most");
                assert!(error.to_string().contains("was not given out by this moat process"));
            }
            other => panic!("`{forged}` was read: {other:?}"),
        }
    }
    assert!(windows.next(&format!("{id}-1")).is_ok(), "the real cursor still reads");
}

#[test]
fn a_cursor_into_an_output_unread_for_its_ttl_has_expired() {
    let config = WindowConfig { tokens: 100, ttl: Millis(0), ..WindowConfig::default() };
    let windows = Windows::new(config, o200k());
    let cursor = windows.first("search", json_output(20_000)).cursor.expect("a cursor");
    let error = windows.next(&cursor).expect_err("expired");
    assert!(matches!(error, WindowError::Expired { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "cursor `{cursor}` has expired: the output of `search` was dropped after 0s \
             unread; call `search` again"
        )
    );
    assert_eq!(windows.kept_bytes(), 0);
}

#[test]
fn outputs_past_the_memory_kept_are_dropped_oldest_first_and_say_to_call_again() {
    let config = WindowConfig { tokens: 100, keep: ByteSize::kib(100), ..WindowConfig::default() };
    let windows = Windows::new(config, o200k());
    let (a, b) = (json_output(45_000), json_output(45_000));
    let a_cursor = windows.first("tool-a", a).cursor.expect("a cursor");
    let b_cursor = windows.first("tool-b", b).cursor.expect("a cursor");
    // Reading `a` makes it the most recently used: `b` goes first.
    windows.next(&a_cursor).expect("a is kept");
    let c_cursor = windows.first("tool-c", json_output(45_000)).cursor.expect("a cursor");
    assert!(windows.kept_bytes() <= 100 * 1024);
    let error = windows.next(&b_cursor).expect_err("b was evicted");
    assert!(
        error.to_string().ends_with(
            "the output of `tool-b` was dropped to keep unread outputs within 100 KiB of \
             memory; call `tool-b` again"
        ),
        "{error}"
    );
    assert!(windows.next(&a_cursor).is_ok());
    assert!(windows.next(&c_cursor).is_ok());
}

#[test]
fn an_output_larger_than_all_the_memory_kept_is_cut_without_a_cursor() {
    let config = WindowConfig { tokens: 100, keep: ByteSize::kib(10), ..WindowConfig::default() };
    let windows = Windows::new(config, o200k());
    let window = windows.first("dump", json_output(20_000));
    assert_eq!(window.cursor, None);
    assert!(window.truncated());
    assert!(window.window_tokens <= 100);
    assert_eq!(windows.kept_bytes(), 0);
}

#[test]
fn outputs_are_read_on_from_many_threads_at_once() {
    fn shared<T: Send + Sync>(_: &T) {}
    let windows = windows(300);
    shared(&windows);
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let windows = &windows;
            scope.spawn(move || {
                let output = format!("thread {thread}: {}", json_output(60_000));
                let first = windows.first("export", output.clone());
                let joined: String =
                    read_all(windows, &output, first).iter().map(|w| w.text.clone()).collect();
                assert!(joined == output);
            });
        }
    });
}

#[test]
fn window_settings_deserialize_with_units_and_defaults() {
    let config: WindowConfig = toml::from_str("tokens = 4000\nkeep = \"64 MiB\"").unwrap();
    assert_eq!(config.tokens, 4000);
    assert_eq!(config.keep, ByteSize::mib(64));
    assert_eq!(config.ttl, Millis(30 * 60 * 1000));
    assert_eq!(WindowConfig::default().tokens, 8000);
    assert!(toml::from_str::<WindowConfig>("token = 5").is_err());
}

// --- task budgets -------------------------------------------------------------------------

fn ledger_in(dir: &std::path::Path, budgets: TaskBudgets) -> TaskLedger {
    let db = Arc::new(StateDb::open(dir).expect("state database"));
    TaskLedger::new(db, budgets).expect("task ledger")
}

fn exceeded(error: TaskBudgetError) -> (&'static str, String, String, String) {
    let message = error.to_string();
    match error {
        TaskBudgetError::Exceeded { budget, limit, used, .. } => (budget, limit, used, message),
        other => panic!("not a budget error: {other}"),
    }
}

#[test]
fn the_calls_budget_admits_exactly_that_many_calls() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger_in(dir.path(), TaskBudgets { calls: 3, ..TaskBudgets::default() });
    for n in 1..=3 {
        assert_eq!(ledger.admit("T").expect("admitted").calls, n);
    }
    let (budget, limit, used, message) = exceeded(ledger.admit("T").expect_err("call 4"));
    assert_eq!((budget, limit.as_str(), used.as_str()), ("calls", "3", "3 (this would be call 4)"));
    assert_eq!(
        message,
        "task `T` exceeded its calls budget: limit 3, used 3 (this would be call 4)"
    );
    assert_eq!(ledger.usage("T").unwrap().calls, 3, "a refused call is not counted");
    assert!(ledger.admit("another task").is_ok(), "tasks are counted apart");
}

#[test]
fn the_tokens_budget_counts_output_tokens_and_model_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger_in(dir.path(), TaskBudgets::default());
    ledger.admit("T").unwrap();
    let output_tokens = o200k().count(MIXED);
    ledger.charge("T", 10, Duration::from_millis(5), output_tokens).unwrap();
    let error = ledger.add_model_tokens("T", 2_000_417 - output_tokens).expect_err("over");
    assert_eq!(
        error.to_string(),
        "task `T` exceeded its tokens budget: limit 2000000, used 2000417"
    );
    assert_eq!(ledger.usage("T").unwrap().tokens, 2_000_417, "the tokens are recorded");
    let (budget, ..) = exceeded(ledger.admit("T").expect_err("the next call is refused"));
    assert_eq!(budget, "tokens");
}

#[test]
fn the_fuel_budget_lets_the_call_that_crosses_it_finish_and_refuses_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger_in(dir.path(), TaskBudgets { fuel: 1000, ..TaskBudgets::default() });
    ledger.admit("T").unwrap();
    assert_eq!(ledger.charge("T", 1000, Duration::ZERO, 0).unwrap().fuel, 1000, "at the limit");
    ledger.admit("T").expect("at the limit is not over it");
    let (budget, limit, used, _) =
        exceeded(ledger.charge("T", 1, Duration::ZERO, 0).expect_err("over"));
    assert_eq!((budget, limit.as_str(), used.as_str()), ("fuel", "1000", "1001"));
    let (budget, _, used, _) = exceeded(ledger.admit("T").expect_err("refused"));
    assert_eq!((budget, used.as_str()), ("fuel", "1001"));
    assert_eq!(ledger.usage("T").unwrap().calls, 2);
}

#[test]
fn the_wall_time_budget_sums_the_time_of_the_calls() {
    let dir = tempfile::tempdir().unwrap();
    let budgets = TaskBudgets { wall_time: Millis(100), ..TaskBudgets::default() };
    let ledger = ledger_in(dir.path(), budgets);
    ledger.charge("T", 0, Duration::from_millis(60), 0).unwrap();
    let error = ledger.charge("T", 0, Duration::from_micros(40_500), 0).expect_err("over");
    assert_eq!(
        error.to_string(),
        "task `T` exceeded its wall time budget: limit 100 ms, used 100.500 ms"
    );
    let (budget, ..) = exceeded(ledger.admit("T").expect_err("refused"));
    assert_eq!(budget, "wall time");
}

#[test]
fn usage_survives_reopening_the_state_database() {
    let dir = tempfile::tempdir().unwrap();
    {
        let ledger = ledger_in(dir.path(), TaskBudgets::default());
        ledger.admit("T").unwrap();
        ledger.charge("T", 1234, Duration::from_micros(5678), 90).unwrap();
        ledger.add_model_tokens("T", 10).unwrap();
    }
    let ledger = ledger_in(dir.path(), TaskBudgets { calls: 1, ..TaskBudgets::default() });
    let usage = ledger.usage("T").unwrap();
    assert_eq!((usage.calls, usage.tokens, usage.fuel), (1, 100, 1234));
    assert_eq!(usage.wall_time, Duration::from_micros(5678));
    let (budget, ..) = exceeded(ledger.admit("T").expect_err("the restart did not reset it"));
    assert_eq!(budget, "calls");
    assert_eq!(ledger.usage("never seen").unwrap(), Default::default());
}

#[test]
fn concurrent_charges_from_eight_threads_on_two_connections_add_up_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let budgets = TaskBudgets { tokens: u64::MAX, fuel: u64::MAX, ..TaskBudgets::default() };
    // Two ledgers over two connections: two hosts sharing one state directory.
    let ledgers = [ledger_in(dir.path(), budgets.clone()), ledger_in(dir.path(), budgets)];
    std::thread::scope(|scope| {
        for thread in 0..8 {
            let ledger = &ledgers[thread % 2];
            scope.spawn(move || {
                for _ in 0..100 {
                    ledger.charge("T", 3, Duration::from_micros(7), 5).expect("charged");
                    ledger.add_model_tokens("T", 1).expect("added");
                }
            });
        }
    });
    let usage = ledgers[0].usage("T").unwrap();
    assert_eq!((usage.fuel, usage.tokens), (8 * 100 * 3, 8 * 100 * 6));
    assert_eq!(usage.wall_time, Duration::from_micros(8 * 100 * 7));
}

#[test]
fn concurrent_hosts_never_admit_more_calls_than_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let budgets = TaskBudgets { calls: 50, ..TaskBudgets::default() };
    let ledgers = [ledger_in(dir.path(), budgets.clone()), ledger_in(dir.path(), budgets)];
    let admitted: usize = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|thread| {
                let ledger = &ledgers[thread % 2];
                scope.spawn(move || (0..20).filter(|_| ledger.admit("T").is_ok()).count())
            })
            .collect();
        threads.into_iter().map(|t| t.join().expect("thread")).sum()
    });
    assert_eq!(admitted, 50);
    assert_eq!(ledgers[1].usage("T").unwrap().calls, 50);
}
