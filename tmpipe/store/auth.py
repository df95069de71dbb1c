"""Who may talk to the WebUI server, and how much they may send.

The server and every client (`tmpipe webui ... --url`, the pipeline's HTTP store) read the
bearer token the same way: a token file if one is named, else an environment variable
(``TMPIPE_WEBUI_TOKEN`` unless the pipeline's ``webui.token_env`` names another).
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path
from typing import Mapping

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tmpipe.errors import StoreError

TOKEN_ENV = "TMPIPE_WEBUI_TOKEN"
MIN_TOKEN_LENGTH = 16
PUBLIC_PATHS = frozenset({"/api/health", "/openapi.json"})


def read_token(token_file: Path | None = None, token_env: str = TOKEN_ENV, environ: Mapping[str, str] = os.environ) -> str | None:
    """The token from ``token_file`` (surrounding whitespace dropped), else from ``token_env``; None if neither."""
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise StoreError(f"{token_file}: cannot read the token file: {exc.strerror}") from exc
        if not token:
            raise StoreError(f"{token_file}: the token file is empty")
        return token
    return environ.get(token_env) or None


def server_token(token_file: Path | None, environ: Mapping[str, str] = os.environ) -> str:
    """The token the server requires; refuses none and tokens too short to be a secret."""
    token = read_token(token_file, environ=environ)
    source = str(token_file) if token_file else TOKEN_ENV
    if token is None:
        raise StoreError(f"no API token: set {TOKEN_ENV} or --token-file, or pass --insecure to accept anonymous requests")
    if len(token) < MIN_TOKEN_LENGTH:
        raise StoreError(f"{source}: the API token must be at least {MIN_TOKEN_LENGTH} characters")
    return token


class RequestGuard:
    """ASGI middleware: checks the bearer token, then caps the body, before the app reads any of it.

    Without a token (``--insecure``) every request is anonymous. A body longer than
    ``max_body_bytes`` is refused with 413 as soon as its Content-Length, or its bytes so
    far, say so; the rest is never read.
    """

    def __init__(self, app: ASGIApp, *, token: str | None, max_body_bytes: int):
        self.app = app
        self.token = token.encode() if token is not None else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.token is not None and scope["path"] not in PUBLIC_PATHS:
            problem = _token_problem(headers.get(b"authorization", b""), self.token)
            if problem:
                challenge = 'Bearer realm="tmpipe-webui"' + ('' if problem == "missing" else ', error="invalid_token"')
                response = JSONResponse({"detail": f"{problem} bearer token"}, 401, {"WWW-Authenticate": challenge})
                return await response(scope, receive, send)
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return await self._too_large(scope, receive, send)
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                return await self._too_large(scope, receive, send)
            if not message.get("more_body", False):
                break
        return await self.app(scope, _replay(bytes(body), receive), send)


    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body larger than {self.max_body_bytes} bytes"
        await JSONResponse({"detail": detail}, 413, {"Connection": "close"})(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hand the app the body already read, then pass the connection's later messages through."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


def _token_problem(authorization: bytes, token: bytes) -> str | None:
    scheme, _, given = authorization.partition(b" ")
    if scheme.lower() != b"bearer" or not given.strip():
        return "missing"
    return None if hmac.compare_digest(given.strip(), token) else "invalid"
