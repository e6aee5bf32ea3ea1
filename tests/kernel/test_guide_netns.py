"""docs/guide.md is a test: its host is built in namespaces, its configuration applied, and
every command it shows under a ``<!-- guide-test: VARIANT -->`` marker run and compared with
what it claims; real packets then prove what the routes say.

The guide's host (namespace ``host``): ``eno1`` management with the main default route via a
router, ``eno2`` an isolated storage LAN (a NAS, no router), ``data200`` a data VLAN with a
secondary address and IPv6 via the router's ``fe80::1``, and ``docker0``, a bridge with a veth
to a ``container`` namespace. The router forwards between management, data and a client
network and filters by strict reverse path, as the article's does.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from polroutd.config.parse import parse_config
from polroutd.lab.netns import delete_netns
from polroutd.lab.scripts import TCP_SERVER
from tests.support.lab_tools import recorded_tables

GUIDE = Path(__file__).parents[2] / "docs" / "guide.md"
MARKER = re.compile(r"<!-- guide-test: ([a-z-]+) -->\n```(\w+)\n(.*?)```", re.S)
PORT = 8080

# Where the guide's addresses live; everything is built from these.
CLIENT4, CLIENT6 = "198.51.100.20", "2001:db8:51::20"
NAS = "172.20.0.99"
CONTAINER = "172.17.0.2"
MGMT, STORAGE, DATA, DATA_SECONDARY, DATA6 = (
    "192.168.10.10", "172.20.0.10", "10.200.0.10", "10.200.0.11", "2001:db8:200::10")


# ------------------------------------------------------------------ reading the guide


@dataclass
class Check:
    command: str
    expected: list[str] = field(default_factory=list)


def guide_blocks() -> dict[str, list[tuple[str, str]]]:
    """Marked fenced blocks of the guide by variant: (language, text)."""
    blocks: dict[str, list[tuple[str, str]]] = {}
    for variant, language, text in MARKER.findall(GUIDE.read_text()):
        blocks.setdefault(variant, []).append((language, text))
    return blocks


def guide_config() -> str:
    ((language, text),) = guide_blocks()["config"]
    assert language == "toml"
    return text


def guide_checks(variant: str) -> list[Check]:
    """The ``# command`` lines of a variant's console blocks with the output shown below each."""
    checks: list[Check] = []
    for language, text in guide_blocks()[variant]:
        assert language == "console"
        for line in text.splitlines():
            if line.startswith("# "):
                checks.append(Check(line[2:]))
            elif line.strip():
                checks[-1].expected.append(line)
    return checks


# ------------------------------------------------------------------ the host, in namespaces


@dataclass
class Host:
    token: str
    config: Path
    tmp: Path

    def ns(self, role: str) -> str:
        return f"polroutd-t-{self.token}-guide-{role}"

    def run(self, role: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.ns(role), *argv], capture_output=True,
                              text=True, check=check, timeout=30)

    def polroutd(self, *args: str) -> subprocess.CompletedProcess[str]:
        config = () if args[0] == "status" else ("--config", str(self.config))
        return self.run("host", sys.executable, "-m", "polroutd", *args, *config, check=False)

    def shell(self, command: str) -> subprocess.CompletedProcess[str]:
        """A command as the guide shows it, run on the host (``polroutd`` gets the config)."""
        argv = command.split()
        if argv[0] == "polroutd":
            return self.polroutd(*argv[1:])
        return self.run("host", *argv, check=False)

    def reach(self, source: str, destination: str) -> str:
        """A TCP round trip from ``source`` on the host: the server's answer or the error."""
        probe = (
            "import socket, sys\n"
            "src, dst, port = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
            "family = socket.AF_INET6 if ':' in dst else socket.AF_INET\n"
            "s = socket.socket(family, socket.SOCK_STREAM); s.settimeout(2)\n"
            "try:\n"
            "    s.bind((src, 0)); s.connect((dst, port)); s.sendall(b'hi\\n')\n"
            "    print(s.makefile().readline().strip())\n"
            "except OSError as e:\n"
            "    print(type(e).__name__ if not e.strerror else e.strerror)\n"
        )
        return self.run("host", sys.executable, "-c", probe, source, destination,
                        str(PORT)).stdout.strip()

    def apply(self, text: str) -> None:
        self.config.write_text(text)
        flushed = self.polroutd("flush")
        assert flushed.returncode == 0, flushed.stderr
        applied = self.polroutd("apply")
        assert applied.returncode == 0, applied.stdout + applied.stderr


def _batch(host: Host, role: str, lines: str) -> None:
    subprocess.run(["ip", "-n", host.ns(role), "-batch", "-"], input=lines, text=True,
                   check=True, capture_output=True)


def _sysctl(host: Host, role: str, *settings: str) -> None:
    host.run(role, "sysctl", "-q", "-w", *settings)


@contextmanager
def guide_host(tmp: Path) -> Iterator[Host]:
    host = Host(secrets.token_hex(3), tmp / "polroutd.toml", tmp)
    roles = ("host", "router", "client", "nas", "container")
    try:
        for role in roles:
            subprocess.run(["ip", "netns", "add", host.ns(role)], check=True)
            _batch(host, role, "link set lo up\n")
        for role in roles:
            _sysctl(host, role, "net.ipv6.conf.all.accept_dad=0",
                    "net.ipv6.conf.default.accept_dad=0")

        def wire(a: str, a_if: str, b: str, b_if: str) -> None:
            subprocess.run(["ip", "-n", host.ns(a), "link", "add", a_if, "type", "veth", "peer",
                            "name", b_if, "netns", host.ns(b)], check=True)

        wire("host", "eno1", "router", "mgmt")
        wire("host", "data200", "router", "data")
        wire("host", "eno2", "nas", "eth0")
        wire("router", "clients", "client", "eth0")
        wire("host", "vethctr", "container", "eth0")
        _batch(host, "host", """\
link add docker0 type bridge
link set vethctr master docker0
link set eno1 up
link set eno2 up
link set data200 up
link set docker0 up
link set vethctr up
addr add 192.168.10.10/24 dev eno1
addr add 172.20.0.10/24 dev eno2
addr add 10.200.0.10/24 dev data200
addr add 10.200.0.11/24 dev data200
addr add 2001:db8:200::10/64 dev data200
addr add 172.17.0.1/16 dev docker0
route add default via 192.168.10.1 dev eno1
""")
        _batch(host, "router", """\
link set mgmt up
link set data up
link set clients up
addr add 192.168.10.1/24 dev mgmt
addr add 10.200.0.1/24 dev data
addr add fe80::1/64 dev data
addr add 2001:db8:200::1/64 dev data
addr add 198.51.100.1/24 dev clients
addr add 2001:db8:51::1/64 dev clients
""")
        _sysctl(host, "router", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
                "net.ipv4.conf.all.rp_filter=1", "net.ipv4.conf.default.rp_filter=1",
                "net.ipv4.conf.mgmt.rp_filter=1", "net.ipv4.conf.data.rp_filter=1")
        _batch(host, "client", """\
link set eth0 up
addr add 198.51.100.20/24 dev eth0
addr add 2001:db8:51::20/64 dev eth0
route add default via 198.51.100.1
route add ::/0 via 2001:db8:51::1
""")
        _batch(host, "nas", "link set eth0 up\naddr add 172.20.0.99/24 dev eth0\n")
        _batch(host, "container", """\
link set eth0 up
addr add 172.17.0.2/16 dev eth0
route add default via 172.17.0.1
""")
        for role in ("client", "nas", "container"):
            server = subprocess.Popen(
                ["ip", "netns", "exec", host.ns(role), sys.executable, "-c", TCP_SERVER,
                 str(PORT)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            assert server.stdout is not None and server.stdout.readline().strip() == "LISTENING"
        yield host
    finally:
        for role in roles:
            delete_netns(host.ns(role))


def configured(host: Host, variant: str) -> str:
    """The guide's file with this test's paths (never the host's /etc), in a variant."""
    text = guide_config().replace("[daemon]\n", (
        "[daemon]\n"
        f'rt_tables_file = "{host.tmp}/iproute2/rt_tables.d/polroutd.conf"\n'
        f'dhcp_lease_paths = ["{host.tmp}/leases/*"]\n'
        'http_listen = "127.0.0.1:9641"\n'), 1)
    assert 'mode = "strict"' in text and 'gateway = "unreachable"' in text
    if variant == "main-first":
        text = text.replace('mode = "strict"', 'mode = "main-first"')
    if variant == "none":
        text = text.replace('gateway = "unreachable"', 'gateway = "none"')
    return text


# ------------------------------------------------------------------ comparing with the guide


_FIELDS = ("via", "dev", "src", "table")


def _fields(line: str) -> dict[str, str]:
    words = line.split()
    return {w: words[i + 1] for i, w in enumerate(words[:-1]) if w in _FIELDS}


def _names(host: Host) -> dict[str, str]:
    """Table numbers to the names polroutd recorded (``ip`` here does not read that file)."""
    return {str(number): name for name, number in recorded_tables(host.tmp).items()}


def _named(text: str, names: dict[str, str]) -> str:
    text = re.sub(r"\b(table|lookup) (\d+)\b",
                  lambda m: f"{m.group(1)} {names.get(m.group(2), m.group(2))}", text)
    return text.replace("proto 218", "proto polroutd")


def check_variant(host: Host, variant: str) -> int:
    """Runs every command the guide shows for ``variant``; returns how many were checked."""
    names = _names(host)
    checks = guide_checks(variant)
    for check in checks:
        result = host.shell(check.command)
        got = _named(result.stdout + result.stderr, names).strip().splitlines()
        where = f"docs/guide.md [{variant}] `{check.command}`"
        if check.command.startswith(("ip route get", "ip -6 route get")):
            want = check.expected[0]
            if want.startswith("RTNETLINK answers:"):
                assert result.returncode != 0 and got[:1] == [want], (where, got)
            else:
                assert result.returncode == 0, (where, result.stderr)
                assert got[0].split()[0] == want.split()[0], (where, got)
                assert _fields(got[0]) == _fields(want), (where, got)
        elif check.command.startswith(("ip rule", "ip -6 rule")):
            assert result.returncode == 0, (where, result.stderr)
            assert [" ".join(line.split()) for line in got] == [
                " ".join(line.split()) for line in check.expected], where
        elif check.command == "polroutd status":
            assert result.returncode == 0, (where, result.stderr)
            assert _shown_in_order(check.expected, got), (where, got)
        else:  # polroutd: exactly what the guide shows
            assert got == check.expected, (where, got)
    return len(checks)


_VERSION = re.compile(r"^polroutd [\w.+-]+:")


def _shown_in_order(expected: list[str], got: list[str]) -> bool:
    """The guide's lines (``...`` leaves lines out) appear in this order; the headline first
    (any version)."""
    shown = [_VERSION.sub("polroutd X:", line) for line in expected if line != "..."]
    lines = iter(_VERSION.sub("polroutd X:", line) for line in got)
    return bool(got) and _VERSION.sub("polroutd X:", got[0]) == shown[0] and all(
        any(line == want for line in lines) for want in shown)


@contextmanager
def daemon(host: Host) -> Iterator[None]:
    """``polroutd run`` on the host, until its ``status`` says in sync."""
    log = host.tmp / "daemon.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", host.ns("host"), sys.executable, "-m", "polroutd", "run",
             "--config", str(host.config)], stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 15
        while host.polroutd("status").returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ------------------------------------------------------------------ the tests


def test_the_guide_marks_its_configuration_and_its_claims() -> None:
    blocks = guide_blocks()
    assert set(blocks) >= {"config", "strict", "main-first", "none"}
    assert sum(1 for c in guide_checks("strict") if "route get" in c.command) >= 8


def test_the_guides_deployment_routes_as_the_guide_says(tmp_path: Path) -> None:
    with guide_host(tmp_path) as host:
        # Before polroutd: a reply from the data address leaves by eno1 and the router's
        # strict reverse-path filter drops it.
        assert host.reach(DATA, CLIENT4) == "TimeoutError"

        host.apply(configured(host, "strict"))
        with daemon(host):
            assert check_variant(host, "strict") >= 14
        check = host.polroutd("check-config")
        assert check.returncode == 0 and check.stderr == "", check.stderr  # no warnings

        # Real packets, from every address.
        for source in (DATA, DATA_SECONDARY, MGMT):
            assert host.reach(source, CLIENT4) == f"polroutd-lab reached-at {CLIENT4} from " \
                f"{source}", source
        assert host.reach(DATA6, CLIENT6) == f"polroutd-lab reached-at {CLIENT6} from {DATA6}"
        # The storage LAN reaches its NAS and nothing else (no leak by the management link).
        assert host.reach(STORAGE, NAS).endswith(f"from {STORAGE}")
        assert host.reach(STORAGE, CLIENT4) == "No route to host"
        # The containers, from every source address.
        for source in (DATA, DATA_SECONDARY, MGMT, STORAGE):
            assert host.reach(source, CONTAINER).endswith(f"from {source}"), source

        # gateway = "none": the storage address's traffic falls through to main (and eno1).
        host.apply(configured(host, "none"))
        assert check_variant(host, "none") >= 1

        # main-first: main's more specific routes win for every source; docker still reachable.
        host.apply(configured(host, "main-first"))
        assert check_variant(host, "main-first") >= 2
        for source in (DATA, MGMT, STORAGE):
            assert host.reach(source, CONTAINER).endswith(f"from {source}"), source
        assert host.reach(DATA, CLIENT4).endswith(f"from {DATA}")


def test_ipv6_rules_follow_addresses_that_vanish_on_link_down(tmp_path: Path) -> None:
    """keep_addr_on_down=0 (the kernel's default): a link down removes the IPv6 addresses, and
    polroutd's rules for them go; the IPv4 rules stay. When the address is back, so is its
    rule, and traffic from it uses the data table again."""
    with guide_host(tmp_path) as host:
        host.apply(configured(host, "strict"))
        rule6 = f"from {DATA6} lookup"

        def rules6() -> str:
            return host.run("host", "ip", "-6", "rule", "show").stdout

        assert rule6 in rules6()
        host.run("host", "ip", "link", "set", "data200", "down")
        assert DATA6 not in host.run("host", "ip", "-6", "addr", "show", "dev", "data200").stdout
        assert host.polroutd("apply").returncode == 0
        assert rule6 not in rules6()
        assert f"from {DATA} lookup" in host.run("host", "ip", "rule", "show").stdout
        # what ifupdown, networkd or NetworkManager do when the link is up again
        host.run("host", "ip", "link", "set", "data200", "up")
        host.run("host", "ip", "addr", "add", f"{DATA6}/64", "dev", "data200", "nodad")
        assert host.polroutd("apply").returncode == 0
        assert rule6 in rules6()
        deadline = time.monotonic() + 5
        while (answer := host.reach(DATA6, CLIENT6)).startswith(("Timeout", "No route")) \
                and time.monotonic() < deadline:
            time.sleep(0.2)  # the router's neighbour entry for fe80::1's peer settles
        assert answer == f"polroutd-lab reached-at {CLIENT6} from {DATA6}"


def test_the_guides_configuration_is_valid_as_written() -> None:
    text = guide_config()
    config = parse_config(tomllib.loads(text), "docs/guide.md", text)
    assert [spec.name for spec in config.interfaces] == ["eno1", "eno2", "data200"]
    assert config.daemon.mode == "strict"
