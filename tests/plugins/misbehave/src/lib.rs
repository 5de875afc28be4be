//! `misbehave`: one tool per way a plugin can try to exhaust the host. Each must be stopped
//! by the intended per-call budget, and the host must serve the next call normally.
//!
//! Expectations (checked by `tests/all/budgets.rs`):
//! - `spin`: loops forever; stopped by fuel, or by wall time when fuel is plentiful.
//! - `grow_memory`: allocates without end; stopped by the memory budget.
//! - `recurse`: recurses without end; stopped by the stack limit.
//! - `huge_output`: returns `bytes` bytes; stopped by the output budget when it is larger.
//! - `panic`: panics; reported as a trap with the panic message in the log.
//! - `ok`: returns `"ok"`, proving the host still serves.
//! - `flaky`: fails (a tool failure, its backend "down") when `fail` is true, else returns
//!   `"ok"`: what trips a circuit breaker, and the probe that closes it.
//! - `lines`: returns `count` numbered lines of mixed ASCII and multi-byte text, for output
//!   windowing.
//! - `nested_output`: returns arrays nested `depth` deep (`[[[...]]]`): refused as bad output
//!   past the host's nesting limit, without exhausting the host's stack.

use moat_guest::{export_tools, Deserialize, JsonSchema, Tool, ToolError};
use std::hint::black_box;

/// No arguments.
#[derive(Deserialize, JsonSchema)]
struct Nothing {}

/// Size of the output to produce.
#[derive(Deserialize, JsonSchema)]
struct Size {
    /// Bytes of output.
    bytes: usize,
}

fn spin(_: Nothing) -> Result<String, ToolError> {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

fn grow_memory(_: Nothing) -> Result<String, ToolError> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        black_box(&hoard);
    }
}

#[allow(unconditional_recursion)] // the point of the tool
fn depth(n: u64) -> u64 {
    // Not a tail call: the addition after the call keeps every frame alive.
    black_box(depth(black_box(n + 1))) + 1
}

fn recurse(_: Nothing) -> Result<String, ToolError> {
    Ok(depth(0).to_string())
}

fn huge_output(size: Size) -> Result<String, ToolError> {
    Ok("x".repeat(size.bytes))
}

/// How deep to nest.
#[derive(Deserialize, JsonSchema)]
struct Depth {
    depth: u32,
}

/// Arrays nested `.0` deep, serialized without building them.
struct Nested(u32);

impl serde::Serialize for Nested {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(usize::from(self.0 > 0)))?;
        if self.0 > 0 {
            seq.serialize_element(&Nested(self.0 - 1))?;
        }
        seq.end()
    }
}

fn nested_output(args: Depth) -> Result<Nested, ToolError> {
    Ok(Nested(args.depth))
}

fn panic(_: Nothing) -> Result<String, ToolError> {
    moat_guest::log::warn("about to panic");
    panic!("misbehave: deliberate panic")
}

fn ok(_: Nothing) -> Result<String, ToolError> {
    Ok("ok".to_owned())
}

/// Whether to fail.
#[derive(Deserialize, JsonSchema)]
struct Flaky {
    fail: bool,
}

fn flaky(args: Flaky) -> Result<String, ToolError> {
    match args.fail {
        true => Err(ToolError::Failed("backend unavailable (HTTP 503)".to_owned())),
        false => Ok("ok".to_owned()),
    }
}

/// How many lines.
#[derive(Deserialize, JsonSchema)]
struct Lines {
    count: usize,
}

fn lines(args: Lines) -> Result<String, ToolError> {
    let mut text = String::new();
    for n in 0..args.count {
        text.push_str(&format!("line {n}: café ✓ naïve 🦀 {}\n", n * 7919 % 10007));
    }
    Ok(text)
}

export_tools!(
    Tool::new("spin", "Loops forever.", spin),
    Tool::new("grow_memory", "Allocates memory without end.", grow_memory),
    Tool::new("recurse", "Recurses without end.", recurse),
    Tool::new("huge_output", "Returns `bytes` bytes of output.", huge_output),
    Tool::new("panic", "Panics.", panic),
    Tool::new("ok", "Returns \"ok\".", ok),
    Tool::new("flaky", "Fails when told to.", flaky),
    Tool::new("lines", "Returns numbered lines of mixed text.", lines),
    Tool::new("nested_output", "Returns arrays nested `depth` deep.", nested_output),
);
