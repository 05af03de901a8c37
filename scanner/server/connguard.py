"""Connection limits in front of the application: Uvicorn's httptools protocol with deadlines and caps.

Uvicorn on its own waits forever for a request head sent one header line at a time (it only
times out idle keep-alive connections), has no per-client connection cap and answers oversized
heads with a bare 400. ``GuardedHttpToolsProtocol`` (``uvicorn --http
scanner.server.connguard:GuardedHttpToolsProtocol``, which ``xcscan server serve`` uses) adds, per
worker process:

- a deadline for the request head (``header_timeout``, counted from the connection or from the
  first byte of the next request on a kept-alive connection) and one for the whole body
  (``body_timeout``, from the end of the head): a client that is too slow gets 408 and is closed;
- a limit on the head's size (``max_header_bytes``) and on the number of header fields
  (``max_headers``), checked on the raw bytes before the parser sees them: 431 and closed;
- at most ``max_connections_per_client`` open connections from one client address: more are
  answered 503 and closed at once (0: no cap; behind a reverse proxy every client has the
  proxy's address, so let the proxy cap per client instead).

The parser is httptools (llhttp, in C; a server dependency): it replaced h11 (pure Python) on
2026-12-07, TLS and HTTP of an 82 KB report 0.445 -> 0.335 ms of server CPU (bench/http_transport.py;
docs/server.md, "Eighth pass"). The guard follows the parser's callbacks: the head ends at
``on_headers_complete``, the body at ``on_message_complete``.
"""
from __future__ import annotations

import json
import logging
import os

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import get_remote_addr

log = logging.getLogger("xcscan.server")

_LIMITS = None


class Limits(object):
    def __init__(self, settings=None):
        get = lambda name, default: getattr(settings, name, default) if settings is not None else default  # noqa: E731
        self.header_timeout = get("header_timeout", 10)
        self.body_timeout = get("body_timeout", 120)
        self.max_header_bytes = get("max_header_bytes", 16 * 1024)
        self.max_headers = get("max_headers", 100)
        self.per_client = get("max_connections_per_client", 32)


def limits():
    """The limits of this server process (settings of $XCSCAN_SERVER_DIR, read once)."""
    global _LIMITS
    if _LIMITS is None:
        settings = None
        if os.environ.get("XCSCAN_SERVER_DIR"):
            from scanner.server.settings import load_settings
            settings = load_settings(os.environ["XCSCAN_SERVER_DIR"], db_url=os.environ.get("XCSCAN_SERVER_DB") or None)
        _LIMITS = Limits(settings)
    return _LIMITS


def _answer(status, reason, code, message):
    body = json.dumps({"error": code, "message": message}).encode("utf-8")
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n"
            b"cache-control: no-store\r\n\r\n" % (status, reason, len(body))) + body


HEAD, BODY, APP = "head", "body", "app"


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    open_by_client = {}  # client address -> open connections (this process)

    def __init__(self, config, server_state, app_state, _loop=None):
        HttpToolsProtocol.__init__(self, config, server_state, app_state, _loop)
        self.limits = limits()
        self._peer = None
        self._counted = False
        self._lost = False
        self._closed_by_guard = False
        self._phase = HEAD
        self._head = bytearray()
        self._deadline = None

    # --- connection caps -------------------------------------------------------------------------
    def connection_made(self, transport):
        HttpToolsProtocol.connection_made(self, transport)
        addr = get_remote_addr(transport)
        self._peer = addr[0] if addr else None
        n = self.open_by_client.get(self._peer, 0) + 1
        self.open_by_client[self._peer] = n
        self._counted = True
        if self.limits.per_client and self._peer is not None and n > self.limits.per_client:
            log.warning("refused a connection from %s: %d open (max_connections_per_client %d)",
                        self._peer, n - 1, self.limits.per_client)
            self._refuse(503, b"Service Unavailable", "too_many_connections",
                         "too many open connections from your address (at most %d); close some and retry"
                         % self.limits.per_client)
            return
        self._arm(self.limits.header_timeout)

    def connection_lost(self, exc):
        self._lost = True
        self._disarm()
        if self._counted:
            self._counted = False
            n = self.open_by_client.get(self._peer, 1) - 1
            if n <= 0:
                self.open_by_client.pop(self._peer, None)
            else:
                self.open_by_client[self._peer] = n
        HttpToolsProtocol.connection_lost(self, exc)

    # --- request head and body ------------------------------------------------------------------
    def data_received(self, data):
        if self._closed_by_guard:
            return
        if self._phase == APP:
            self._next_request()  # the next request on a kept-alive connection
        if self._phase == HEAD and not self._check_head(data):
            return
        HttpToolsProtocol.data_received(self, data)

    def _next_request(self):
        self._phase = HEAD
        self._head = bytearray()
        self._arm(self.limits.header_timeout)

    def on_message_begin(self):
        if self._phase == APP:  # a pipelined request in the same bytes as the end of the one before
            self._next_request()
        HttpToolsProtocol.on_message_begin(self)

    def on_headers_complete(self):
        HttpToolsProtocol.on_headers_complete(self)
        if self._phase == HEAD:
            self._phase = BODY
            self._head = bytearray()
            self._arm(self.limits.body_timeout)

    def on_message_complete(self):
        HttpToolsProtocol.on_message_complete(self)
        self._phase = APP
        self._disarm()

    def _check_head(self, data):
        """Refuse (431) a head over the size or field-count limit; True when it may go on."""
        lim = self.limits
        self._head += data[:lim.max_header_bytes + 4]
        head = bytes(self._head).lstrip(b"\r\n")
        end = head.find(b"\r\n\r\n")
        if end < 0:
            end = head.find(b"\n\n")
        size = len(head) if end < 0 else end
        fields = head[:size].count(b"\n") if end >= 0 else max(0, head.count(b"\n"))
        if size > lim.max_header_bytes or fields > lim.max_headers:
            self._refuse(431, b"Request Header Fields Too Large", "headers_too_large",
                         "the request head is limited to %d bytes and %d header fields"
                         % (lim.max_header_bytes, lim.max_headers))
            return False
        if end >= 0:
            self._head = bytearray()
        elif len(self._head) > lim.max_header_bytes + 4:
            del self._head[:-(lim.max_header_bytes + 4)]
        return True

    # --- deadlines ------------------------------------------------------------------------------
    def _arm(self, seconds):
        self._disarm()
        if seconds:
            self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self):
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self):
        self._deadline = None
        if self.transport is None or self.transport.is_closing() or self._phase == APP:
            return
        what = "head" if self._phase == HEAD else "body"
        limit = self.limits.header_timeout if self._phase == HEAD else self.limits.body_timeout
        log.warning("closed a connection from %s: request %s not received within %d s", self._peer, what, limit)
        if not (self.cycle is not None and self.cycle.response_started and not self.cycle.response_complete):
            self._refuse(408, b"Request Timeout", "request_timeout",
                         "the request %s must arrive within %d seconds" % (what, limit))
        else:
            self._refuse(None, None, None, None)

    def _refuse(self, status, reason, code, message):
        """Answer ``status`` (None: nothing) and close; an application task waiting for the body
        learns at once that the client is gone."""
        self._closed_by_guard = True
        self._disarm()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        try:
            if status is not None:
                self.transport.write(_answer(status, reason, code, message))
        finally:
            self.transport.close()
            # a TLS close waits for the client's close_notify (asyncio: up to 30 s); a client that
            # never sends it is dropped sooner
            self.loop.call_later(2, self._abort)

    def _abort(self):
        if not self._lost:
            self.transport.abort()

    # --- shutdown -------------------------------------------------------------------------------
    def shutdown(self):
        """The server stops: Uvicorn closes an idle connection (and one whose response is under way once
        it is sent), and a TLS close waits for the client's close_notify, which an idle keep-alive client
        does not send: the server then waited out its whole graceful timeout (5 s) for nothing. A closing
        connection is dropped after a second instead; requests in flight still finish."""
        HttpToolsProtocol.shutdown(self)
        self.loop.call_later(1, self._drop_when_closing)

    def _drop_when_closing(self):
        if self._lost or self.transport is None:
            return
        if self.transport.is_closing():
            self.transport.abort()
        else:  # a response still being sent: look again
            self.loop.call_later(0.5, self._drop_when_closing)
