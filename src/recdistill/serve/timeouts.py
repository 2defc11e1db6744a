"""Closing slow and idle connections. uvicorn closes a keep-alive connection that stays idle after an
answer (``timeout_keep_alive``), but not one that never finishes its first request: a client that opens a
socket and sends nothing, or sends its headers a byte at a time, holds the connection for ever. This
protocol (uvicorn's own h11 one, plus one timer) gives every request ``timeout_keep_alive`` seconds, from
the connection opening or the previous answer, to arrive complete (headers and body); then it is closed.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_LIMIT_BYTES = 16 * 1024  # h11's limit on a request head still arriving (a 400); see http_app.BodyLimit


class DeadlineH11Protocol(H11Protocol):
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        self._arm()  # the next request on this connection gets the same time (super() may start reading it)
        super().on_response_complete()

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE and self.conn.their_state is not h11.SEND_BODY:
            self._disarm()  # the request is in (or the connection is ending): the app's time is not limited here

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.timeout_keep_alive, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing() and self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
            self.transport.close()
