//! The example policies of `plugins/policies/`, each in a host of its own over the example
//! tools and the test plugins: `pii-redact` (outputs), `fact-check` (a drafted reply against
//! the `orders` facts source), `destructive-needs-approval` (effects) and `outgoing-limits`
//! (arguments of network calls).

use crate::support::{built, refused, root, Person};
use moat::error::Stage::{AfterCall, BeforeCall};
use moat::escalation::Escalator;
use moat::{CallError, Config, Host};
use rusqlite::Connection;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

const ALL: [&str; 4] =
    ["pii-redact", "fact-check", "destructive-needs-approval", "outgoing-limits"];

/// A directory with `policies/` holding the named example policies, `data/old.txt`,
/// `shop.db` (`orders`: 42 open 19.50, 43 shipped 120; `items`: 25 rows) and `moat.toml`:
/// the facts source `orders` (unless `facts` is false), an fs grant of `data` to
/// `fs_remove`, a sql grant of `items` to `sql_execute`, an http grant to `http_send`.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new(policies: &[&str], facts: bool) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        std::fs::create_dir(path.join("policies")).unwrap();
        for name in policies {
            let built = root().join("target/wasm/policies").join(format!("{name}.wasm"));
            assert!(
                built.is_file(),
                "{} is missing: build it with `just plugins`",
                built.display()
            );
            std::fs::copy(built, path.join("policies").join(format!("{name}.wasm"))).unwrap();
        }
        std::fs::create_dir(path.join("data")).unwrap();
        std::fs::write(path.join("data/old.txt"), "obsolete").unwrap();
        let db = Connection::open(path.join("shop.db")).unwrap();
        db.execute_batch(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT NOT NULL, total REAL);
             INSERT INTO orders VALUES (42, 'open', 19.5), (43, 'shipped', 120);
             CREATE TABLE items (id INTEGER PRIMARY KEY, n INTEGER);
             WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k LIMIT 25)
             INSERT INTO items SELECT i, 0 FROM k;",
        )
        .unwrap();
        let mut toml = String::new();
        if facts {
            toml.push_str("[facts.orders]\nkind = \"sql\"\npath = \"shop.db\"\n\n");
        }
        toml.push_str(
            "[tools.fs_remove.grants.fs.data]\npath = \"data\"\nmode = \"read-write\"\n\n\
             [tools.sql_execute.grants.sql.shop]\npath = \"shop.db\"\ntables = [\"items\"]\n\
             operations = [\"update\"]\nmax_percent = 100.0\n\n\
             [tools.http_send.grants.http]\nallow = [\"http://127.0.0.1:9\"]\n",
        );
        std::fs::write(path.join("moat.toml"), toml).unwrap();
        Sandbox { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn host_with(&self, escalator: Arc<dyn Escalator>) -> Host {
        let mut config = Config::load(&self.path().join("moat.toml")).unwrap();
        crate::support::without_controls(&mut config);
        config.plugins.tools = vec![built("tools"), built("tests")];
        config.confidence.high = 0.0; // not about confidence
        let (host, errors) = Host::builder(config).escalator(escalator).build().unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        host
    }

    fn host(&self) -> Host {
        self.host_with(Arc::new(moat::escalation::DenyAll))
    }

    fn items_changed(&self) -> i64 {
        let db = Connection::open(self.path().join("shop.db")).unwrap();
        db.query_row("SELECT count(*) FROM items WHERE n > 0", [], |row| row.get(0)).unwrap()
    }
}

#[test]
fn the_example_policies_load_together_and_describe_themselves() {
    let sandbox = Sandbox::new(&ALL, true);
    let host = sandbox.host();
    let loaded: Vec<_> = host.policies().current().iter().map(|p| p.name.clone()).collect();
    let mut expected = ALL.map(str::to_owned).to_vec();
    expected.sort();
    assert_eq!(loaded, expected);
    assert!(host.policies().current().iter().all(|p| !p.description.is_empty()));
    let plain = host.call("echo", &json!({"text": "nothing to see"}).to_string()).unwrap();
    assert_eq!(plain.output, r#""nothing to see""#);
}

#[test]
fn pii_is_redacted_from_outputs_and_other_numbers_are_left_alone() {
    let sandbox = Sandbox::new(&["pii-redact"], false);
    let host = sandbox.host();
    let text = "Mail ann.lee@example.com or call +1 555-123-4567; card 4111 1111 1111 1111, \
                ref 1234 5678 9012 3456, order 42 of 2024-01-15 for 19.50.";
    let response = host.call("echo", &json!({ "text": text }).to_string()).unwrap();
    let output: Value = serde_json::from_str(&response.output).expect("the output is JSON");
    assert_eq!(
        output,
        "Mail [email] or call [phone]; card [card], ref 1234 5678 9012 3456, order 42 of \
         2024-01-15 for 19.50."
    );
    let card = host.call("echo", &json!({"text": "5500-0000-0000-0004"}).to_string()).unwrap();
    assert_eq!(card.output, r#""[card]""#);
}

fn draft(order_id: i64, status: &str, amount: f64) -> String {
    json!({"order_id": order_id, "status": status, "amount": amount, "customer": "Ann"}).to_string()
}

#[test]
fn a_reply_with_a_wrong_status_or_amount_is_denied_naming_the_fact() {
    let sandbox = Sandbox::new(&["fact-check"], true);
    let host = sandbox.host();
    let (stage, reason) = refused(host.call("draft_reply", &draft(42, "shipped", 19.5)));
    assert_eq!(stage, AfterCall);
    assert_eq!(reason, "policy `fact-check`: the reply says order 42 is shipped, but it is open");
    let (_, reason) = refused(host.call("draft_reply", &draft(42, "open", 25.0)));
    assert_eq!(
        reason,
        "policy `fact-check`: the reply says order 42 amounts to 25.00, but its total is 19.5"
    );
    let (_, reason) = refused(host.call("draft_reply", &draft(99, "open", 1.0)));
    assert_eq!(reason, "policy `fact-check`: the reply is about order 99, which does not exist");
}

#[test]
fn a_reply_whose_claims_match_the_facts_passes_unchanged() {
    let sandbox = Sandbox::new(&["fact-check"], true);
    let host = sandbox.host();
    for (id, status, amount) in [(42, "open", 19.5), (43, "Shipped", 120.0)] {
        let response = host.call("draft_reply", &draft(id, status, amount)).unwrap();
        let output: Value = serde_json::from_str(&response.output).unwrap();
        assert_eq!(output["order_id"], id);
        let reply = output["reply"].as_str().unwrap();
        assert!(
            reply.starts_with(&format!("Dear Ann, your order {id} status: {status}, amount: ")),
            "{reply}"
        );
    }
    // Other tools are not looked at.
    host.call("echo", &json!({"text": "status: lost, amount: 0"}).to_string()).unwrap();
}

#[test]
fn a_reply_that_cannot_be_checked_is_denied() {
    let sandbox = Sandbox::new(&["fact-check"], false);
    let (_, reason) = refused(sandbox.host().call("draft_reply", &draft(42, "open", 19.5)));
    assert_eq!(
        reason,
        "policy `fact-check`: cannot check the reply about order 42: no facts source `orders`"
    );
}

#[test]
fn a_deletion_waits_for_a_person_and_follows_the_decision() {
    let sandbox = Sandbox::new(&["destructive-needs-approval"], false);
    let remove = json!({"grant": "data", "path": "old.txt"}).to_string();
    let person = Person::new(false);
    let outcome = sandbox.host_with(person.clone()).call("fs_remove", &remove);
    let message = format!("{:?}", outcome.unwrap_err());
    assert!(message.contains("denied by alice: not today"), "{message}");
    assert!(sandbox.path().join("data/old.txt").exists(), "denied, so nothing was removed");
    let reasons = person.reasons();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    let expected = "policy `destructive-needs-approval`: delete of `data:old.txt` (fs, 8 bytes)";
    assert!(reasons[0].ends_with(expected), "{reasons:?}");

    let person = Person::new(true);
    sandbox.host_with(person.clone()).call("fs_remove", &remove).unwrap();
    assert!(!sandbox.path().join("data/old.txt").exists(), "approved, so it was removed");
    assert_eq!(person.asked.lock().unwrap().len(), 1);
}

#[test]
fn a_change_of_more_than_ten_rows_waits_for_a_person() {
    let sandbox = Sandbox::new(&["destructive-needs-approval"], false);
    let update = |filter: &str| {
        json!({"grant": "shop", "statement": format!("UPDATE items SET n = n + 1 {filter}")})
            .to_string()
    };
    let person = Person::new(false);
    let host = sandbox.host_with(person.clone());
    host.call("sql_execute", &update("WHERE id <= 3")).unwrap();
    assert!(person.reasons().is_empty(), "three rows need nobody");
    assert_eq!(sandbox.items_changed(), 3);
    let outcome = host.call("sql_execute", &update(""));
    let message = format!("{:?}", outcome.unwrap_err());
    assert!(message.contains("denied by alice: not today"), "{message}");
    assert_eq!(sandbox.items_changed(), 3, "denied, so nothing changed");
    let reasons = person.reasons();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    let expected = "policy `destructive-needs-approval`: sql update of 25 rows in `shop:items` \
                    (a table of 25 rows), more than 10";
    assert!(reasons[0].ends_with(expected), "{reasons:?}");
}

/// An `http_send` to a closed port with extra fields in its arguments.
fn send(extra: Value) -> String {
    let mut args = json!({"method": "POST", "url": "http://127.0.0.1:9/", "body": "hi"});
    for (key, value) in extra.as_object().unwrap() {
        args[key] = value.clone();
    }
    args.to_string()
}

#[test]
fn an_outgoing_call_with_too_many_recipients_or_too_long_a_body_is_denied() {
    let sandbox = Sandbox::new(&["outgoing-limits"], false);
    let host = sandbox.host();
    let many = json!({"to": ["a@x.io", "b@x.io", "c@x.io", "d@x.io"], "cc": "e@x.io; f@x.io"});
    let (stage, reason) = refused(host.call("http_send", &send(many)));
    assert_eq!(stage, BeforeCall);
    assert_eq!(reason, "policy `outgoing-limits`: 6 recipients (to, cc, bcc, recipients), limit 5");
    let nested = json!({"message": {"recipients": ["a", "b", "c", "d", "e", "f", "g"]}});
    let (_, reason) = refused(host.call("http_send", &send(nested)));
    assert!(reason.contains("7 recipients"), "{reason}");
    let long = json!({"to": ["a@x.io"], "body": "x".repeat(10_001)});
    let (_, reason) = refused(host.call("http_send", &send(long)));
    assert_eq!(reason, "policy `outgoing-limits`: `body` is 10001 bytes, limit 10000");
}

#[test]
fn an_outgoing_call_within_the_limits_goes_ahead() {
    let sandbox = Sandbox::new(&["outgoing-limits"], false);
    let host = sandbox.host();
    let few = json!({"to": ["a@x.io", "b@x.io"], "bcc": ["c@x.io"], "body": "x".repeat(10_000)});
    // Allowed by the policy, the request runs and fails to connect.
    match host.call("http_send", &send(few)) {
        Err(CallError::Tool { .. }) => {}
        other => panic!("expected the request to run and fail to connect, got {other:?}"),
    }
    // Calls without a network or send effect are not looked at.
    let recipients: Vec<String> = (0..20).map(|i| format!("r{i}@x.io")).collect();
    host.call("echo", &json!({"text": "hi", "to": recipients}).to_string()).unwrap();
}
