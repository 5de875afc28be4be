//! The tools moat offers itself: registered, listed and reserved like a plugin's tools, but
//! run by the host. Today one: `read_more`, which reads on in an output too long for one
//! answer (`controls/window.rs` keeps the windows).

use super::validate::ArgsSchema;
use super::ToolSpec;
use serde_json::json;
use std::sync::OnceLock;

/// The name of the built-in tool that reads the next window of a long output.
pub const READ_MORE: &str = "read_more";

/// A tool moat runs itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// `read_more {"cursor": ...}`: the next window of a windowed output.
    ReadMore,
}

impl Builtin {
    /// Every built-in tool.
    pub const ALL: [Builtin; 1] = [Builtin::ReadMore];

    /// The built-in tool named `name`, if one is.
    pub fn named(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|builtin| builtin.spec().name == name)
    }

    /// The tool as callers see it: name, description, schema; it declares no effect.
    pub fn spec(self) -> &'static ToolSpec {
        static READ_MORE_SPEC: OnceLock<ToolSpec> = OnceLock::new();
        match self {
            Builtin::ReadMore => READ_MORE_SPEC.get_or_init(read_more),
        }
    }
}

fn read_more() -> ToolSpec {
    let input_schema = json!({
        "type": "object",
        "properties": {
            "cursor": {
                "type": "string",
                "description": "The cursor an earlier answer gave, to read the next part."
            }
        },
        "required": ["cursor"],
        "additionalProperties": false
    });
    ToolSpec {
        name: READ_MORE.to_owned(),
        description: "Reads the next part of a tool output that was too long to return at \
                      once. Pass the cursor the previous part ended with."
            .to_owned(),
        // A fixed schema moat wrote, not one a plugin or an agent controls: it compiles (a
        // unit test says so).
        schema: ArgsSchema::compile(&input_schema).expect("read_more's own schema compiles"),
        input_schema,
        output_schema: None,
        effects: Vec::new(),
        stakes: None,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_has_a_spec_under_its_name_declaring_no_effect() {
        for builtin in Builtin::ALL {
            let spec = builtin.spec();
            assert!(spec.effects.is_empty());
            assert_eq!(Builtin::named(&spec.name), Some(builtin));
        }
        assert_eq!(Builtin::named("read_mor"), None);
    }
}
