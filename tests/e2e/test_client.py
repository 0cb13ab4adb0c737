"""The debug client subcommands against a running agent: output for people and --json, exit codes, errors on
stderr with their protocol code."""
import base64
import hashlib
import json
import os
import queue
import signal
import socket
import struct
import subprocess
import threading
import time

import msgpack
import pytest

from conftest import AGENT_BIN, TOKEN, free_port
from wsclient import OP_BINARY, OP_CLOSE, SUBPROTOCOL, WS, http_get, mask_bytes, parse_headers


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


# ---- watch ----

def strict_json(text):
    """json.loads without Python's extensions (NaN, Infinity), which are not JSON."""
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


class Watch:
    """`runra-agent watch ARGS` in the background; its stdout lines are read by a thread and waited for with a
    deadline. stop_reading_after=N: the read end of the pipe is closed after N lines (a `| head -n N`)."""

    def __init__(self, env, args, stop_reading_after=None):
        self.proc = subprocess.Popen([AGENT_BIN, "watch", *args], env={"PATH": "/usr/bin:/bin", **env},
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, args=(stop_reading_after,), daemon=True).start()

    def _read(self, limit):
        count = 0
        for line in self.proc.stdout:
            count += 1
            if count == limit:
                self.proc.stdout.close()  # before the test sees the line, so later writes meet a closed pipe
            self.lines.put(line)
            if count == limit:
                return
        self.lines.put(None)

    def next(self, timeout=10.0):
        """The next line: strict UTF-8, one JSON object, nothing else."""
        try:
            line = self.lines.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            pytest.fail(f"no line from watch within {timeout:.1f}s")
        assert line is not None, f"watch ended: {self.finish()}"
        assert line.endswith(b"\n") and line.count(b"\n") == 1, line
        doc = strict_json(line.decode("utf-8"))  # raw control characters are refused too
        assert isinstance(doc, dict), line
        return doc

    def until(self, done, timeout=10.0):
        """Lines until done(line) is true for one; returns them all, that one last."""
        got, deadline = [], time.monotonic() + timeout
        while not got or not done(got[-1]):
            got.append(self.next(deadline - time.monotonic()))
        return got

    def finish(self, sig=None, timeout=10.0):
        """(exit status, stderr) once it has ended; sig is sent first."""
        if sig is not None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        err = self.proc.stderr.read().decode(errors="replace")
        self.proc.stderr.close()
        return code, err


@pytest.fixture
def watch():
    """start(agent, *args, stop_reading_after=None) -> Watch; every one still running is killed at the end."""
    started = []

    def start(agent, *args, **kw):
        w = Watch(env_for(agent), args, **kw)
        started.append(w)
        return w

    yield start
    for w in started:
        if w.proc.poll() is None:
            w.proc.kill()
        w.proc.wait()


def current_seq(agent):
    ws = agent.ws()
    seq = ws.call("subscribe", events=["*"])["seq"]
    ws.close()
    return seq


def test_watch_prints_each_event_as_a_json_line(agent, watch):
    # --since the current seq: whether the subscription is in place before the mkdir or not, it is seen
    w = watch(agent, "--type", "file.*", "--since", str(current_seq(agent)))
    os.mkdir(f"{agent.workdir}/d")
    got = [w.next()]  # before f: a file written in a directory not yet watched would come as created only
    with open(f"{agent.workdir}/d/f", "w") as f:
        f.write("abc")
    got += w.until(lambda e: e["event"] == "file.modified")
    assert [(e["event"], e["path"], e["kind"]) for e in got] == [
        ("file.created", f"{agent.workdir}/d", "dir"),
        ("file.created", f"{agent.workdir}/d/f", "file"),
        ("file.modified", f"{agent.workdir}/d/f", "file")]
    for e in got:
        assert e["type"] == "event" and e["watch"] == 1 and isinstance(e["ts"], int) and e["ts"] > 0
        assert list(e)[:4] == ["type", "event", "seq", "ts"]  # the message's own order
    assert got[0]["seq"] < got[1]["seq"] < got[2]["seq"] and got[2]["size"] == 3
    assert w.finish(signal.SIGINT) == (0, "")


def test_watch_since_replays_the_same_event(agent, watch):
    w = watch(agent, "--type", "file.*", "--since", "0")
    os.mkdir(f"{agent.workdir}/a")
    first = w.until(lambda e: e.get("path") == f"{agent.workdir}/a")[-1]
    assert w.finish(signal.SIGTERM) == (0, "")
    again = watch(agent, "--type", "file.created", "--since", str(first["seq"] - 1))
    assert again.next() == first  # the ring's copy: same seq, same ts
    assert again.finish(signal.SIGTERM) == (0, "")


def test_watch_without_since_starts_with_the_next_event(agent, watch):
    observer = agent.ws()
    observer.call("subscribe", events=["file.created"])
    observer.sock.settimeout(10)
    os.mkdir(f"{agent.workdir}/old")
    assert observer.recv_msg()["path"] == f"{agent.workdir}/old"  # it is in the ring now
    w = watch(agent, "--type", "file.created")
    # Nothing tells when its subscription is in place: make new directories until one is seen.
    deadline, n = time.monotonic() + 10, 0
    while w.lines.empty():
        assert time.monotonic() < deadline, "watch printed nothing"
        os.mkdir(f"{agent.workdir}/new{n}")
        n += 1
        time.sleep(0.05)
    assert w.next()["path"].startswith(f"{agent.workdir}/new")
    assert w.finish(signal.SIGINT) == (0, "")


def test_watch_path_and_proc_filters(agent, watch):
    wd = agent.workdir
    since = str(current_seq(agent))
    w = watch(agent, "--path", "keep1", "--path", f"{wd}/keep2", "--since", since)  # relative, then absolute
    for name in ("skip", "keep1", "keep10", "keep2"):
        os.mkdir(f"{wd}/{name}")
    got = w.until(lambda e: e.get("path") == f"{wd}/keep2")
    assert [(e["event"], e["path"]) for e in got] == [("file.created", f"{wd}/keep1"), ("file.created", f"{wd}/keep2")]
    assert w.finish(signal.SIGINT) == (0, "")

    p = watch(agent, "--proc", "two", "--type", "exec.*", "--since", since)
    ws = agent.ws()
    for proc in ("one", "two"):
        ws.run(cmd="exit 3", procId=proc)
    got = p.until(lambda e: e["event"] == "exec.completed")
    assert [e["event"] for e in got] == ["exec.started", "exec.completed"] and got[0]["proc"] == "two"
    assert got[1]["status"]["proc"] == "two" and got[1]["status"]["exitCode"] == 3  # a nested map
    assert p.finish(signal.SIGINT) == (0, "")


def test_watch_prints_a_gap(make_agent, watch):
    agent = make_agent(args=["--event-ring-events", "16"])
    observer = agent.ws()
    observer.call("subscribe", events=["file.created"])
    observer.sock.settimeout(10)
    for i in range(20):
        os.mkdir(f"{agent.workdir}/d{i}")
    while (last := observer.recv_msg())["path"] != f"{agent.workdir}/d19":
        pass
    w = watch(agent, "--since", "0")
    assert w.next() == {"type": "gap", "from": 1, "to": last["seq"] - 16, "reason": "expired"}
    assert w.next()["seq"] == last["seq"] - 15
    assert w.finish(signal.SIGINT) == (0, "")


def test_watch_output_is_valid_json_for_any_name(agent, watch):
    w = watch(agent, "--type", "file.created", "--since", str(current_seq(agent)))
    # é and the emoji are UTF-8; then a lone byte, a surrogate, an overlong NUL, past U+10FFFF, a cut character
    name = b'q"b\\s\nn\t\x01\x7f caf\xc3\xa9 \xf0\x9f\x98\x80 \xff \xed\xa0\x80 \xc0\x80 \xf4\x90\x80\x80 \xe2\x82'
    os.mkdir(os.path.join(agent.workdir.encode(), name))
    e = w.next()
    bad = "\ufffd"
    assert e["path"] == (f"{agent.workdir}/" + 'q"b\\s\nn\t\x01\x7f caf\u00e9 \U0001f600 '
                         + " ".join(bad * n for n in (1, 3, 2, 4, 2)))
    assert w.finish(signal.SIGINT) == (0, "")


def test_watch_ends_quietly_when_its_reader_goes(agent, watch):
    w = watch(agent, "--type", "file.created", "--since", str(current_seq(agent)), stop_reading_after=1)
    os.mkdir(f"{agent.workdir}/one")
    assert w.next()["path"] == f"{agent.workdir}/one"
    os.mkdir(f"{agent.workdir}/two")  # written to a pipe nobody reads: EPIPE
    assert w.finish() == (0, "")


def test_watch_fails_when_the_agent_goes(agent, watch):
    w = watch(agent, "--since", str(current_seq(agent)))
    os.mkdir(f"{agent.workdir}/x")
    w.next()  # connected and subscribed
    assert agent.stop()[0] == 0
    code, err = w.finish()
    assert code == 1 and "UNAVAILABLE" in err and "1001 agent shutting down" in err, err


def test_watch_errors_exit_1(agent):
    env = env_for(agent)
    r = client("watch", "--type", "file.*", "--type", "x" * 60, env=env)
    assert r.returncode == 1 and r.stdout == "" and "INVALID_CONFIG" in r.stderr and "events[1]" in r.stderr, r
    r = client("watch", "--json", "--since", "1000000", env=env)
    assert r.returncode == 1 and json.loads(r.stderr)["error"]["code"] == "INVALID_CONFIG", r
    r = client("watch", "--url", url(agent), "--token", "nope")
    assert r.returncode == 1 and "UNAUTHENTICATED" in r.stderr, r
    r = client("watch", "--url", f"ws://127.0.0.1:{free_port()}", "--token", TOKEN)
    assert r.returncode == 1 and "UNAVAILABLE" in r.stderr, r


def test_watch_usage_errors():
    for args in (["--type"], ["--path"], ["--since"], ["--since", "x"], ["--since", "-1"],
                 ["--since", "18446744073709551615"], ["--since", "1", "--since", "2"], ["--bogus", "1"],
                 ["extra"], ["--type", "*", "--"]):
        r = client("watch", *args)
        assert r.returncode == 2 and "usage: runra-agent watch" in r.stderr, (args, r)
    r = client("watch", "--help")
    assert r.returncode == 0 and "--since SEQ" in r.stdout and "base64" in r.stdout


class FakeAgent:
    """One WebSocket connection played by the test, for shapes the real agent does not send: it says ready,
    keeps the client's first request, answers it with script(request), then closes with 1001 "bye"."""

    def __init__(self, script):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.script = script
        self.request = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.listener.accept()
        self.listener.close()
        self.conn = conn
        with conn:
            conn.settimeout(10)
            ws = WS(conn)
            key = parse_headers(ws._read_until(b"\r\n\r\n"))["sec-websocket-key"]
            accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + f"\r\nSec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n".encode())
            self._send({"type": "ready"})
            self.request = msgpack.unpackb(self._read_client_frame(ws))
            for m in self.script(self.request):
                self._send(m)
            conn.sendall(WS.frame(OP_CLOSE, struct.pack("!H", 1001) + b"bye", mask=False))
            try:
                while conn.recv(4096):  # until the client has answered the close and gone
                    pass
            except OSError:
                pass

    def _send(self, message):
        self.conn.sendall(WS.frame(OP_BINARY, msgpack.packb(message, use_bin_type=True), mask=False))

    @staticmethod
    def _read_client_frame(ws):
        """One frame from the client: masked, as clients must."""
        _, b1 = ws._read_exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", ws._read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", ws._read_exact(8))[0]
        key = ws._read_exact(4)
        return mask_bytes(ws._read_exact(n), key)


def test_watch_request_and_json_conversion_against_a_fake_agent():
    bins = [b"", b"a", b"ab", b"abc", b"\x00\xff\xfe\xfd"]
    event = {"type": "event", "event": "x.test", "seq": 5, "ts": 1795688207410, "bins": bins, "neg": -5, "f": 1.5,
             "nan": float("nan"), "inf": float("-inf"), 7: "an int key", "ext": msgpack.ExtType(5, b"xy"),
             "nested": {"a": [1, None, True, {"b": "\u00e9"}]}}
    fake = FakeAgent(lambda request: [{"type": "reply", "id": request["id"], "result": {"sub": 1, "seq": 9}},
                                      event, {"type": "reply", "id": 99, "result": {}},
                                      {"type": "gap", "from": 3, "to": 9, "reason": "behind"}])
    r = client("watch", "--url", f"ws://127.0.0.1:{fake.port}", "--type", "file.*", "--path", "/a", "--type",
               "exec.started", "--proc", "p", "--path", "b", "--since", "7")
    fake.thread.join(10)
    assert fake.request == {"id": 1, "op": "subscribe", "events": ["file.*", "exec.started"], "paths": ["/a", "b"],
                            "procs": ["p"], "sinceSeq": 7}
    lines = r.stdout.splitlines()
    assert len(lines) == 2, r
    assert strict_json(lines[0]) == {
        "type": "event", "event": "x.test", "seq": 5, "ts": 1795688207410,
        "bins": [base64.b64encode(b).decode() for b in bins], "neg": -5, "f": 1.5, "nan": None, "inf": None,
        "7": "an int key", "ext": {"extType": 5, "data": "eHk="}, "nested": {"a": [1, None, True, {"b": "\u00e9"}]}}
    assert strict_json(lines[1]) == {"type": "gap", "from": 3, "to": 9, "reason": "behind"}
    assert r.returncode == 1 and "UNAVAILABLE" in r.stderr and "1001 bye" in r.stderr, r


# ---- ports, expose, unexpose, forward ----

def start_http_server(agent, port, delay=0.0):
    """python3 -m http.server on 127.0.0.1:port, serving the workdir, in the background through the agent."""
    sleep = f"sleep {delay}; " if delay else ""
    agent.ws().call("exec", cmd=f"{sleep}exec python3 -m http.server {port} --bind 127.0.0.1", background=True,
                    cwd=agent.workdir)


def listed_port(agent, port, timeout=10.0):
    """The port's entry in `ports --json` once it listens."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client("ports", "--json", env=env_for(agent))
        assert r.returncode == 0, r
        for p in json.loads(r.stdout)["result"]["ports"]:
            if p["port"] == port and p["listening"]:
                return p
        time.sleep(0.05)
    pytest.fail(f"port {port} never listened")


def test_ports_lists_a_server_started_through_the_agent(agent):
    port = free_port()
    start_http_server(agent, port)
    p = listed_port(agent, port)
    assert p["addresses"] == ["127.0.0.1"] and p["exposed"] is False and p["url"] is None
    assert p["pid"] > 0 and "http.server" in p["command"]
    r = client("ports", env=env_for(agent))
    assert r.returncode == 0 and r.stderr == "", r
    head, *rows = r.stdout.splitlines()
    assert head.split() == ["PORT", "LISTEN", "EXPOSED", "ADDRESSES", "PID", "URL", "COMMAND"]
    row = next(line for line in rows if line.split()[0] == str(port))
    assert row.split()[:6] == [str(port), "yes", "no", "127.0.0.1", str(p["pid"]), "-"]
    for column in ("LISTEN", "EXPOSED", "ADDRESSES", "PID", "URL"):  # aligned under the header
        assert row[head.index(column) - 1] == " " and row[head.index(column)] != " ", (column, head, row)
    assert row[head.index("COMMAND"):] == p["command"]


def test_expose_wait_prints_the_url_and_unexpose(make_agent):
    agent = make_agent(env={"RUNRA_PORT_URL_TEMPLATE": "https://{port}-{sandbox}.example.dev",
                            "RUNRA_SANDBOX_ID": "sb-9"})
    env, port = env_for(agent), free_port()
    start_http_server(agent, port, delay=0.3)
    r = client("expose", str(port), "--wait", "10000", env=env)  # answered when it listens
    assert r.returncode == 0 and r.stderr == "", r
    assert r.stdout.splitlines() == [f"https://{port}-sb-9.example.dev", f"port {port}: listening on 127.0.0.1"]
    r = client("expose", "--json", str(port), env=env)  # idempotent
    p = json.loads(r.stdout)["result"]["port"]
    assert p["exposed"] and p["listening"] and p["url"] == f"https://{port}-sb-9.example.dev"
    assert [x["exposed"] for x in json.loads(client("ports", "--json", env=env).stdout)["result"]["ports"]
            if x["port"] == port] == [True]
    r = client("unexpose", str(port), env=env)
    assert r.returncode == 0 and r.stdout == f"port {port}: no longer exposed\n", r
    r = client("unexpose", str(port), env=env)
    assert r.returncode == 1 and "NOT_FOUND" in r.stderr and r.stdout == "", r


def test_expose_without_a_template_or_a_listener(agent):
    env, port = env_for(agent), free_port()
    r = client("expose", str(port), env=env)
    assert r.returncode == 0, r
    assert r.stdout.splitlines() == ["exposed, no URL template configured", f"port {port}: not listening yet"]
    r = client("expose", str(port), "--wait", "200", env=env)  # not listening in time is no error
    assert r.returncode == 0 and r.stdout.splitlines()[1] == f"port {port}: not listening (waited 200 ms)", r
    r = client("expose", str(agent.port), env=env)
    assert r.returncode == 1 and "PERMISSION_DENIED" in r.stderr, r


def test_port_commands_usage_errors():
    for args in (["ports", "x"], ["expose"], ["expose", "0"], ["expose", "70000"], ["expose", "80", "81"],
                 ["expose", "80", "--wait"], ["expose", "80", "--wait", "x"], ["expose", "80", "--wait", "-1"],
                 ["expose", "80", "--wait", "3600001"], ["unexpose"], ["unexpose", "x"], ["unexpose", "1", "2"],
                 ["forward"], ["forward", "x"], ["forward", "0"], ["forward", "1:2:3"], ["forward", ":80"],
                 ["forward", "80:"], ["forward", "8080:70000"], ["forward", "70000:80"], ["forward", "80", "81"],
                 ["forward", "--bind", "example.com", "80"], ["forward", "--bind"], ["forward", "80", "--host"],
                 ["forward", "--bogus", "80"], ["metrics", "x"], ["shutdown", "x"], ["shutdown", "--grace-ms"],
                 ["shutdown", "--grace-ms", "x"], ["shutdown", "--grace-ms", "600001"]):
        r = client(*args)
        assert r.returncode == 2 and f"usage: runra-agent {args[0]}" in r.stderr, (args, r)
    r = client("forward", "--help")
    assert r.returncode == 0 and "--bind ADDR" in r.stdout and "4 MiB" in r.stdout, r


class Forward:
    """`runra-agent forward ARGS` in the background; its output lines are read by threads. Starting waits
    for the line that says it listens: .local_port is the port it took."""

    def __init__(self, env, args, timeout=10.0):
        self.proc = subprocess.Popen([AGENT_BIN, "forward", *args], env={"PATH": "/usr/bin:/bin", **env},
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out, self.err = queue.Queue(), queue.Queue()
        for stream, q in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._read, args=(stream, q), daemon=True).start()
        try:
            self.first_line = self.out.get(timeout=timeout)
        except queue.Empty:
            pytest.fail("forward printed nothing")
        self.local_port = None
        if self.first_line:
            words = self.first_line.split()
            self.local_port = int(words[1].rsplit(":", 1)[1]) if words[0] == "forwarding" else None

    @staticmethod
    def _read(stream, q):
        for line in stream:
            q.put(line)
        q.put(None)

    def stderr_line(self, timeout=10.0):
        try:
            line = self.err.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no stderr line from forward within {timeout}s")
        assert line is not None, f"forward ended: {self.finish()}"
        return line

    def finish(self, sig=None, timeout=10.0):
        """(exit status, the rest of stderr) once it has ended; sig is sent first."""
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        rest = []
        while (line := self.err.get(timeout=timeout)) is not None:
            rest.append(line)
        return code, "".join(rest)


@pytest.fixture
def forward():
    """start(agent, *args) -> Forward; every one still running is killed at the end."""
    started = []

    def start(agent, *args):
        f = Forward(env_for(agent), args)
        started.append(f)
        return f

    yield start
    for f in started:
        if f.proc.poll() is None:
            f.proc.kill()
        f.proc.wait()


def test_forward_http_and_concurrent_connections(agent, forward):
    from concurrent.futures import ThreadPoolExecutor
    port, local = free_port(), free_port()
    pages = {f"page{i}.txt": (f"page {i}\n" * (1000 * i + 1)).encode() for i in range(10)}
    for name, body in pages.items():
        with open(os.path.join(agent.workdir, name), "wb") as f:
            f.write(body)
    start_http_server(agent, port)
    listed_port(agent, port)
    fw = forward(agent, f"{local}:{port}")
    assert fw.first_line == f"forwarding 127.0.0.1:{local} -> sandbox port {port}\n"
    status, _, body = http_get(local, "/page3.txt")
    assert status == 200 and body == pages["page3.txt"]
    with ThreadPoolExecutor(10) as pool:  # ten connections at once, each its own tunnel
        got = list(pool.map(lambda name: (name, http_get(local, f"/{name}", timeout=20)), pages))
    for name, (status, _, body) in got:
        assert status == 200 and body == pages[name], name
    assert fw.finish(signal.SIGINT) == (0, "")


def test_forward_twenty_mib_each_way_byte_exact(agent, forward):
    from test_ports import SHA_SINK, SOURCE, pattern, serve, wait_listening
    sink, source = free_port(), free_port()
    serve(agent, SHA_SINK, "127.0.0.1", sink)
    serve(agent, SOURCE, "127.0.0.1", source, 20 << 20)
    wait_listening(agent, sink)
    wait_listening(agent, source)
    up = forward(agent, "--json", f"0:{sink}")  # any free local port: the line says which
    line = json.loads(up.first_line)
    assert line["port"] == sink and line["host"] is None and line["forwarding"].startswith("127.0.0.1:")
    local = int(line["forwarding"].rsplit(":", 1)[1])
    payload = os.urandom(20 << 20)
    with socket.create_connection(("127.0.0.1", local), timeout=30) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)  # the sink answers after our EOF: a half-close carried through
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.decode() == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}"
    down = forward(agent, f"0:{source}")
    with socket.create_connection(("127.0.0.1", down.local_port), timeout=30) as s:
        got = bytearray()
        while chunk := s.recv(1 << 20):
            got += chunk
    assert bytes(got) == pattern(20 << 20)
    assert up.finish(signal.SIGTERM) == (0, "")
    assert down.finish(signal.SIGINT) == (0, "")


def test_forward_a_refused_connection_is_closed_and_forwarding_goes_on(agent, forward):
    port = free_port()
    fw = forward(agent, f"0:{port}")
    with socket.create_connection(("127.0.0.1", fw.local_port), timeout=10) as s:
        assert s.recv(100) == b""  # closed once the agent says nothing listens there
    line = fw.stderr_line()
    assert line.startswith("runra-agent forward: UNAVAILABLE: nothing listens on port") and str(port) in line, line
    with open(os.path.join(agent.workdir, "index.txt"), "w") as f:
        f.write("now it does\n")
    start_http_server(agent, port)
    listed_port(agent, port)
    status, _, body = http_get(fw.local_port, "/index.txt")
    assert status == 200 and body == b"now it does\n"
    assert fw.finish(signal.SIGINT) == (0, "")


# test_ports.SOURCE, but each connection in its own thread, and one that goes away does not end the server.
STURDY_SOURCE = "import socket, sys, struct, threading\n" \
                "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n" \
                "s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(8)\n" \
                "block = b''.join(struct.pack('>I', i) for i in range(1 << 14))\n" \
                "def one(c):\n" \
                "    left = int(sys.argv[3])\n" \
                "    try:\n" \
                "        while left > 0:\n" \
                "            n = min(left, len(block)); c.sendall(block[:n]); left -= n\n" \
                "    except OSError:\n" \
                "        pass\n" \
                "    c.close()\n" \
                "while True:\n" \
                "    c, _ = s.accept(); threading.Thread(target=one, args=(c,)).start()\n"


def test_forward_closes_a_connection_whose_reader_falls_behind(agent, forward):
    from test_ports import pattern, serve, wait_listening
    port, size = free_port(), 32 << 20
    serve(agent, STURDY_SOURCE, "127.0.0.1", port, size)
    wait_listening(agent, port)
    fw = forward(agent, f"0:{port}")
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)  # so the kernel cannot hold it all
    stalled.connect(("127.0.0.1", fw.local_port))
    line = fw.stderr_line(timeout=30)  # nobody reads: the forwarder's buffer for it passes 4 MiB
    assert "RESOURCE_EXHAUSTED" in line and "reads too slowly" in line, line
    stalled.settimeout(30)
    got = bytearray()
    while chunk := stalled.recv(1 << 20):
        got += chunk
    stalled.close()
    assert 0 < len(got) < size and bytes(got) == pattern(len(got))  # what it had is right, then the end
    with socket.create_connection(("127.0.0.1", fw.local_port), timeout=30) as s:  # the next one is whole
        got = bytearray()
        while chunk := s.recv(1 << 20):
            got += chunk
    assert len(got) == size and bytes(got) == pattern(size)
    assert fw.finish(signal.SIGINT) == (0, "")


def test_forward_host(agent, forward):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    from test_ports import SHA_SINK, serve, wait_listening
    port = free_port()
    serve(agent, SHA_SINK, "::1", port)
    wait_listening(agent, port)
    v4 = forward(agent, f"0:{port}", "--host", "127.0.0.1")
    v6 = forward(agent, "--bind", "::1", f"0:{port}", "--host", "::1")
    assert v6.first_line == f"forwarding [::1]:{v6.local_port} -> sandbox port {port} on ::1\n"
    with socket.create_connection(("::1", v6.local_port), timeout=10) as s:
        s.sendall(b"abc")
        s.shutdown(socket.SHUT_WR)
        assert s.recv(1000) == f"3 {hashlib.sha256(b'abc').hexdigest()}".encode()
    with socket.create_connection(("127.0.0.1", v4.local_port), timeout=10) as s:
        assert s.recv(100) == b""  # nothing listens on 127.0.0.1
    assert "UNAVAILABLE: nothing listens on port" in v4.stderr_line()
    assert v4.finish(signal.SIGINT) == (0, "") and v6.finish(signal.SIGINT) == (0, "")


def test_forward_errors(agent):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        r = client("forward", f"{taken.getsockname()[1]}:80", env=env_for(agent))
    assert r.returncode == 1 and "UNAVAILABLE: cannot listen on 127.0.0.1:" in r.stderr and r.stdout == "", r
    r = client("forward", "80", "--url", url(agent), "--token", "nope")
    assert r.returncode == 1 and "UNAUTHENTICATED" in r.stderr, r


# ---- metrics, shutdown ----

def test_metrics(agent):
    r = client("metrics", env=env_for(agent))
    assert r.returncode == 0 and r.stderr == "", r
    lines = r.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["cpu", "memory", "disk", "network", "processes", "agent"], r
    assert " cores " in lines[0] and " used of " in lines[1] and lines[2].endswith(f" free ({agent.workdir})")
    assert lines[3].split()[1:3] == ["rx", lines[3].split()[2]] and lines[4].split() == ["processes:", "0"]
    assert " fds, up " in lines[5]
    m = json.loads(client("metrics", "--json", env=env_for(agent)).stdout)["result"]
    assert set(m) == {"cpu", "memory", "disk", "network", "processes", "agent"}
    assert m["disk"]["path"] == agent.workdir and m["agent"]["fds"] >= 3


def test_shutdown_makes_the_agent_exit(make_agent):
    agent = make_agent()
    agent.ws().call("exec", cmd="sleep 1000", background=True)
    r = client("shutdown", "--grace-ms", "100", env=env_for(agent))
    assert r.returncode == 0 and r.stdout == "shutting down (grace 100 ms)\n" and r.stderr == "", r
    assert agent.proc.wait(timeout=10) == 0
    agent = make_agent()
    r = client("shutdown", "--json", env=env_for(agent))
    assert r.returncode == 0 and json.loads(r.stdout)["result"] == {"graceMs": 2000}, r
    assert agent.proc.wait(timeout=10) == 0
