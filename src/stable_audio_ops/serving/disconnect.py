"""Notice that an HTTP client has gone while its generation waits, and cancel that generation.

Why: Starlette does not cancel an endpoint when its client disconnects; ``POST /v1/generate`` would keep
waiting for the batcher, and the batcher would run the request for nobody. A fault-injection burst of 64
clients that gave up after 3 s kept the single model worker busy for 40+ s and the next real request
waited 27 s. Cancelling the batcher's future drops a queued request, and stops a running call once all
of its requests are cancelled (see :mod:`stable_audio_ops.serving.batcher`).

How: once the request body has been read, the ASGI ``receive`` channel yields nothing until the client
disconnects (``http.disconnect``), so waiting on it costs no polling.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

CLIENT_CLOSED_REQUEST = 499  # nginx's status for "the client went away before the answer" (never seen by it)


def _retrieve(task: asyncio.Future) -> None:
    """Mark a finished watcher's outcome as seen (a failed ``receive`` is the same as a disconnect here)."""
    if not task.cancelled():
        task.exception()


class ClientDisconnected(Exception):
    """The client closed the connection before its result was ready; its work was cancelled."""


async def wait_for_disconnect(receive: Callable[[], Awaitable[dict[str, Any]]]) -> None:
    """Return when ``receive`` (an ASGI receive channel whose body was read) reports ``http.disconnect``."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def result_unless_disconnected(receive: Callable[[], Awaitable[dict[str, Any]]], future: asyncio.Future) -> Any:
    """``await future``, unless the client disconnects first: then cancel ``future`` and raise
    :class:`ClientDisconnected`. The future is also cancelled when this coroutine is (server shutdown)."""
    watcher = asyncio.ensure_future(wait_for_disconnect(receive))
    try:
        await asyncio.wait({future, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        future.cancel()
        raise
    finally:
        watcher.cancel()
        watcher.add_done_callback(_retrieve)
    if not future.done():
        future.cancel()
        raise ClientDisconnected("client disconnected before the result was ready")
    return future.result()


__all__ = ["CLIENT_CLOSED_REQUEST", "ClientDisconnected", "result_unless_disconnected", "wait_for_disconnect"]
