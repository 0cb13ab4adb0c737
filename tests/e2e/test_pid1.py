"""The agent as PID 1: in its own PID namespace, and in a minimal root filesystem (only the static binary and
busybox). It must come up, serve, reap orphans, survive stray signals and exit 0 on SIGTERM within a second."""
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import AGENT_BIN, SANITIZER_MARKERS, STATIC, TOKEN, child_pid, free_port, wait_healthy
from wsclient import WS

BUSYBOX = "/bin/busybox"


class NamespacedAgent:
    """unshare --pid --fork [...] AGENT; `pid` is the agent's pid as seen from here."""

    def __init__(self, unshare_args, agent_argv, tmp_path):
        self.port = free_port()
        self.log = open(tmp_path / "agent.log", "wb")
        env = {"PATH": "/usr/bin:/bin", "RUNRA_AGENT_TOKEN": TOKEN,
               "ASAN_OPTIONS": "detect_leaks=1:exitcode=23", "UBSAN_OPTIONS": "halt_on_error=1"}
        # --kill-child: should this test die, the agent dies with unshare instead of lingering.
        argv = ["unshare", "--pid", "--fork", "--kill-child", *unshare_args, *agent_argv,
                "--listen", f"127.0.0.1:{self.port}"]
        self.unshare = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        self.pid = child_pid(self.unshare.pid)
        wait_healthy(self.port, self.unshare)

    def ws(self):
        return WS.connect(self.port, token=TOKEN)

    def zombies(self):
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/status") as f:
                    status = dict(line.split(":", 1) for line in f if ":" in line)
            except OSError:
                continue
            if int(status["PPid"]) == self.pid and status["State"].strip().startswith("Z"):
                found.append(int(entry))
        return found

    def stop(self):
        start = time.monotonic()
        os.kill(self.pid, signal.SIGTERM)
        try:
            code = self.unshare.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.unshare.kill()  # --kill-child takes the agent with it
            self.unshare.wait()
            pytest.fail("the agent did not exit within 5 s of SIGTERM")
        return code, time.monotonic() - start

    def close(self):
        """Stops the agent if a test left it running; it must exit 0 and log no sanitizer report."""
        code = self.unshare.returncode if self.unshare.poll() is not None else self.stop()[0]
        self.log.close()
        with open(self.log.name, "rb") as f:
            log = f.read().decode(errors="replace")
        assert not any(m in log for m in SANITIZER_MARKERS), log[-4000:]
        assert code == 0, (code, log[-2000:])


@pytest.fixture
def ns_agent(tmp_path):
    a = NamespacedAgent(["--mount-proc"], [AGENT_BIN, "--workdir", str(tmp_path / "ws")], tmp_path)
    yield a
    a.close()


def orphan_maker(agent_pid, count, root=False):
    """Starts `count` short sleeps in the agent's namespaces whose parent exits at once: they become orphans
    that the agent, as the namespace's init, must reap."""
    sleeps = " ".join(["sleep 0.2 &"] * count)
    nsenter = ["nsenter", "--target", str(agent_pid), "--pid", "--mount"] + (["--root"] if root else [])
    shell = [BUSYBOX, "sh"] if root else ["/bin/sh"]
    subprocess.run([*nsenter, *shell, "-c", f"{sleeps} exit 0"], check=True, timeout=10)


def wait_reaped(ws, agent, expected, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = ws.call("info")
        if info["orphansReaped"] >= expected and not agent.zombies():
            return info
        time.sleep(0.05)
    pytest.fail(f"orphans not reaped: {ws.call('info')['orphansReaped']} < {expected}, zombies {agent.zombies()}")


def test_serves_as_pid1_and_exits_0_on_sigterm(ns_agent):
    info = ns_agent.ws().call("info")
    assert info["pid"] == 1 and info["pid1"] is True
    code, took = ns_agent.stop()
    assert code == 0
    assert took < 1.0, took


def test_reaps_orphans(ns_agent):
    ws = ns_agent.ws()
    orphan_maker(ns_agent.pid, 20)
    wait_reaped(ws, ns_agent, 20)


def test_reaps_1000_orphans_created_at_once(ns_agent):
    ws = ns_agent.ws()
    # the shell starts 1000 sleeps and exits: all of them are orphaned to PID 1 together
    _, _, status, _ = ws.run(cmd="for i in $(seq 1000); do sleep 0.5 & done; exit 0", timeoutMs=60000)
    assert status["exitCode"] == 0
    wait_reaped(ws, ns_agent, 1000, timeout=30)
    assert not ns_agent.zombies()


def test_exec_as_pid1(ns_agent):
    ws = ns_agent.ws()
    out, _, status, _ = ws.run(cmd="echo $$; cat /proc/1/cmdline | tr '\\0' ' '")
    assert status["exitCode"] == 0
    pid_in_ns, cmdline = out.decode().splitlines()
    assert int(pid_in_ns) > 1 and "runra-agent" in cmdline


def test_stray_signals_do_not_kill_pid1(ns_agent):
    ws = ns_agent.ws()
    for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGPIPE, signal.SIGALRM, signal.SIGTSTP,
                signal.SIGTTIN, signal.SIGTTOU, signal.SIGCHLD, signal.SIGWINCH):
        os.kill(ns_agent.pid, sig)
    time.sleep(0.2)
    assert ws.call("ping")["pong"]
    assert ns_agent.unshare.poll() is None


def test_sigterm_from_inside_the_namespace(ns_agent):
    # kill may itself be SIGKILLed by the kernel when the namespace's init exits under it: a race it can
    # lose, not a failure
    r = subprocess.run(["nsenter", "--target", str(ns_agent.pid), "--pid", "--mount", "kill", "-TERM", "1"],
                       timeout=5)
    assert r.returncode in (0, -9), r.returncode
    assert ns_agent.unshare.wait(timeout=5) == 0


def test_poweroff_on_exit_as_pid1(tmp_path):
    # In a PID namespace, reboot(RB_POWER_OFF) by its init ends the namespace: the kernel kills the init with
    # SIGINT (reboot(2)), which unshare passes on as its own death by SIGINT. In a VM it powers the VM off.
    a = NamespacedAgent(["--mount-proc"], [AGENT_BIN, "--workdir", str(tmp_path / "ws"), "--poweroff-on-exit", "yes"],
                        tmp_path)
    ws = a.ws()
    ws.call("subscribe", events=["sandbox.terminated"])
    assert ws.call("shutdown", graceMs=500) == {"graceMs": 500}
    ws.sock.settimeout(5)
    terminated = ws.recv_msg()
    assert terminated["event"] == "sandbox.terminated" and terminated["reason"] == "request", terminated
    code = a.unshare.wait(timeout=5)
    a.log.close()
    with open(a.log.name, "rb") as f:
        log = f.read().decode(errors="replace")
    assert code in (-signal.SIGINT, 128 + signal.SIGINT), (code, log[-2000:])
    assert '"event":"agent.poweroff"' in log and "failed" not in log, log[-2000:]
    assert not any(m in log for m in SANITIZER_MARKERS), log[-4000:]


@pytest.fixture
def rootfs(tmp_path):
    if not STATIC:
        pytest.skip("the minimal root filesystem holds only a static binary")
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    shutil.copy2(AGENT_BIN, root / "runra-agent")
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for tool in ("sh", "sleep", "kill"):
        os.symlink("busybox", root / "bin" / tool)
    return root


def test_minimal_rootfs_as_pid1(rootfs, tmp_path):
    assert sorted(os.listdir(rootfs)) == ["bin", "runra-agent"]
    a = NamespacedAgent(["--mount", f"--root={rootfs}"], ["/runra-agent"], tmp_path)
    try:
        ws = a.ws()
        info = ws.call("info")
        assert info["pid"] == 1 and info["workdir"] == "/workspace"
        assert os.path.isdir(rootfs / "workspace")
        with open(f"/proc/{a.pid}/mountinfo") as f:
            mounts = {line.split(" - ")[0].split()[4]: line.split(" - ")[1].split()[0] for line in f}
        assert mounts.get("/proc") == "proc"
        assert mounts.get("/tmp") == "tmpfs"
        assert mounts.get("/dev/pts") == "devpts"
        assert os.path.exists(f"/proc/{a.pid}/root/dev/urandom")
        orphan_maker(a.pid, 10, root=True)
        wait_reaped(ws, a, 10)
        out, _, status, _ = ws.run(cmd="tty", pty={"cols": 80, "rows": 24})
        assert status["exitCode"] == 0 and out.startswith(b"/dev/pts/")  # devpts mounted by the agent
        out, _, _, _ = ws.run(argv=["/bin/busybox", "ls", "/proc/self/fd"])
        assert sorted(int(x) for x in out.split()) == [0, 1, 2, 3]
        code, took = a.stop()
        assert code == 0 and took < 1.0, (code, took)
    finally:
        a.close()


def kernel_at_least(major, minor):
    release = os.uname().release.split(".")
    return (int(release[0]), int(re.match(r"\d+", release[1]).group())) >= (major, minor)


@pytest.mark.skipif(not kernel_at_least(6, 14), reason="pid_max of its own per PID namespace: Linux 6.14")
def test_a_reused_pid_is_not_signalled_for_an_old_process(tmp_path):
    # The pids of the agent's namespace wrap at 1200 (its own pid_max): an ended process's id is given to a
    # new process, and a proc.kill of the old one must not reach the new one.
    with open("/proc/sys/kernel/pid_max") as f:
        host_pid_max = f.read()
    set_max = ["/bin/sh", "-c", 'echo 1200 > /proc/sys/kernel/pid_max && exec "$@"', "sh"]
    a = NamespacedAgent(["--mount-proc"], [*set_max, AGENT_BIN, "--workdir", str(tmp_path / "ws")], tmp_path)
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            assert f.read() == host_pid_max  # the namespace's own, not the machine's
        ws = a.ws()
        ws.sock.settimeout(60)
        # past 300 first: after a wrap the kernel starts again at 300
        ws.run(argv=["/usr/bin/python3", "-c", "import os\nfor _ in range(400):\n    p = os.fork()\n"
                     "    if p == 0: os._exit(0)\n    os.waitpid(p, 0)\n"])
        _, _, st, _ = ws.run(cmd="true", procId="old")
        old = st["pid"]
        wrap = ("import os\nwhile True:\n    p = os.fork()\n    if p == 0: os._exit(0)\n    os.waitpid(p, 0)\n"
                f"    if p == {old} - 1: break\n")
        _, err, st, _ = ws.run(argv=["/usr/bin/python3", "-c", wrap])
        assert st["exitCode"] == 0, err
        new = ws.call("exec", cmd="sleep 100", procId="new", background=True)["status"]
        assert new["pid"] == old  # the kernel gave the id out again
        r = ws.request("proc.kill", proc="old", signal="KILL")
        assert r["error"]["code"] == "NOT_FOUND", r
        time.sleep(0.2)
        assert ws.call("proc.get", proc="new")["status"]["state"] == "running"
    finally:
        with open("/proc/sys/kernel/pid_max") as f:
            if f.read() != host_pid_max:  # should the kernel ever share it: put it back at once
                with open("/proc/sys/kernel/pid_max", "w") as w:
                    w.write(host_pid_max)
        a.close()
