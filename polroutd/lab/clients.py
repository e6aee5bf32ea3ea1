"""The DHCP clients and router advertisements operators run, for real, in the lab's namespaces.

ISC dhclient has its own runner (:mod:`polroutd.lab.dhcp`); this module adds:

* **dhcpcd** (9.4): its address ``noprefixroute``, its prefix route and default route in main at
  metric 1002 (or no default with ``nogateway``: the lease file is then the only source), its
  lease ``/var/lib/dhcpcd/IF.lease`` (0640 root), its hooks (``/etc/dhcpcd.exit-hook``);
* **busybox udhcpc** with a script that does what Debian's ``/etc/udhcpc/default.script`` does
  (address, ``default via ROUTER dev IF``; no lease file at all);
* **systemd-networkd** (252) as a DHCPv4 client, with ``[DHCPv4] RouteTable=`` when asked:
  prefix and default route then live outside main, the address is ``noprefixroute``;
* **NetworkManager** (1.42) with its internal DHCP client and a private D-Bus system bus,
  managing only the interface (address ``noprefixroute``, prefix and default route at metric
  100, lease in ``/var/lib/NetworkManager``); installed, or unpacked from its Debian packages
  (``dpkg -x``) into a directory named by ``POLROUTD_LAB_NM_ROOT``, so the host need not
  have it installed;
* **radvd** (2.19) in the router namespace, advertising a prefix for SLAAC.

Every client runs inside the lab's server namespace *and* in a private mount and UTS namespace
(``unshare --mount --uts``) in which fresh directories of the lab's temporary directory are
bind-mounted over ``/run``, ``/var/lib/dhcpcd``, ``/var/lib/dhcp``, ``/etc/resolv.conf`` and
the client's configuration paths: nothing it writes reaches the host's files, its hostname
changes stay in the private UTS namespace, and teardown removes everything with the lab.
:func:`host_files_snapshot` lets a test prove the host's files were left alone.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from polroutd.lab.dhcp import Lab
from polroutd.lab.netns import LabError, stop_process

__all__ = [
    "HOST_FILES",
    "NM_ROOT_VARIABLE",
    "DhcpcdClient",
    "NetworkManagerClient",
    "NetworkdClient",
    "Radvd",
    "UdhcpcClient",
    "client_version",
    "host_files_snapshot",
    "networkmanager_command",
]

#: What a DHCP client could write on the host, were it not confined (checked by the tests).
HOST_FILES = ("/etc/resolv.conf", "/var/lib/dhcpcd", "/var/lib/dhcp", "/run/systemd/netif",
              "/run/dhcpcd", "/etc/hostname", "/var/lib/NetworkManager", "/run/NetworkManager",
              "/etc/NetworkManager")


def host_files_snapshot(paths: Sequence[str] = HOST_FILES) -> dict[str, str]:
    """A digest of each path (a file's contents, a directory's tree of names, sizes, mtimes)."""
    found: dict[str, str] = {}
    for path in paths:
        digest = hashlib.sha256()
        if os.path.isdir(path):
            for root, dirs, files in sorted(os.walk(path)):
                dirs.sort()
                for name in sorted(files):
                    full = os.path.join(root, name)
                    try:
                        info = os.lstat(full)
                    except OSError:
                        continue
                    digest.update(f"{full} {info.st_size} {info.st_mtime_ns}\n".encode())
        elif os.path.exists(path):
            with open(path, "rb") as f:
                digest.update(f.read())
        else:
            digest.update(b"(absent)")
        found[path] = digest.hexdigest()
    return found


def client_version(argv: Sequence[str]) -> str:
    """The first line a program prints for its version option."""
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    return (proc.stdout or proc.stderr).strip().splitlines()[0] if (proc.stdout or proc.stderr) \
        else "unknown"


def _program(name: str, *fallbacks: str) -> str:
    for candidate in (name, *fallbacks):
        found = shutil.which(candidate) or (candidate if os.access(candidate, os.X_OK) else None)
        if found:
            return found
    raise LabError(f"{name} is not installed")


def _wait(condition: Callable[[], bool], timeout: float, what: str,
          alive: Callable[[], str | None] = lambda: None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        died = alive()
        if died is not None:
            raise LabError(f"{what}: {died}")
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


class _Confined:
    """A program in the lab's server (or router) namespace, with private mounts (see the module
    docstring): ``binds`` maps a path of the lab's directory onto the path the program sees."""

    name = "client"

    def __init__(self, lab: Lab, directory: Path, interface: str) -> None:
        self.lab = lab
        self.interface = interface
        self.dir = directory / f"{self.name}-{interface}"
        self.dir.mkdir(mode=0o755, exist_ok=True)
        self.run_dir = self._subdir("run")
        self.resolv_conf = self.dir / "resolv.conf"
        self.resolv_conf.write_text("# the client's own resolv.conf (lab)\n")
        self.log_path = self.dir / f"{self.name}.log"
        self._proc: subprocess.Popen[str] | None = None

    def _subdir(self, name: str) -> Path:
        path = self.dir / name
        path.mkdir(mode=0o755, exist_ok=True)
        return path

    def binds(self) -> dict[str, Path]:
        return {"/run": self.run_dir, "/etc/resolv.conf": self.resolv_conf}

    def argv(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> list[str]:
        """Shell commands run in the private mount namespace after the bind mounts."""
        return []

    def namespace(self) -> str:
        return self.lab.server

    def confined_argv(self) -> list[str]:
        """``unshare --mount --uts`` + bind mounts + exec the client."""
        mounts = [f"mount --bind {shlex.quote(str(source))} {shlex.quote(target)}"
                  for target, source in self.binds().items()]
        script = " && ".join([*mounts, *self.prepare(), 'exec "$@"'])
        return ["unshare", "--mount", "--uts", "--propagation", "private", "--",
                "sh", "-c", script, self.name, *self.argv()]

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, env: Mapping[str, str] | None = None) -> None:
        if self.running:
            raise LabError(f"{self.name} is already running")
        with self.log_path.open("a") as log:
            self._proc = self.lab.popen(
                self.namespace(), *self.confined_argv(), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=dict(env) if env is not None else None)

    def died(self) -> str | None:
        """Why the client is gone, or None while it runs."""
        if self._proc is not None and self._proc.poll() is not None:
            return f"{self.name} exited with {self._proc.returncode}:\n{self.log_tail()}"
        return None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc, timeout)

    def wait_address(self, address: str | None = None, timeout: float = 20.0) -> str:
        """Wait until the interface has a global IPv4 address (``address`` if given)."""
        found: list[str] = []

        def bound() -> bool:
            found[:] = self._addresses4()
            return address in found if address is not None else bool(found)

        _wait(bound, timeout, f"{self.name} to bind {address or 'an address'}", self.died)
        return address or found[0]

    def _addresses4(self) -> list[str]:
        proc = self.lab.run(self.lab.server, "ip", "-4", "-o", "addr", "show", "dev",
                            self.interface, "scope", "global", check=False)
        return re.findall(r"inet (\S+)/", proc.stdout)


DHCPCD_HOOKS = Path("/usr/lib/dhcpcd/dhcpcd-hooks")


class DhcpcdClient(_Confined):
    """dhcpcd on the interface, IPv4 only. ``gateway=False`` adds ``nogateway`` (no default
    route: polroutd must take the router from the lease). ``exit_hook`` is sourced by
    dhcpcd-run-hooks after its own hooks, as ``/etc/dhcpcd.exit-hook`` would be."""

    name = "dhcpcd"

    def __init__(self, lab: Lab, directory: Path, interface: str, *, gateway: bool = True,
                 exit_hook: str | None = None) -> None:
        super().__init__(lab, directory, interface)
        self.state_dir = self._subdir("var-lib-dhcpcd")
        self.conf = self.dir / "dhcpcd.conf"
        self.conf.write_text(
            "# polroutd lab: Debian's defaults, IPv4 only, quick retries\n"
            "option rapid_commit\noption routers, subnet_mask, dhcp_lease_time\n"
            "noipv4ll\nnoarp\nnohook hostname\n" + ("" if gateway else "nogateway\n"))
        self.exit_hook = exit_hook

    @property
    def lease_path(self) -> Path:
        """Where polroutd sees the lease (``/var/lib/dhcpcd/IF.lease`` inside the client)."""
        return self.state_dir / f"{self.interface}.lease"

    def binds(self) -> dict[str, Path]:
        binds = {**super().binds(), "/var/lib/dhcpcd": self.state_dir}
        if self.exit_hook is not None:
            # The host has no /etc/dhcpcd.exit-hook to mount over: the hook joins a copy of the
            # hooks directory instead (dhcpcd-run-hooks sources both the same way).
            hooks = self.dir / "dhcpcd-hooks"
            if not hooks.exists():
                shutil.copytree(DHCPCD_HOOKS, hooks)
            (hooks / "99-polroutd-lease").write_text(self.exit_hook)
            binds[str(DHCPCD_HOOKS)] = hooks
        return binds

    def argv(self) -> list[str]:
        return [_program("dhcpcd"), "--nobackground", "--ipv4only", "--config", str(self.conf),
                "--timeout", "30", self.interface]


UDHCPC_SCRIPT = r"""#!/bin/sh
# polroutd lab: what Debian's /etc/udhcpc/default.script does with a lease (address, default
# route via the router through the interface, resolv.conf), the default route at metric 10
# (ifupdown's "metric 10"), so it sits beside the management default instead of replacing it.
case "$1" in
deconfig)
    ip -4 addr flush dev "$interface" scope global
    ip link set dev "$interface" up ;;
bound|renew)
    old=$(ip -4 -o addr show dev "$interface" scope global | awk '{print $4}' | head -n 1)
    if [ -n "$old" ] && [ "$old" != "$ip/$mask" ] && [ "${old%/*}" != "$ip" ]; then
        ip -4 addr flush dev "$interface" scope global
    fi
    ip -4 addr replace "$ip/$mask" ${broadcast:+broadcast "$broadcast"} dev "$interface"
    if [ -n "$router" ]; then
        for r in $router; do
            ip -4 route replace default via "$r" dev "$interface" metric 10
            break
        done
    fi
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done ;;
esac
exit 0
"""


class UdhcpcClient(_Confined):
    """busybox udhcpc with :data:`UDHCPC_SCRIPT` (it writes no lease file)."""

    name = "udhcpc"

    def __init__(self, lab: Lab, directory: Path, interface: str) -> None:
        super().__init__(lab, directory, interface)
        self.script = self.dir / "default.script"
        self.script.write_text(UDHCPC_SCRIPT)
        self.script.chmod(0o755)

    def renew(self) -> None:
        """udhcpc renews at half the lease, whatever T1 the server sends: SIGUSR1 renews now
        (``ip netns exec``, ``unshare`` and ``sh`` exec, so the process is udhcpc itself)."""
        if self._proc is None:
            raise LabError("udhcpc is not running")
        self._proc.send_signal(signal.SIGUSR1)

    def argv(self) -> list[str]:
        return [_program("busybox"), "udhcpc", "-f", "-i", self.interface, "-s",
                str(self.script), "-t", "10", "-T", "1", "-A", "1"]


NETWORKD = "/lib/systemd/systemd-networkd"


class NetworkdClient(_Confined):
    """systemd-networkd managing only the interface, DHCPv4 client; ``route_table`` sets
    ``[DHCPv4] RouteTable=`` (prefix and default route outside main, address
    ``noprefixroute``). ``ManageForeignRoutes=no`` and ``ManageForeignRoutingPolicyRules=no``:
    without them networkd deletes routes and rules it did not make, polroutd's included (see
    contrib/README.md, ``10-polroutd-foreign.conf``)."""

    name = "networkd"

    def __init__(self, lab: Lab, directory: Path, interface: str, *,
                 route_table: int | None = None) -> None:
        super().__init__(lab, directory, interface)
        self.network_dir = self._subdir("etc-systemd-network")
        (self.network_dir / f"50-{interface}.network").write_text(
            f"[Match]\nName={interface}\n\n[Network]\nDHCP=ipv4\nIPv6AcceptRA=no\n"
            "LinkLocalAddressing=no\n\n[DHCPv4]\nUseDNS=no\nUseHostname=no\n"
            + (f"RouteTable={route_table}\n" if route_table is not None else ""))
        self.networkd_conf = self.dir / "networkd.conf"
        self.networkd_conf.write_text(
            "[Network]\nManageForeignRoutes=no\nManageForeignRoutingPolicyRules=no\n")

    def binds(self) -> dict[str, Path]:
        return {**super().binds(), "/etc/systemd/network": self.network_dir,
                "/etc/systemd/networkd.conf": self.networkd_conf}

    def lease_path(self, ifindex: int) -> Path:
        """``/run/systemd/netif/leases/IFINDEX`` as polroutd sees it."""
        return self.run_dir / "systemd" / "netif" / "leases" / str(ifindex)

    def argv(self) -> list[str]:
        return [_program(NETWORKD)]

    def prepare(self) -> list[str]:
        # networkd waits for udev to initialise a link unless /sys is read-only (as in a
        # container): there is no udev in the lab. It keeps its state in /run/systemd/netif,
        # which the service manager would have made for the systemd-network user.
        netif = "/run/systemd/netif"
        return ["mount -o remount,bind,ro /sys",
                f"mkdir -p {netif}/links {netif}/leases {netif}/lldp",
                f"chown -R systemd-network:systemd-network {netif}"]

    def start(self, env: Mapping[str, str] | None = None) -> None:
        # Without a journal socket in the private /run it logs to the console (our log file).
        environment = dict(os.environ, SYSTEMD_LOG_TARGET="console", SYSTEMD_LOG_LEVEL="debug")
        super().start({**environment, **(env or {})})


NM_ROOT_VARIABLE = "POLROUTD_LAB_NM_ROOT"


def networkmanager_command(root: str | None = None) -> list[str] | None:
    """How to run NetworkManager here: installed, or unpacked under ``root`` (default: the
    ``POLROUTD_LAB_NM_ROOT`` environment variable) with its libraries beside it; None when
    neither is there."""
    root = root if root is not None else os.environ.get(NM_ROOT_VARIABLE)
    if root:
        binary = Path(root) / "usr" / "sbin" / "NetworkManager"
        libraries = sorted(str(p) for p in (Path(root) / "usr" / "lib").glob("*-linux-gnu"))
        if binary.exists():
            return ["env", f"LD_LIBRARY_PATH={os.pathsep.join(libraries)}", str(binary)]
    installed = shutil.which("NetworkManager") or shutil.which("/usr/sbin/NetworkManager")
    return [installed] if installed else None


class NetworkManagerClient(_Confined):
    """NetworkManager managing only the interface, one profile (IPv4 by DHCP with the internal
    client, IPv6 left alone), no DNS, no hostname, no polkit; its own D-Bus system bus in the
    private ``/run``, its state in a private ``/var/lib``."""

    name = "networkmanager"

    def __init__(self, lab: Lab, directory: Path, interface: str, command: list[str]) -> None:
        super().__init__(lab, directory, interface)
        self.command = command
        self.var_lib = self._subdir("var-lib")
        self._subdir("var-lib/NetworkManager")
        connections = self._subdir("system-connections")
        self.conf = self.dir / "NetworkManager.conf"
        self.conf.write_text(
            "[main]\nplugins=keyfile\ndhcp=internal\ndns=none\nrc-manager=unmanaged\n"
            "hostname-mode=none\nno-auto-default=*\nauth-polkit=false\n\n"
            f"[keyfile]\npath={connections}\n"
            f"unmanaged-devices=except:interface-name:{interface}\n\n"
            # Take the interface over with the profile, not as an "external" connection.
            "[device]\nkeep-configuration=no\n")
        profile = connections / "data.nmconnection"
        profile.write_text(
            f"[connection]\nid=data\ntype=ethernet\ninterface-name={interface}\n"
            "autoconnect=true\n\n[ipv4]\nmethod=auto\n\n[ipv6]\nmethod=ignore\n")
        profile.chmod(0o600)  # NetworkManager ignores profiles others may read
        self.bus_conf = self.dir / "system-bus.conf"
        self.bus_conf.write_text(
            '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"'
            ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
            "<busconfig><type>system</type>"
            "<listen>unix:path=/run/dbus/system_bus_socket</listen><auth>EXTERNAL</auth>"
            '<policy context="default"><allow user="root"/><allow own="*"/>'
            '<allow send_destination="*"/><allow receive_sender="*"/></policy></busconfig>\n')

    def lease_glob(self) -> str:
        """Its lease files as polroutd sees them (the default path's pattern)."""
        return str(self.var_lib / "NetworkManager" / "internal-*-{ifname}.lease")

    def binds(self) -> dict[str, Path]:
        return {**super().binds(), "/var/lib": self.var_lib}

    def prepare(self) -> list[str]:
        # Read-only /sys: no udev here (as for networkd). The bus dies with the namespace.
        return ["mkdir -p /run/dbus /run/NetworkManager", "mount -o remount,bind,ro /sys",
                f"dbus-daemon --config-file={shlex.quote(str(self.bus_conf))} --fork"]

    def argv(self) -> list[str]:
        return [*self.command, "--no-daemon", "--debug", f"--config={self.conf}",
                f"--state-file={self.var_lib}/NetworkManager/NetworkManager.state"]


class Radvd(_Confined):
    """radvd on the router's data-side interface, advertising ``prefix`` (SLAAC) with the given
    lifetimes; :meth:`advertise` rewrites the configuration and makes radvd re-read it."""

    name = "radvd"

    def __init__(self, lab: Lab, directory: Path, interface: str, prefix: str) -> None:
        super().__init__(lab, directory, interface)
        self.prefix = prefix
        self.conf = self.dir / "radvd.conf"
        self.pid_file = self.run_dir / "radvd.pid"
        self.write_conf()

    def namespace(self) -> str:
        return self.lab.router

    def write_conf(self, *, router_lifetime: int = 30, valid: int = 86400,
                   preferred: int = 14400) -> None:
        self.conf.write_text(
            f"interface {self.interface} {{\n"
            "    AdvSendAdvert on;\n    MinRtrAdvInterval 3;\n    MaxRtrAdvInterval 4;\n"
            f"    AdvDefaultLifetime {router_lifetime};\n"
            f"    prefix {self.prefix} {{\n        AdvOnLink on;\n        AdvAutonomous on;\n"
            f"        AdvValidLifetime {valid};\n        AdvPreferredLifetime {preferred};\n"
            "    };\n};\n")

    def advertise(self, *, router_lifetime: int = 30, valid: int = 86400,
                  preferred: int = 14400) -> None:
        """New lifetimes from now on (SIGHUP: radvd re-reads its file and advertises at once)."""
        self.write_conf(router_lifetime=router_lifetime, valid=valid, preferred=preferred)
        if self._proc is not None:
            self._proc.send_signal(signal.SIGHUP)

    def argv(self) -> list[str]:
        return [_program("radvd", "/usr/sbin/radvd"), "--nodaemon", "--config", str(self.conf),
                "--pidfile", "/run/radvd.pid", "--logmethod", "stderr", "--debug", "1"]
