"""A moat tool written in Python: word statistics of a text.

Built into a component by componentize-py from moat's own WIT world (`tool-plugin`):
`just plugins` writes target/wasm/python/word-stats.wasm. The component runs on a fresh
instance per call, under the same budgets as any other tool; WASI gives it no files, no
network and an empty environment.
"""

import json
from collections import Counter

from wit_world import exports
from wit_world.imports import types
from componentize_py_types import Err

SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "description": "The text to count"},
        "top": {"type": "integer", "minimum": 1, "maximum": 100, "description": "How many of the most frequent words to list (default 5)"},
    },
    "required": ["text"],
    "additionalProperties": False,
}


class Tool(exports.Tool):
    def describe(self):
        return [
            types.ToolInfo(
                name="word_stats",
                description="Counts the words of a text: total, distinct, and the most frequent ones.",
                input_schema=json.dumps(SCHEMA),
                output_schema=None,
                effects=[],
                stakes=None,
                version="0.1.0",
            )
        ]

    def call(self, name, args):
        if name != "word_stats":
            raise Err(types.ToolError_InvalidInput(f"no tool `{name}` here"))
        request = json.loads(args)
        words = [w.strip(".,;:!?\"'()[]").lower() for w in request["text"].split()]
        words = [w for w in words if w]
        counts = Counter(words)
        # Sorted here: `most_common(n)` imports heapq lazily, and a component has only the
        # modules imported when it was built.
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        top = ranked[: request.get("top", 5)]
        return json.dumps({
            "words": len(words),
            "distinct": len(set(words)),
            "top": [{"word": w, "count": c} for w, c in top],
        })
