"""Small Python programs the lab runs inside its namespaces (``python -c SCRIPT args...``).

Kept as text so they need nothing but the interpreter in the namespace, and so the lab can show
exactly what runs there.
"""

from __future__ import annotations

__all__ = ["HTTP_GET", "PING", "SNIFF", "TCP_CLIENT", "TCP_SERVER"]

#: ``TCP_SERVER port``: dual-stack; answers each connection with one line
#: ``polroutd-lab reached-at <local address> from <peer address>``.
TCP_SERVER = r"""
import socket, sys, threading
port = int(sys.argv[1])
srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
srv.bind(("::", port))
srv.listen(128)
print("LISTENING", flush=True)

def plain(addr):
    return addr[7:] if addr.startswith("::ffff:") else addr

def handle(conn):
    with conn:
        try:
            conn.settimeout(5)
            data = b""
            while b"\n" not in data and len(data) < 4096:
                chunk = conn.recv(1024)
                if not chunk:
                    break
                data += chunk
            local, peer = plain(conn.getsockname()[0]), plain(conn.getpeername()[0])
            conn.sendall(f"polroutd-lab reached-at {local} from {peer}\n".encode())
        except OSError:
            pass

while True:
    conn, _ = srv.accept()
    threading.Thread(target=handle, args=(conn,), daemon=True).start()
"""

#: ``TCP_CLIENT address port timeout``: one request/response round trip; exit 0 and the answer
#: on success.
TCP_CLIENT = r"""
import socket, sys, time
addr, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + timeout
def left():
    rest = deadline - time.monotonic()
    if rest <= 0:
        raise TimeoutError("timed out")
    return rest
try:
    with socket.create_connection((addr, port), timeout=left()) as conn:
        conn.settimeout(left())
        conn.sendall(b"hello from polroutd-lab\n")
        data = b""
        while not data.endswith(b"\n"):
            conn.settimeout(left())
            chunk = conn.recv(1024)
            if not chunk:
                break
            data += chunk
except OSError as exc:
    print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(1)
line = data.decode(errors="replace").strip()
if not line.startswith("polroutd-lab reached-at "):
    print(f"unexpected answer {line!r}", file=sys.stderr)
    sys.exit(2)
print(line)
"""

#: ``PING address count timeout``: ICMP(v6) echo over a raw socket (no ping binary needed).
PING = r"""
import os, select, socket, struct, sys, time
addr, count, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
v6 = ":" in addr
if v6:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    req_type, rep_type = 128, 129
else:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    req_type, rep_type = 8, 0

def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF

ident = os.getpid() & 0xFFFF
replies = 0
for seq in range(1, count + 1):
    payload = b"polroutd-lab" + struct.pack("!d", time.time())
    head = struct.pack("!BBHHH", req_type, 0, 0, ident, seq)
    if not v6:
        head = struct.pack("!BBHHH", req_type, 0, checksum(head + payload), ident, seq)
    sock.sendto(head + payload, (addr, 0))
    deadline = time.monotonic() + timeout
    while (rest := deadline - time.monotonic()) > 0:
        if not select.select([sock], [], [], rest)[0]:
            break
        pkt = sock.recv(2048)
        if not v6:
            pkt = pkt[(pkt[0] & 0x0F) * 4:]
        if len(pkt) < 8:
            continue
        typ, _code, _ck, rid, rseq = struct.unpack("!BBHHH", pkt[:8])
        if typ == rep_type and rid == ident and rseq == seq:
            replies += 1
            break
print(f"{replies}/{count} replies")
sys.exit(0 if replies else 1)
"""

#: ``SNIFF ifname[,ifname...] source port``: counts the frames each interface *receives* (not the
#: ones it sends) that carry a TCP segment from ``source``:``port`` (port 0: any). Prints
#: ``READY`` once listening, and a JSON object ``{ifname: count}`` when its stdin closes.
SNIFF = r"""
import json, os, select, socket, struct, sys
ifnames, source, port = sys.argv[1].split(","), sys.argv[2], int(sys.argv[3])
family = socket.AF_INET6 if ":" in source else socket.AF_INET
wanted = socket.inet_pton(family, source)
ETH_P_ALL, ETH_P_IP, ETH_P_IPV6, PACKET_OUTGOING, TCP = 0x0003, 0x0800, 0x86DD, 4, 6
socks = {}
for name in ifnames:
    # Protocol 0 at creation, ETH_P_ALL at bind: frames of other interfaces never get in.
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    sock.bind((name, ETH_P_ALL))
    sock.setblocking(False)
    socks[sock] = name
counts = dict.fromkeys(ifnames, 0)

def matches(frame):
    ethertype, packet = struct.unpack("!H", frame[12:14])[0], frame[14:]
    if ethertype == ETH_P_IP and family == socket.AF_INET and len(packet) >= 20:
        if packet[9] != TCP or packet[12:16] != wanted:
            return False
        segment = packet[(packet[0] & 0x0F) * 4:]
    elif ethertype == ETH_P_IPV6 and family == socket.AF_INET6 and len(packet) >= 40:
        if packet[6] != TCP or packet[8:24] != wanted:
            return False
        segment = packet[40:]
    else:
        return False
    return port == 0 or (len(segment) >= 2 and struct.unpack("!H", segment[:2])[0] == port)

def drain(sock):
    while True:
        try:
            frame, where = sock.recvfrom(65535)
        except BlockingIOError:
            return
        if where[2] != PACKET_OUTGOING and matches(frame):
            counts[socks[sock]] += 1

print("READY", flush=True)
done = False
while not done:
    for ready in select.select([0, *socks], [], [])[0]:
        if ready == 0:
            done = not os.read(0, 4096)
        else:
            drain(ready)
for sock in socks:
    drain(sock)
print(json.dumps(counts), flush=True)
"""

#: ``HTTP_GET url [method]``: prints the status code on the first line, then the body; exit 1
#: (message on stderr) when no HTTP answer came within 3 seconds.
HTTP_GET = r"""
import sys, urllib.error, urllib.request
url, method = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "GET")
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(urllib.request.Request(url, method=method), timeout=3) as answer:
        status, body = answer.status, answer.read()
except urllib.error.HTTPError as error:
    status, body = error.code, error.read()
except OSError as error:
    print(f"{type(error).__name__}: {error}", file=sys.stderr)
    sys.exit(1)
print(status)
sys.stdout.write(body.decode(errors="replace"))
"""
