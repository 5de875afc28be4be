"""`{{tool}}`: a moat tool written in Python (made by `moat new tool {{name}} --lang python`).
It counts the characters of a text; replace that with what your tool does.

Built into a component by `just plugins` (componentize-py, moat's WIT world `tool-plugin`;
`moat new` said where); its cases are in cases.json beside this file, checked by `just test`. Import every module at the top: a component holds only the modules imported
when it was built.
"""

import json

from wit_world import exports
from wit_world.imports import types
from componentize_py_types import Err

SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string", "description": "The text to look at"}},
    "required": ["text"],
    "additionalProperties": False,
}


class Tool(exports.Tool):
    def describe(self):
        return [
            types.ToolInfo(
                name="{{tool}}",
                description="Counts the characters of a text.",
                input_schema=json.dumps(SCHEMA),
                output_schema=None,
                effects=[],
                stakes=None,
                version="0.1.0",
            )
        ]

    def call(self, name, args):
        if name != "{{tool}}":
            raise Err(types.ToolError_InvalidInput(f"no tool `{name}` here"))
        text = json.loads(args)["text"]
        if not text:
            raise Err(types.ToolError_InvalidInput("`text` is empty"))
        return json.dumps({"text": text, "characters": len(text)}, separators=(",", ":"), ensure_ascii=False)
