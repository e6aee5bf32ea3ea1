"""The kernel's numbers, limits and reserved values, in one place (pure constants).

Every layer takes them from here: the codec encodes with them, the configuration validates
against them, the core decides with them.
"""

from __future__ import annotations

from collections.abc import Mapping

AF_INET = 2
AF_INET6 = 10
FAMILIES = (AF_INET, AF_INET6)

RT_TABLE_UNSPEC = 0
RT_TABLE_COMPAT = 252
RT_TABLE_DEFAULT = 253
RT_TABLE_MAIN = 254
RT_TABLE_LOCAL = 255
RESERVED_TABLES = frozenset({RT_TABLE_UNSPEC, RT_TABLE_DEFAULT, RT_TABLE_MAIN, RT_TABLE_LOCAL})

RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RT_SCOPE_HOST = 254

RTN_UNICAST = 1
RTN_BLACKHOLE = 6
RTN_UNREACHABLE = 7
RTN_PROHIBIT = 8
ROUTE_TYPE_NUMBERS: Mapping[str, int] = {
    "unicast": RTN_UNICAST, "blackhole": RTN_BLACKHOLE, "unreachable": RTN_UNREACHABLE,
    "prohibit": RTN_PROHIBIT,
}

FR_ACT_TO_TBL = 1

IFA_F_SECONDARY = 0x01
IFA_F_OPTIMISTIC = 0x04  # optimistic DAD (RFC 4429): may be a source while DAD runs
IFA_F_DADFAILED = 0x08
IFA_F_DEPRECATED = 0x20  # preferred lifetime over: no new sessions, existing ones go on
IFA_F_TENTATIVE = 0x40  # DAD still running: the kernel refuses it as a route's source
IFA_F_NOPREFIXROUTE = 0x200

NUD_FAILED = 0x20  # a neighbour entry whose resolution failed

# IPv6 routes added with metric 0 are stored by the kernel with metric 1024.
IP6_DEFAULT_METRIC = 1024

# Limits the configuration is validated against.
MAIN_RULE_PRIORITY = 32766  # "from all lookup main": polroutd's rules must come before it
MAX_RULE_PRIORITY = MAIN_RULE_PRIORITY - 1
MIN_MAIN_FIRST_PRIORITY = 2  # main-first puts one rule just ahead (priority - 1 >= 1)
MAX_TABLE = 2**32 - 1
MAX_METRIC = 2**32 - 1
MAX_PROTOCOL = 255
MAX_WEIGHT = 256  # a multipath next hop's weight: rtnh_hops (one byte) + 1
MAX_PORT = 65535
IFNAMSIZ = 16  # interface names are at most 15 bytes
# Table and protocol names the kernel reserves; polroutd never takes these.
RESERVED_TABLE_NAMES: Mapping[str, int] = {"unspec": 0, "default": 253, "main": 254, "local": 255}
RESERVED_PROTOCOLS: Mapping[int, str] = {
    0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static",
}
