"""The process's KuCoin event loop: one thread that runs every call to KuCoin made from sync code.

httpx's connection pools belong to the event loop that opened them, so the clients a process
shares (one per place KuCoin is, lib.console.kucoin) live on this one loop. The app's sessions,
the watcher and the commands hand it coroutines and wait for their results; nothing slow runs
on it but the network.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def kucoin_loop() -> asyncio.AbstractEventLoop:
    """Return the process's KuCoin event loop, starting its thread on first use."""
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            _loop = asyncio.new_event_loop()
            _thread = threading.Thread(target=_loop.run_forever, name="kucoin-loop", daemon=True)
            _thread.start()
        return _loop


def on_kucoin_loop() -> bool:
    """Return whether the caller runs on the KuCoin loop's own thread."""
    return _thread is not None and threading.current_thread() is _thread


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Start a coroutine on the KuCoin loop and return a future of its result."""
    return asyncio.run_coroutine_threadsafe(coro, kucoin_loop())


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the KuCoin loop and return its result (from any other thread)."""
    if on_kucoin_loop():
        coro.close()
        raise RuntimeError("run() waits for the KuCoin loop: await the coroutine there instead")
    return submit(coro).result()
