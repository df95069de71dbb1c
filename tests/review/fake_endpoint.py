"""A small OpenAI-compatible chat-completions server on 127.0.0.1 with scripted behaviours.

A behaviour is a function ``(role, request_json) -> Reply``; the role is read from the
agent's system prompt, as a real model would see it. Like a server with structured output,
it answers a request whose ``response_format`` is of type ``json_schema`` with the bare JSON
object (code fences the script put around it are dropped); :func:`structured_or_prose` is a
model that writes prose unless asked for that schema.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Reply:
    content: str | None = None
    status: int = 200
    delay: float = 0.0
    error: str = "scripted error"
    headers: dict = field(default_factory=dict)


def asks_json_schema(request: dict) -> dict | None:
    """The JSON schema a request's ``response_format`` asks for, or None."""
    response_format = request.get("response_format") or {}
    return response_format.get("json_schema", {}).get("schema") if response_format.get("type") == "json_schema" else None


def structured_or_prose(draft: dict, talk: dict) -> Callable[[str, dict], Reply]:
    """The writer answers ``draft`` as JSON (checked against the schema sent) only when asked for it, else prose."""
    import jsonschema

    def behaviour(role: str, request: dict) -> Reply:
        if role != "signal_writer":
            return Reply(content=talk[role])
        schema = asks_json_schema(request)
        if schema is None:
            return Reply(content=f"I would {draft['action'].lower()} with confidence {draft['confidence']}: "
                                 f"{draft['rationale']}")
        jsonschema.validate(draft, schema)
        return Reply(content=json.dumps(draft))
    return behaviour


def role_of(request: dict) -> str:
    system = next((m["content"] for m in request["messages"] if m["role"] in ("system", "developer")), "")
    if "writes the final trading signal" in system:
        return "signal_writer"
    if "the risk manager" in system:
        return "risk_manager"
    if "the market analyst" in system:
        return "analyst"
    return "selector"


class FakeEndpoint:
    """Runs in a daemon thread; ``requests`` keeps every (role, body, headers) it received."""

    def __init__(self, behaviour: Callable[[str, dict], Reply]):
        self.behaviour = behaviour
        self.requests: list[dict] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                role = role_of(body)
                endpoint.requests.append({"role": role, "body": body, "headers": {k.lower(): v for k, v in self.headers.items()}})
                reply = endpoint.behaviour(role, body)
                if reply.delay:
                    time.sleep(reply.delay)  # a slow model, not a test synchronisation
                if self.path != "/v1/chat/completions":
                    reply = Reply(status=404, error=f"no route {self.path}")
                if reply.status == 200 and asks_json_schema(body) is not None:
                    reply.content = re.sub(r"^```[a-z]*\s*|\s*```$", "", reply.content.strip())
                if reply.status == 200:
                    words = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
                    payload = {"id": f"chatcmpl-{len(endpoint.requests)}", "object": "chat.completion", "created": 0,
                               "model": body["model"],
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": reply.content}}],
                               "usage": {"prompt_tokens": words, "completion_tokens": len(reply.content.split()),
                                         "total_tokens": words + len(reply.content.split())}}
                else:
                    payload = {"error": {"message": reply.error, "type": "scripted", "code": str(reply.status)}}
                data = json.dumps(payload).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def roles(self) -> list[str]:
        return [r["role"] for r in self.requests]

    def __enter__(self) -> "FakeEndpoint":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
