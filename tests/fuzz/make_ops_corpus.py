#!/usr/bin/python3
"""Writes tests/fuzz/corpus/ops/: one valid request per op (and a few variants), the seeds fuzz_ops mutates.
Run it again when an op or argument is added; the files are checked in."""
import os
import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = {
    "ping": {"data": b"x"}, "info": {},
    "exec": {"cmd": "echo hi", "cwd": "/work", "env": {"A": "1"}, "timeoutMs": 1000, "stream": True},
    "exec_argv": {"op": "exec", "argv": ["ls", "-l"], "background": True, "procId": "p1", "pty": {"cols": 80, "rows": 24}},
    "proc.list": {}, "proc.get": {"proc": "p1"}, "proc.wait": {"proc": "p1", "timeoutMs": 10},
    "proc.kill": {"proc": "p1", "signal": "SIGTERM"}, "proc.signal": {"proc": "p1", "signal": 15, "group": True},
    "proc.stdin": {"proc": "p1", "data": b"input\n"}, "proc.closeStdin": {"proc": "p1"},
    "proc.attach": {"proc": "p1", "fromOffset": 0}, "proc.detach": {"proc": "p1"},
    "proc.resize": {"proc": "p1", "cols": 100, "rows": 30},
    "file.read": {"path": "a.txt", "offset": 0, "length": 10}, "file.read_stream": {"op": "file.read", "path": "a.txt", "stream": True},
    "file.write": {"path": "a.txt", "data": b"hello", "mode": 0o644, "mkdirs": True},
    "file.upload.open": {"path": "big.bin", "size": 10}, "file.upload.chunk": {"upload": 1, "offset": 0, "data": b"0123456789"},
    "file.upload.commit": {"upload": 1, "sha256": "00" * 32}, "file.upload.abort": {"upload": 1},
    "file.list": {"path": ".", "depth": 2, "limit": 10}, "file.stat": {"path": "a.txt"}, "file.exists": {"path": "/work"},
    "file.mkdir": {"path": "d/e/f", "parents": True}, "file.delete": {"path": "d", "recursive": True},
    "file.move": {"from": "a.txt", "to": "b.txt", "overwrite": True}, "file.chmod": {"path": "b.txt", "mode": 0o600},
    "watch.add": {"path": "/work", "recursive": False, "exclude": ["*.tmp", "**/x/*"], "mode": "poll", "pollMs": 500},
    "watch.remove": {"watch": 2}, "watch.list": {},
    "subscribe": {"events": ["file.*", "exec.started"], "paths": ["/work"], "procs": ["p1"], "sinceSeq": 0},
    "unsubscribe": {"sub": 1},
    "port.expose": {"port": 3000, "waitMs": 0}, "port.list": {}, "port.close": {"port": 3000},
    "port.connect": {"port": 3000, "host": "::1", "timeoutMs": 10}, "port.send": {"tunnel": 1, "data": b"GET /", "eof": True},
    "port.disconnect": {"tunnel": 1},
    "pause.prepare": {}, "resume": {}, "sandbox.reset": {"keepPaths": ["keep"], "graceMs": 0}, "metrics": {},
}
for i, (name, args) in enumerate(sorted(SEEDS.items())):
    msg = {"id": i + 1, "op": args.pop("op", name), **args}
    with open(os.path.join(HERE, "corpus", "ops", name.replace(".", "_") + ".msgpack"), "wb") as f:
        f.write(msgpack.packb(msg, use_bin_type=True))
