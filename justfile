# moat: `just demo` shows it working, `just test` checks it. `just --list` for the rest.

set shell := ["bash", "-euo", "pipefail", "-c"]

moat := "target/debug/moat"

# List the recipes
default:
    @just --list

# Install what the host's build needs beyond Rust (libclang, for SQLite's bindings), if missing
deps:
    host/deps.sh

# Build the host: the moat library and the moat command (and the demo's examples: with them the
# dependencies get the features the tests use too, so `just test` builds them once, not twice)
build: deps
    cargo build --workspace --locked --bins --examples

# Build every guest (example tools and guards, test plugins; Rust, Python and JavaScript) into target/wasm/, installing the toolchains if needed
plugins: build
    plugins/toolchain.sh
    plugins/python/build.sh
    plugins/js/build.sh

# Run every test (builds the plugins and the Python MCP client first)
test: plugins mcp-client
    cargo test --workspace --locked

# Install the Python MCP client the interop tests drive (pinned, hash-checked) into target/mcp-venv
mcp-client:
    tests/mcp-client/setup.sh

# Measure every figure of BENCHMARKS.md in one run (release build; a few minutes) and print the table (also in target/bench/results.md)
bench: plugins
    cargo bench --locked -p moat-cli --bench moat

# Check formatting and lints
lint: deps
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# An agent's session through the MCP server, one act per control (cli/examples/demo_agent.rs); then the audit log, from the CLI
demo: plugins
    #!/usr/bin/env bash
    set -uo pipefail
    failed=0
    step() { # TITLE COMMAND [EXPECTED-EXIT-STATUS]
        printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "$2"; eval "$2"; local status=$?
        echo "(exit status $status)"
        if [ "$status" != "${3:-0}" ]; then echo "!! NOT AS EXPECTED: exit status ${3:-0}"; failed=1; fi
    }
    cargo run -q --locked -p moat-cli --example demo_sandbox -- target/demo || exit 1
    cargo run -q --locked -p moat-cli --example demo_agent -- {{moat}} target/demo || failed=1
    printf '\n\033[1m== the audit log: every call above, chained with blake3 and signed\033[0m\n'
    printf 'A person looks at what the agent did, with the moat CLI.\n'
    demo="{{moat}} --config target/demo/moat.toml"
    step "what the clean-up task changed, as the log tells it" "$demo audit show --task cleanup --event effect"
    step "the escalations: who was asked, and what they decided" "$demo audit show --event escalation"
    step "the refusals of the guard policies" "$demo audit show --verdict deny"
    step "the whole log verifies: every hash, link, blob and signed checkpoint" "$demo audit verify"
    step "roll the clean-up task back: files and rows restored from the log's before-images" "$demo task rollback cleanup"
    printf '\nthe workspace afterwards (as it was before the task):\n'
    (cd target/demo/workspace && find . -type f | sort | sed 's/^/  /')
    step "calibration: what each confidence threshold would have escalated and let through" "$demo calibrate | sed -n '/^db_execute/,/suggested/p'"
    step "and the orders are as they were: the test orders back, order 12 no longer cancelled" "$demo call db_query --args '{\"sql\": \"SELECT status, count(*) AS orders FROM orders GROUP BY status\"}'"
    rm -rf target/demo/tampered && cp -r target/demo/.moat/audit target/demo/tampered
    sed -i '0,/DELETE FROM orders WHERE status = .test./s//DELETE FROM orders WHERE status = '"'"'spam'"'"'/' target/demo/tampered/log.jsonl
    step "someone edits a copy of the log: verify names the record" "$demo audit --dir target/demo/tampered verify" 2
    if [ "$failed" != 0 ]; then printf '\ndemo finished, but moat did not do as expected: see !! above\n'; exit 1; fi
    printf '\ndemo finished.\n'
