"""An httpx transport (sync and async) that answers from a simulator in-process, as one host."""

from __future__ import annotations

import asyncio

import httpx

from lib.kucoin.sim.wire import HOSTS, Answers, SimRequest


class SimulatorTransport(httpx.MockTransport):
    """An httpx transport (sync and async) answering from a simulator as one host."""

    def __init__(self, simulator: Answers, host: str, caller_ip: str = "127.0.0.1") -> None:
        if host not in HOSTS:
            raise ValueError(f"host must be one of {HOSTS}")
        super().__init__(self._answer)
        self.simulator = simulator
        self.host = host
        self.caller_ip = caller_ip

    def _answer(self, request: httpx.Request) -> httpx.Response:
        """Return the simulator's answer; raise RemoteProtocolError for a dropped connection."""
        answer = self.simulator.handle(
            SimRequest(
                host=self.host,
                method=request.method,
                target=request.url.raw_path.decode("ascii"),
                headers={name.lower(): value for name, value in request.headers.items()},
                body=request.content,
                peer_ip=self.caller_ip,
            )
        )
        if answer.dropped:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        return httpx.Response(
            answer.status, headers=list(answer.headers), content=answer.body, request=request
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer in a worker thread so injected latency does not block the event loop."""
        await request.aread()
        return await asyncio.to_thread(self._answer, request)
