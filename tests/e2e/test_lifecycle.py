"""Lifecycle: sandbox.started, the shutdown path (op and SIGTERM), pause.prepare / resume, sandbox.reset,
idle and hard timeouts."""
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import PID1, free_port
from wsclient import Closed


def expect_error(reply, code):
    assert reply["type"] == "reply" and reply["error"]["code"] == code, reply
    return reply["error"]["message"]


def events_until(ws, until, timeout=10.0, names=None):
    got, deadline = [], time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; got {got}"
        ws.sock.settimeout(left)
        m = ws.recv_msg()
        if m.get("type") == "event" and (names is None or m["event"] in names):
            got.append(m)
            if until(m):
                return got


def alive(agent, pid):
    """Whether pid lives (asked inside the sandbox, whose PID namespace may not be ours)."""
    _, _, status, _ = agent.ws().run(cmd=f"kill -0 {pid} 2>/dev/null")
    return status["exitCode"] == 0


def stubborn(agent):
    """A process group that ignores SIGTERM, and a daemon that left its group; their pids."""
    ws = agent.ws()
    a = ws.call("exec", cmd="trap '' TERM; while :; do sleep 0.05; done", background=True)["status"]["pid"]
    _, _, st, _ = ws.run(cmd="setsid sh -c 'trap \"\" TERM; exec sleep 1000' </dev/null >/dev/null 2>&1 & echo $!")
    out, _, _, _ = ws.run(cmd="pgrep -f 'sleep 1000' | head -1")
    return a, int(out.decode().split()[0])


def test_sandbox_started_is_the_first_event(agent):
    ws = agent.ws()
    ws.call("subscribe", events=["sandbox.*"], sinceSeq=0)
    started = events_until(ws, lambda m: True)[0]
    assert started["event"] == "sandbox.started" and started["seq"] == 1
    assert started["startedAt"] == ws.ready["startedAt"] and started["pid1"] == PID1 and started["version"]


def test_shutdown_op_kills_stubborn_processes_after_the_grace(agent):
    ws = agent.ws()
    ws.call("subscribe", events=["sandbox.*"])
    stubborn(agent)
    start = time.monotonic()
    assert ws.call("shutdown", graceMs=600) == {"graceMs": 600}
    ev = events_until(ws, lambda m: m["event"] == "sandbox.terminated")[-1]
    took = time.monotonic() - start
    assert ev["reason"] == "request" and ev["graceMs"] == 600 and ev["killed"] >= 2 and ev["signalled"] >= 2
    assert 0.5 <= took < 3.0, took
    with pytest.raises(Closed) as closed:
        while True:
            ws.recv_msg()
    assert closed.value.code == 1001
    assert agent.proc.wait(timeout=5) == 0
    if not PID1:
        out = os.popen("pgrep -f 'sleep 1000'; pgrep -f 'sleep 0.05'").read()
        assert out.strip() == "" or all(not os.path.exists(f"/proc/{p}/cwd") for p in out.split())


def test_sigterm_takes_the_same_path(agent):
    ws = agent.ws()
    ws.call("subscribe", events=["sandbox.terminated"])
    ws.call("exec", cmd="sleep 1000", background=True)
    os.kill(agent.pid, signal.SIGTERM)
    ev = events_until(ws, lambda m: True)[0]
    assert ev["reason"] == "signal" and ev["killed"] == 0 and ev["signalled"] >= 1  # sleep dies of SIGTERM
    assert agent.proc.wait(timeout=5) == 0


def test_requests_during_shutdown_are_refused(agent):
    ws = agent.ws()
    stubborn(agent)
    other = agent.ws()
    ws.call("shutdown", graceMs=2000)
    reply = other.request("ping")
    assert reply["error"]["code"] == "UNAVAILABLE" and reply["error"]["retryable"]


def test_pause_prepare_and_resume(agent):
    ws = agent.ws()
    ev = agent.ws()
    ev.call("subscribe", events=["sandbox.resumed"])
    assert ws.call("resume")["pausedMs"] is None  # nothing was paused
    prepared = ws.call("pause.prepare")
    assert prepared["syncMs"] >= 0 and abs(prepared["preparedAt"] - time.time() * 1000) < 5000
    time.sleep(0.3)
    resumed = ws.call("resume")
    assert 300 <= resumed["pausedMs"] < 5000
    e = events_until(ev, lambda m: True)[0]
    assert e["pausedMs"] == resumed["pausedMs"] and e["detectedBy"] == "request"
    assert ws.call("ping")["pong"]


def test_reset_leaves_a_clean_sandbox(agent, tmp_path):
    ws = agent.ws()
    ev = agent.ws()
    ev.call("subscribe", events=["sandbox.reset", "port.closed"])
    w = agent.workdir
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    os.symlink(outside, f"{w}/link-out")
    os.makedirs(f"{w}/deep/er")
    for name in ("a.txt", "deep/er/b.txt", "keep.txt"):
        with open(f"{w}/{name}", "w") as f:
            f.write(name)
    port = free_port()
    ws.call("exec", argv=["python3", "-m", "http.server", str(port), "--bind", "127.0.0.1"], background=True, cwd=w)
    ws.call("port.expose", port=port, waitMs=10000)
    tunnel_ws = agent.ws()
    tid = tunnel_ws.call("port.connect", port=port)["tunnel"]
    term_ignorer, daemon = stubborn(agent)
    result = ws.call("sandbox.reset", keepPaths=["keep.txt"], graceMs=500)
    assert result["signalled"] >= 3 and result["killed"] >= 2  # the TERM-ignoring loop and the daemon
    assert result["unexposed"] == 1 and result["tunnelsClosed"] == 1
    assert set(result["removedPaths"]) >= {f"{w}/a.txt", f"{w}/deep", f"{w}/link-out"}
    assert result["removed"] == len(result["removedPaths"]) and f"{w}/keep.txt" not in result["removedPaths"]
    assert result["error"] is None and result["durationMs"] < 5000
    assert sorted(os.listdir(w)) == ["keep.txt"]
    assert (outside / "precious").read_text() == "keep me"  # the symlink was removed, not followed
    closed = tunnel_ws.recv_msg()
    while not closed.get("closed"):  # the server's end (eof) may come first: it was killed
        assert closed["type"] == "tunnel" and closed["tunnel"] == tid, closed
        closed = tunnel_ws.recv_msg()
    assert closed["tunnel"] == tid
    assert ws.call("ping")["pong"]  # the same connection goes on
    assert not alive(agent, term_ignorer) and not alive(agent, daemon)
    listing = ws.call("proc.list")["processes"]
    assert all(p["state"] != "running" for p in listing)
    with socket.socket() as s:  # the port is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
    got = events_until(ev, lambda m: m["event"] == "sandbox.reset")
    assert ("port.closed", "unexposed") in [(m["event"], m.get("reason")) for m in got]


def test_idle_event(make_agent):
    agent = make_agent(args=["--idle-timeout-ms", "400"])
    ws = agent.ws()
    start = time.monotonic()
    ws.call("subscribe", events=["sandbox.idle"])
    ev = events_until(ws, lambda m: True)[0]
    assert time.monotonic() - start >= 0.35 and ev["idleMs"] == 400
    ws.call("ping")  # activity: idle again later, once
    start = time.monotonic()
    events_until(ws, lambda m: True)
    assert time.monotonic() - start >= 0.35
    # a process writing output is activity
    ws.call("exec", cmd="for i in 1 2 3 4 5 6 7 8; do echo tick; sleep 0.1; done", background=True)
    start = time.monotonic()
    events_until(ws, lambda m: True)
    assert time.monotonic() - start >= 1.0


def test_hard_timeout_and_extend(make_agent):
    agent = make_agent()
    ws = agent.ws()
    ws.call("subscribe", events=["sandbox.timeout", "sandbox.terminated"])
    expect_error(ws.request("timeout.extend", ms=1000), "INVALID_CONFIG")  # no timeout yet
    conf = ws.call("lifecycle.configure", timeoutMs=500)
    assert conf["timeoutMs"] == 500 and conf["idleTimeoutMs"] == 0
    start = time.monotonic()
    ext = ws.call("timeout.extend", ms=1000)
    assert ext["timeoutMs"] == 1500 and ext["deadline"] - time.time() * 1000 > 1000
    got = events_until(ws, lambda m: m["event"] == "sandbox.terminated")
    assert [m["event"] for m in got] == ["sandbox.timeout", "sandbox.terminated"]
    assert got[1]["reason"] == "timeout" and 1.3 <= time.monotonic() - start < 4.0
    assert agent.proc.wait(timeout=5) == 0


def test_timeout_from_configuration(make_agent):
    agent = make_agent(args=["--timeout-ms", "700"])
    assert agent.proc.wait(timeout=5) == 0
    assert any('"sandbox.timeout"' in line for line in agent.log_lines())


def test_lifecycle_bad_input(agent):
    ws = agent.ws()
    expect_error(ws.request("shutdown", graceMs=-1), "INVALID_CONFIG")
    expect_error(ws.request("shutdown", graceMs=10**9), "INVALID_CONFIG")
    expect_error(ws.request("sandbox.reset", keepPaths="x"), "INVALID_CONFIG")
    expect_error(ws.request("sandbox.reset", keepPaths=[""]), "INVALID_CONFIG")
    expect_error(ws.request("lifecycle.configure", timeoutMs=-5), "INVALID_CONFIG")
    expect_error(ws.request("lifecycle.configure", idleTimeoutMs=10**15), "INVALID_CONFIG")
    expect_error(ws.request("timeout.extend"), "INVALID_CONFIG")
    assert ws.call("ping")["pong"]


# ---- found in review ----

def test_shutdown_during_a_reset_ends_the_reset(agent):
    ws = agent.ws()
    ws.call("subscribe", events=["sandbox.*"])
    stubborn(agent)
    rid = ws.next_id
    ws.next_id += 1
    ws.send({"id": rid, "op": "sandbox.reset", "graceMs": 3000})  # the stubborn processes hold it for 3 s
    time.sleep(0.2)
    assert agent.ws().call("shutdown", graceMs=300) == {"graceMs": 300}
    got = []
    ws.sock.settimeout(5)
    with pytest.raises(Closed):
        while True:
            got.append(ws.recv_msg())
    replies = [m for m in got if m.get("type") == "reply" and m.get("id") == rid]
    events = [m["event"] for m in got if m.get("type") == "event"]
    assert len(replies) == 1 and replies[0]["error"]["code"] == "UNAVAILABLE", got
    assert "sandbox.reset" not in events and events[-1] == "sandbox.terminated", events
    assert [m for m in got if m.get("event") == "sandbox.terminated"][0]["killed"] >= 2
    assert agent.proc.wait(timeout=5) == 0


def test_nothing_follows_sandbox_terminated(make_agent):
    agent = make_agent(args=["--metrics-interval-ms", "100", "--cost-interval-ms", "100"])
    ws = agent.ws()
    ws.call("subscribe", events=["metrics", "cost.runtime", "sandbox.terminated"])
    time.sleep(0.25)  # a few of each
    agent.ws().call("shutdown", graceMs=0)
    after, seen_terminated = [], False
    ws.sock.settimeout(5)
    try:
        while True:
            m = ws.recv_msg()
            if seen_terminated and m.get("type") == "event":
                after.append(m["event"])
            seen_terminated = seen_terminated or m.get("event") == "sandbox.terminated"
    except Closed:
        pass
    assert seen_terminated and after == [], after
    assert agent.proc.wait(timeout=5) == 0


SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
/* CLOCK_REALTIME and CLOCK_BOOTTIME ahead by the milliseconds in the file $CLOCK_JUMP_FILE: a VM that was
 * frozen and thawed, as the agent sees it. */
int clock_gettime(clockid_t id, struct timespec *ts)
{
	static int (*real)(clockid_t, struct timespec *);
	if (!real)
		real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
	int rc = real(id, ts);
	const char *path = getenv("CLOCK_JUMP_FILE");
	FILE *f = path && (id == CLOCK_REALTIME || id == CLOCK_BOOTTIME) ? fopen(path, "r") : NULL;
	long ms = 0;
	if (f) {
		if (fscanf(f, "%ld", &ms) != 1)
			ms = 0;
		fclose(f);
	}
	ts->tv_sec += ms / 1000 + (ts->tv_nsec + ms % 1000 * 1000000) / 1000000000;
	ts->tv_nsec = (ts->tv_nsec + ms % 1000 * 1000000) % 1000000000;
	return rc;
}
"""


@pytest.fixture
def clock_shim(tmp_path):
    from conftest import AGENT_BIN
    if subprocess.run(["ldd", AGENT_BIN], capture_output=True).returncode != 0:
        pytest.skip("the clock is moved by an LD_PRELOAD library: the dynamic (dev) build only")
    src, lib = tmp_path / "jump.c", tmp_path / "jump.so"
    src.write_text(SHIM)
    r = subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", str(lib), str(src), "-ldl"], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    jump = tmp_path / "jump_ms"
    jump.write_text("0")
    return lib, jump


def test_a_clock_jump_is_a_resume(make_agent, clock_shim):
    lib, jump = clock_shim
    agent = make_agent(env={"LD_PRELOAD": str(lib), "CLOCK_JUMP_FILE": str(jump),
                            "ASAN_OPTIONS": "verify_asan_link_order=0:detect_leaks=1:exitcode=23"})
    ws = agent.ws()
    ws.call("subscribe", events=["sandbox.resumed"])
    jump.write_text("1500")  # under the 2 s threshold: a clock correction, not a pause
    assert ws.call("ping")["pong"]
    jump.write_text("11500")  # frozen for 10 s, seen at the next activity (this ping)
    ws.send({"id": 900, "op": "ping"})
    ws.sock.settimeout(5)
    ev, reply = ws.recv_msg(), ws.recv_msg()
    assert ev["detectedBy"] == "clock" and 9900 <= ev["pausedMs"] <= 10100, ev
    assert reply["id"] == 900 and reply["result"]["pong"], reply
    # pause.prepare, frozen 5 s, then resume: the request's own arrival reveals the jump, and its reply says so
    ws.call("pause.prepare")
    jump.write_text("16500")
    rid = ws.next_id
    ws.send({"id": rid, "op": "resume"})
    ws.sock.settimeout(5)
    ev, reply = ws.recv_msg(), ws.recv_msg()
    assert ev["event"] == "sandbox.resumed" and ev["detectedBy"] == "clock" and 4900 <= ev["pausedMs"] <= 5100, ev
    assert reply["id"] == rid and reply["result"]["pausedMs"] == ev["pausedMs"], reply
    assert ws.call("resume")["pausedMs"] is None  # one event per pause
