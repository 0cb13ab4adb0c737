"""A deliberately small WebSocket client over a raw socket, so tests can send exactly the frames they mean:
fragments, text frames, bad opcodes, half frames, oversized headers."""
import base64
import os
import socket
import struct

import msgpack

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
SUBPROTOCOL = "runra.agent.v1"


class HandshakeRefused(Exception):
    def __init__(self, status, head):
        super().__init__(f"HTTP {status}")
        self.status = status
        self.head = head


class Closed(Exception):
    def __init__(self, code, reason):
        super().__init__(f"closed {code} {reason!r}")
        self.code = code
        self.reason = reason


def http_get(port, path, host="127.0.0.1", timeout=5.0):
    """Returns (status, headers dict, body bytes) of a plain HTTP/1.1 GET."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                headers = parse_headers(head)
                if "content-length" in headers and len(body) >= int(headers["content-length"]):
                    break
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, parse_headers(head), body


def parse_headers(head):
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    return headers


class WS:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.next_id = 1
        self.ready = None
        self.answer_pings = True

    # ---- connection ----
    @classmethod
    def connect(cls, port, token=None, host="127.0.0.1", path="/", subprotocol=SUBPROTOCOL, query_token=None,
                unix_path=None, timeout=10.0, wait_ready=True):
        if unix_path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(unix_path)
        else:
            sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1) if not unix_path else None
        if query_token is not None:
            path = f"{path}?token={query_token}"
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", "Host: localhost", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        if subprotocol:
            lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
        if token is not None:
            lines.append(f"Authorization: Bearer {token}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        ws = cls(sock)
        head = ws._read_until(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 101:
            sock.close()
            raise HandshakeRefused(status, head)
        if wait_ready:
            ws.ready = ws.recv_msg()
            assert ws.ready.get("type") == "ready", ws.ready
        return ws

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _read_until(self, marker):
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed during handshake")
            self.buf += chunk
        head, _, self.buf = self.buf.partition(marker)
        return head

    def _read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    # ---- frames ----
    @staticmethod
    def frame(opcode, payload, fin=True, mask=True, rsv=0):
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload)
        if n < 126:
            hdr = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
        if not mask:
            return hdr + payload
        key = os.urandom(4)
        return hdr + key + mask_bytes(payload, key)

    def send_frame(self, opcode, payload, fin=True):
        self.sock.sendall(self.frame(opcode, payload, fin))

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv_frame(self):
        b0, b1 = self._read_exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read_exact(8))[0]
        payload = self._read_exact(n)
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv_msg_bytes(self):
        """The next complete data message, answering pings and raising Closed on a close frame."""
        parts = []
        while True:
            fin, op, payload = self.recv_frame()
            if op == OP_PING:
                if self.answer_pings:
                    self.send_frame(OP_PONG, payload)
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise Closed(code, payload[2:].decode(errors="replace"))
            parts.append(payload)
            if fin:
                return b"".join(parts)

    def recv_msg(self):
        return msgpack.unpackb(self.recv_msg_bytes(), raw=False, strict_map_key=False)

    # ---- requests ----
    def send(self, msg, opcode=OP_BINARY):
        self.send_frame(opcode, msgpack.packb(msg, use_bin_type=True))

    def request(self, op, **args):
        rid = self.next_id
        self.next_id += 1
        self.send({"id": rid, "op": op, **args})
        reply = self.recv_msg()
        assert reply.get("type") == "reply" and reply.get("id") == rid, reply
        return reply

    def run(self, **args):
        """A foreground exec: returns (stdout, stderr, status, stream messages) once its reply arrives."""
        rid = self.next_id
        self.next_id += 1
        self.send({"id": rid, "op": "exec", **args})
        out, err, streams = bytearray(), bytearray(), []
        while True:
            m = self.recv_msg()
            if m.get("type") == "stream" and m.get("id") == rid:
                streams.append(m)
                (out if m["stream"] == "stdout" else err).extend(m["data"])
            elif m.get("type") == "reply" and m.get("id") == rid:
                assert "error" not in m, m
                return bytes(out), bytes(err), m["result"]["status"], streams

    def call(self, op, **args):
        reply = self.request(op, **args)
        assert "error" not in reply, reply
        return reply["result"]


def mask_bytes(data, key):
    if not data:
        return b""
    n = len(data)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")
