"""A headless Chromium driven over the DevTools protocol (the ``websockets`` client we already
depend on): open a page, run JavaScript in it, wait for a condition, take a screenshot. Enough to
click a button in the Dagster UI and look at what it renders, without a browser-driver package."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import websockets


class Browser:
    def __init__(self, chromium: str, profile: Path, width: int = 1400, height: int = 1000):
        self.proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--disable-background-networking", f"--user-data-dir={profile}",
             f"--window-size={width},{height}", "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        port = None
        while time.time() < deadline and port is None:
            line = self.proc.stderr.readline()
            m = re.search(r"DevTools listening on ws://[\d.]+:(\d+)/", line)
            if m:
                port = int(m.group(1))
            elif not line and self.proc.poll() is not None:
                break
        if port is None:
            self.close()
            raise RuntimeError("chromium did not start its DevTools endpoint")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            page = next(t for t in json.loads(r.read()) if t["type"] == "page")
        self.ws_url = page["webSocketDebuggerUrl"]
        self._ids = itertools.count(1)

    async def _call(self, ws, method: str, **params):
        i = next(self._ids)
        await ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            msg = json.loads(await ws.recv())
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def run(self, steps):
        """``steps(call)`` is an async function given ``call(method, **params)``."""
        async def main():
            async with websockets.connect(self.ws_url, max_size=64 * 2**20) as ws:
                return await steps(lambda m, **p: self._call(ws, m, **p))
        return asyncio.run(main())

    @staticmethod
    async def evaluate(call, expression: str):
        out = await call("Runtime.evaluate", expression=expression, returnByValue=True,
                         awaitPromise=True)
        return out.get("result", {}).get("value")

    @classmethod
    async def wait_for(cls, call, expression: str, timeout: float = 60.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = await cls.evaluate(call, expression)
            if value:
                return value
            await asyncio.sleep(0.5)
        raise AssertionError(f"timed out waiting for: {expression}")

    @staticmethod
    async def screenshot(call, path: Path) -> None:
        out = await call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(out["data"]))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
