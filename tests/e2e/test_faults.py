"""Faults: clients that vanish in the middle of things, children killed from outside, a fork storm, a full
disk, a process that writes far more than anyone reads. The agent must stay responsive and leak nothing:
file descriptors, memory, temporary files, processes that were to die."""
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time

import pytest

from conftest import free_port


def fd_count(agent):
    return len(os.listdir(f"/proc/{agent.pid}/fd"))


def rss_kb(agent):
    with open(f"/proc/{agent.pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def vanish(ws):
    """The client dies: a reset, no close handshake."""
    ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.sock.close()


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def settled_fds(agent, expected):
    return wait_for(lambda: fd_count(agent) <= expected)


def temp_files(path):
    return [n for n in os.listdir(path) if ".runra-" in n]


SINK = "import socket, threading\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n" \
       "s.bind(('127.0.0.1', PORT)); s.listen(16)\n" \
       "def one(c):\n    try:\n        c.sendall(b'x' * (64 << 20))\n    except OSError:\n        pass\n    c.close()\n" \
       "while True:\n    c, _ = s.accept(); threading.Thread(target=one, args=(c,), daemon=True).start()\n"


def test_clients_vanishing_mid_operation_leak_nothing(agent):
    w = agent.workdir
    with open(os.path.join(w, "big.bin"), "wb") as f:
        f.write(os.urandom(32 << 20))
    port = free_port()
    with open(os.path.join(w, "sink.py"), "w") as f:
        f.write(SINK.replace("PORT", str(port)))
    agent.ws().call("exec", argv=["python3", os.path.join(w, "sink.py")], background=True, procId="sink")
    assert wait_for(lambda: any(p["port"] == port and p["listening"] for p in agent.ws().call("port.list")["ports"]))
    baseline_fds = fd_count(agent)
    for round_ in range(8):
        # mid-exec: a chatty process that dies with its client
        ws = agent.ws()
        ws.send({"id": 1, "op": "exec", "cmd": "yes", "killOnDisconnect": True, "procId": f"yes{round_}"})
        ws.recv_msg()
        # mid-upload
        up_ws = agent.ws()
        up = up_ws.call("file.upload.open", path=f"up{round_}")["upload"]
        up_ws.call("file.upload.chunk", upload=up, offset=0, data=os.urandom(1 << 20))
        # mid-download
        down = agent.ws()
        down.send({"id": 1, "op": "file.read", "path": "big.bin", "stream": True})
        down.recv_msg()
        # mid-tunnel
        tun = agent.ws()
        tun.call("port.connect", port=port)
        tun.recv_msg()
        for c in (ws, up_ws, down, tun):
            vanish(c)
        assert agent.ws().call("ping")["pong"]
    assert settled_fds(agent, baseline_fds + 2), (fd_count(agent), baseline_fds)
    assert temp_files(w) == [] and not any(n.startswith("up") for n in os.listdir(w))
    def running():
        return [p["proc"] for p in agent.ws().call("proc.list")["processes"] if p["state"] == "running"]
    assert wait_for(lambda: running() == ["sink"]), running()  # every yes died with its client
    rss_before = rss_kb(agent)
    for round_ in range(8, 16):  # and memory does not grow with more of the same
        ws = agent.ws()
        ws.send({"id": 1, "op": "file.read", "path": "big.bin", "stream": True})
        ws.recv_msg()
        vanish(ws)
    assert agent.ws().call("ping")["pong"]
    assert rss_kb(agent) - rss_before < 16 << 10


def test_children_killed_from_outside(agent):
    ws = agent.ws()
    st = ws.call("exec", cmd="sleep 1000", background=True)["status"]
    agent.ws().run(cmd=f"kill -9 {st['pid']}")
    final = ws.call("proc.wait", proc=st["proc"], timeoutMs=5000)["status"]
    assert final["signal"] == "SIGKILL" and final["state"] == "exited"
    assert ws.call("ping")["pong"]


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the storm as nobody: needs root")
def test_fork_storm_inside_a_pids_limit(agent):
    ws = agent.ws()
    storm = "ulimit -u 200; s() { while :; do s & done; }; s"
    ws.call("exec", cmd=storm, user="nobody", cwd="/tmp", background=True, procId="storm")
    time.sleep(1.0)
    start = time.monotonic()
    for _ in range(20):
        assert ws.call("ping")["pong"]
    assert time.monotonic() - start < 10.0  # seconds without the agent's raised priority (see pid1.c)
    assert agent.ws().call("metrics")["processes"] > 10
    result = ws.call("sandbox.reset", graceMs=0)  # everything dies, wherever it forked to
    assert result["signalled"] > 10
    assert wait_for(lambda: agent.ws().call("metrics")["processes"] == 0)
    assert ws.call("ping")["pong"]


@pytest.fixture
def tiny_disk():
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path = tempfile.mkdtemp(prefix="runra-full-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "runra-full", path], check=True)
    yield path
    subprocess.run(["umount", path], check=False)
    shutil.rmtree(path, ignore_errors=True)


def test_full_disk(tiny_disk, make_agent):
    agent = make_agent()  # started after the mount: as PID 1 it sees it in its own mount namespace too
    ws = agent.ws()
    reply = ws.request("file.write", path=f"{tiny_disk}/big", data=os.urandom(2 << 20))
    assert reply["error"]["code"] == "RESOURCE_EXHAUSTED" and reply["error"]["retryable"]
    up = ws.call("file.upload.open", path=f"{tiny_disk}/up")["upload"]
    replies = [ws.request("file.upload.chunk", upload=up, offset=i << 18, data=os.urandom(1 << 18)) for i in range(6)]
    errors = [r for r in replies if "error" in r]
    assert errors and errors[0]["error"]["code"] == "RESOURCE_EXHAUSTED"
    ws.request("file.upload.abort", upload=up)
    assert os.listdir(tiny_disk) == []  # nothing half-written left
    ws.call("file.write", path=f"{tiny_disk}/small", data=b"fits")  # and it works once there is room
    assert ws.call("ping")["pong"]


def test_a_gigabyte_to_a_client_that_left(agent):
    rss_before = rss_kb(agent)
    ws = agent.ws()
    ws.send({"id": 1, "op": "exec", "cmd": "head -c 1073741824 /dev/zero", "procId": "flood"})
    ws.recv_msg()
    vanish(ws)
    probe = agent.ws()
    start = time.monotonic()
    while True:
        assert probe.call("ping")["pong"]
        st = probe.call("proc.get", proc="flood")["status"]
        if st["state"] != "running":
            break
        assert time.monotonic() - start < 60
    assert st["exitCode"] == 0 and st["stdoutBytes"] == 1 << 30  # it ran to the end, not blocked
    assert rss_kb(agent) - rss_before < 32 << 10


@pytest.mark.skipif(os.geteuid() != 0, reason="the agent raises its priority only as root")
def test_the_agent_runs_ahead_of_its_children(agent):
    with open(f"/proc/{agent.pid}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[16]) == -10  # nice
    out, _, _, _ = agent.ws().run(cmd="cut -d' ' -f19 /proc/self/stat")
    assert out.strip() == b"0"


def test_fd_limit_raised_for_the_agent_not_for_its_children(make_agent):
    agent = make_agent(prefix=["prlimit", "--nofile=1024:4096", "--"])
    with open(f"/proc/{agent.pid}/limits") as f:
        line = next(l for l in f if l.startswith("Max open files"))
    assert line.split()[3:5] == ["4096", "4096"], line  # as high as the hard limit lets it
    out, _, status, _ = agent.ws().run(cmd="ulimit -Sn; ulimit -Hn")
    assert status["exitCode"] == 0 and out.split() == [b"1024", b"4096"], out  # what the agent was started with
