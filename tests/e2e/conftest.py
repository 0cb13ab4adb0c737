"""Fixtures that run the real agent binary (RUNRA_AGENT_BIN: the static release or the ASan+UBSan dev build)
on a free loopback port, and check after every test that it exited cleanly and logged only JSON."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from wsclient import WS, http_get

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AGENT_BIN = os.path.abspath(os.environ.get("RUNRA_AGENT_BIN", os.path.join(REPO, "build", "dev", "runra-agent")))
STATIC = os.environ.get("RUNRA_AGENT_STATIC") == "1"
# RUNRA_E2E_PID1=1: every agent runs as PID 1 of its own PID namespace (unshare --pid --fork)
PID1 = os.environ.get("RUNRA_E2E_PID1") == "1"
TOKEN = "test-token-3f9a1c"
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_pid(parent, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{parent}/task/{parent}/children") as f:
                kids = f.read().split()
            if kids:
                return int(kids[0])
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    raise RuntimeError("unshare did not start the agent")


def wait_healthy(port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"agent exited with {proc.returncode} before serving")
        try:
            status, _, _ = http_get(port, "/healthz", timeout=1.0)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError("agent did not become healthy")


class Agent:
    def __init__(self, args=(), env=None, token=TOKEN, port=None, workdir=None, wait=True, prefix=()):
        self.port = port or free_port()
        self.tmp = tempfile.TemporaryDirectory(prefix="runra-e2e-")
        self.workdir = workdir or os.path.join(self.tmp.name, "workspace")
        self.token = token
        self.stderr_path = os.path.join(self.tmp.name, "stderr.log")
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    # a small quarantine, so that memory bounds mean the same under ASan
                    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=23:quarantine_size_mb=4",
                    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
        if token is not None:
            full_env["RUNRA_AGENT_TOKEN"] = token
        full_env.update(env or {})
        # prefix: a command that execs the agent (e.g. to set a limit first)
        self.args = [*prefix, AGENT_BIN, "--listen", f"127.0.0.1:{self.port}", "--workdir", self.workdir, *args]
        if PID1:  # --kill-child: the agent never outlives the test
            self.args = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", *self.args]
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.args, env=full_env, stdout=subprocess.DEVNULL, stderr=self.stderr)
        self.pid = child_pid(self.proc.pid) if PID1 else self.proc.pid  # the agent itself, as seen from here
        self.ns_pid = 1 if PID1 else self.pid  # the agent as it sees itself
        if wait:
            wait_healthy(self.port, self.proc)

    def ws(self, **kw):
        kw.setdefault("token", self.token)
        return WS.connect(self.port, **kw)

    def log_lines(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace").splitlines()

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Signals the agent and returns (exit code, seconds it took)."""
        if self.proc.poll() is not None:
            return self.proc.returncode, 0.0
        start = time.monotonic()
        os.kill(self.pid, sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"agent did not exit within {timeout}s of signal {sig}")
        return code, time.monotonic() - start

    def check_clean_exit(self):
        code, _ = self.stop()
        self.stderr.close()
        lines = self.log_lines()
        reports = [l for l in lines if any(m in l for m in SANITIZER_MARKERS)]
        assert not reports, "sanitizer report:\n" + "\n".join(lines[-60:])
        assert code == 0, f"agent exited {code}; log tail:\n" + "\n".join(lines[-30:])
        for line in lines:
            record = json.loads(line)  # every log line is one JSON object
            assert {"ts", "level", "event", "msg"} <= record.keys(), line
        self.tmp.cleanup()


@pytest.fixture
def agent():
    a = Agent()
    yield a
    a.check_clean_exit()


@pytest.fixture
def make_agent():
    started = []

    def start(*args, **kw):
        a = Agent(*args, **kw)
        started.append(a)
        return a

    yield start
    for a in started:
        a.check_clean_exit()
