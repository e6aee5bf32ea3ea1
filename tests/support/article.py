"""The article's example as the pure tests use it: its configuration (derived from the one copy
in :mod:`polroutd.lab.article`), the kernel state of its server, and the decision polroutd
makes for it."""

from __future__ import annotations

import tomllib

from polroutd.config.parse import parse_config
from polroutd.core.decision import Decision
from polroutd.core.describe import Names
from polroutd.core.desired import Inputs, desired_state
from polroutd.core.limits import AF_INET, AF_INET6, RT_SCOPE_LINK, RT_TABLE_MAIN
from polroutd.core.model import Address, KernelState, LeaseFindings, LeaseOffer, Link, Route
from polroutd.core.plan import make_plan
from polroutd.core.settings import Config
from polroutd.core.tables import TableRef
from polroutd.lab.article import article_config

PROTO = 218  # the built-in number for "polroutd" when rt_protos does not name it

MGMT = Link(2, "ens192", up=True, carrier=True)
DATA = Link(3, "ens224", up=True, carrier=True)
DOCKER = Link(4, "docker0", up=True, carrier=False, kind="bridge")
LO = Link(1, "lo", up=True, carrier=True, loopback=True)

#: The article's interfaces with the built-in daemon settings.
SPEC_EXAMPLE = Config(interfaces=parse_config(
    tomllib.loads(article_config(rt_tables_file="/unused", lease_paths=[])), "article"
).interfaces)


def article_state() -> KernelState:
    return KernelState(
        links=(LO, MGMT, DATA, DOCKER),
        addresses=(
            Address(1, AF_INET, "127.0.0.1", 8, scope=254),
            Address(2, AF_INET, "10.225.160.38", 24),
            Address(3, AF_INET, "10.225.176.38", 24),
            Address(4, AF_INET, "172.17.0.1", 16),
            Address(3, AF_INET6, "2001:db8:176::38", 64),
            Address(3, AF_INET6, "fe80::38", 64, scope=253),
        ),
        routes=(
            Route(AF_INET, RT_TABLE_MAIN, "0.0.0.0", 0, 3, oif=2, gateway="10.225.160.1"),
            Route(
                AF_INET,
                RT_TABLE_MAIN,
                "10.225.160.0",
                24,
                2,
                scope=RT_SCOPE_LINK,
                oif=2,
                prefsrc="10.225.160.38",
            ),
            Route(
                AF_INET,
                RT_TABLE_MAIN,
                "10.225.176.0",
                24,
                2,
                scope=RT_SCOPE_LINK,
                oif=3,
                prefsrc="10.225.176.38",
            ),
            Route(
                AF_INET,
                RT_TABLE_MAIN,
                "172.17.0.0",
                16,
                2,
                scope=RT_SCOPE_LINK,
                oif=4,
                prefsrc="172.17.0.1",
            ),
            Route(AF_INET6, RT_TABLE_MAIN, "::", 0, 9, metric=1024, oif=3, gateway="fe80::1"),
        ),
    )


#: What a lease reader finds on the article's server: a lease naming ens224's router.


def article_decision(config: Config = SPEC_EXAMPLE, *, lease: bool = True) -> Decision:
    """The article's server (plus IPv6 and a docker0 bridge), ens224's gateway from a lease
    (without one, ens224 has no IPv4 gateway)."""
    state = article_state()
    inputs = Inputs(
        config=config, protocol=PROTO,
        tables={"ens192": TableRef(30000, "mgt"), "ens224": TableRef(30001, "data")},
        named_tables={"mgt": 30000, "data": 30001},
        leases={"ens224": lease_of("10.225.176.1")} if lease else {},
    )
    desired = desired_state(state, inputs)
    names = Names(links={link.ifindex: link.name for link in state.links},
                  tables={30000: "mgt", 30001: "data"}, protocols={PROTO: "polroutd"})
    return Decision(state, desired, make_plan(desired, state, PROTO), names,
                    {"mgt": 30000, "data": 30001})


def body_lines(content: str) -> list[str]:
    return [line for line in content.splitlines() if line.strip() and not line.startswith("#")]


def inputs(config: Config = SPEC_EXAMPLE, leases: dict[str, str] | None = None) -> Inputs:
    tables = {"ens192": TableRef(1, "mgt"), "ens224": TableRef(2, "data")}
    return Inputs(
        config=config,
        protocol=PROTO,
        tables=tables,
        named_tables={"mgt": 1, "data": 2},
        leases={name: lease_of(router) for name, router in (leases or {}).items()},
    )


def lease_of(router: str) -> LeaseFindings:
    """What the lease files say for an interface whose DHCP lease names ``router``."""
    return LeaseFindings((LeaseOffer((router,), None, "test.lease"),))
