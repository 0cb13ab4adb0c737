"""Configuration: bad settings are a clear message and exit code 2 before anything starts."""
import os
import subprocess

import pytest

from conftest import AGENT_BIN, TOKEN, Agent, free_port


def run(args, env=None, timeout=10):
    full = {"PATH": "/usr/bin:/bin", **(env or {})}
    return subprocess.run([AGENT_BIN, *args], env=full, capture_output=True, timeout=timeout, text=True)


@pytest.mark.parametrize("args,env,fragment", [
    ([], {}, "a token is required"),
    (["--listen", "nonsense"], {"RUNRA_AGENT_TOKEN": "t"}, "--listen"),
    (["--listen", "127.0.0.1:99999"], {"RUNRA_AGENT_TOKEN": "t"}, "--listen"),
    (["--listen", "unix:relative"], {"RUNRA_AGENT_TOKEN": "t"}, "absolute path"),
    (["--log-level", "loud"], {"RUNRA_AGENT_TOKEN": "t"}, "--log-level"),
    ([], {"RUNRA_AGENT_TOKEN": "t", "RUNRA_AGENT_LOG_LEVEL": "loud"}, "--log-level"),
    (["--max-message-bytes", "10"], {"RUNRA_AGENT_TOKEN": "t"}, "--max-message-bytes"),
    (["--max-connections", "0"], {"RUNRA_AGENT_TOKEN": "t"}, "--max-connections"),
    (["--workdir", "relative/dir"], {"RUNRA_AGENT_TOKEN": "t"}, "--workdir"),
    (["--token-file", "/nonexistent/token"], {}, "--token-file"),
    (["--bogus"], {"RUNRA_AGENT_TOKEN": "t"}, "unknown"),
    (["stray"], {"RUNRA_AGENT_TOKEN": "t"}, "unknown command"),
    (["--insecure-no-auth", "--listen", "vsock:5000"], {}, "vsock"),
    (["--workdir", "/proc/self/nope"], {"RUNRA_AGENT_TOKEN": "t"}, "workdir"),
])
def test_bad_configuration_exits_2(args, env, fragment):
    if "--workdir" not in args:
        args = [*args, "--workdir", "/tmp/runra-cfg-test"]
    r = run(args, env)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert fragment in r.stderr, r.stderr


def test_help_and_version():
    r = run(["--help"])
    assert r.returncode == 0
    for word in ("--listen", "RUNRA_AGENT_TOKEN", "--token-file", "--insecure-no-auth", "--workdir",
                 "--log-level", "RUNRA_AGENT_WORKDIR", "RUNRA_AGENT_LOG_LEVEL", "49200"):
        assert word in r.stdout, word
    v = run(["version"])
    assert v.returncode == 0 and v.stdout.startswith("runra-agent ")


def test_token_file_and_workdir_creation(make_agent, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("file-token\n")
    workdir = tmp_path / "deep" / "work" / "dir"
    a = make_agent(args=["--token-file", str(token_file)], token=None, workdir=str(workdir))
    assert workdir.is_dir()
    ws = a.ws(token="file-token")
    assert ws.call("info")["workdir"] == str(workdir)


def test_flags_override_environment(make_agent):
    a = make_agent(env={"RUNRA_AGENT_MAX_MESSAGE_BYTES": "2048"}, args=["--max-message-bytes", "4096"])
    assert a.ws().ready["limits"]["maxMessageBytes"] == 4096


def test_environment_settings_apply(make_agent):
    a = make_agent(env={"RUNRA_AGENT_MAX_MESSAGE_BYTES": "2048", "RUNRA_AGENT_LOG_LEVEL": "debug"})
    assert a.ws().ready["limits"]["maxMessageBytes"] == 2048


def test_insecure_no_auth_forces_loopback(make_agent):
    port = free_port()
    a = make_agent(args=["--insecure-no-auth", "--listen", f"0.0.0.0:{port}"], token=None, port=port)
    ws = a.ws(token=None)
    assert ws.call("info")["listen"] == f"127.0.0.1:{port}"
