"""Configuration rules stated precisely enough that a wrong parser fails (issue 17).

Each refused value gives one exact line: the file, the line of the key, the key (array
positions 1-based) and what was expected beside what was found. Each accepted value, bounds
included, parses to its typed value. Kept fast: mutation testing runs this file per mutant.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from polroutd.config.parse import _huge_integer, load_config, parse_config, resolve_config_path
from polroutd.core.errors import ConfigError
from polroutd.core.settings import (
    Config,
    DaemonSettings,
    InterfaceSpec,
    ProbeSpec,
    RouteSpec,
    UplinkSpec,
)

D = "[daemon]\n"
I = '[[interface]]\nname = "eth0"\n'  # noqa: E741
U = '[daemon]\nuplinks = "failover"\n[[interface]]\nname = "wan1"\nuplink = true\n'


def parse(text: str) -> Config:
    return parse_config(tomllib.loads(text), "f.toml", text)


def refusal(text: str) -> str:
    """The one line a refused configuration in f.toml gives."""
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return str(caught.value)


# (the file's text, the whole message but for the leading "f.toml:")
REFUSED: list[tuple[str, str]] = [
    ('deamon = 1\n',
     "1: deamon: unknown key (did you mean 'daemon'? expected one of: daemon, interface)"),
    ('frob = 1\n',
     '1: frob: unknown key (expected one of: daemon, interface)'),
    ('interface = 5\n',
     '1: interface: must be an array of tables ([[interface]]), got 5'),
    ('daemon = 5\n',
     '1: daemon: must be a table, got 5'),
    (D + 'mode = "strict"\n[[interface]]\nname = "eth0"\ngw = "10.0.0.1"\n',
     '5: interface[1].gw: unknown key (expected one of: gateway, gateway6, name, priority, '
     'probe, probe_down, probe_interval, probe_targets, probe_timeout, probe_up, routes, '
     'table, uplink, uplink_metric, uplink_weight)'),
    (D + 'debounce = 0.5\nmax_delay = 0.1\n',
     '3: daemon.max_delay: must be at least debounce (0.5), got 0.1'),
    (D + 'debounce = 2\n',
     '2: daemon.debounce: must be at most max_delay (0.25, the default), got 2'),
    (D + 'resync_interval = 0.5\n',
     '2: daemon.resync_interval: must be from 1 to 86400 seconds, got 0.5'),
    (D + 'resync_interval = 86400.5\n',
     '2: daemon.resync_interval: must be from 1 to 86400 seconds, got 86400.5'),
    (D + 'max_delay = 0.0005\n',
     '2: daemon.max_delay: must be from 0.001 to 60 seconds, got 0.0005'),
    (D + 'max_delay = 61\n',
     '2: daemon.max_delay: must be from 0.001 to 60 seconds, got 61'),
    (D + 'debounce = 10.5\n',
     '2: daemon.debounce: must be from 0 to 10 seconds, got 10.5'),
    (D + 'resync_interval = "60"\n',
     '2: daemon.resync_interval: must be a number of seconds, got "60"'),
    (D + 'resync_interval = true\n',
     '2: daemon.resync_interval: must be a number of seconds, got boolean true'),
    (D + 'mode = "loose"\n',
     '2: daemon.mode: must be "strict" or "main-first", got "loose"'),
    (D + 'log_format = "xml"\n',
     '2: daemon.log_format: must be "auto", "json" or "console", got "xml"'),
    (D + 'log_level = "verbose"\n',
     '2: daemon.log_level: must be "debug", "info", "warning" or "error", got "verbose"'),
    (D + 'uplinks = "always"\n',
     '2: daemon.uplinks: must be "off", "failover" or "balance", got "always"'),
    (D + 'mode = 3\n',
     '2: daemon.mode: must be a string, got 3'),
    (D + 'exclude = ""\n',
     '2: daemon.exclude: must be an array of strings, got ""'),
    (D + 'exclude = [""]\n',
     '2: daemon.exclude[1]: must be a non-empty interface name or shell glob'),
    (D + 'exclude = "lo"\n',
     '2: daemon.exclude: must be an array of strings, got "lo"'),
    (D + 'exclude = ["lo", 3]\n',
     '2: daemon.exclude[2]: must be a string, got 3'),
    (D + 'dhcp_lease_paths = ["leases/x"]\n',
     '2: daemon.dhcp_lease_paths[1]: must be an absolute path (glob), got "leases/x"'),
    (D + 'dhcp_lease_paths = ["/x/{name}-{zz}.lease"]\n',
     '2: daemon.dhcp_lease_paths[1]: may use only the placeholders {ifname} and {ifindex}, '
     'got {name}'),
    (D + 'rt_tables_file = "rel/path"\n',
     '2: daemon.rt_tables_file: must be an absolute path or "" (do not write), got "rel/path"'),
    (D + 'http_listen = "127.0.0.1"\n',
     '2: daemon.http_listen: must be "HOST:PORT" or "[IPv6]:PORT" with a literal IP address, '
     'or "" (off); got "127.0.0.1"'),
    (D + 'cleanup_on_exit = 1\n',
     '2: daemon.cleanup_on_exit: must be true or false, got 1'),
    (D + 'protocol = 0\n',
     '2: daemon.protocol: protocol 0 (unspec) is reserved for the kernel and other tools; '
     'use a number from 5 to 255 or a name'),
    (D + 'protocol = 3\n',
     '2: daemon.protocol: protocol 3 (boot) is reserved for the kernel and other tools; use '
     'a number from 5 to 255 or a name'),
    (D + 'protocol = "3"\n',
     '2: daemon.protocol: protocol 3 (boot) is reserved for the kernel and other tools; use '
     'a number from 5 to 255 or a name'),
    (D + 'protocol = 256\n',
     '2: daemon.protocol: must be an integer from 1 to 255, got 256'),
    (D + 'protocol = "static"\n',
     '2: daemon.protocol: protocol 4 (static) is reserved for the kernel and other tools; '
     'use a number from 5 to 255 or a name'),
    (D + 'protocol = "no spaces"\n',
     '2: daemon.protocol: must be a number from 1 to 255 or a name, got "no spaces"'),
    (D + 'protocol = false\n',
     '2: daemon.protocol: must be a number from 1 to 255 or a name, got boolean false'),
    (D + 'protocol = 1.5\n',
     '2: daemon.protocol: must be a number from 1 to 255 or a name, got 1.5'),
    (D + 'rule_priority = 32766\n',
     "2: daemon.rule_priority: must be an integer below 32766 (the main table's rule), got 32766"),
    (D + 'rule_priority = 0\n',
     '2: daemon.rule_priority: must be an integer from 1 to 32765, got 0'),
    (D + 'rule_priority = -5\n',
     '2: daemon.rule_priority: must be an integer from 1 to 32765, got -5'),
    (D + 'rule_priority = 1.5\n',
     '2: daemon.rule_priority: must be an integer, got 1.5'),
    (D + 'mode = "main-first"\nrule_priority = 1\n',
     '3: daemon.rule_priority: must be at least 2 in main-first mode (the '
     'suppress_prefixlength rule goes just ahead), got 1'),
    (D + 'mode = "main-first"\n[[interface]]\nname = "eth0"\npriority = 1\n',
     '5: interface[1].priority: must be at least 2 in main-first mode (the '
     'suppress_prefixlength rule goes just ahead), got 1'),
    (D + 'uplink_priority = 32765\n',
     '2: daemon.uplink_priority: must be at most 32764 (its second rule takes the next '
     'priority, below 32766), got 32765'),
    (D + 'uplink_priority = 0\n',
     '2: daemon.uplink_priority: must be an integer from 1 to 32765, got 0'),
    (D + 'uplink_table = "main"\n',
     "2: daemon.uplink_table: 'main' is the kernel's reserved table 254; pick another name"),
    (D + 'uplink_table = 254\n',
     "2: daemon.uplink_table: 254 is the kernel's reserved table 'main'; pick another number"),
    (D + 'table_range = [30000]\n',
     '2: daemon.table_range: must be two table numbers [low, high], got an array of 1'),
    (D + 'table_range = 5\n',
     '2: daemon.table_range: must be two table numbers [low, high], got 5'),
    (D + 'table_range = [2000, 1000]\n',
     '2: daemon.table_range: must be [low, high] with low <= high, got [2000, 1000]'),
    (D + 'table_range = [200, 300]\n',
     "2: daemon.table_range: must not contain the kernel's reserved table 253, got [200, 300]"),
    (D + 'table_range = [0, 10]\n',
     '2: daemon.table_range: must be an integer from 1 to 4294967295, got 0'),
    (D + 'table_range = [10, 4294967296]\n',
     '2: daemon.table_range: must be an integer from 1 to 4294967295, got 4294967296'),
    (D + 'table_range = ["a", 5]\n',
     '2: daemon.table_range: must be an integer, got "a"'),
    ('[[interface]]\ntable = "mgt"\n',
     '1: interface[1].name: is required: an interface name or shell glob'),
    ('[[interface]]\nname = 5\n',
     '2: interface[1].name: must be a string, got 5'),
    ('[[interface]]\nname = ""\n',
     "2: interface[1].name: must be an interface name (1 to 15 characters, no '/', ':' or "
     'spaces) or a glob, got ""'),
    ('[[interface]]\nname = "averyveryverylongname"\n',
     "2: interface[1].name: must be an interface name (1 to 15 characters, no '/', ':' or "
     'spaces) or a glob, got "averyveryverylongname"'),
    ('[[interface]]\nname = "eth/0"\n',
     "2: interface[1].name: must be an interface name (1 to 15 characters, no '/', ':' or "
     'spaces) or a glob, got "eth/0"'),
    ('[[interface]]\nname = "eth 0"\n',
     "2: interface[1].name: must be an interface name (1 to 15 characters, no '/', ':' or "
     'spaces) or a glob, got "eth 0"'),
    ('[[interface]]\nname = "eth:0"\n',
     "2: interface[1].name: must be an interface name (1 to 15 characters, no '/', ':' or "
     'spaces) or a glob, got "eth:0"'),
    ('[[interface]]\nname = ".."\n',
     "2: interface[1].name: must be an interface name (1 to 15 characters, no '/', ':' or "
     'spaces) or a glob, got ".."'),
    ('[[interface]]\nname = "."\n',
     "2: interface[1].name: must be an interface name (1 to 15 characters, no '/', ':' or "
     'spaces) or a glob, got "."'),
    ('[[interface]]\nname = "main"\n',
     '1: interface[1].table: is required for interface "main": a table named after it would '
     "be the kernel's reserved table 254"),
    ('[[interface]]\nname = "eth*"\ntable = "data"\n',
     '3: interface[1].table: must be absent when name is a glob ("eth*"): each matching '
     'interface gets its own table, named after it'),
    (I + 'table = "main"\n',
     "3: interface[1].table: 'main' is the kernel's reserved table 254; pick another name"),
    (I + 'table = 254\n',
     "3: interface[1].table: 254 is the kernel's reserved table 'main'; pick another number"),
    (I + 'table = 0\n',
     "3: interface[1].table: 0 is the kernel's reserved table 'unspec'; pick another number"),
    (I + 'table = 4294967296\n',
     '3: interface[1].table: must be an integer from 1 to 4294967295, got 4294967296'),
    (I + 'table = "1st"\n',
     "3: interface[1].table: must be a table number or a name of letters, digits, '_', '.', "
     '\'-\' starting with a letter, got "1st"'),
    (I + 'table = true\n',
     '3: interface[1].table: must be a table number or name, got boolean true'),
    (I + 'table = 1.5\n',
     '3: interface[1].table: must be a table number or name, got 1.5'),
    (I + 'table = "data"\n[[interface]]\nname = "eth1"\ntable = "data"\n',
     '6: interface[2].table: table "data" is already used by interface[1]'),
    (I + '[[interface]]\nname = "eth1"\ntable = "eth0"\n',
     '5: interface[2].table: table "eth0" is already used by interface[1] (the table named '
     'after its interface)'),
    (D + 'uplinks = "failover"\nuplink_table = 7\n' + I + "uplink = true\ntable = 7\n",
     '7: interface[1].table: table 7 is already used by daemon.uplink_table'),
    (I + 'gateway = "2001:db8::1"\n',
     '3: interface[1].gateway: must be "auto", "none", "unreachable" or an IPv4 address, got '
     'IPv6 address 2001:db8::1 (that goes in gateway6)'),
    (I + 'gateway6 = "10.0.0.1"\n',
     '3: interface[1].gateway6: must be "auto", "none", "unreachable" or an IPv6 address, '
     'got IPv4 address 10.0.0.1 (that goes in gateway)'),
    (I + 'gateway = "the router"\n',
     '3: interface[1].gateway: must be "auto", "none", "unreachable" or an IPv4 address, got '
     '"the router"'),
    (I + 'gateway = 1\n',
     '3: interface[1].gateway: must be a string, got 1'),
    (I + 'priority = 32766\n',
     "3: interface[1].priority: must be an integer below 32766 (the main table's rule), got 32766"),
    ('[[interface]]\nname = "eth*"\n[[interface]]\nname = "eth0"\n',
     '4: interface[2].name: "eth0" overlaps interface[1].name "eth*": both match "eth0"; '
     'each interface must match one entry'),
    ('[[interface]]\nname = "e*"\n[[interface]]\nname = "*0"\n',
     '4: interface[2].name: "*0" overlaps interface[1].name "e*": both match "e0"; each '
     'interface must match one entry'),
    (I + '[[interface]]\nname = "eth0"\n',
     '4: interface[2].name: "eth0" is already interface[1]'),
    (I + '[interface.routes]\nto = 1\n',
     '3: interface[1].routes: must be an array of tables, got a table'),
    (I + 'routes = "x"\n',
     '3: interface[1].routes: must be an array of tables, got "x"'),
    (I + 'routes = [ 5 ]\n',
     '3: interface[1].routes[1]: must be a table, got 5'),
    (I + 'routes = [ { via = "10.0.0.1" } ]\n',
     '3: interface[1].routes[1].to: is required: a network such as "10.0.0.0/24" or "default"'),
    (I + 'routes = [ { to = "10.0.0.0/8", dev = "eth0" } ]\n',
     '3: interface[1].routes[1].dev: unknown key (expected one of: metric, table, to, type, via)'),
    (I + 'routes = [ { to = "10.0.0.1/24" } ]\n',
     '3: interface[1].routes[1].to: "10.0.0.1/24" has host bits set (the network is 10.0.0.0/24)'),
    (I + 'routes = [ { to = "10.0.0.0/33" } ]\n',
     '3: interface[1].routes[1].to: must be a network such as "10.0.0.0/24" or "default", '
     'got "10.0.0.0/33"'),
    (I + 'routes = [ { to = "default" } ]\n',
     '3: interface[1].routes[1].to: "default" needs via to tell IPv4 from IPv6; or write '
     '"0.0.0.0/0" or "::/0"'),
    (I + 'routes = [ { to = 5 } ]\n',
     '3: interface[1].routes[1].to: must be a string, got 5'),
    (I + 'routes = [ { to = "10.0.0.0/8", via = "fe80::1" } ]\n',
     '3: interface[1].routes[1].via: must be an IPv4 address, as to (10.0.0.0/8) is IPv4, '
     'got IPv6 address fe80::1'),
    (I + 'routes = [ { to = "2001:db8::/32", via = "10.0.0.1" } ]\n',
     '3: interface[1].routes[1].via: must be an IPv6 address, as to (2001:db8::/32) is IPv6, '
     'got IPv4 address 10.0.0.1'),
    (I + 'routes = [ { to = "10.0.0.0/8", via = "gw" } ]\n',
     '3: interface[1].routes[1].via: must be an IPv4 or IPv6 address, got "gw"'),
    (I + 'routes = [ { to = "10.0.0.0/8", type = "blackhole", via = "10.0.0.1" } ]\n',
     '3: interface[1].routes[1].via: must be absent for type = "blackhole" (such a route has '
     'no next hop)'),
    (I + 'routes = [ { to = "10.0.0.0/8", type = "local" } ]\n',
     '3: interface[1].routes[1].type: must be "unicast", "unreachable", "blackhole" or '
     '"prohibit", got "local"'),
    (I + 'routes = [ { to = "10.0.0.0/8", metric = -1 } ]\n',
     '3: interface[1].routes[1].metric: must be an integer from 0 to 4294967295, got -1'),
    (I + 'routes = [ { to = "10.0.0.0/8", metric = 4294967296 } ]\n',
     '3: interface[1].routes[1].metric: must be an integer from 0 to 4294967295, got 4294967296'),
    (I + 'routes = [ { to = "10.0.0.0/8", table = "local" } ]\n',
     "3: interface[1].routes[1].table: 'local' is the kernel's reserved table 255; pick "
     'another name'),
    (I + 'routes = [ { to = "10.0.0.0/8", table = 0 } ]\n',
     "3: interface[1].routes[1].table: 0 is the kernel's reserved table 'unspec'; pick "
     'another number'),
    (I + 'routes = [ { to = "10.0.0.0/8", table = true } ]\n',
     '3: interface[1].routes[1].table: must be a table number or name, got boolean true'),
    (D + 'mode = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"\n',
     '2: daemon.mode: must be "strict" or "main-first", got '
     '"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx..."'),
    (D + 'rule_priority = 99999999999999999999999999999999999999999999999999\n',
     "2: daemon.rule_priority: must be an integer below 32766 (the main table's rule), got "
     '99999999999999999999999999999999999999999999999999'),
    (D + 'rule_priority = 1979-05-27\n',
     '2: daemon.rule_priority: must be an integer, got date 1979-05-27'),
    (D + 'rule_priority = [1, 2]\n',
     '2: daemon.rule_priority: must be an integer, got an array of 2'),
    (D + 'rule_priority = {}\n',
     '2: daemon.rule_priority: must be an integer, got a table'),
    (D + 'rule_priority = 1e300\n',
     '2: daemon.rule_priority: must be an integer, got 1e+300'),
    (U + 'probe_up = 1001\n',
     '6: interface[1].probe_up: must be an integer from 1 to 1000, got 1001'),
    (U + 'probe_down = 1001\n',
     '6: interface[1].probe_down: must be an integer from 1 to 1000, got 1001'),
    (U + 'uplink_metric = 4294967296\n',
     '6: interface[1].uplink_metric: must be an integer from 0 to 4294967295, got 4294967296'),
    (U + 'uplink_weight = 257\n',
     '6: interface[1].uplink_weight: must be an integer from 1 to 256, got 257'),
    (U + 'probe_interval = 3601\n',
     '6: interface[1].probe_interval: must be from 0.01 to 3600 seconds, got 3601'),
    (U + 'probe_timeout = 0.001\n',
     '6: interface[1].probe_timeout: must be from 0.01 to 3600 seconds, got 0.001'),
    (U + 'probe = "arp"\n',
     '6: interface[1].probe: must be "none", "icmp" or "tcp:HOST:PORT" (HOST an IP address, '
     '[IPv6] in brackets), got "arp"'),
    (U + 'probe = 5\n',
     '6: interface[1].probe: must be a string, got 5'),
    (U + 'probe = "tcp:example.com:80"\n',
     '6: interface[1].probe: must be "none", "icmp" or "tcp:HOST:PORT" (HOST an IP address, '
     '[IPv6] in brackets), got "tcp:example.com:80"'),
    (U + 'probe = "udp:192.0.2.1:80"\n',
     '6: interface[1].probe: must be "none", "icmp" or "tcp:HOST:PORT" (HOST an IP address, '
     '[IPv6] in brackets), got "udp:192.0.2.1:80"'),
    (U + 'probe = "tcp:192.0.2.1:"\n',
     '6: interface[1].probe: must be "none", "icmp" or "tcp:HOST:PORT" (HOST an IP address, '
     '[IPv6] in brackets), got "tcp:192.0.2.1:"'),
    (U + 'probe = "tcp:192.0.2.1:8x"\n',
     '6: interface[1].probe: must be "none", "icmp" or "tcp:HOST:PORT" (HOST an IP address, '
     '[IPv6] in brackets), got "tcp:192.0.2.1:8x"'),
    (U + 'probe = "tcp:2001:db8::1:80"\n',
     '6: interface[1].probe: must be "none", "icmp" or "tcp:HOST:PORT" (HOST an IP address, '
     '[IPv6] in brackets), got "tcp:2001:db8::1:80"'),
    (U + 'probe = "tcp:192.0.2.1:0"\n',
     '6: interface[1].probe: must name a port from 1 to 65535, got "tcp:192.0.2.1:0"'),
    (U + 'probe = "tcp:192.0.2.1:65536"\n',
     '6: interface[1].probe: must name a port from 1 to 65535, got "tcp:192.0.2.1:65536"'),
    (U + 'probe_targets = ["192.0.2.1"]\n',
     '6: interface[1].probe_targets: applies only to probe = "icmp", got probe = "none"'),
    (U + 'probe = "tcp:192.0.2.1:80"\nprobe_targets = ["192.0.2.1"]\n',
     '7: interface[1].probe_targets: applies only to probe = "icmp", got probe = '
     '"tcp:192.0.2.1:80"'),
    (U + 'probe = "icmp"\nprobe_targets = ["gw"]\n',
     '7: interface[1].probe_targets[1]: must be an IPv4 or IPv6 address, got "gw"'),
    (U + 'probe = "icmp"\nprobe_targets = [5]\n',
     '7: interface[1].probe_targets[1]: must be a string, got 5'),
    (U + 'probe = "icmp"\nprobe_targets = "192.0.2.1"\n',
     '7: interface[1].probe_targets: must be an array of strings, got "192.0.2.1"'),
    (U + 'gateway = "none"\nprobe = "icmp"\nprobe_targets = ["192.0.2.1"]\n',
     '8: interface[1].probe_targets: names an IPv4 target, but gateway is "none": nothing to '
     'probe through'),
    (U + 'gateway6 = "none"\nprobe = "icmp"\nprobe_targets = ["2001:db8::1"]\n',
     '8: interface[1].probe_targets: names an IPv6 target, but gateway6 is "none": nothing '
     'to probe through'),
    (U + 'gateway6 = "none"\nprobe = "tcp:[2001:db8::1]:443"\n',
     '7: interface[1].probe: names an IPv6 target, but gateway6 is "none": nothing to probe '
     'through'),
    (U + 'gateway = "none"\nprobe = "tcp:192.0.2.1:443"\n',
     '7: interface[1].probe: names an IPv4 target, but gateway is "none": nothing to probe '
     'through'),
    (U + 'gateway = "none"\ngateway6 = "none"\n',
     '5: interface[1].uplink: needs a gateway, but gateway and gateway6 are both "none"'),
    ('[[interface]]\nname = "wan1"\nuplink = true\n',
     '3: interface[1].uplink: is true but daemon.uplinks is "off": set it to "failover" or '
     '"balance"'),
    (D + 'uplinks = "balance"\n[[interface]]\nname = "eth0"\n',
     '2: daemon.uplinks: is "balance" but no [[interface]] has uplink = true'),
    (I + 'probe_up = 3\n',
     '3: interface[1].probe_up: applies only to an uplink: set uplink = true or remove it'),
    (I + 'probe = "icmp"\nuplink_weight = 3\n',
     '3: interface[1].probe: applies only to an uplink: set uplink = true or remove it'),
    (I + 'uplink = false\nprobe_up = 3\n',
     '4: interface[1].probe_up: applies only to an uplink: set uplink = true or remove it'),
    (D + 'uplinks = "failover"\nuplink_priority = 30000\n' + I
     + "priority = 30000\nuplink = true\n",
     '3: daemon.uplink_priority: must come after every per-address rule (above 30000, below '
     '32765), got 30000'),
    (D + 'uplinks = "failover"\nuplink_priority = 1000\n' + I + "uplink = true\n",
     '3: daemon.uplink_priority: must come after every per-address rule (above 30000, below '
     '32765), got 1000'),
    # bounds and edges of the rules above
    (D + "table_range = [253, 260]\n",
     "2: daemon.table_range: must not contain the kernel's reserved table 253, got [253, 260]"),
    (D + "table_range = [250, 253]\n",
     "2: daemon.table_range: must not contain the kernel's reserved table 253, got [250, 253]"),
    (D + "protocol = 5.0\n",
     "2: daemon.protocol: must be a number from 1 to 255 or a name, got 5.0"),
    (D + 'protocol = "0"\n',
     "2: daemon.protocol: protocol 0 (unspec) is reserved for the kernel and other tools; "
     "use a number from 5 to 255 or a name"),
    # digits of another script are no number
    (D + 'protocol = "\u0663"\n',
     '2: daemon.protocol: must be a number from 1 to 255 or a name, got "\\u0663"'),
    (I + 'table = "\u0661\u0660\u0660"\n',
     "3: interface[1].table: must be a table number or a name of letters, digits, '_', '.', "
     "'-' starting with a letter, got \"\\u0661\\u0660\\u0660\""),
    (I + 'table = "data!"\n',
     "3: interface[1].table: must be a table number or a name of letters, digits, '_', '.', "
     "'-' starting with a letter, got \"data!\""),
    (U + 'probe = "tcp:192.0.2.1:\u0668\u0660"\n',
     '6: interface[1].probe: must be "none", "icmp" or "tcp:HOST:PORT" (HOST an IP address, '
     '[IPv6] in brackets), got "tcp:192.0.2.1:\\u0668\\u0660"'),
    # IFNAMSIZ counts bytes: 15 characters, one of them two bytes long, do not fit
    ('[[interface]]\nname = "abcdefghijklmn\u00e9"\n',
     "2: interface[1].name: must be an interface name (1 to 15 characters, no '/', ':' or "
     'spaces) or a glob, got "abcdefghijklmn\\u00e9"'),
    ('[[interface]]\nname = "abcdefghijklmnop"\n',
     "2: interface[1].name: must be an interface name (1 to 15 characters, no '/', ':' or "
     'spaces) or a glob, got "abcdefghijklmnop"'),
    ('[[interface]]\nname = "eth\\t0"\n',
     "2: interface[1].name: must be an interface name (1 to 15 characters, no '/', ':' or "
     'spaces) or a glob, got "eth\\t0"'),
    # a float is no table number, not even main's
    (I + 'routes = [ { to = "10.0.0.0/8", table = 254.0 } ]\n',
     "3: interface[1].routes[1].table: must be a table number or name, got 254.0"),
    (I + 'routes = [ { to = "10.0.0.0/8", table = "255" } ]\n',
     "3: interface[1].routes[1].table: 255 is the kernel's reserved table 'local'; "
     "pick another number"),
    # a glob entry has no table of its own: the entries after it are still checked
    ('[[interface]]\nname = "wl*"\n' + I + 'table = "x"\n[[interface]]\nname = "eth1"\n'
     'table = "x"\n',
     '8: interface[3].table: table "x" is already used by interface[2]'),
    ('[[interface]]\nname = "wl*"\n' + I + '[[interface]]\nname = "eth0*"\n',
     '6: interface[3].name: "eth0*" overlaps interface[2].name "eth0": both match "eth0"; '
     "each interface must match one entry"),
    (D + 'uplinks = "failover"\nuplink_priority = 30500\n' + '[[interface]]\nname = "wan1"\n'
     "uplink = true\npriority = 31000\n",
     "3: daemon.uplink_priority: must come after every per-address rule (above 31000, "
     "below 32765), got 30500"),
    (D + 'uplinks = "failover"\nuplink_table = "wan1"\n[[interface]]\nname = "wan1"\n'
     "uplink = true\n",
     '5: interface[1].name: table "wan1" is already used by daemon.uplink_table'),
    # an address in brackets needs both
    (U + 'probe = "tcp:192.0.2.1]:80"\n',
     '6: interface[1].probe: must be "none", "icmp" or "tcp:HOST:PORT" (HOST an IP address, '
     '[IPv6] in brackets), got "tcp:192.0.2.1]:80"'),
    # a value of the wrong type, for every key
    ("interface = [5]\n", "1: interface[1]: must be a table, got 5"),
    (D + 'dhcp_lease_paths = [3]\n',
     '2: daemon.dhcp_lease_paths[1]: must be a string, got 3'),
    (D + 'rt_tables_file = 3\n',
     '2: daemon.rt_tables_file: must be a string, got 3'),
    (D + 'http_listen = 3\n',
     '2: daemon.http_listen: must be a string, got 3'),
    (D + 'debounce = "x"\n',
     '2: daemon.debounce: must be a number of seconds, got "x"'),
    (D + 'table_range = [1, "x"]\n',
     '2: daemon.table_range: must be an integer, got "x"'),
    (D + 'uplink_table = 1.5\n',
     '2: daemon.uplink_table: must be a table number or name, got 1.5'),
    (D + 'uplink_priority = "x"\n',
     '2: daemon.uplink_priority: must be an integer, got "x"'),
    (I + 'priority = "x"\n',
     '3: interface[1].priority: must be an integer, got "x"'),
    (I + 'routes = [ { to = "10.0.0.0/8", via = 5 } ]\n',
     '3: interface[1].routes[1].via: must be a string, got 5'),
    (I + 'routes = [ { to = "10.0.0.0/8", type = 5 } ]\n',
     '3: interface[1].routes[1].type: must be a string, got 5'),
    (I + 'routes = [ { to = "10.0.0.0/8", metric = "1" } ]\n',
     '3: interface[1].routes[1].metric: must be an integer, got "1"'),
    (I + 'routes = [ { to = "10.0.0.0/8", table = 1.5 } ]\n',
     '3: interface[1].routes[1].table: must be a table number or name, got 1.5'),
    (U + 'probe_interval = "x"\n',
     '6: interface[1].probe_interval: must be a number of seconds, got "x"'),
    (U + 'probe_down = "x"\n',
     '6: interface[1].probe_down: must be an integer, got "x"'),
    (U + 'uplink_metric = "x"\n',
     '6: interface[1].uplink_metric: must be an integer, got "x"'),
    (U + 'uplink_weight = "x"\n',
     '6: interface[1].uplink_weight: must be an integer, got "x"'),
    (U + 'probe_up = "x"\n',
     '6: interface[1].probe_up: must be an integer, got "x"'),
    # how a found value is shown: strings up to 60 characters quoted whole, numbers up to 40
    (D + 'mode = "' + "x" * 58 + '"\n',
     '2: daemon.mode: must be "strict" or "main-first", got "' + "x" * 58 + '"'),
    (D + 'mode = "' + "x" * 59 + '"\n',
     '2: daemon.mode: must be "strict" or "main-first", got "' + "x" * 55 + '..."'),
    (D + "mode = " + "9" * 40 + "\n",
     "2: daemon.mode: must be a string, got " + "9" * 40),
    (D + "mode = " + "9" * 41 + "\n",
     "2: daemon.mode: must be a string, got a number of 41 characters"),
    (D + "mode = 1979-05-27T07:32:00\n",
     "2: daemon.mode: must be a string, got datetime 1979-05-27 07:32:00"),
    (D + "mode = [[]]\n", "2: daemon.mode: must be a string, got an array of 1"),
    (D + "mode = false\n", "2: daemon.mode: must be a string, got boolean false"),
    (D + "mode = -0.5\n", "2: daemon.mode: must be a string, got -0.5"),
]


@pytest.mark.parametrize(("text", "message"), REFUSED)
def test_each_refusal_is_one_exact_line(text: str, message: str) -> None:
    assert refusal(text) == f"f.toml:{message}"


# (the file's text, what it parses to): every bound that is accepted, and the canonical forms
ACCEPTED: list[tuple[str, DaemonSettings | InterfaceSpec]] = [
    (D + "resync_interval = 1\n", DaemonSettings(resync_interval=1.0)),
    (D + "resync_interval = 86400\n", DaemonSettings(resync_interval=86400.0)),
    (D + "debounce = 0\nmax_delay = 0.001\n", DaemonSettings(debounce=0.0, max_delay=0.001)),
    (D + "debounce = 10\nmax_delay = 10\n", DaemonSettings(debounce=10.0, max_delay=10.0)),
    (D + "max_delay = 60\n", DaemonSettings(max_delay=60.0)),
    (D + "debounce = 0.25\n", DaemonSettings(debounce=0.25)),  # the default max_delay
    (D + "protocol = 5\n", DaemonSettings(protocol=5)),
    (D + 'protocol = "255"\n', DaemonSettings(protocol=255)),
    (D + 'protocol = "zebra_2-x"\n', DaemonSettings(protocol="zebra_2-x")),
    (D + "rule_priority = 1\n", DaemonSettings(rule_priority=1)),
    (D + "rule_priority = 32765\n", DaemonSettings(rule_priority=32765)),
    (D + 'mode = "main-first"\nrule_priority = 2\n',
     DaemonSettings(mode="main-first", rule_priority=2)),
    (D + "uplink_priority = 32764\n", DaemonSettings(uplink_priority=32764)),
    (D + "uplink_table = 100\n", DaemonSettings(uplink_table=100)),
    (D + 'uplink_table = "up"\n', DaemonSettings(uplink_table="up")),
    (D + "table_range = [1, 252]\n", DaemonSettings(table_range=(1, 252))),
    (D + "table_range = [256, 4294967295]\n", DaemonSettings(table_range=(256, 4294967295))),
    (D + "table_range = [1000, 1000]\n", DaemonSettings(table_range=(1000, 1000))),
    (D + 'rt_tables_file = ""\n', DaemonSettings(rt_tables_file="")),
    (D + 'rt_tables_file = "/tmp/t"\n', DaemonSettings(rt_tables_file="/tmp/t")),
    (D + 'http_listen = ""\n', DaemonSettings(http_listen="")),
    (D + 'http_listen = "[::1]:80"\n', DaemonSettings(http_listen="[::1]:80")),
    (D + 'dhcp_lease_paths = ["/run/{ifname}.{ifindex}"]\n',
     DaemonSettings(dhcp_lease_paths=("/run/{ifname}.{ifindex}",))),
    (D + 'exclude = []\n', DaemonSettings(exclude=())),
    (D + 'exclude = ["lo", "docker*"]\n', DaemonSettings(exclude=("lo", "docker*"))),
    (D + "cleanup_on_exit = true\n", DaemonSettings(cleanup_on_exit=True)),
    (D + 'log_format = "console"\nlog_level = "error"\n',
     DaemonSettings(log_format="console", log_level="error")),
    (D + 'uplinks = "balance"\n[[interface]]\nname = "wan1"\nuplink = true\n',
     DaemonSettings(uplinks="balance")),
    ('[[interface]]\nname = "abcdefghijklmno"\n', InterfaceSpec(name="abcdefghijklmno")),
    ('[[interface]]\nname = "averyveryverylongname*"\n',
     InterfaceSpec(name="averyveryverylongname*")),
    ('[[interface]]\nname = "..."\n', InterfaceSpec(name="...")),
    ('[[interface]]\nname = "XY-Z_0.9"\n', InterfaceSpec(name="XY-Z_0.9")),
    (I + "table = 1\npriority = 1\n", InterfaceSpec(name="eth0", table=1, priority=1)),
    (I + 'table = "4294967295"\npriority = 32765\n',
     InterfaceSpec(name="eth0", table=4294967295, priority=32765)),
    (I + 'table = "a.b-c_D9"\n', InterfaceSpec(name="eth0", table="a.b-c_D9")),
    (I + 'gateway = "none"\ngateway6 = "unreachable"\n',
     InterfaceSpec(name="eth0", gateway="none", gateway6="unreachable")),
    (I + 'gateway = "10.0.0.1"\ngateway6 = "2001:DB8:0::1"\n',
     InterfaceSpec(name="eth0", gateway="10.0.0.1", gateway6="2001:db8::1")),
    (I + 'routes = [\n  { to = "default", via = "10.0.0.1" },\n'
     '  { to = "default", via = "fe80::1" },'
     '\n  { to = "2001:DB8::/32", type = "blackhole" },\n]\n',
     InterfaceSpec(name="eth0", routes=(
         RouteSpec(to="0.0.0.0/0", via="10.0.0.1"),
         RouteSpec(to="::/0", via="fe80::1"),
         RouteSpec(to="2001:db8::/32", type="blackhole"),
     ))),
    (I + 'routes = [\n  { to = "10.0.0.0/8", metric = 0, table = 254 },\n'
     '  { to = "10.0.0.0/8", metric = 4294967295, table = "254" },\n'
     '  { to = "10.0.0.0/8", table = "main", type = "unicast" },\n'
     '  { to = "10.0.0.0/8", table = 7 },\n  { to = "10.0.0.0/8", table = "data" },\n]\n',
     InterfaceSpec(name="eth0", routes=(
         RouteSpec(to="10.0.0.0/8", metric=0, table="main"),
         RouteSpec(to="10.0.0.0/8", metric=4294967295, table="main"),
         RouteSpec(to="10.0.0.0/8", table="main"),
         RouteSpec(to="10.0.0.0/8", table=7),
         RouteSpec(to="10.0.0.0/8", table="data"),
     ))),
    (I + "uplink = false\n", InterfaceSpec(name="eth0")),
    (U, InterfaceSpec(name="wan1", uplink=UplinkSpec())),
    (U + 'gateway = "none"\n', InterfaceSpec(name="wan1", gateway="none", uplink=UplinkSpec())),
    (U + 'gateway6 = "none"\nprobe = "none"\n',
     InterfaceSpec(name="wan1", gateway6="none", uplink=UplinkSpec())),
    (U + "uplink_metric = 0\nuplink_weight = 1\nprobe_interval = 0.01\nprobe_timeout = 3600\n"
     "probe_down = 1\nprobe_up = 1000\n",
     InterfaceSpec(name="wan1", uplink=UplinkSpec(
         metric=0, weight=1, interval=0.01, timeout=3600.0, down=1, up=1000))),
    (U + "uplink_metric = 4294967295\nuplink_weight = 256\nprobe_interval = 3600\n"
     "probe_timeout = 0.01\nprobe_down = 1000\nprobe_up = 1\n",
     InterfaceSpec(name="wan1", uplink=UplinkSpec(
         metric=4294967295, weight=256, interval=3600.0, timeout=0.01, down=1000, up=1))),
    (U + 'probe = "icmp"\n', InterfaceSpec(name="wan1", uplink=UplinkSpec(
        probe=ProbeSpec(kind="icmp")))),
    (U + 'probe = "icmp"\nprobe_targets = ["192.0.2.1", "2001:DB8::7"]\n',
     InterfaceSpec(name="wan1", uplink=UplinkSpec(
         probe=ProbeSpec(kind="icmp", targets=("192.0.2.1", "2001:db8::7"))))),
    (U + 'probe = "tcp:[2001:DB8::1]:1"\n', InterfaceSpec(name="wan1", uplink=UplinkSpec(
        probe=ProbeSpec(kind="tcp", host="2001:db8::1", port=1)))),
    (U + 'probe = "tcp:192.0.2.1:65535"\n', InterfaceSpec(name="wan1", uplink=UplinkSpec(
        probe=ProbeSpec(kind="tcp", host="192.0.2.1", port=65535)))),
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED)
def test_accepted_values_parse_to_their_typed_values(
    text: str, expected: DaemonSettings | InterfaceSpec
) -> None:
    config = parse(text)
    if isinstance(expected, DaemonSettings):
        assert config.daemon == expected
        for name in ("resync_interval", "debounce", "max_delay"):
            assert type(getattr(config.daemon, name)) is float
    else:
        assert config.interfaces[-1] == expected
        uplink = config.interfaces[-1].uplink
        assert uplink is None or type(uplink.interval) is type(uplink.timeout) is float


def test_an_uplink_just_after_every_per_address_rule_is_accepted() -> None:
    text = (D + 'uplinks = "failover"\nuplink_priority = 31001\n'
            '[[interface]]\nname = "wan1"\nuplink = true\npriority = 31000\n'
            '[[interface]]\nname = "eth0"\npriority = 100\n')
    assert parse(text).daemon.uplink_priority == 31001


def test_entries_with_globs_and_tables_of_their_own_coexist() -> None:
    text = ('[[interface]]\nname = "wl*"\n[[interface]]\nname = "ens*"\n'
            + I + '[[interface]]\nname = "eth1"\ntable = "eth2"\n')
    assert [i.table for i in parse(text).interfaces] == [None, None, None, "eth2"]


def test_with_uplinks_off_their_table_is_free_for_an_interface() -> None:
    text = I + 'table = "uplinks"\n'  # the default uplink_table
    assert parse(text).interfaces[0].table == "uplinks"


def test_strict_mode_takes_any_rule_priority() -> None:
    text = D + 'mode = "strict"\nrule_priority = 1\n' + I + "priority = 1\n"
    assert parse(text).interfaces[0].priority == 1


def test_without_the_text_a_refusal_names_no_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"daemon": {"debounce": 20}}, "f.toml")
    assert str(caught.value) == "f.toml: daemon.debounce: must be from 0 to 10 seconds, got 20"


# --- reading the file -----------------------------------------------------------------------


def write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "c.toml"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


HUGE = "1" + "0" * 5000


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a = \n", ":1: syntax: Invalid value (column 5)"),
        ('\n\n"\n', ":3: syntax: Illegal character '\\n' (column 2)"),
        ("a = [1", ": syntax: Unclosed array (at end of document)"),
        ("a = " + "[" * 2000 + "]" * 2000 + "\n", ": syntax: arrays or tables nested too deeply"),
        # tomllib refuses integers over 4,300 digits without saying where
        (f"x = {HUGE}\n", ":1: x: an integer has thousands of digits; expected a sensible number"),
        (f"[daemon]\nmode = 'strict'\n\nresync_interval = {HUGE}\n",
         ":4: daemon.resync_interval: an integer has thousands of digits; expected a sensible "
         "number"),
        (f"[[interface]]\nname = 'eth0'\n[daemon]\nresync_interval = {HUGE}\n",
         ":4: daemon.resync_interval: an integer has thousands of digits; expected a sensible "
         "number"),
        (f"\n[daemon]\nresync_interval = {HUGE}\n[[interface]]\nname = 'eth0'\n",
         ":3: daemon.resync_interval: an integer has thousands of digits; expected a sensible "
         "number"),
        (f"[[interface]]\nname = 'eth0'\n[[interface]]\nname = 'eth1'\npriority = {HUGE}\n",
         ":5: interface[2].priority: an integer has thousands of digits; expected a sensible "
         "number"),
        (f"[[interface]]\nname = 'a'\n[daemon]\nmode = 'strict'\n[[interface]]\nname = 'b'\n"
         f"priority = {HUGE}\n",
         ":7: interface[2].priority: an integer has thousands of digits; expected a sensible "
         "number"),
        (f"[daemon]\nexclude = [\n  {HUGE}]\n",
         ":3: syntax: an integer has thousands of digits; expected a sensible number"),
        (b"a = 1\n# caf\xe9\n",
         ": file: cannot be read: not UTF-8 text (invalid continuation byte)"),
    ],
)
def test_a_file_that_is_no_configuration_gives_one_line(
    tmp_path: Path, content: str | bytes, message: str
) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}{message}"


def test_a_number_too_long_that_cannot_be_found_is_still_one_line() -> None:
    # tomllib's only ValueError that is no TOMLDecodeError is an integer of over 4,300 digits;
    # should another appear, the message still names the file and says what is wrong.
    error = _huge_integer("f.toml", "x = 1\n")
    assert str(error) == "f.toml: syntax: an integer has too many digits"


def test_a_directory_is_refused_as_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    refused = f"{tmp_path}: file: cannot be read: is a directory, not a regular file"
    assert str(caught.value) == refused


def test_the_file_is_parsed_with_its_name_and_lines(tmp_path: Path) -> None:
    path = write(tmp_path, '[daemon]\nmode = "main-first"\n\n' + I)
    config = load_config(path)
    assert config == Config(daemon=DaemonSettings(mode="main-first"),
                            interfaces=(InterfaceSpec(name="eth0"),), source=str(path))
    path = write(tmp_path, '[daemon]\n\nmode = "loose"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}:3: daemon.mode: ")


@pytest.mark.parametrize(("cli", "origin"), [(True, "--config"), (False, "POLROUTD_CONFIG")])
def test_a_named_file_that_is_missing_says_who_named_it(
    tmp_path: Path, cli: bool, origin: str
) -> None:
    missing = str(tmp_path / "m.toml")
    with pytest.raises(ConfigError) as caught:
        resolve_config_path(missing if cli else None, {} if cli else {"POLROUTD_CONFIG": missing},
                            default=tmp_path)
    assert str(caught.value) == f"{missing}: file: file not found (given by {origin})"
