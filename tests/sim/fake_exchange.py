"""A fake Binance REST endpoint on 127.0.0.1 that serves real recorded books, with faults on demand.

``script`` is a list of per-request behaviours, consumed in order (then "ok" forever): "ok" (next
recorded book), "500", "drop" (close the connection without an answer), "garbage" (not JSON),
"crossed" (a book with bid >= ask), "stale" (the previous book again, same update id).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
from pathlib import Path

from aiohttp import web

EXCHANGE_INFO = {"timezone": "UTC", "serverTime": 0, "rateLimits": [], "symbols": [{
    "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "baseAssetPrecision": 8, "quoteAsset": "USDT",
    "quotePrecision": 8, "quoteAssetPrecision": 8, "orderTypes": ["LIMIT", "MARKET"], "icebergAllowed": True,
    "isSpotTradingAllowed": True, "isMarginTradingAllowed": False, "permissions": ["SPOT"],
    "filters": [{"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"},
                {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000", "stepSize": "0.00001"}]}]}


class LocalServer:
    """An aiohttp app on 127.0.0.1, served from a background thread while the ``with`` block runs."""

    def __init__(self) -> None:
        self.port = _free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def app(self) -> web.Application:
        raise NotImplementedError

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        runner = web.AppRunner(self.app())
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self):  # noqa: ANN204 - the subclass
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop:
            self._loop.call_soon_threadsafe(self._loop.stop)


class FakeBinance(LocalServer):
    def __init__(self, recording: Path, script: list[str] | None = None, rows: int = 2000) -> None:
        super().__init__()
        self.books = []
        with gzip.open(recording, "rt") as fh:
            for i, line in enumerate(fh):
                if i >= rows:
                    break
                self.books.append(json.loads(line))
        self.script = list(script or [])
        self.i = 0
        self.update_id = 1000
        self.requests = 0
        self.seen: list[dict] = []  # every request: path, query, whether it carried an API key or signature

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v3"

    def ccxt_options(self, every_api: bool = False) -> dict:
        """ccxt options pointing the client here; ``every_api``: every Binance API group (sapi, fapi,
        ...), so that even a private call would land here, be seen, and never leave the machine."""
        urls = {"public": self.url, "private": self.url}
        if every_api:
            import ccxt

            urls = {k: self.url for k in ccxt.binance().urls["api"]}
        return {"urls": {"api": urls}, "options": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False}}

    @web.middleware
    async def _log(self, req: web.Request, handler):  # noqa: ANN001, ANN202
        self.seen.append({"path": req.path, "query": req.query_string, "api_key": "X-MBX-APIKEY" in req.headers,
                          "signed": "signature=" in req.query_string or "signature=" in (await req.text())})
        return await handler(req)

    def private_calls(self) -> list[dict]:
        return [r for r in self.seen if r["api_key"] or r["signed"]]

    async def _info(self, _req: web.Request) -> web.Response:
        return web.json_response(EXCHANGE_INFO)

    async def _depth(self, req: web.Request) -> web.StreamResponse:
        self.requests += 1
        action = self.script.pop(0) if self.script else "ok"
        if action == "500":
            return web.Response(status=500, text="internal error")
        if action == "drop":
            req.transport.close()
            return web.Response(status=500)
        if action == "garbage":
            return web.Response(text="<html>oops", content_type="application/json")
        if action != "stale":
            self.i = (self.i + 1) % len(self.books)
            self.update_id += 1
        b = self.books[self.i]
        bids, asks = [[str(p), str(q)] for p, q in b["bids"]], [[str(p), str(q)] for p, q in b["asks"]]
        if action == "crossed":
            bids[0][0] = str(float(asks[0][0]) + 10)
        return web.json_response({"lastUpdateId": self.update_id, "bids": bids, "asks": asks})

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._log])
        app.router.add_get("/api/v3/exchangeInfo", self._info)
        app.router.add_get("/api/v3/depth", self._depth)
        return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
