"""What keeps ``serve`` safe while a browser visits other sites (docs/design.md, serve). ``Guard``, one ASGI
middleware in front of the app, answers 400 for a foreign Host, 403 for another site's ``Origin``, 413 for a body
over the limit, 408 for one that stalls, 503 (``Retry-After``) past ``max_uploads`` uploads in flight; refusals
close the connection; every answer gets the security headers. ``SlowClientProtocol`` cuts off slow headers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re

from starlette.exceptions import HTTPException
from uvicorn.protocols.http.h11_impl import H11Protocol

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
WILDCARD_BINDS = ("0.0.0.0", "::", "")
#: Retry-After (seconds) of the answer to an upload over ``max_uploads``.
UPLOAD_RETRY_S = 5
_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)
#: A Host header: ``[v6]`` or a name, each with an optional ``:port``.
_HOST = re.compile(r"\[([^\]]*)\](?::\d{1,5})?|([a-z0-9._-]+)(?::\d{1,5})?")


def allowed_host_names(bound: str, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The Host names served by default (localhost names and the bound address) plus ``extra``."""
    names = [*LOCAL_HOSTS, *([] if bound in WILDCARD_BINDS else [bound]), *extra]
    return sorted({n.strip().strip("[]").lower().rstrip(".") for n in names if n.strip()})


def host_name(value: str) -> str | None:
    """The host part of a Host header (``name``, ``name:port``, ``[v6]:port``), lower case; None if malformed."""
    m = _HOST.fullmatch(value.strip().lower())
    if m is None:
        return None
    return m[1] if m[1] is not None else m[2].rstrip(".")


def page_csp(html: str) -> str:
    """The Content-Security-Policy of ``html``: its inline scripts allowed by SHA-256 hash, nothing from elsewhere."""
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(m.encode()).digest()).decode()}'"
                      for m in _INLINE_SCRIPT.findall(html))
    return (f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")


#: The interactive API docs (``serve --docs``) load Swagger UI and ReDoc from a CDN.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https:; "
            "frame-ancestors 'none'")


class Guard:

    def __init__(self, app, *, allowed_hosts: list[str], max_body: int, csp: str, docs_paths: tuple[str, ...] = (),
                 idle_timeout: float = 30.0, body_timeout: float = 600.0, upload_path: str = "",
                 max_uploads: int = 4):
        self.app = app
        self.allowed = set(allowed_hosts)
        self.max_body, self.csp, self.docs_paths = max_body, csp, docs_paths
        self.idle_timeout, self.body_timeout = idle_timeout, body_timeout
        self.upload_path, self.max_uploads, self.uploads = upload_path, max_uploads, 0

    def _headers(self, path: str) -> list[tuple[bytes, bytes]]:
        csp = DOCS_CSP if path in self.docs_paths else self.csp
        return [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                (b"content-security-policy", csp.encode()), (b"referrer-policy", b"no-referrer"),
                (b"cross-origin-opener-policy", b"same-origin"), (b"cross-origin-resource-policy", b"same-origin"),
                (b"cache-control", b"no-store")]

    def _allowed(self, name: str | None) -> bool:
        return name is not None and ("*" in self.allowed or name in self.allowed)

    def _refusal(self, scope) -> tuple[int, str] | None:
        headers = {}
        for key, value in scope["headers"]:
            headers.setdefault(key, []).append(value)
        hosts = headers.get(b"host", [])
        host = hosts[0].decode("latin-1") if len(hosts) == 1 else None
        if not self._allowed(host_name(host) if host is not None else None):
            shown = "no Host header" if host is None else f"Host {host[:100]!r}"
            return 400, (f"{shown} is not a name of this server (allowed: {', '.join(sorted(self.allowed))}; "
                         "serve --allow-host NAME adds one)")
        origin = headers.get(b"origin", [None])[0]
        if origin is not None:
            text = origin.decode("latin-1")
            m = re.fullmatch(r"https?://(.+)", text.strip())
            if not (m and self._allowed(host_name(m.group(1)))):
                return 403, f"requests from pages of other sites are refused (Origin {text[:100]!r})"
        lengths = headers.get(b"content-length", [])
        chunked = any(b"chunked" in v.lower() for v in headers.get(b"transfer-encoding", []))
        if lengths and not chunked:
            if len(lengths) > 1 or not lengths[0].strip().isdigit():
                return 400, "a malformed Content-Length header"
            if int(lengths[0]) > self.max_body:
                return 413, (f"upload of {int(lengths[0]) / 2**20:.1f} MB is over the "
                             f"{self.max_body / 2**20:g} MB limit")
        return None

    async def _answer(self, scope, send, status: int, detail: str, extra: tuple = ()) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close"), *extra, *self._headers(scope.get("path", ""))]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            if scope["type"] != "websocket":  # no websockets here: refuse the upgrade by not accepting it
                await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await self._answer(scope, send, *refusal)
            return
        upload = int(scope["path"] == self.upload_path and scope["method"] == "POST")  # counted while in flight
        if upload and self.uploads >= self.max_uploads:
            await self._answer(scope, send, 503, f"{self.max_uploads} uploads are in progress, the most at once; "
                                                 f"try again in {UPLOAD_RETRY_S} s",
                               ((b"retry-after", str(UPLOAD_RETRY_S).encode()),))
            return
        self.uploads += upload
        try:
            await self._guarded(scope, receive, send)
        finally:
            self.uploads -= upload

    async def _guarded(self, scope, receive, send) -> None:
        """The app, with the body counted and timed and the security headers added."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout
        state = {"received": 0, "complete": False, "error": None, "started": False, "replaced": False}

        def fail(status: int, detail: str):
            state["error"] = (status, detail)
            return HTTPException(status, detail)  # FastAPI passes it on as this answer

        async def guarded_receive():
            if state["error"] is not None:
                return {"type": "http.disconnect"}
            if state["complete"]:
                return await receive()  # after the body: waiting for a disconnect is not timed
            wait = min(self.idle_timeout, deadline - loop.time())
            try:
                message = await asyncio.wait_for(receive(), timeout=max(wait, 0.001))
            except asyncio.TimeoutError:
                raise fail(408, f"the upload stalled or took too long (no data for {self.idle_timeout:g} s, or "
                                f"not complete after {self.body_timeout:g} s)") from None
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_body:
                    raise fail(413, f"upload over the {self.max_body / 2**20:g} MB limit (stopped reading after "
                                    f"{state['received']} bytes)")
                state["complete"] = not message.get("more_body", False)
            return message

        async def guarded_send(message):
            if state["replaced"]:
                return
            if message["type"] == "http.response.start":
                if state["error"] is not None:  # whatever the app made of the refused body, answer the refusal
                    state["replaced"] = state["started"] = True
                    await self._answer(scope, send, *state["error"])
                    return
                state["started"] = True
                message = {**message, "headers": [*message.get("headers", []), *self._headers(scope["path"])]}
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception:
            if state["error"] is None or state["started"]:
                raise
            await self._answer(scope, send, *state["error"])


class SlowClientProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection (after a 408 line) whose request headers are not complete
    ``header_timeout`` seconds after it opened or after its previous answer, and at the limit (``_make_room``)."""

    header_timeout: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None  # set while the request headers are awaited

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()
        self._make_room()

    def _arm(self) -> None:
        self._waiting_since_cycle, self._waiting_since = self.cycle, self.loop.time()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _make_room(self) -> None:
        """At the connection limit (where uvicorn answers 503), close the connections that have waited
        longest for their request headers until this one fits."""
        while self.limit_concurrency is not None and len(self.connections) >= self.limit_concurrency:
            waiting = [c for c in self.connections if c is not self and c._header_timer is not None]
            if not waiting:
                return
            min(waiting, key=lambda c: c._waiting_since)._headers_too_slow()

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def handle_events(self) -> None:
        super().handle_events()
        if self._header_timer is not None and self.cycle is not self._waiting_since_cycle:
            self._disarm()  # a new request's headers are in

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._disarm()
            self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _headers_too_slow(self) -> None:
        self._disarm()
        self.connections.discard(self)  # no longer counted against the limit (connection_lost comes later)
        if not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.transport.close()
