"""File ops over the real WebSocket: stat, exists, mkdir, delete (symlink-safe), move, chmod, list with
pagination, read in ranges, atomic write; bad input answered with documented codes."""
import os
import socket
import stat as st_mod
import subprocess
import time

import pytest

from conftest import AGENT_BIN, TOKEN, free_port


def expect_error(reply, code):
    assert reply["type"] == "reply" and reply["error"]["code"] == code, reply


def test_write_then_read_binary_exact(agent):
    ws = agent.ws()
    data = bytes(range(256)) * 1000
    r = ws.call("file.write", path="bin.dat", data=data)
    assert r == {"path": os.path.join(agent.workdir, "bin.dat"), "written": len(data), "created": True}
    got = ws.call("file.read", path="bin.dat")
    assert got["data"] == data and got["size"] == len(data) and got["eof"] is True
    with open(os.path.join(agent.workdir, "bin.dat"), "rb") as f:
        assert f.read() == data


def test_empty_and_text_files(agent):
    ws = agent.ws()
    ws.call("file.write", path="empty", data=b"")
    assert ws.call("file.read", path="empty")["data"] == b""
    ws.call("file.write", path="text.txt", data="héllo\n")
    assert ws.call("file.read", path="text.txt")["data"] == "héllo\n".encode()


def test_read_ranges(agent):
    ws = agent.ws()
    ws.call("file.write", path="r", data=b"0123456789")
    assert ws.call("file.read", path="r", offset=3, length=4)["data"] == b"3456"
    last = ws.call("file.read", path="r", offset=8, length=100)
    assert last["data"] == b"89" and last["eof"] is True
    past = ws.call("file.read", path="r", offset=50)
    assert past["data"] == b"" and past["eof"] is True and past["size"] == 10


def test_write_is_atomic_replace_and_leaves_no_temp_files(agent):
    ws = agent.ws()
    ws.call("file.write", path="a.txt", data=b"old", mode=0o640)
    r = ws.call("file.write", path="a.txt", data=b"new content")
    assert r["created"] is False
    assert ws.call("file.read", path="a.txt")["data"] == b"new content"
    assert ws.call("file.stat", path="a.txt")["mode"] == 0o640  # an existing file keeps its mode
    assert sorted(os.listdir(agent.workdir)) == ["a.txt"]


def test_append_and_mkdirs_and_mode(agent):
    ws = agent.ws()
    ws.call("file.write", path="deep/er/log", data=b"a", mkdirs=True, mode=0o600)
    ws.call("file.write", path="deep/er/log", data=b"b", append=True)
    assert ws.call("file.read", path="deep/er/log")["data"] == b"ab"
    assert ws.call("file.stat", path="deep/er/log")["mode"] == 0o600
    expect_error(ws.request("file.write", path="nodir/x", data=b"x"), "NOT_FOUND")


def test_disk_full_keeps_old_content(tmp_path):
    """A small tmpfs in the test's own mount namespace: ENOSPC is RESOURCE_EXHAUSTED, the old file intact."""
    script = f"""
set -e
mount -t tmpfs -o size=64k tmpfs {tmp_path}
RUNRA_AGENT_TOKEN={TOKEN} {AGENT_BIN} --listen 127.0.0.1:$PORT --workdir {tmp_path} &
echo $! > {tmp_path}.pid
wait
"""
    port = free_port()
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                            env={"PATH": "/usr/bin:/bin", "PORT": str(port)}, stderr=subprocess.DEVNULL)
    try:
        from conftest import wait_healthy
        from wsclient import WS
        wait_healthy(port, proc)
        ws = WS.connect(port, token=TOKEN)
        ws.call("file.write", path="f", data=b"old")
        reply = ws.request("file.write", path="f", data=os.urandom(200_000))
        expect_error(reply, "RESOURCE_EXHAUSTED")
        assert reply["error"]["retryable"] is True
        assert ws.call("file.read", path="f")["data"] == b"old"
        assert [e["name"] for e in ws.call("file.list", path=".")["entries"]] == ["f"]  # no temp debris
    finally:
        with open(f"{tmp_path}.pid") as f:
            os.kill(int(f.read()), 15)
        proc.wait(timeout=10)


def test_stat_exists_and_types(agent):
    ws = agent.ws()
    ws.call("file.mkdir", path="d")
    ws.call("file.write", path="d/f", data=b"12345")
    os.symlink("d/f", os.path.join(agent.workdir, "link"))
    f = ws.call("file.stat", path="d/f")
    assert f["type"] == "file" and f["size"] == 5 and f["name"] == "f" and f["mtime"] > 0
    assert ws.call("file.stat", path="d")["type"] == "dir"
    link = ws.call("file.stat", path="link")
    assert link["type"] == "symlink" and link["target"] == "d/f"
    assert ws.call("file.stat", path="link", follow=True)["type"] == "file"
    assert ws.call("file.exists", path="d/f") == {"path": os.path.join(agent.workdir, "d/f"), "exists": True,
                                                  "type": "file"}
    assert ws.call("file.exists", path="nope")["exists"] is False
    assert ws.call("file.exists", path="d/f/under-a-file")["exists"] is False
    expect_error(ws.request("file.stat", path="nope"), "NOT_FOUND")


def test_mkdir_recursive_and_existing(agent):
    ws = agent.ws()
    assert ws.call("file.mkdir", path="a/b/c")["created"] is True
    assert ws.call("file.mkdir", path="a/b/c")["created"] is False  # existing is fine when recursive
    expect_error(ws.request("file.mkdir", path="a/b/c", recursive=False), "ALREADY_EXISTS")
    ws.call("file.write", path="file", data=b"")
    expect_error(ws.request("file.mkdir", path="file/sub"), "INVALID_CONFIG")  # ENOTDIR


def test_delete_file_dir_and_recursive(agent):
    ws = agent.ws()
    ws.call("file.write", path="t/a/b/c.txt", data=b"x", mkdirs=True)
    expect_error(ws.request("file.delete", path="t"), "INVALID_CONFIG")  # not empty
    assert ws.call("file.delete", path="t", recursive=True)["deleted"] is True
    assert not os.path.exists(os.path.join(agent.workdir, "t"))
    expect_error(ws.request("file.delete", path="t"), "NOT_FOUND")
    expect_error(ws.request("file.delete", path="/", recursive=True), "PERMISSION_DENIED")


def test_delete_never_follows_symlinks_out(agent, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    ws = agent.ws()
    ws.call("file.mkdir", path="tree/sub")
    os.symlink(outside, os.path.join(agent.workdir, "tree/sub/link-to-outside"))
    os.symlink(outside, os.path.join(agent.workdir, "dirlink"))
    assert ws.call("file.delete", path="dirlink")["deleted"] is True  # the link only
    assert (outside / "keep.txt").exists()
    ws.call("file.delete", path="tree", recursive=True)
    assert (outside / "keep.txt").read_text() == "keep"
    assert not os.path.exists(os.path.join(agent.workdir, "tree"))


def test_move_and_overwrite(agent):
    ws = agent.ws()
    ws.call("file.write", path="a", data=b"A")
    ws.call("file.write", path="b", data=b"B")
    expect_error(ws.request("file.move", **{"from": "a", "to": "b"}), "ALREADY_EXISTS")
    ws.call("file.move", **{"from": "a", "to": "b", "overwrite": True})
    assert ws.call("file.read", path="b")["data"] == b"A"
    expect_error(ws.request("file.move", **{"from": "missing", "to": "x"}), "NOT_FOUND")


def test_move_across_filesystems_copies(agent):
    ws = agent.ws()
    if os.stat("/dev/shm").st_dev == os.stat(agent.workdir).st_dev:
        pytest.skip("/dev/shm is on the workdir's filesystem")
    ws.call("file.write", path="cross", data=b"data" * 1000)
    target = f"/dev/shm/runra-move-{os.getpid()}"
    try:
        ws.call("file.move", **{"from": "cross", "to": target})
        with open(target, "rb") as f:
            assert f.read() == b"data" * 1000
        assert not os.path.exists(os.path.join(agent.workdir, "cross"))
    finally:
        if os.path.exists(target):
            os.unlink(target)


def test_chmod(agent):
    ws = agent.ws()
    ws.call("file.write", path="x", data=b"")
    assert ws.call("file.chmod", path="x", mode=0o751)["mode"] == 0o751
    assert st_mod.S_IMODE(os.stat(os.path.join(agent.workdir, "x")).st_mode) == 0o751
    expect_error(ws.request("file.chmod", path="x", mode=0o17777), "INVALID_CONFIG")
    expect_error(ws.request("file.chmod", path="x"), "INVALID_CONFIG")


def test_list_sorted_with_types_and_depth(agent):
    ws = agent.ws()
    for p in ("b.txt", "a dir/inner.txt", "ünï code.txt", "a dir/deeper/x"):
        ws.call("file.write", path=p, data=b"1", mkdirs=True)
    os.symlink("b.txt", os.path.join(agent.workdir, "c-link"))
    top = ws.call("file.list", path=".")
    assert [e["path"] for e in top["entries"]] == ["a dir", "b.txt", "c-link", "ünï code.txt"]
    assert [e["type"] for e in top["entries"]] == ["dir", "file", "symlink", "file"]
    assert top["entries"][2]["target"] == "b.txt" and top["next"] is None
    deep = ws.call("file.list", path=".", depth=3)
    assert "a dir/deeper/x" in [e["path"] for e in deep["entries"]]


def test_list_100000_entries_with_pagination(agent):
    big = os.path.join(agent.workdir, "big")
    os.mkdir(big)
    for i in range(100_000):
        os.close(os.open(os.path.join(big, f"f{i:06d}"), os.O_CREAT | os.O_WRONLY, 0o644))
    ws = agent.ws()
    names, after, pages = [], None, 0
    while True:
        args = {"path": "big", "limit": 10000}
        if after:
            args["after"] = after
        page = ws.call("file.list", **args)
        names += [e["name"] for e in page["entries"]]
        pages += 1
        after = page["next"]
        if after is None:
            break
    assert pages == 10 and names == [f"f{i:06d}" for i in range(100_000)]


def test_dotdot_and_absolute_paths(agent):
    ws = agent.ws()
    ws.call("file.write", path="x/../y.txt", data=b"y", mkdirs=True)
    assert ws.call("file.exists", path="y.txt")["exists"] is True
    assert ws.call("file.stat", path="/")["type"] == "dir"
    assert ws.call("file.stat", path="../../../..")["path"] == "/"


@pytest.mark.parametrize("op,args,code", [
    ("file.read", {"path": "a\0b"}, "INVALID_CONFIG"),
    ("file.read", {"path": ""}, "INVALID_CONFIG"),
    ("file.read", {"path": 5}, "INVALID_CONFIG"),
    ("file.read", {}, "INVALID_CONFIG"),
    ("file.read", {"path": "x", "offset": -1}, "INVALID_CONFIG"),
    ("file.read", {"path": "x", "length": (8 << 20) + 1}, "INVALID_CONFIG"),
    ("file.read", {"path": "."}, "INVALID_CONFIG"),  # EISDIR
    ("file.write", {"path": "w"}, "INVALID_CONFIG"),
    ("file.write", {"path": "w", "data": 5}, "INVALID_CONFIG"),
    ("file.write", {"path": ".", "data": b""}, "INVALID_CONFIG"),  # a directory
    ("file.list", {"path": "x", "limit": 0}, "INVALID_CONFIG"),
    ("file.list", {"path": "missing"}, "NOT_FOUND"),
    ("file.move", {"from": "x"}, "INVALID_CONFIG"),
    ("file.upload.open", {"path": "x"}, "UNSUPPORTED"),
])
def test_bad_file_arguments(agent, op, args, code):
    ws = agent.ws()
    ws.call("file.write", path="x", data=b"x")
    expect_error(ws.request(op, **args), code)
    assert ws.call("ping")["pong"]


def test_permission_denied_as_a_non_root_agent():
    """The agent running as nobody: what nobody may not touch is PERMISSION_DENIED, and a refused atomic
    replace leaves the old content and no temporary file."""
    import shutil
    import tempfile
    workdir = tempfile.mkdtemp(prefix="runra-nobody-")  # under /tmp: pytest's own tmp is private to root
    os.chown(workdir, 65534, 65534)
    port = free_port()
    argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", AGENT_BIN, "--listen",
            f"127.0.0.1:{port}", "--workdir", str(workdir)]
    proc = subprocess.Popen(argv, env={"PATH": "/usr/bin:/bin", "RUNRA_AGENT_TOKEN": TOKEN},
                            stderr=subprocess.DEVNULL)
    try:
        from conftest import wait_healthy
        from wsclient import WS
        wait_healthy(port, proc)
        ws = WS.connect(port, token=TOKEN)
        expect_error(ws.request("file.write", path="/etc/runra-denied", data=b"x"), "PERMISSION_DENIED")
        expect_error(ws.request("file.read", path="/etc/shadow"), "PERMISSION_DENIED")
        ws.call("file.write", path="keep", data=b"precious")
        os.chmod(workdir, 0o555)  # nobody may no longer create the temporary file beside it
        expect_error(ws.request("file.write", path="keep", data=b"new"), "PERMISSION_DENIED")
        assert ws.call("file.read", path="keep")["data"] == b"precious"
        assert os.listdir(workdir) == ["keep"]
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        shutil.rmtree(workdir)
