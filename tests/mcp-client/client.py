"""Drives an MCP server with the official Python MCP SDK (`mcp`, pinned in requirements.txt):
moat's interop tests (tests/all/mcp_client.rs) run it against `moat serve`.

    python client.py --stdio -- CMD ARGS...       # spawns the server, talks over its stdin/stdout
    python client.py --http URL [--token TOKEN]   # streamable HTTP; TOKEN as a bearer token

Reads a scenario (JSON) on standard input and prints one JSON document on standard output:

    scenario: {"elicit": ["accept", "decline", "cancel", ...] | null,
               "steps": [{"list": true}
                         | {"call": "echo", "args": {...}, "meta": {...}}
                         | {"disconnect_during": "spin", "args": {...}, "after": 1.0}]}
    output:   {"server": {"name", "version", "protocol"} | null,
               "steps": [{"tools": [{"name", "description", "input_schema", "annotations"}]}
                         | {"is_error": bool, "text": "...", "structured": {...} | null, "meta": ...}
                         | {"exception": "...", "code": int | null}
                         | {"disconnected": "spin"}],
               "elicitations": [{"message": "...", "schema": {...}, "mode": "form", "answer": "..."}],
               "error": null | "...", "error_code": int | null, "http_errors": [401, ...]}

`elicit` absent or null: the client does not declare elicitation. Otherwise it does, and
answers each `elicitation/create` with the next answer in the list ("accept" sends
{"note": "ok from the test"}; an answer may also be {"action": ..., "content": {...}});
when the list runs out it declines. A call's `meta` is the request's `_meta`; its `text` is
the result's text blocks joined by newlines, `meta` the result's `_meta`.

`http_errors` lists the status of every HTTP response >= 400 the client got (the SDK
reports a refused request as a generic error; this says what the server answered).

`disconnect_during` starts the call, waits `after` seconds (default 1), prints the document
and exits at once (os._exit) without closing anything: the server sees its client vanish in
the middle of a call (a stdio server is not stopped: it is in its own process group).

Exit status: 0 when the scenario ran (a step's failure is reported in its step), 1 when the
session could not be opened or broke down ("error" says why), 2 for a bad scenario.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import anyio
import httpx2
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

# Any one request, and the whole scenario, must finish within these (seconds); the Rust
# side has its own, longer, timeout.
REQUEST_TIMEOUT = 45.0
SCENARIO_TIMEOUT = 55.0
ACCEPT_CONTENT = {"note": "ok from the test"}


def describe(error: BaseException) -> str:
    """One line per leaf exception (task groups wrap them in exception groups)."""
    leaves: list[BaseException] = []

    def walk(e: BaseException) -> None:
        inner = getattr(e, "exceptions", None)
        if inner:
            for sub in inner:
                walk(sub)
        else:
            leaves.append(e)

    walk(error)
    return "; ".join(f"{type(e).__name__}: {e}" for e in leaves)


def error_code(error: BaseException) -> int | None:
    """The JSON-RPC error code, when the exception carries one."""
    code = getattr(error, "code", None)
    if isinstance(code, int):
        return code
    for sub in getattr(error, "exceptions", None) or []:
        code = error_code(sub)
        if code is not None:
            return code
    return None


class Driver:
    def __init__(self, scenario: dict[str, Any]) -> None:
        self.answers = scenario.get("elicit")
        self.steps = scenario.get("steps") or []
        self.out: dict[str, Any] = {
            "server": None,
            "steps": [],
            "elicitations": [],
            "error": None,
            "error_code": None,
            "http_errors": [],
        }

    async def saw_response(self, response: httpx2.Response) -> None:
        # The SDK turns an HTTP error into a generic MCPError; the status says what it was.
        if response.status_code >= 400:
            self.out["http_errors"].append(response.status_code)

    def emit(self) -> None:
        sys.stdout.write(json.dumps(self.out) + "\n")
        sys.stdout.flush()

    async def elicit(
        self, context: Any, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        answer = self.answers.pop(0) if self.answers else "decline"
        if isinstance(answer, dict):
            action, content = answer.get("action", "accept"), answer.get("content")
        else:
            action, content = answer, (ACCEPT_CONTENT if answer == "accept" else None)
        self.out["elicitations"].append(
            {
                "message": params.message,
                "mode": getattr(params, "mode", None),
                "schema": getattr(params, "requested_schema", None),
                "url": getattr(params, "url", None),
                "answer": action,
            }
        )
        return types.ElicitResult(action=action, content=content)

    def session(self, read: Any, write: Any) -> ClientSession:
        callback = self.elicit if self.answers is not None else None
        return ClientSession(
            read,
            write,
            read_timeout_seconds=REQUEST_TIMEOUT,
            elicitation_callback=callback,
            client_info=types.Implementation(name="moat-interop-tests", version="0"),
        )

    async def run(self, session: ClientSession) -> None:
        init = await session.initialize()
        self.out["server"] = {
            "name": init.server_info.name,
            "version": init.server_info.version,
            "protocol": init.protocol_version,
        }
        for step in self.steps:
            if "disconnect_during" in step:
                await self.disconnect_during(session, step)  # does not return
            try:
                self.out["steps"].append(await self.step(session, step))
            except Exception as e:  # a failed step is reported, and the next one runs
                self.out["steps"].append({"exception": describe(e), "code": error_code(e)})

    async def step(self, session: ClientSession, step: dict[str, Any]) -> dict[str, Any]:
        if step.get("list"):
            tools: list[dict[str, Any]] = []
            cursor = None
            while True:
                params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                page = await session.list_tools(params=params)
                for tool in page.tools:
                    annotations = tool.annotations
                    tools.append(
                        {
                            "name": tool.name,
                            "description": tool.description,
                            "input_schema": tool.input_schema,
                            "annotations": annotations.model_dump(
                                by_alias=True, mode="json", exclude_none=True
                            )
                            if annotations
                            else None,
                        }
                    )
                cursor = page.next_cursor
                if not cursor:
                    return {"tools": tools}
        if "call" in step:
            result = await session.call_tool(
                step["call"],
                step.get("args", {}),
                meta=step.get("meta"),
            )
            texts = [block.text for block in result.content if isinstance(block, types.TextContent)]
            return {
                "is_error": bool(result.is_error),
                "text": "\n".join(texts),
                "structured": result.structured_content,
                "meta": result.meta,
            }
        raise ValueError(f"a step must be list, call or disconnect_during: {step}")

    async def disconnect_during(self, session: ClientSession, step: dict[str, Any]) -> None:
        tool = step["disconnect_during"]

        async def call() -> None:
            try:
                await session.call_tool(tool, step.get("args", {}), meta=step.get("meta"))
            except Exception:
                pass

        async with anyio.create_task_group() as group:
            group.start_soon(call)
            await anyio.sleep(float(step.get("after", 1.0)))
            self.out["steps"].append({"disconnected": tool})
            self.emit()
            # Gone, mid-call: no cancellation, no session end, no closing of pipes or sockets
            # beyond what the kernel does for a process that exits.
            os._exit(0)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    transport = parser.add_mutually_exclusive_group(required=True)
    transport.add_argument("--stdio", action="store_true", help="spawn the server: -- CMD ARGS...")
    transport.add_argument("--http", metavar="URL", help="the server's streamable HTTP endpoint")
    parser.add_argument("--token", help="sent as `Authorization: Bearer TOKEN` (HTTP only)")
    parser.add_argument("command", nargs="*", help="the server's command line (--stdio)")
    args = parser.parse_args()
    if args.stdio and not args.command:
        parser.error("--stdio needs the server's command line after --")
    if args.http and args.command:
        parser.error("--http takes no command line")
    try:
        scenario = json.loads(sys.stdin.read())
        if not isinstance(scenario, dict):
            raise ValueError("the scenario must be a JSON object")
    except ValueError as e:
        print(f"client.py: a bad scenario on standard input: {e}", file=sys.stderr)
        return 2

    driver = Driver(scenario)
    try:
        with anyio.fail_after(SCENARIO_TIMEOUT):
            if args.stdio:
                server = StdioServerParameters(command=args.command[0], args=args.command[1:])
                async with stdio_client(server) as (read, write):
                    async with driver.session(read, write) as session:
                        await driver.run(session)
            else:
                headers = {"Authorization": f"Bearer {args.token}"} if args.token else None
                timeout = httpx2.Timeout(30.0, read=REQUEST_TIMEOUT)
                hooks = {"response": [driver.saw_response]}
                async with httpx2.AsyncClient(
                    headers=headers, timeout=timeout, event_hooks=hooks
                ) as http:
                    async with streamable_http_client(args.http, http_client=http) as (read, write):
                        async with driver.session(read, write) as session:
                            await driver.run(session)
    except BaseException as e:  # noqa: BLE001 - reported, whatever it is
        if isinstance(e, KeyboardInterrupt):
            raise
        driver.out["error"] = describe(e)
        driver.out["error_code"] = error_code(e)
        driver.emit()
        return 1
    driver.emit()
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
