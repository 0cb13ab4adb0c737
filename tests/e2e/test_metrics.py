"""Metrics: the metrics op, the periodic metrics event and cost.runtime events."""
import os
import subprocess
import time

from conftest import AGENT_BIN


def events(ws, name, count, timeout=10.0):
    got, deadline = [], time.monotonic() + timeout
    while len(got) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; got {got}"
        ws.sock.settimeout(left)
        m = ws.recv_msg()
        if m.get("type") == "event" and m["event"] == name:
            got.append((time.monotonic(), m))
    return got


def test_metrics_fields_are_plausible(agent):
    m = agent.ws().call("metrics")
    assert m["cpu"]["cores"] == os.cpu_count() and m["cpu"]["usageMs"] >= 0 and 0 <= m["cpu"]["percent"]
    mem = m["memory"]
    assert mem["source"] in ("cgroup2", "cgroup1", "proc") and 0 < mem["usedBytes"] <= mem["limitBytes"]
    disk = m["disk"]
    assert disk["path"] == agent.workdir and 0 < disk["freeBytes"] <= disk["totalBytes"]
    assert disk["usedBytes"] == disk["totalBytes"] - disk["freeBytes"]
    assert m["network"]["rxBytes"] >= 0 and m["network"]["txBytes"] >= 0
    assert m["processes"] == 0
    assert 100 << 10 < m["agent"]["rssBytes"] < 256 << 20 and m["agent"]["fds"] >= 3 and m["agent"]["uptimeMs"] >= 0


def test_memory_and_processes_rise_with_a_workload(agent):
    ws = agent.ws()
    before = ws.call("metrics")
    ws.call("exec", argv=["python3", "-c", "import time; b = bytearray(400 << 20); b[::4096] = b'x' * (len(b) // 4096); "
                                            "print('ready', flush=True); time.sleep(60)"], background=True, procId="hog")
    out = b""
    attach = agent.ws()
    attach.send({"id": 1, "op": "proc.attach", "proc": "hog"})
    while b"ready" not in out:
        m = attach.recv_msg()
        if m.get("type") == "stream":
            out += m["data"]
    after = ws.call("metrics")
    assert after["memory"]["usedBytes"] - before["memory"]["usedBytes"] > 200 << 20
    assert after["processes"] >= 1
    assert after["cpu"]["usageMs"] > before["cpu"]["usageMs"]
    ws.call("proc.kill", proc="hog")


def test_periodic_metrics_events(agent):
    ws = agent.ws()
    ws.call("subscribe", events=["metrics"])
    conf = ws.call("lifecycle.configure", metricsIntervalMs=200)
    assert conf["metricsIntervalMs"] == 200 and conf["costIntervalMs"] == 0
    got = events(ws, "metrics", 3)
    gaps = [b[0] - a[0] for a, b in zip(got, got[1:])]
    assert all(0.1 < g < 0.6 for g in gaps), gaps
    assert {"cpu", "memory", "disk", "network", "processes", "agent"} <= got[0][1].keys()
    ws.call("lifecycle.configure", metricsIntervalMs=0)
    ws.sock.settimeout(0.6)
    try:
        while True:
            m = ws.recv_msg()
            assert m.get("event") != "metrics" or m["seq"] <= got[-1][1]["seq"] + 1, m
    except TimeoutError:
        pass


def test_cost_runtime_events(make_agent):
    agent = make_agent(args=["--cost-interval-ms", "300", "--cost-rates", "cpu=2,memory=0.001,runtime=1"])
    ws = agent.ws()
    ws.call("subscribe", events=["cost.runtime"])
    ws.call("exec", argv=["sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"], background=True)
    (_, first), (_, second) = events(ws, "cost.runtime", 2)
    for e in (first, second):
        assert 250 <= e["intervalMs"] <= 1000 and e["runtimeMs"] > 0
        assert e["cpuSeconds"] >= 0 and e["memoryMiBSeconds"] > 0
        c = e["cost"]
        assert abs(c["cpu"] - 2 * e["cpuSeconds"]) < 1e-9 and abs(c["memory"] - 0.001 * e["memoryMiBSeconds"]) < 1e-9
        assert abs(c["runtime"] - e["intervalMs"] / 1000) < 0.01
        assert abs(c["total"] - (c["cpu"] + c["memory"] + c["runtime"])) < 1e-9
    assert second["runtimeMs"] > first["runtimeMs"]


def test_cost_without_rates_has_no_price(make_agent):
    agent = make_agent(args=["--cost-interval-ms", "200"])
    ws = agent.ws()
    ws.call("subscribe", events=["cost.runtime"])
    (_, e), = events(ws, "cost.runtime", 1)
    assert e["cost"] is None


def test_bad_metrics_configuration():
    for args in (["--cost-rates", "cpu=x"], ["--cost-rates", "gpu=1"], ["--cost-interval-ms", "5"],
                 ["--metrics-interval-ms", "-1"]):
        r = subprocess.run([AGENT_BIN, "--insecure-no-auth", *args], capture_output=True, timeout=10)
        assert r.returncode == 2 and b"invalid configuration" in r.stderr, (args, r.stderr)


def test_the_last_partial_interval_is_billed_at_shutdown(make_agent):
    agent = make_agent(args=["--cost-interval-ms", "600000", "--cost-rates", "runtime=1"])
    ws = agent.ws()
    ws.call("subscribe", events=["cost.runtime", "sandbox.terminated"])
    time.sleep(0.3)
    ws.call("shutdown", graceMs=0)
    got = []
    while not got or got[-1]["event"] != "sandbox.terminated":
        m = ws.recv_msg()
        if m.get("type") == "event":
            got.append(m)
    assert [m["event"] for m in got] == ["cost.runtime", "sandbox.terminated"]
    assert 250 <= got[0]["intervalMs"] < 5000 and abs(got[0]["cost"]["runtime"] - got[0]["intervalMs"] / 1000) < 0.01
    assert agent.proc.wait(timeout=5) == 0
