"""The debug client subcommands against a running agent: output for people and --json, exit codes, errors on
stderr with their protocol code."""
import json
import subprocess

from conftest import AGENT_BIN, TOKEN, free_port


def client(*args, env=None):
    full = {"PATH": "/usr/bin:/bin", **(env or {})}
    return subprocess.run([AGENT_BIN, *args], env=full, capture_output=True, text=True, timeout=30)


def url(agent):
    return f"ws://127.0.0.1:{agent.port}"


def test_health(agent):
    r = client("health", "--url", url(agent))
    assert r.returncode == 0 and r.stdout.startswith("healthy: "), r
    r = client("health", "--url", url(agent), "--json")
    assert json.loads(r.stdout)["status"] == "ok"


def test_ping_and_info(agent):
    r = client("ping", "--url", url(agent), "--token", TOKEN)
    assert r.returncode == 0 and r.stdout.startswith("pong from"), r
    r = client("info", "--json", env={"RUNRA_AGENT_URL": url(agent), "RUNRA_AGENT_TOKEN": TOKEN})
    assert r.returncode == 0, r
    doc = json.loads(r.stdout)
    assert doc["result"]["pid"] == agent.proc.pid and doc["rttMs"] >= 0
    r = client("info", "--url", url(agent), "--token", TOKEN)
    assert f"pid: {agent.proc.pid}" in r.stdout and "eventBackend: epoll" in r.stdout


def test_wrong_token_is_unauthenticated(agent):
    r = client("ping", "--url", url(agent), "--token", "nope")
    assert r.returncode == 1 and "UNAUTHENTICATED" in r.stderr and r.stdout == ""
    r = client("info", "--url", url(agent), "--token", "nope", "--json")
    assert json.loads(r.stderr)["error"]["code"] == "UNAUTHENTICATED"


def test_unreachable_agent_is_unavailable():
    r = client("ping", "--url", f"ws://127.0.0.1:{free_port()}", "--token", TOKEN)
    assert r.returncode == 1 and "UNAVAILABLE" in r.stderr
    r = client("health", "--url", f"ws://127.0.0.1:{free_port()}")
    assert r.returncode == 1 and "UNAVAILABLE" in r.stderr


def test_bad_usage_exits_2():
    assert client("ping", "--url", "ftp://x").returncode == 2
    assert client("ping", "--bogus").returncode == 2
