#!/usr/bin/python3
"""Soak: mixed traffic against one agent for a bounded time (SOAK_SECONDS, default 600), then a verdict on
its resource use. Not part of the test command (`make soak` runs it).

Every round, on fresh and long-lived connections: execs (foreground, background, killed, streamed), file
writes, reads, listings, uploads and deletes, watch events, a tunnel, port scans, subscriptions, and clients
that vanish mid-operation. The agent's RSS and open fds are sampled each round. RSS swings by +-10 MiB from round to
round (buffers of 256 KiB to 4 MiB come and go) and its caches (the event ring, the output kept of finished
processes, the allocator's) take minutes to fill, so the verdict compares medians over the second half: the
last quarter's median may not exceed the third quarter's by more than a small margin, and the fd count may not
grow. A per-minute table (min, median, max) shows the curve."""
import hashlib
import os
import re
import socket
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
os.environ.setdefault("RUNRA_AGENT_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "release",
                                                      "runra-agent"))
from conftest import Agent, free_port  # noqa: E402

SECONDS = int(os.environ.get("SOAK_SECONDS", "600"))
RSS_MARGIN_KB = 4096
FD_MARGIN = 4

SINK = "import socket, threading, hashlib\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n" \
       "s.bind(('127.0.0.1', PORT)); s.listen(64)\n" \
       "def one(c):\n    h = hashlib.sha256()\n    while True:\n        b = c.recv(65536)\n        if not b: break\n" \
       "        h.update(b)\n    c.sendall(h.hexdigest().encode()); c.close()\n" \
       "while True:\n    c, _ = s.accept(); threading.Thread(target=one, args=(c,), daemon=True).start()\n"


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def vanish(ws):
    ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.sock.close()


def tunnel_round(agent, port):
    ws = agent.ws()
    tid = ws.call("port.connect", port=port)["tunnel"]
    data = os.urandom(256 << 10)
    ws.call("port.send", tunnel=tid, data=data, eof=True)
    got, closed = b"", None
    while True:
        m = ws.recv_msg()
        if m.get("type") == "tunnel" and "data" in m:
            got += m["data"]
        if m.get("closed"):
            closed = m
            break
    ws.close()
    if closed["error"] is not None:  # the sink's side failed (a busy machine: no thread for it): not the agent's
        return False
    assert got.decode(errors="replace") == hashlib.sha256(data).hexdigest(), (got[:200], closed)
    return True


def one_round(agent, events, n, port):
    ws = agent.ws()
    out, _, st, _ = ws.run(cmd=f"echo round {n}; seq 1 2000")
    assert st["exitCode"] == 0 and out.startswith(f"round {n}".encode())
    bg = ws.call("exec", cmd="sleep 30", background=True)["status"]["proc"]
    ws.call("proc.kill", proc=bg)
    ws.call("file.write", path=f"soak/{n % 50}.txt", data=os.urandom(4096), mkdirs=True)
    assert len(ws.call("file.read", path=f"soak/{n % 50}.txt")["data"]) == 4096
    ws.call("file.list", path="soak")
    up = ws.call("file.upload.open", path=f"soak/up{n % 10}", mkdirs=True)["upload"]
    ws.call("file.upload.chunk", upload=up, offset=0, data=os.urandom(64 << 10))
    ws.call("file.upload.commit", upload=up)
    if n % 10 == 9:
        ws.call("file.delete", path="soak", recursive=True)
    ws.call("port.list")
    ws.call("metrics")
    if not tunnel_round(agent, port):
        print(f"soak: round {n}: the tunnel's server reset the connection (counted, not an agent failure)")
    gone = agent.ws()  # a client that vanishes mid-stream
    gone.send({"id": 1, "op": "exec", "cmd": "head -c 4000000 /dev/zero", "killOnDisconnect": True})
    gone.recv_msg()
    vanish(gone)
    ws.close()
    events.sock.settimeout(0.001)
    try:  # keep the event subscriber drained
        while True:
            events.recv_msg()
    except (socket.timeout, TimeoutError, BlockingIOError):
        pass


def main():
    agent = Agent()
    port = free_port()
    with open(os.path.join(agent.workdir, "sink.py"), "w") as f:
        f.write(SINK.replace("PORT", str(port)))
    agent.ws().call("exec", argv=["python3", os.path.join(agent.workdir, "sink.py")], background=True)
    deadline = time.monotonic() + 10
    while not any(p["port"] == port and p["listening"] for p in agent.ws().call("port.list")["ports"]):
        assert time.monotonic() < deadline, "sink never listened"
        time.sleep(0.1)
    events = agent.ws()
    events.call("subscribe", events=["*"])
    start, samples, n = time.monotonic(), [], 0
    while time.monotonic() - start < SECONDS:
        one_round(agent, events, n, port)
        n += 1
        samples.append((time.monotonic() - start, rss_kb(agent.pid), fds(agent.pid)))
        if n % 50 == 0:
            t, rss, fd = samples[-1]
            print(f"soak: {t:6.0f}s  round {n:5d}  rss {rss} KiB  fds {fd}", flush=True)
    def median(values):
        values = sorted(values)
        return values[len(values) // 2]

    for lo in range(0, SECONDS, 60):
        window = [s[1] for s in samples if lo <= s[0] < lo + 60]
        if window:
            print(f"soak: minute {lo // 60:2d}: rss min {min(window)} median {median(window)} max {max(window)} KiB")
    third = [s for s in samples if SECONDS / 2 <= s[0] < SECONDS * 3 / 4]
    last = [s for s in samples if s[0] >= SECONDS * 3 / 4]
    third_rss, last_rss = median([s[1] for s in third]), median([s[1] for s in last])
    third_fd, last_fd = max(s[2] for s in third), max(s[2] for s in last)
    print(f"soak: {n} rounds in {SECONDS}s; median rss in the third quarter {third_rss} KiB, in the last "
          f"{last_rss} KiB; fds {third_fd} -> {last_fd}")
    agent.check_clean_exit()
    ok = last_rss <= third_rss + RSS_MARGIN_KB and last_fd <= third_fd + FD_MARGIN
    print("soak: " + ("flat: ok" if ok else "GROWING: fail"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
