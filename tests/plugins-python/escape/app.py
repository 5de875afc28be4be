"""A Python tool that tries to get out of its sandbox: read a file of the host, read an
environment variable, open a socket. Each attempt reports what happened, as JSON."""

import json
import os
import socket
import encodings.idna  # noqa: F401 (socket needs it, and a component has only what was imported at build)

from wit_world import exports
from wit_world.imports import types
from componentize_py_types import Err

TOOLS = {
    "py_read_file": "Tries to read a file of the host (path).",
    "py_env": "Reads an environment variable (name).",
    "py_connect": "Tries to open a TCP connection (host, port).",
}


def attempt(action):
    try:
        return {"ok": True, "value": action()}
    except Exception as error:  # the refusal is the point: report it
        return {"ok": False, "error": f"{type(error).__name__}: {error}"}


class Tool(exports.Tool):
    def describe(self):
        return [
            types.ToolInfo(name=name, description=text, input_schema='{"type": "object"}',
                           output_schema=None, effects=[], stakes=None, version="0.1.0")
            for name, text in TOOLS.items()
        ]

    def call(self, name, args):
        request = json.loads(args)
        if name == "py_read_file":
            def read():
                with open(request.get("path", "/etc/passwd")) as f:
                    return f.read()
            return json.dumps(attempt(read))
        if name == "py_env":
            return json.dumps({"value": os.environ.get(request.get("name", "HOME")),
                               "count": len(os.environ)})
        if name == "py_connect":
            def connect():
                s = socket.create_connection((request.get("host", "127.0.0.1"), request.get("port", 9)), timeout=2)
                s.close()
                return "connected"
            return json.dumps(attempt(connect))
        raise Err(types.ToolError_InvalidInput(f"no tool `{name}` here"))
