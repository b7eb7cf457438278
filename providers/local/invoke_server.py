"""The internal invoke endpoint of ``sls-py run``: ``ctx.invoke`` from a worker.

A function that waits for another's result (``ctx.invoke``) must reach the
target's worker pool in the running gateway, so the concurrency limit and the
429 answer hold as for HTTP. :func:`.launch.bind_invoke` opens a socket on 127.0.0.1 (never
another address, whatever ``--host`` says) on a free port and generates a
token before the templates start, so both reach every worker in its
environment (``SLS_PY_INVOKE_URL``, ``SLS_PY_INVOKE_TOKEN``);
:class:`InvokeServer` then answers, in the gateway's event loop::

    POST /invoke/<function>      Authorization: Bearer <token>
                                 X-Sls-Py-Source: <calling function>
    body: the JSON payload  ->   200, the Outcome's wire form as JSON

A wrong or missing token is a 403 (compared in constant time); a source that
does not declare the target in ``invokes`` is a 403 naming the fix. A
function's own errors (429 at its limit included) travel in the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import socket
from typing import Any

from sls_py.spec import Spec

from .invokers import Invoke

MAX_BODY = 6 * 1024 * 1024 + 1024


class InvokeServer:
    """Answers the workers' ``ctx.invoke`` calls with the pools' ``invoke``."""

    def __init__(self, spec: Spec, invoke: Invoke, token: str) -> None:
        self.spec, self.invoke, self.token = spec, invoke, token
        self.allowed = {fn.name: set(fn.invokes) for fn in spec.functions}
        self.server: asyncio.Server | None = None

    async def start(self, sock: socket.socket) -> None:
        """Serve on ``sock`` (from :func:`bind`)."""
        self.server = await asyncio.start_server(self._client, sock=sock)

    def close(self) -> None:
        """Stop accepting calls."""
        if self.server is not None:
            self.server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body = await self._answer(reader)
            writer.write(
                f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
                f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
                "connection: close\r\n\r\n".encode() + body
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        line = (await reader.readline()).decode("latin-1").split()
        headers: dict[str, str] = {}
        while True:
            raw = await reader.readline()
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        if length > MAX_BODY:
            return 413, _message("payload too large")
        body = await reader.readexactly(length)
        if len(line) < 2 or line[0] != "POST" or not line[1].startswith("/invoke/"):
            return 404, _message("unknown path")
        given = headers.get("authorization", "").removeprefix("Bearer ").encode()
        if not hmac.compare_digest(given, self.token.encode()):
            return 403, _message("Forbidden")
        target = line[1].removeprefix("/invoke/")
        source = headers.get("x-sls-py-source", "")
        if target not in self.allowed.get(source, set()):
            return 403, _message(
                f"function {source!r} may not invoke {target!r}: declare it with "
                f"@app.function(name={source!r}, invokes=[{target!r}])"
            )
        outcome = await self.invoke(target, {"type": "payload", "payload": json.loads(body or b"null")})
        wire: dict[str, Any] = outcome.to_wire()
        return 200, json.dumps(wire).encode()


def _message(text: str) -> bytes:
    return json.dumps({"message": text}).encode()
