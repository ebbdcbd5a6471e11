"""Debian's headless Chromium, driven over the Chrome DevTools protocol with the standard library only
(a minimal WebSocket client): open a page, read its DOM, collect console errors, take screenshots.

No browser is downloaded: the system `chromium` (Debian's package; .ci/run installs it) runs. Where it
is missing a test is skipped with the reason; under CI=true it fails.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

MISSING = "chromium is not installed (Debian's `chromium` package; .ci/run installs it)"
TIMEOUT_SECONDS = 30


def chromium_binary() -> str:
    """The browser; where it is missing, a skip with the reason (a failure under CI=true)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(MISSING)
    pytest.skip(MISSING)


class _WebSocket:
    """Just enough of RFC 6455 for DevTools: text frames, client-masked, over one TCP connection."""

    def __init__(self, url: str) -> None:
        found = re.fullmatch(r"ws://([^:/]+):([0-9]+)(/.*)", url)
        assert found is not None, url
        host, port, path = found.group(1), int(found.group(2)), found.group(3)
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT_SECONDS)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            assert chunk, "DevTools closed the connection during the handshake"
            response += chunk
        assert response.startswith(b"HTTP/1.1 101"), response[:200]
        self.buffer = response.split(b"\r\n\r\n", 1)[1]

    def send(self, text: str) -> None:
        payload = text.encode()
        header = bytes([0x81])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        elif len(payload) < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", len(payload))
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _read(self, count: int) -> bytes:
        while len(self.buffer) < count:
            chunk = self.sock.recv(65536)
            assert chunk, "DevTools closed the connection"
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def receive(self) -> str:
        message = b""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(length)
            message += payload
            if first & 0x80:
                return message.decode()

    def close(self) -> None:
        self.sock.close()


@dataclass
class Tab:
    """One page in the browser, and every console error or exception it reported."""

    socket: _WebSocket
    errors: list[str] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        identifier = next(self.ids)
        self.socket.send(json.dumps({"id": identifier, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.receive())
            if message.get("id") == identifier:
                assert "error" not in message, message
                result: dict[str, Any] = message.get("result", {})
                return result
            self._note(message)

    def wait_for(self, event: str) -> None:
        while True:
            message = json.loads(self.socket.receive())
            if message.get("method") == event:
                return
            self._note(message)

    def _note(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(json.dumps(params.get("args"))[:300])
        elif method == "Runtime.exceptionThrown":
            self.errors.append(json.dumps(params.get("exceptionDetails"))[:300])
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.errors.append(str(params["entry"].get("text"))[:300])

    def open(self, url: str, width: int, height: int = 900, mobile: bool = False) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=mobile,
        )
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def screenshot(self, path: Path, scale: float = 1.0) -> Path:
        """The whole page as a PNG at `path` (at `scale`: a small copy is quick to check in Python)."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": scale}
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip)
        path.write_bytes(base64.b64decode(data["data"]))
        return path


@contextmanager
def browser() -> Iterator[Tab]:
    """Headless Chromium with a private profile, one tab with the console and log domains enabled."""
    binary = chromium_binary()
    # a helper killed a moment late may still write in the profile: its removal must not fail the test
    with tempfile.TemporaryDirectory(prefix="chromium-profile-", ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [
                binary,
                "--headless=new",
                "--disable-gpu",
                "--no-sandbox",
                "--no-first-run",
                "--hide-scrollbars",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: Chromium and every helper it starts
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            port = _wait_for_port(port_file, process)
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=TIMEOUT_SECONDS).json()
            page = next(target for target in targets if target.get("type") == "page")
            tab = Tab(_WebSocket(page["webSocketDebuggerUrl"]))
            for domain in ("Page", "Runtime", "Log"):
                tab.call(f"{domain}.enable")
            try:
                yield tab
            finally:
                tab.socket.close()
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End Chromium and the helpers it started (renderers, crash handler), which write in the
    profile, before the profile is removed: the whole process group, asked first, then killed."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _wait_for_port(port_file: Path, process: subprocess.Popen[bytes]) -> int:
    """The DevTools port Chromium writes into its profile once it listens."""
    for _ in range(TIMEOUT_SECONDS * 20):
        if port_file.exists():
            text = port_file.read_text().splitlines()
            if text and text[0].isdigit():
                return int(text[0])
        if process.poll() is not None:
            raise AssertionError(f"chromium exited with {process.returncode} before listening")
        subprocess.run(["sleep", "0.05"], check=False)
    raise AssertionError("chromium did not open its DevTools port in time")


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit RGB or RGBA PNG, unfiltered."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, idat, width, height, channels = 8, b"", 0, 0, 0
    while position < len(data):
        length = struct.unpack(">I", data[position : position + 4])[0]
        kind = data[position + 4 : position + 8]
        chunk = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        position += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for number in range(height):
        start = number * (stride + 1)
        filter_type, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for index in range(stride):
            left = line[index - channels] if index >= channels else 0
            up = previous[index]
            corner = previous[index - channels] if index >= channels else 0
            if filter_type == 1:
                line[index] = (line[index] + left) & 0xFF
            elif filter_type == 2:
                line[index] = (line[index] + up) & 0xFF
            elif filter_type == 3:
                line[index] = (line[index] + (left + up) // 2) & 0xFF
            elif filter_type == 4:
                estimate = left + up - corner
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
                predictor = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[index] = (line[index] + predictor) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, rows


def inked_share(path: Path) -> float:
    """The share of sampled pixels that are not the page's background (its top-left pixel)."""
    width, _, rows = png_pixels(path)
    channels = len(rows[0]) // width
    background = rows[0][:3]
    sampled = inked = 0
    for row in rows[::4]:
        for index in range(0, len(row), channels * 4):
            sampled += 1
            inked += row[index : index + 3] != background
    return inked / sampled if sampled else 0.0
