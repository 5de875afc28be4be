//! Creates the sandbox `just demo` runs in: a shop database with 10,000 orders, a workspace
//! directory of files, and the `moat.toml` that grants the example tools just enough.
//!
//! `cargo run --example demo_sandbox -- DIR` (DIR is emptied first). `guarded.toml` is the
//! same sandbox with the example guard policies in force; `wall-clock.toml` gives `spin` the
//! fuel to run until its wall time is up.

use std::path::Path;

const MOAT_TOML: &str = r#"# The demo's configuration: everything not set here is an embedded default.
[plugins]
tools = ["../wasm/tools", "../wasm/tests"]

# A person sits at this demo's client and answers its questions: the operator lets the
# client's user decide escalations (the default, "never", keeps them on moat's own channel).
[escalation]
client = "allowed"

# A flaky backend's breaker opens after three failures in a row.
[breakers]
failures = 3

# db_query may read orders; db_execute may also change them, within limits.
[tools.db_query.grants.sql.main]
path = "shop.db"
tables = ["orders"]
operations = ["select"]

[tools.db_execute.grants.sql.main]
path = "shop.db"
tables = ["orders"]
operations = ["select", "update", "delete"]
max_rows = 100
max_percent = 5.0

# cleanup may delete orders, within the same limits.
[tools.cleanup.grants.sql.main]
path = "shop.db"
tables = ["orders"]
operations = ["select", "delete"]
max_rows = 100
max_percent = 5.0

# The file organizer works in workspace/ and may delete at most 5 files per call.
[tools.organize.grants.fs.workspace]
path = "workspace"
mode = "read-write"

[tools.tidy.grants.fs.workspace]
path = "workspace"
mode = "read-write"
deletes_per_call = 5

# fetch may reach one origin only.
[tools.fetch.grants.http]
allow = ["http://127.0.0.1:9"]

# fs_list (a test plugin) may look into the workspace, read-only.
[tools.fs_list.grants.fs.workspace]
path = "workspace"

# lines may return up to 16 MiB; moat hands it to the agent a window at a time.
[tools.lines.budgets]
output = "16 MiB"
"#;

/// spin with a hundred times the default fuel, but 300 ms: the wall clock stops it.
const WALL_CLOCK_TOML: &str = r#"# spin with fuel to spare: its wall time runs out first.
[plugins]
tools = ["../wasm/tests"]

[tools.spin.budgets]
fuel = 100_000_000_000
wall_time = "300ms"
"#;

/// The same sandbox with the example guard policies in force, the orders table as ground
/// truth for the fact check, and a person asked before any database deletion.
const GUARDED_TOML: &str = r#"# The demo with guard policies: everything not set here is an embedded default.
[plugins]
tools = ["../wasm/tools", "../wasm/tests"]
policies = "../wasm/policies"

# A person sits at this demo's client and answers its questions: the operator lets the
# client's user decide escalations (the default, "never", keeps them on moat's own channel).
[escalation]
client = "allowed"

[facts.orders]
kind = "sql"
path = "shop.db"

[policies.destructive-needs-approval]
tools = ["db_execute"]

[tools.db_execute.grants.sql.main]
path = "shop.db"
tables = ["orders"]
operations = ["select", "update", "delete"]
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: demo_sandbox DIR")?;
    let dir = Path::new(&dir);
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let workspace = dir.join("workspace");
    std::fs::create_dir_all(&workspace)?;
    for name in ["q3-report.pdf", "notes.txt", "todo.txt", "team.jpg", "sales.csv"] {
        std::fs::write(workspace.join(name), format!("contents of {name}\n"))?;
    }
    for n in 1..=8 {
        std::fs::write(workspace.join(format!("scratch-{n}.tmp")), "temporary\n")?;
    }
    std::fs::write(dir.join("moat.toml"), MOAT_TOML)?;
    std::fs::write(dir.join("guarded.toml"), GUARDED_TOML)?;
    std::fs::write(dir.join("wall-clock.toml"), WALL_CLOCK_TOML)?;
    let db = rusqlite::Connection::open(dir.join("shop.db"))?;
    db.execute_batch(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT);
         INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com'), (2, 'Alan', 'alan@example.com');
         CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER, status TEXT, total REAL);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
         INSERT INTO orders SELECT i, 1 + i % 2,
             CASE WHEN i % 200 = 0 THEN 'test' WHEN i % 5 < 3 THEN 'shipped' ELSE 'open' END,
             round((i % 97) * 1.5, 2)
         FROM n;",
    )?;
    println!(
        "demo sandbox in {}: shop.db with 10000 orders, workspace/ with 13 files, \
         moat.toml, guarded.toml, wall-clock.toml",
        dir.display()
    );
    Ok(())
}
