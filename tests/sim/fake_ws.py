"""A fake Binance spot market on 127.0.0.1 for ccxt.pro: REST (exchangeInfo, depth snapshot) and a
websocket diff-depth stream (``depthUpdate`` with ``U``/``u`` sequence ids) built from a real recorded
book, with faults on demand per connection.

``script``: one entry per websocket connection, consumed in order (then "ok" forever):
"ok" (a valid stream), "drop" (close after ``n`` messages), "garbage" (a non-JSON frame after ``n``),
"gap" (skip a sequence id after ``n``: the book can no longer be trusted), "stale" (subscribe, then
send nothing), "refuse" (close the connection at once). Messages count from the client's REST
snapshot on: a fault hits a synchronised book.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from pathlib import Path

from aiohttp import WSMsgType, web

from tests.sim.fake_exchange import EXCHANGE_INFO, LocalServer


class FakeBinanceWs(LocalServer):
    def __init__(self, recording: Path, script: list[str] | None = None, n: int = 30, period_ms: float = 5) -> None:
        super().__init__()
        with gzip.open(recording, "rt") as fh:
            first = json.loads(fh.readline())
        self.bids = {float(p): float(q) for p, q in first["bids"]}
        self.asks = {float(p): float(q) for p, q in first["asks"]}
        self.uid = 1000
        self.script = list(script or [])
        self.n = n
        self.period = period_ms / 1e3
        self.connections = 0
        self.snapshots = 0  # REST depth requests: one per (re)synchronised book
        self.sent = 0

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v3"

    def ccxt_options(self) -> dict:
        return {"urls": {"api": {"public": self.rest, "private": self.rest,
                                 "ws": {"spot": f"ws://127.0.0.1:{self.port}/ws"}}},
                "options": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False}}

    async def _info(self, _req: web.Request) -> web.Response:
        return web.json_response(EXCHANGE_INFO)

    async def _depth(self, _req: web.Request) -> web.Response:
        self.snapshots += 1
        bids = sorted(self.bids.items(), reverse=True)
        asks = sorted(self.asks.items())
        return web.json_response({"lastUpdateId": self.uid, "bids": [[str(p), str(q)] for p, q in bids],
                                  "asks": [[str(p), str(q)] for p, q in asks]})

    def _update(self, skip: bool = False) -> dict:
        """The next diff: the best bid and ask sizes change (the book stays uncrossed)."""
        if skip:
            self.uid += 1  # a sequence id the client never sees
        self.uid += 1
        b, a = max(self.bids), min(self.asks)
        self.bids[b] = round(1.0 + (self.uid % 7) * 0.25, 5)
        self.asks[a] = round(1.0 + (self.uid % 5) * 0.25, 5)
        return {"e": "depthUpdate", "E": time.time_ns() // 1_000_000, "s": "BTCUSDT", "U": self.uid, "u": self.uid,
                "b": [[str(b), str(self.bids[b])]], "a": [[str(a), str(self.asks[a])]]}

    async def _ws(self, req: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(req)
        self.connections += 1
        action = self.script.pop(0) if self.script else "ok"
        if action == "refuse":
            await ws.close()
            return ws
        msg = await ws.receive()
        if msg.type != WSMsgType.TEXT:
            return ws
        sub = json.loads(msg.data)
        await ws.send_str(json.dumps({"result": None, "id": sub.get("id")}))

        async def answer_resubscribes() -> None:  # a client that resynchronises subscribes again
            async for m in ws:
                if m.type == WSMsgType.TEXT and "SUBSCRIBE" in m.data:
                    await ws.send_str(json.dumps({"result": None, "id": json.loads(m.data).get("id")}))

        reader = asyncio.ensure_future(answer_resubscribes())
        k = 0
        synced_at = self.snapshots
        try:
            while not ws.closed:
                await asyncio.sleep(self.period)
                if action == "stale":
                    continue
                if self.snapshots > synced_at:
                    k += 1
                if k == self.n and action == "drop":
                    await ws.close()
                    break
                if k == self.n and action == "garbage":
                    await ws.send_str("<html>502 bad gateway")
                    continue
                await ws.send_str(json.dumps(self._update(skip=(k == self.n and action == "gap"))))
                self.sent += 1
        except (ConnectionResetError, RuntimeError):
            pass
        reader.cancel()
        return ws

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v3/exchangeInfo", self._info)
        app.router.add_get("/api/v3/depth", self._depth)
        app.router.add_get("/ws/{stream:.*}", self._ws)
        app.router.add_get("/ws", self._ws)
        return app
