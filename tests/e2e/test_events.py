"""Events: the workdir watcher (file.*), watch.add/remove/list, the event ring (sinceSeq, gaps), filters, and
subscribers that do not read."""
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from wsclient import WS


def expect_error(reply, code):
    assert reply["type"] == "reply" and reply["error"]["code"] == code, reply
    return reply["error"]["message"]


def sh(cmd):
    subprocess.run(["sh", "-c", cmd], check=True)


def next_event(ws, timeout=10.0):
    """The next event or gap message (replies and stream messages are not expected here)."""
    ws.sock.settimeout(timeout)
    m = ws.recv_msg()
    assert m["type"] in ("event", "gap"), m
    return m


def collect(ws, until, timeout=20.0):
    """Messages until until(msg) is true for one; returns all of them, that one last."""
    got, deadline = [], time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; last messages: {got[-5:]}"
        m = next_event(ws, left)
        got.append(m)
        if until(m):
            return got


def quiet(ws, seconds=0.3):
    """Asserts nothing arrives for a while."""
    ws.sock.settimeout(seconds)
    try:
        m = ws.recv_msg()
    except (socket.timeout, TimeoutError):
        return
    raise AssertionError(f"unexpected message {m}")


def subscribed(agent, **args):
    ws = agent.ws()
    ws.call("subscribe", **args)
    return ws


def summary(events):
    """(event, path relative to ..., kind) tuples; moves as (event, from, to)."""
    out = []
    for e in events:
        if e["event"] == "file.moved":
            out.append((e["event"], e["from"], e["to"]))
        else:
            out.append((e["event"], e.get("path"), e.get("kind")))
    return out


# ---- the watcher ----

def test_workdir_is_watched_by_default(agent):
    ws = agent.ws()
    watches = ws.call("watch.list")["watches"]
    assert len(watches) == 1
    w = watches[0]
    assert w["path"] == agent.workdir and w["recursive"] and w["mode"] == "inotify" and w["dirs"] == 1
    assert w["exclude"] == ["**/.git/*", "**/node_modules/*", ".*.runra-*.tmp"]


def test_the_agents_own_writes_show_no_temporary_files(agent):
    ws = subscribed(agent, events=["file.*"])
    ctl = agent.ws()
    ctl.call("file.write", path="written.txt", data=b"one")
    ctl.call("file.write", path="written.txt", data=b"two!")  # an atomic replace
    got = collect(ws, lambda m: m.get("size") == 4)
    assert summary(got) == [("file.created", f"{agent.workdir}/written.txt", "file")] * 2


def test_create_modify_delete_move_in_order(agent):
    ws = subscribed(agent, events=["file.*"])
    w = agent.workdir
    sh(f"cd {w} && echo hi > f && touch f && mkdir d && mv f d/g && mv d e && echo more >> e/g && rm e/g && rmdir e")
    got = collect(ws, lambda m: m["event"] == "file.deleted" and m["path"] == f"{w}/e")
    assert summary(got) == [
        ("file.created", f"{w}/f", "file"),
        ("file.modified", f"{w}/f", "file"),  # the write; touch alone writes nothing
        ("file.created", f"{w}/d", "dir"),
        ("file.moved", f"{w}/f", f"{w}/d/g"),
        ("file.moved", f"{w}/d", f"{w}/e"),
        ("file.modified", f"{w}/e/g", "file"),  # the renamed directory's watch follows it
        ("file.deleted", f"{w}/e/g", "file"),
        ("file.deleted", f"{w}/e", "dir"),
    ]
    seqs = [m["seq"] for m in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert got[1]["size"] == 3 and got[5]["size"] == 8 and "size" not in got[2]
    assert all(isinstance(m["ts"], int) and m["watch"] == 1 for m in got)


def test_nested_twenty_levels_created_faster_than_watches(agent):
    ws = subscribed(agent, events=["file.*"])
    w = agent.workdir
    parts = [f"l{i}" for i in range(20)]
    deep = "/".join(parts)
    sh(f"cd {w} && mkdir -p {deep} && touch {deep}/f {deep}/g")
    got = collect(ws, lambda m: m.get("path") == f"{w}/{deep}/g")
    expected = [("file.created", f"{w}/" + "/".join(parts[:i + 1]), "dir") for i in range(20)]
    expected += [("file.created", f"{w}/{deep}/f", "file"), ("file.created", f"{w}/{deep}/g", "file")]
    assert summary(got) == expected  # each once, parents first
    with open(f"{w}/{deep}/g", "w") as f:  # the bottom directory is watched now
        f.write("x")
    assert summary(collect(ws, lambda m: True)) == [("file.modified", f"{w}/{deep}/g", "file")]
    # and every level is watched now: a later change at the bottom is seen
    sh(f"rm -r {w}/l0")
    got = collect(ws, lambda m: m["event"] == "file.deleted" and m["path"] == f"{w}/l0")
    assert sorted(summary(got)[:2]) == [("file.deleted", f"{w}/{deep}/f", "file"), ("file.deleted", f"{w}/{deep}/g", "file")]
    assert summary(got)[2:] == [("file.deleted", p, k) for _, p, k in reversed(expected[:20])]  # deepest first
    quiet(ws)
    assert agent.ws().call("watch.list")["watches"][0]["dirs"] == 1  # the deleted directories' watches are gone


def test_symlink_and_directory_moved_in_from_outside(agent, tmp_path):
    ws = subscribed(agent, events=["file.*"])
    w = agent.workdir
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "x").write_text("x")
    os.symlink("/etc/hostname", f"{w}/link")
    shutil.move(str(outside), f"{w}/inside")  # a rename: its contents are new to the tree
    got = collect(ws, lambda m: m.get("path") == f"{w}/inside/sub/x")
    assert summary(got) == [("file.created", f"{w}/link", "symlink"), ("file.created", f"{w}/inside", "dir"),
                            ("file.created", f"{w}/inside/sub", "dir"), ("file.created", f"{w}/inside/sub/x", "file")]
    shutil.move(f"{w}/inside", str(tmp_path / "gone"))  # moved out: deleted from the tree's view
    got = collect(ws, lambda m: m["event"] == "file.deleted")
    assert summary(got) == [("file.deleted", f"{w}/inside", "dir")]
    (tmp_path / "gone" / "sub" / "y").write_text("y")  # no longer watched
    quiet(ws)


def test_modified_is_one_event_per_write_session(agent):
    ws = subscribed(agent, events=["file.*"])
    path = os.path.join(agent.workdir, "log")
    with open(path, "w") as f:
        for i in range(200):
            f.write(f"line {i}\n")
            f.flush()
    got = collect(ws, lambda m: m["event"] == "file.modified")
    assert [m["event"] for m in got] == ["file.created", "file.modified"]
    assert got[1]["size"] == os.path.getsize(path)
    os.utime(path)  # no write: no event
    with open(path, "a"):
        pass
    quiet(ws)


def test_default_excludes_and_custom_patterns(agent, tmp_path):
    ws = subscribed(agent, events=["file.*"])
    w = agent.workdir
    sh(f"cd {w} && mkdir -p .git/objects node_modules/pkg && touch .git/HEAD node_modules/pkg/index.js && touch done")
    got = collect(ws, lambda m: m.get("path") == f"{w}/done")
    assert [p for _, p, _ in summary(got)] == [f"{w}/.git", f"{w}/node_modules", f"{w}/done"]
    root = tmp_path / "custom"
    (root / "build").mkdir(parents=True)
    ws.call("watch.add", path=str(root), exclude=["*.tmp", "build/*", "**/cache"])
    sh(f"cd {root} && touch a.tmp build/out && mkdir -p x/cache && touch x/cache/c x/keep && mkdir -p y/.git && touch y/.git/z")
    got = collect(ws, lambda m: m.get("path") == f"{root}/y/.git/z")
    assert [p for _, p, _ in summary(got)] == [f"{root}/x", f"{root}/x/keep", f"{root}/y", f"{root}/y/.git",
                                               f"{root}/y/.git/z"]  # overriding drops the defaults


def test_watch_add_list_remove(agent, tmp_path):
    ws = subscribed(agent, events=["file.*", "watch.*"])
    ctl = agent.ws()  # requests on their own connection: an event may come before a reply
    flat = tmp_path / "flat"
    (flat / "sub").mkdir(parents=True)
    w = ctl.call("watch.add", path=str(flat), recursive=False)["watch"]
    assert w["watch"] == 2 and not w["recursive"] and w["dirs"] == 1 and w["pollMs"] is None
    sh(f"touch {flat}/a {flat}/sub/ignored && mkdir {flat}/new && touch {flat}/new/ignored {flat}/b")
    got = collect(ws, lambda m: m.get("path") == f"{flat}/b")
    assert [p for _, p, _ in summary(got)] == [f"{flat}/a", f"{flat}/new", f"{flat}/b"]
    assert [x["watch"] for x in ctl.call("watch.list")["watches"]] == [1, 2]
    assert ctl.call("watch.remove", watch=2) == {"removed": 2}
    removed = next_event(ws)
    assert removed["event"] == "watch.removed" and removed["watch"] == 2 and removed["reason"] == "request"
    sh(f"touch {flat}/after")
    quiet(ws)
    # by path, relative to the workdir
    os.mkdir(f"{agent.workdir}/../rel")
    w = ctl.call("watch.add", path="../rel")["watch"]
    assert w["path"] == os.path.normpath(f"{agent.workdir}/../rel")
    assert ctl.call("watch.remove", path="../rel") == {"removed": w["watch"]}
    assert next_event(ws)["event"] == "watch.removed"


def test_root_deleted_ends_the_watch(agent, tmp_path):
    ws = subscribed(agent, events=["watch.*", "file.*"])
    root = tmp_path / "doomed"
    root.mkdir()
    wid = ws.call("watch.add", path=str(root))["watch"]["watch"]
    shutil.rmtree(root)
    ev = collect(ws, lambda m: m["event"] == "watch.removed")[-1]
    assert ev["watch"] == wid and ev["reason"] == "deleted" and ev["path"] == str(root)
    assert [x["watch"] for x in ws.call("watch.list")["watches"]] == [1]


def test_poll_mode(agent, tmp_path):
    ws = subscribed(agent, events=["file.*"])
    root = tmp_path / "polled"
    (root / "d").mkdir(parents=True)
    (root / "d" / "old").write_text("1")
    w = ws.call("watch.add", path=str(root), mode="poll", pollMs=100)["watch"]
    assert w["mode"] == "poll" and w["pollMs"] == 100 and w["dirs"] == 2
    (root / "d" / "new").write_text("abc")
    got = collect(ws, lambda m: True)
    assert summary(got) == [("file.created", f"{root}/d/new", "file")] and got[0]["size"] == 3
    (root / "d" / "old").write_text("changed")
    got = collect(ws, lambda m: True)
    assert summary(got) == [("file.modified", f"{root}/d/old", "file")] and got[0]["size"] == 7
    shutil.rmtree(root / "d")
    got = collect(ws, lambda m: m.get("path") == f"{root}/d")
    assert sorted(summary(got)) == [("file.deleted", f"{root}/d", "dir"), ("file.deleted", f"{root}/d/new", "file"),
                                    ("file.deleted", f"{root}/d/old", "file")]
    assert got[-1]["path"] == f"{root}/d"  # deepest first


def test_burst_of_ten_thousand_files(agent):
    ws = subscribed(agent, events=["file.created", "watch.*"])
    w = agent.workdir
    os.mkdir(f"{w}/burst")
    next_event(ws)
    sh(f"cd {w}/burst && seq 1 10000 | xargs touch && touch {w}/end")
    got = collect(ws, lambda m: m.get("path") == f"{w}/end", timeout=60)
    names = [m["event"] for m in got]
    if "watch.overflow" in names:  # allowed, if followed by a rescan
        i = names.index("watch.overflow")
        assert "watch.rescanned" in names[i:], names[i:i + 5]
    else:
        paths = {m["path"] for m in got}
        assert len(got) == 10001 and {f"{w}/burst/{i}" for i in range(1, 10001)} <= paths


def test_queue_overflow_is_reported_and_rescanned(agent):
    """A stopped agent cannot read: the kernel's queue (16384 events by default) overflows."""
    ws = subscribed(agent, events=["watch.*", "file.created"])
    narrow = subscribed(agent, events=["watch.*"], paths=["later"])  # a path inside the root
    w = agent.workdir
    with open("/proc/sys/fs/inotify/max_queued_events") as f:
        queue = int(f.read())
    if queue > 100000:
        pytest.skip(f"max_queued_events is {queue}")
    os.mkdir(f"{w}/flood")
    next_event(ws)
    os.kill(agent.pid, signal.SIGSTOP)
    try:
        sh(f"cd {w}/flood && seq 1 {queue + 2000} | xargs touch && mkdir -p {w}/later/deep")
    finally:
        os.kill(agent.pid, signal.SIGCONT)
    got = collect(ws, lambda m: m["event"] == "watch.rescanned", timeout=60)
    assert any(m["event"] == "watch.overflow" for m in got)
    assert [m["event"] for m in collect(narrow, lambda m: m["event"] == "watch.rescanned")] == [
        "watch.overflow", "watch.rescanned"]  # it learns it must resync too
    assert got[-1]["watch"] == 1 and got[-1]["dirs"] == 4  # workdir, flood, later, later/deep
    sh(f"touch {w}/later/deep/after")  # the rebuilt watches work
    got = collect(ws, lambda m: m.get("path") == f"{w}/later/deep/after")
    assert agent.ws().call("ping")["pong"]


def test_watch_limit_is_a_clear_error(make_agent, tmp_path):
    """In a user namespace of our own, user.max_inotify_watches can be made small."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    limit = 6
    prefix = ["unshare", "--user", "--map-root-user", "sh", "-c",
              f'echo {limit} > /proc/sys/user/max_inotify_watches && exec "$0" "$@"']
    agent = make_agent(prefix=prefix)
    ws = subscribed(agent, events=["watch.*", "file.*"])
    tree = tmp_path / "tree"
    for i in range(limit + 2):
        (tree / f"d{i}").mkdir(parents=True)
    message = expect_error(ws.request("watch.add", path=str(tree)), "RESOURCE_EXHAUSTED")
    assert f"max_user_watches: {limit};" in message, message
    listing = ws.call("watch.list")
    assert len(listing["watches"]) == 1 and listing["maxUserWatches"] == limit  # nothing left behind
    small = tmp_path / "small"
    (small / "a").mkdir(parents=True)
    assert ws.call("watch.add", path=str(small))["watch"]["dirs"] == 2  # the failed add released its watches
    sh(f"mkdir -p {agent.workdir}/n1/n2/n3/n4/n5")
    got = collect(ws, lambda m: m["event"] == "watch.error")
    assert got[-1]["code"] == "RESOURCE_EXHAUSTED" and "watch limit" in got[-1]["message"]
    assert agent.ws().call("ping")["pong"]


def test_watch_bad_input(agent, tmp_path):
    ws = agent.ws()
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir" / "sub").mkdir(parents=True)
    expect_error(ws.request("watch.add", path=str(tmp_path / "missing")), "NOT_FOUND")
    assert "not a directory" in expect_error(ws.request("watch.add", path=str(tmp_path / "file")), "INVALID_CONFIG")
    expect_error(ws.request("watch.add", path=str(tmp_path / "file"), recursive=False), "INVALID_CONFIG")
    expect_error(ws.request("watch.add"), "INVALID_CONFIG")
    expect_error(ws.request("watch.add", path=""), "INVALID_CONFIG")
    expect_error(ws.request("watch.add", path=7), "INVALID_CONFIG")
    for bad in ([""], ["/abs"], ["[unclosed"], ["x" * 256], [3], "notalist", ["ok"] * 33, ["a\0b"]):
        expect_error(ws.request("watch.add", path=str(tmp_path / "dir"), exclude=bad), "INVALID_CONFIG")
    expect_error(ws.request("watch.add", path=str(tmp_path / "dir"), mode="fast"), "INVALID_CONFIG")
    expect_error(ws.request("watch.add", path=str(tmp_path / "dir"), mode="poll", pollMs=5), "INVALID_CONFIG")
    expect_error(ws.request("watch.add", path=str(tmp_path / "dir"), recursive="yes"), "INVALID_CONFIG")
    expect_error(ws.request("watch.add", path=agent.workdir), "ALREADY_EXISTS")
    expect_error(ws.request("watch.add", path=agent.workdir + "/.."), "ALREADY_EXISTS")  # contains a recursive root
    os.mkdir(agent.workdir + "/inner")
    assert "overlaps watch 1" in expect_error(ws.request("watch.add", path=agent.workdir + "/inner"), "ALREADY_EXISTS")
    os.symlink(agent.workdir, str(tmp_path / "alias"))
    assert "overlaps watch 1" in expect_error(ws.request("watch.add", path=str(tmp_path / "alias")), "ALREADY_EXISTS")
    expect_error(ws.request("watch.remove", watch=99), "NOT_FOUND")
    expect_error(ws.request("watch.remove", path="/nowhere"), "NOT_FOUND")
    expect_error(ws.request("watch.remove"), "INVALID_CONFIG")
    assert len(ws.call("watch.list")["watches"]) == 1


def test_watch_removed_while_a_move_out_waits_for_its_pair(agent):
    """A file moved out of a root waits 5 ms for the other half of the rename; a watch.remove meanwhile ends it
    quietly (the wait used to end by reporting the deletion from the freed root). The agent is stopped so that
    the rename and the request are read in one go, in both orders."""
    events = subscribed(agent, events=["file.*", "watch.*"])
    ctl = agent.ws()
    base = agent.tmp.name
    removed = []
    for i in range(40):
        root = f"{base}/r{i}"
        os.makedirs(root)
        open(f"{root}/f", "w").close()
        wid = ctl.call("watch.add", path=root)["watch"]["watch"]
        os.kill(agent.pid, signal.SIGSTOP)
        try:
            if i % 2:
                os.rename(f"{root}/f", f"{base}/out{i}")
            ctl.send({"id": 1000 + i, "op": "watch.remove", "watch": wid})
            if not i % 2:
                os.rename(f"{root}/f", f"{base}/out{i}")
        finally:
            os.kill(agent.pid, signal.SIGCONT)
        assert ctl.recv_msg()["result"] == {"removed": wid}
        removed.append(wid)
    sh(f"touch {agent.workdir}/sentinel")  # read after any move still waiting: it ends the wait
    ended = set()
    for m in collect(events, lambda m: m.get("path") == f"{agent.workdir}/sentinel"):
        assert not (m["event"] == "file.deleted" and m["watch"] in ended), m
        if m["event"] == "watch.removed":
            ended.add(m["watch"])
    assert ended == set(removed)


def test_a_root_moved_into_a_recursive_watch_is_taken_over(agent):
    """Its directory's watches now belong to the watch it moved into, which reports what is in it as created
    (as for a directory moved in from outside) and goes on watching it."""
    ws = subscribed(agent, events=["file.*", "watch.*"])
    ctl = agent.ws()
    base, w = agent.tmp.name, agent.workdir
    os.makedirs(f"{base}/b/sub")
    open(f"{base}/b/f", "w").close()
    wid = ctl.call("watch.add", path=f"{base}/b")["watch"]["watch"]
    os.rename(f"{base}/b", f"{w}/b")
    sh(f"touch {w}/b/sub/later && touch {w}/sentinel")
    got = collect(ws, lambda m: m.get("path") == f"{w}/sentinel")
    assert [(m["watch"], m["reason"]) for m in got if m["event"] == "watch.removed"] == [(wid, "moved")]
    files = [m for m in got if m["event"].startswith("file.")]
    assert all(m["watch"] == 1 for m in files)
    assert summary(files[:1]) == [("file.created", f"{w}/b", "dir")]
    assert sorted(summary(files[1:-1])) == [("file.created", f"{w}/b/f", "file"),
                                            ("file.created", f"{w}/b/sub", "dir"),
                                            ("file.created", f"{w}/b/sub/later", "file")]
    watches = ctl.call("watch.list")["watches"]
    assert [(x["watch"], x["dirs"]) for x in watches] == [(1, 3)]  # workdir, b, b/sub


def test_a_root_given_as_a_symlink_is_descended_into(agent):
    ws = subscribed(agent, events=["file.*"])
    base = agent.tmp.name
    os.makedirs(f"{base}/real/sub")
    os.symlink(f"{base}/real", f"{base}/alias")
    assert ws.call("watch.add", path=f"{base}/alias")["watch"]["dirs"] == 2
    sh(f"touch {base}/real/sub/f {base}/real/top")
    got = collect(ws, lambda m: m.get("path") == f"{base}/alias/top")
    assert summary(got) == [("file.created", f"{base}/alias/sub/f", "file"),
                            ("file.created", f"{base}/alias/top", "file")]


def test_a_moved_directory_whose_last_entry_is_excluded_keeps_its_own_path(agent):
    """The scan of a directory moved in left the excluded name in the path the move was then reported with."""
    ws = subscribed(agent, events=["file.*"])
    base = agent.tmp.name
    os.makedirs(f"{base}/w/a")
    os.makedirs(f"{base}/w/x")
    open(f"{base}/w/x/f.o", "w").close()
    ws.call("watch.add", path=f"{base}/w", recursive=False)
    ws.call("watch.add", path=f"{base}/w/a", exclude=["*.o"])
    os.rename(f"{base}/w/x", f"{base}/w/a/x")
    got = collect(ws, lambda m: m["event"] == "file.moved")
    assert summary(got) == [("file.moved", f"{base}/w/x", f"{base}/w/a/x")]


def test_a_directory_moved_from_a_flat_watch_into_a_recursive_one_is_scanned(agent):
    """Its contents were never reported by the watch it came from: they are new to the one it went to."""
    ws = subscribed(agent, events=["file.*", "watch.error"])
    base = agent.tmp.name
    os.makedirs(f"{base}/w/a")
    os.makedirs(f"{base}/w/x/deep")
    open(f"{base}/w/x/keep", "w").close()
    ws.call("watch.add", path=f"{base}/w", recursive=False)
    ws.call("watch.add", path=f"{base}/w/a")
    os.rename(f"{base}/w/x", f"{base}/w/a/x")
    sh(f"touch {base}/w/a/x/deep/later")
    got = collect(ws, lambda m: m.get("path") == f"{base}/w/a/x/deep/later")
    assert summary(got[:1]) == [("file.moved", f"{base}/w/x", f"{base}/w/a/x")]
    assert sorted(summary(got[1:])) == [("file.created", f"{base}/w/a/x/deep", "dir"),
                                        ("file.created", f"{base}/w/a/x/deep/later", "file"),
                                        ("file.created", f"{base}/w/a/x/keep", "file")]


def test_renaming_a_directory_applies_the_exclusions_to_its_new_path(agent):
    """node_modules/* is excluded, nm2/* is not: a rename from one to the other brings the contents into view
    (reported as created, and watched), and back out of it (no longer watched; nothing is reported)."""
    ws = subscribed(agent, events=["file.*"])
    w = agent.workdir
    sh(f"cd {w} && mkdir -p node_modules/pkg && touch node_modules/pkg/x node_modules/index.js && touch s0")
    assert summary(collect(ws, lambda m: m["path"] == f"{w}/s0")) == [
        ("file.created", f"{w}/node_modules", "dir"), ("file.created", f"{w}/s0", "file")]
    sh(f"cd {w} && mv node_modules nm2 && touch nm2/pkg/f && touch s1")
    got = collect(ws, lambda m: m.get("path") == f"{w}/s1")
    assert summary(got[:1]) == [("file.moved", f"{w}/node_modules", f"{w}/nm2")]
    assert sorted(summary(got[1:-1])) == [("file.created", f"{w}/nm2/index.js", "file"),
                                          ("file.created", f"{w}/nm2/pkg", "dir"),
                                          ("file.created", f"{w}/nm2/pkg/f", "file"),
                                          ("file.created", f"{w}/nm2/pkg/x", "file")]
    ctl = agent.ws()
    assert ctl.call("watch.list")["watches"][0]["dirs"] == 3
    sh(f"cd {w} && mv nm2 node_modules && touch node_modules/pkg/g node_modules/h && touch s2")
    got = collect(ws, lambda m: m.get("path") == f"{w}/s2")
    assert summary(got) == [("file.moved", f"{w}/nm2", f"{w}/node_modules"), ("file.created", f"{w}/s2", "file")]
    assert ctl.call("watch.list")["watches"][0]["dirs"] == 2


def test_writes_left_unclosed_in_a_removed_watch_are_forgotten(agent):
    """Files truncated by path (a write without an open or a close) in a watch that is then removed: the
    agent used to remember them as being written for ever, and past 65,536 of them it reported every close
    of a file opened for writing as a modification, in every watch."""
    ws = subscribed(agent, events=["file.*"])
    ctl = agent.ws()
    big, n = f"{agent.tmp.name}/big", 8192
    os.mkdir(big)
    sh(f"cd {big} && seq -f f%g 1 {n} | xargs touch")
    for cycle in range(9):  # each watch of big is a new directory: 9 x 8,192 writes in all, more than 65,536
        wid = ctl.call("watch.add", path=big, recursive=False)["watch"]["watch"]
        for i in range(1, n + 1):
            os.truncate(f"{big}/f{i}", 1)
        sh(f"touch {big}/sync{cycle}")  # read once the writes are: fewer than the kernel's queue holds
        collect(ws, lambda m: m["path"] == f"{big}/sync{cycle}")
        ctl.call("watch.remove", watch=wid)
    w = agent.workdir
    sh(f"touch {w}/f && touch {w}/s")  # opened for writing, nothing written: created only
    got = collect(ws, lambda m: m["path"] == f"{w}/s")
    assert summary(got) == [("file.created", f"{w}/f", "file"), ("file.created", f"{w}/s", "file")]


def test_a_polled_alias_of_an_inotify_root_is_accepted_and_a_refused_one_uses_up_an_id(agent):
    """§9.8: the same directory by another path is an overlap only between inotify watches (found by inotify,
    after the id is given)."""
    ws = subscribed(agent, events=["file.*"])
    base, w = agent.tmp.name, agent.workdir
    os.symlink(w, f"{base}/alias")
    os.mkdir(f"{base}/other")
    assert "overlaps watch 1" in expect_error(ws.request("watch.add", path=f"{base}/alias"), "ALREADY_EXISTS")
    assert ws.call("watch.add", path=f"{base}/other")["watch"]["watch"] == 3  # 2 was used up
    polled = ws.call("watch.add", path=f"{base}/alias", mode="poll", pollMs=100)["watch"]
    assert polled["watch"] == 4 and polled["mode"] == "poll"
    sh(f"touch {w}/both")
    got = collect(ws, lambda m: m["watch"] == 4)
    assert sorted((m["watch"], m["path"]) for m in got) == [(1, f"{w}/both"), (4, f"{base}/alias/both")]


NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


def test_poll_a_subdirectory_that_cannot_be_read_is_not_reported_deleted(make_agent):
    """An unreadable directory (EACCES here; ESTALE or EIO on NFS) keeps what the last scan saw in it: one
    watch.error, then its changes once it can be read again; it used to read as its tree deleted, then created."""
    top = tempfile.mkdtemp(prefix="runra-e2e-poll-")  # not under tmp_path: an agent that is not root reaches it
    try:
        os.chmod(top, 0o777)
        p = f"{top}/p"
        os.makedirs(f"{p}/d")
        sh(f"touch {p}/d/f1 {p}/d/f2 && chmod -R 777 {p}")
        agent = make_agent(prefix=NOBODY, workdir=f"{top}/wd", args=("--workdir-watch", "no"))
        ws = subscribed(agent, events=["file.*", "watch.*"])
        ws.call("watch.add", path=p, mode="poll", pollMs=100)
        os.chmod(f"{p}/d", 0)
        sh(f"touch {p}/s1")
        got = collect(ws, lambda m: m.get("path") == f"{p}/s1")
        assert [(m["event"], m["path"], m.get("code")) for m in got] == [
            ("watch.error", f"{p}/d", "PERMISSION_DENIED"), ("file.created", f"{p}/s1", None)]
        sh(f"touch {p}/s2")
        assert summary(collect(ws, lambda m: True)) == [("file.created", f"{p}/s2", "file")]  # said once
        os.chmod(f"{p}/d", 0o777)
        sh(f"touch {p}/d/f3 && touch {p}/s3")
        got = collect(ws, lambda m: m.get("path") == f"{p}/s3")
        assert summary(got) == [("file.created", f"{p}/d/f3", "file"), ("file.created", f"{p}/s3", "file")]
    finally:
        sh(f"chmod -R 777 {top} && rm -rf {top}")


# ---- subscriptions and filters ----

def test_type_patterns_paths_and_procs(agent):
    w = agent.workdir
    os.mkdir(f"{w}/a")
    os.mkdir(f"{w}/ab")
    everything = subscribed(agent, events=["*"])
    files_in_a = subscribed(agent, events=["file.*"], paths=["a"])  # relative to the workdir
    exec_p1 = subscribed(agent, events=["exec.*"], procs=["p1"])
    exact = subscribed(agent, events=["file.deleted"])
    runner = agent.ws()
    runner.run(cmd="touch a/x ab/y && mv ab/y a/y && rm a/x", procId="p1", cwd=w)
    runner.run(cmd="true", procId="p2")
    got_all = collect(everything, lambda m: m["event"] == "exec.completed" and m["status"]["proc"] == "p2")
    names = [m["event"] for m in got_all]
    assert names == ["exec.started", "file.created", "file.created", "file.moved", "file.deleted", "exec.completed",
                     "exec.started", "exec.completed"]
    got_a = collect(files_in_a, lambda m: m["event"] == "file.deleted")
    assert summary(got_a) == [("file.created", f"{w}/a/x", "file"), ("file.moved", f"{w}/ab/y", f"{w}/a/y"),
                              ("file.deleted", f"{w}/a/x", "file")]  # ab/y is not under a; its move into a is
    got_p1 = collect(exec_p1, lambda m: m["event"] == "exec.completed")
    assert [(m["event"], m.get("proc") or m["status"]["proc"]) for m in got_p1] == [("exec.started", "p1"),
                                                                                    ("exec.completed", "p1")]
    assert [m["event"] for m in collect(exact, lambda m: True)] == ["file.deleted"]
    for ws in (files_in_a, exec_p1, exact):
        quiet(ws, 0.2)
    # the seqs of one stream are those of the full stream
    assert {m["seq"] for m in got_a} <= {m["seq"] for m in got_all}


def test_several_subscriptions_and_unsubscribe(agent):
    ws = agent.ws()
    s1 = ws.call("subscribe", events=["file.created"])
    s2 = ws.call("subscribe", events=["file.deleted"], paths=["gone"])
    assert (s1["sub"], s2["sub"]) == (1, 2)
    sh(f"cd {agent.workdir} && touch gone keep && rm gone keep")
    got = collect(ws, lambda m: m["event"] == "file.deleted")
    assert [(m["event"], os.path.basename(m["path"])) for m in got] == [
        ("file.created", "gone"), ("file.created", "keep"), ("file.deleted", "gone")]
    assert ws.call("unsubscribe", sub=1) == {"removed": 1, "subscriptions": 1}
    expect_error(ws.request("unsubscribe", sub=1), "NOT_FOUND")
    expect_error(ws.request("unsubscribe", sub=0), "NOT_FOUND")
    assert ws.call("unsubscribe") == {"removed": 1, "subscriptions": 0}
    sh(f"cd {agent.workdir} && touch gone && rm gone")
    quiet(ws)


def test_subscribe_bad_input(agent):
    ws = agent.ws()
    for args in ({}, {"events": []}, {"events": "file.*"}, {"events": [""]}, {"events": ["x" * 48]},
                 {"events": [1]}, {"events": ["*"] * 17}, {"events": ["*"], "paths": "/a"},
                 {"events": ["*"], "paths": [""]}, {"events": ["*"], "procs": [""]},
                 {"events": ["*"], "procs": ["p" * 65]}, {"events": ["*"], "sinceSeq": -1},
                 {"events": ["*"], "sinceSeq": "0"}):
        expect_error(ws.request("subscribe", **args), "INVALID_CONFIG")
    for i in range(16):
        ws.call("subscribe", events=[f"e{i}"])
    expect_error(ws.request("subscribe", events=["one.more"]), "RESOURCE_EXHAUSTED")
    last = ws.call("unsubscribe", sub=1)
    assert last["subscriptions"] == 15
    seq = agent.ws().call("subscribe", events=["*"])["seq"]
    assert "restarted" in expect_error(ws.request("subscribe", events=["*"], sinceSeq=seq + 1000), "INVALID_CONFIG")


# ---- the ring: replay and gaps ----

def test_reconnect_with_since_seq_gets_exactly_the_missed_events(agent):
    w = agent.workdir
    observer = subscribed(agent, events=["file.*"])
    client = agent.ws()
    client.call("subscribe", events=["file.*"])
    sh(f"touch {w}/before")
    last = next_event(client)["seq"]
    client.close()  # the network blip
    sh(f"cd {w} && touch m1 && mkdir m2 && mv m1 m2/m3 && rm -r m2")
    seen = collect(observer, lambda m: m["event"] == "file.deleted" and m["path"] == f"{w}/m2")
    missed = [m for m in seen if m["seq"] > last]
    client = agent.ws()
    reply = client.call("subscribe", events=["file.*"], sinceSeq=last)
    assert reply["nextSeq"] == last + 1 and reply["seq"] == seen[-1]["seq"]
    replayed = collect(client, lambda m: m["seq"] == seen[-1]["seq"])
    assert replayed == missed  # the same messages, byte for byte
    sh(f"touch {w}/live")
    assert next_event(client)["path"] == f"{w}/live"  # and then live ones


def test_since_seq_older_than_the_ring_is_a_gap(make_agent):
    agent = make_agent(args=["--event-ring-events", "16"])
    w = agent.workdir
    watcher = subscribed(agent, events=["file.created"])
    sh(f"cd {w} && seq 1 40 | xargs touch")
    last = collect(watcher, lambda m: m["path"] == f"{w}/40")[-1]["seq"]
    client = agent.ws()
    reply = client.call("subscribe", events=["file.created"], sinceSeq=0)
    assert reply["oldestSeq"] == last - 15
    gap = next_event(client)
    assert gap == {"type": "gap", "from": 1, "to": last - 16, "reason": "expired"}
    replayed = collect(client, lambda m: m["seq"] == last)
    assert [m["seq"] for m in replayed] == list(range(last - 15, last + 1))


def test_since_seq_at_the_last_event_then_falling_behind_is_a_behind_gap(make_agent):
    """A sinceSeq the ring holds (here the last seq) replays nothing that expired: a gap after it, because the
    connection fell behind, says "behind"."""
    agent = make_agent(args=["--event-ring-events", "16"])
    w = agent.workdir
    big = f"{agent.tmp.name}/big"
    with open(big, "wb") as f:
        f.write(b"x" * (8 << 20))
    observer = subscribed(agent, events=["file.*"])
    last = agent.ws().call("subscribe", events=["none"])["seq"]
    ws = agent.ws()
    assert ws.call("subscribe", events=["file.*"], sinceSeq=last)["nextSeq"] == last + 1
    ws.send({"id": 100, "op": "file.read", "path": big, "length": 8 << 20})  # 8 MiB queued: events wait
    assert select.select([ws.sock], [], [], 10)[0]  # the reply is being sent
    sh(f"cd {w} && seq 1 40 | xargs touch")  # more than the ring holds
    collect(observer, lambda m: m["path"] == f"{w}/40")
    reply = ws.recv_msg()
    assert reply["id"] == 100 and len(reply["result"]["data"]) == 8 << 20
    gap = next_event(ws)
    assert gap["type"] == "gap" and gap["from"] == last + 1 and gap["reason"] == "behind", gap


def test_ring_bounded_by_bytes(make_agent):
    agent = make_agent(args=["--event-ring-bytes", "65536"])
    w = agent.workdir
    long_dir = f"{w}/" + "/".join(["d" * 200] * 10)
    os.makedirs(long_dir)
    watcher = subscribed(agent, events=["file.created"], paths=[long_dir])
    sh(f"cd {long_dir} && seq 1 200 | xargs touch")  # ~2.2 KB each: 440 KB of events
    last = collect(watcher, lambda m: m["path"] == f"{long_dir}/200")[-1]["seq"]
    oldest = agent.ws().call("subscribe", events=["x"])["oldestSeq"]
    kept = last - oldest + 1
    assert 10 < kept < 40, kept


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def test_subscriber_that_never_reads(make_agent):
    """It does not hold up others, the agent's memory stays bounded (ring + its queue cap), and when it reads
    again it learns what it missed."""
    agent = make_agent(args=["--event-ring-bytes", "1048576"])
    w = agent.workdir
    long_dir = f"{w}/" + "/".join(["s" * 250] * 12)  # ~3 KB per event
    os.makedirs(long_dir)
    stuck = WS.connect(agent.port, token=agent.token)
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.call("subscribe", events=["file.created"])
    reader = subscribed(agent, events=["file.created"])
    rss_before = rss_kb(agent.pid)
    total, seq_of = 0, {}
    for batch in range(12):  # 12 x 500 events x 3 KB = 18 MB through the bus
        sh(f"cd {long_dir} && seq {batch * 500 + 1} {batch * 500 + 500} | xargs touch")
        total += 500
        got = collect(reader, lambda m: m["path"] == f"{long_dir}/{total}", timeout=30)
        assert len(got) == 500  # the reader keeps up, in full
        seq_of.update((m["path"], m["seq"]) for m in got)
    growth = rss_kb(agent.pid) - rss_before
    assert growth < 20 * 1024, f"agent grew by {growth} KiB"  # ring 1 MiB + queue cap 4 MiB + slack
    # now it reads: what was queued, then a gap, then the ring's events; it can tell what it lost
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    got = collect(stuck, lambda m: m.get("path") == f"{long_dir}/{total}", timeout=30)
    gaps = [m for m in got if m["type"] == "gap"]
    assert len(gaps) == 1 and gaps[0]["reason"] == "behind"
    events = [m for m in got if m["type"] == "event"]
    assert [m["seq"] for m in events] == sorted(m["seq"] for m in events) and len(events) < total
    at = got.index(gaps[0])
    assert got[at - 1]["seq"] < gaps[0]["from"] <= gaps[0]["to"] < got[at + 1]["seq"]
    # every event it did not get is inside the gap it was told of: nothing lost silently
    received = {m["path"] for m in events}
    missed = [seq_of[p] for p in seq_of if p not in received]
    assert missed and all(gaps[0]["from"] <= q <= gaps[0]["to"] for q in missed)
    assert agent.ws().call("ping")["pong"]


def test_children_do_not_inherit_the_inotify_fd(agent):
    _, _, status, _ = agent.ws().run(cmd="ls -l /proc/self/fd/ > fds.txt")
    assert status["exitCode"] == 0
    with open(os.path.join(agent.workdir, "fds.txt")) as f:
        assert "inotify" not in f.read()


def test_without_inotify_watches_are_polled(make_agent):
    """No inotify instance can be created (the user namespace allows none): the agent serves, and polls."""
    prefix = ["unshare", "--user", "--map-root-user", "sh", "-c",
              'echo 0 > /proc/sys/user/max_inotify_instances && exec "$0" "$@"']
    agent = make_agent(prefix=prefix)
    ws = subscribed(agent, events=["file.*"])
    w = ws.call("watch.list")["watches"][0]
    assert w["mode"] == "poll" and w["pollMs"] == 1000
    with open(os.path.join(agent.workdir, "seen"), "w") as f:
        f.write("x")
    assert summary(collect(ws, lambda m: True)) == [("file.created", f"{agent.workdir}/seen", "file")]
    assert "poll" in expect_error(agent.ws().request("watch.add", path="/tmp", mode="inotify"), "UNSUPPORTED")
    assert any("no inotify" in line for line in agent.log_lines())
