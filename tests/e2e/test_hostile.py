"""Hostile clients on loopback: floods of connections, of unauthenticated upgrades and of requests, garbage and
lying frame headers, fragments that never end. Throughout, an authenticated client keeps being served."""
import os
import socket
import struct
import threading
import time

import pytest

from wsclient import WS, Closed, HandshakeRefused


class Prober(threading.Thread):
    """An authenticated client pinging all along; records the slowest round trip and any failure."""

    def __init__(self, agent):
        super().__init__(daemon=True)
        self.ws = agent.ws()
        self.stop = threading.Event()
        self.worst = 0.0
        self.count = 0
        self.error = None

    def run(self):
        try:
            while not self.stop.is_set():
                start = time.monotonic()
                assert self.ws.call("ping")["pong"]
                self.worst = max(self.worst, time.monotonic() - start)
                self.count += 1
                time.sleep(0.005)
        except Exception as e:  # noqa: BLE001 - reported by finish()
            self.error = e

    def finish(self):
        """Stops after three more pings (served after the attack too)."""
        target, deadline = self.count + 3, time.monotonic() + 10
        while self.count < target and self.error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        self.stop.set()
        self.join(10)
        assert self.error is None, self.error
        assert self.count >= target, self.count
        assert self.worst < 2.0, f"a ping took {self.worst:.2f}s"


def test_thousand_connections_opened_and_dropped(agent):
    probe = Prober(agent)
    probe.start()
    for i in range(1000):
        s = socket.create_connection(("127.0.0.1", agent.port))
        if i % 3 == 0:  # some send half a request, some an upgrade, some nothing
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        elif i % 3 == 1:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                      b"Authorization: Bearer " + agent.token.encode() + b"\r\n\r\n")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # a reset, not a FIN
        s.close()
    probe.finish()
    assert agent.ws().call("info")["connections"] <= 3


def test_unauthenticated_flood(agent):
    probe = Prober(agent)
    probe.start()
    refused = []

    def flood():
        for _ in range(100):
            try:
                WS.connect(agent.port, token="wrong-token", timeout=10).close()
            except HandshakeRefused as e:
                refused.append(e.status)

    threads = [threading.Thread(target=flood) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    probe.finish()
    assert refused == [401] * 800


def test_request_flood_is_rate_limited(make_agent):
    agent = make_agent(args=["--max-requests-per-second", "100"])
    ws = agent.ws()
    assert ws.ready["limits"]["maxRequestsPerSecond"] == 100
    for i in range(600):
        ws.send({"id": i, "op": "ping"})
    codes = []
    for _ in range(600):
        m = ws.recv_msg()
        codes.append(m["error"]["code"] if "error" in m else "OK")
        if "error" in m:
            assert m["error"]["retryable"] and "100 requests per second" in m["error"]["message"]
    assert 190 <= codes.count("OK") <= 260 and codes.count("RATE_LIMITED") == 600 - codes.count("OK")
    other = agent.ws()  # the limit is per connection
    assert other.call("ping")["pong"]
    time.sleep(0.5)
    assert ws.call("ping")["pong"]  # and it refills


HOSTILE_FRAMES = [
    ("garbage after the upgrade", os.urandom(4096)),
    ("a 2^63-byte frame", bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 63) + os.urandom(4)),
    ("a 2^62-byte frame", bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 62) + os.urandom(4)),
    ("reserved opcode 3", bytes([0x83, 0x80]) + os.urandom(4)),
    ("unmasked client frame", bytes([0x82, 0x05]) + b"hello"),
    ("a fragmented control frame", bytes([0x09, 0x80]) + os.urandom(4)),
    ("continuation without a start", bytes([0x80, 0x80]) + os.urandom(4)),
]


@pytest.mark.parametrize("name,raw", HOSTILE_FRAMES, ids=[name for name, _ in HOSTILE_FRAMES])
def test_hostile_frames_close_only_that_connection(agent, name, raw):
    probe = Prober(agent)
    probe.start()
    bad = agent.ws()
    bad.send_raw(raw)
    with pytest.raises((Closed, ConnectionError, OSError)):
        bad.sock.settimeout(5)
        while True:
            bad.recv_msg()
    probe.finish()


def test_fragments_that_never_finish(agent):
    probe = Prober(agent)
    probe.start()
    stuck = [agent.ws() for _ in range(20)]
    for ws in stuck:
        ws.send_frame(0x2, b"\x81\xa2op" + b"x" * 1000, fin=False)  # the start of a message, then nothing
        for _ in range(10):
            ws.send_frame(0x0, b"y" * 60000, fin=False)
    time.sleep(0.5)
    probe.finish()
    for ws in stuck:  # each of them still works once it finishes its message
        ws.send_frame(0x0, b"", fin=True)
        reply = ws.recv_msg()
        assert reply["type"] == "reply" and reply["error"]["code"] in ("INVALID_MESSAGE", "MESSAGE_TOO_LARGE")
        assert ws.call("ping")["pong"]
