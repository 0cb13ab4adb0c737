"""The debug client subcommands against a running agent: output for people and --json, exit codes, errors on
stderr with their protocol code."""
import json
import os
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
    assert doc["result"]["pid"] == agent.ns_pid and doc["rttMs"] >= 0
    r = client("info", "--url", url(agent), "--token", TOKEN)
    assert f"pid: {agent.ns_pid}" in r.stdout and "eventBackend: epoll" in r.stdout


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


def env_for(agent):
    return {"RUNRA_AGENT_URL": url(agent), "RUNRA_AGENT_TOKEN": TOKEN}


def test_exec_streams_and_exits_with_the_process_code(agent):
    r = client("exec", "--", "echo out; echo err >&2; exit 7", env=env_for(agent))
    assert r.returncode == 7 and r.stdout == "out\n" and r.stderr == "err\n"
    r = client("exec", "--", "kill -TERM $$", env=env_for(agent))
    assert r.returncode == 128 + 15


def test_exec_argv_cwd_env_timeout(agent, tmp_path):
    r = client("exec", "--cwd", str(tmp_path), "--env", "A=1 2", "--", "sh", "-c", 'echo "$A" $(pwd)',
               env=env_for(agent))
    assert r.returncode == 0 and r.stdout == f"1 2 {tmp_path}\n"
    r = client("exec", "--timeout", "200", "--", "sleep 10", env=env_for(agent))
    assert r.returncode == 128 + 15


def test_exec_forwards_stdin(agent):
    data = os.urandom(300_000)
    r = subprocess.run([AGENT_BIN, "exec", "-i", "--", "cat"], input=data, capture_output=True, timeout=30,
                       env={"PATH": "/usr/bin:/bin", **env_for(agent)})
    assert r.returncode == 0 and r.stdout == data


def test_exec_tty(agent):
    r = client("exec", "--tty", "--", "tty", env=env_for(agent))
    assert r.returncode == 0 and r.stdout.startswith("/dev/pts/")


def test_ps_and_kill(agent):
    ws = agent.ws()
    ws.call("exec", cmd="sleep 1000", background=True, procId="cli-bg")
    r = client("ps", env=env_for(agent))
    assert r.returncode == 0 and "cli-bg" in r.stdout and "running" in r.stdout
    procs = json.loads(client("ps", "--json", env=env_for(agent)).stdout)["result"]["processes"]
    assert [p["proc"] for p in procs] == ["cli-bg"]
    r = client("kill", "-KILL", "cli-bg", env=env_for(agent))
    assert r.returncode == 0 and "SIGKILL" in r.stdout
    assert ws.call("proc.wait", proc="cli-bg", timeoutMs=5000)["status"]["signal"] == "SIGKILL"
    r = client("kill", "nope", env=env_for(agent))
    assert r.returncode == 1 and "NOT_FOUND" in r.stderr


def test_exec_usage_errors():
    assert client("exec").returncode == 2
    assert client("exec", "--bogus", "--", "true").returncode == 2
    assert client("kill").returncode == 2
    r = client("exec", "--help")
    assert r.returncode == 0 and "usage: runra-agent exec" in r.stdout


def test_file_commands(agent, tmp_path):
    env = env_for(agent)
    src = tmp_path / "src.bin"
    data = os.urandom(3_000_000)
    src.write_bytes(data)
    r = client("cp", str(src), ":up/src.bin", env=env)
    assert r.returncode == 1 and "NOT_FOUND" in r.stderr  # no such directory on the agent yet
    assert client("mkdir", "-p", "up", env=env).returncode == 0
    r = client("cp", str(src), ":up/src.bin", env=env)
    assert r.returncode == 0 and "3000000 bytes" in r.stdout
    r = client("ls", "up", env=env)
    assert r.returncode == 0 and "src.bin" in r.stdout and "3000000" in r.stdout
    back = tmp_path / "back.bin"
    r = client("cp", ":up/src.bin", str(back), env=env)
    assert r.returncode == 0 and back.read_bytes() == data
    r = subprocess.run([AGENT_BIN, "cat", "up/src.bin"], capture_output=True, timeout=30,
                       env={"PATH": "/usr/bin:/bin", **env})
    assert r.returncode == 0 and r.stdout == data
    assert client("mv", "up/src.bin", "up/moved.bin", env=env).returncode == 0
    assert client("rm", "up", env=env).returncode == 1  # not empty
    assert client("rm", "-r", "up", env=env).returncode == 0
    r = client("ls", env=env)
    assert r.returncode == 0 and r.stdout == ""
    missing = tmp_path / "missing.bin"
    r = client("cp", ":no/such/file", str(missing), env=env)
    assert r.returncode == 1 and "NOT_FOUND" in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["back.bin", "src.bin"]  # no partial file left behind
    assert client("cp", "a", "b", env=env).returncode == 2  # neither side on the agent
    assert client("cp", ":a", ":b", env=env).returncode == 2
