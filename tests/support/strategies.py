"""Hypothesis strategies shared by the pure tests: random kernels around the article's host."""

from __future__ import annotations

from hypothesis import strategies as st

from polroutd.core.limits import AF_INET, AF_INET6, IFA_F_SECONDARY, RT_SCOPE_LINK, RT_TABLE_MAIN
from polroutd.core.model import Address, KernelState, Link, Route, Rule
from tests.support.article import DOCKER, LO, PROTO

FOREIGN_PROTOS = (3, 4, 16, 66, 186)


@st.composite
def kernels(draw: st.DrawFn) -> KernelState:
    n = draw(st.integers(1, 4))
    links = [LO] + [
        Link(10 + i, f"eth{i}", up=draw(st.booleans()) or i == 0, carrier=True) for i in range(n)
    ]
    links.append(DOCKER)
    addresses = [Address(4, AF_INET, "172.17.0.1", 16)]
    routes = [Route(AF_INET, RT_TABLE_MAIN, "172.17.0.0", 16, 2, scope=RT_SCOPE_LINK, oif=4)]
    for i in range(n):
        for j in range(draw(st.integers(0, 3))):
            addresses.append(
                Address(
                    10 + i,
                    AF_INET,
                    f"10.{i}.0.{j + 2}",
                    draw(st.sampled_from([24, 32])),
                    flags=IFA_F_SECONDARY if j else 0,
                )
            )
        if draw(st.booleans()):
            addresses.append(
                Address(10 + i, AF_INET6, f"2001:db8:{i}::{draw(st.integers(1, 9))}", 64)
            )
        if draw(st.booleans()) and links[i + 1].up:
            routes.append(
                Route(
                    AF_INET,
                    RT_TABLE_MAIN,
                    "0.0.0.0",
                    0,
                    draw(st.sampled_from([3, 16])),
                    metric=draw(st.integers(0, 200)),
                    oif=10 + i,
                    gateway=f"10.{i}.0.1",
                )
            )
    rules: list[Rule] = []
    # foreign objects, some in polroutd's tables and at polroutd's places
    for _ in range(draw(st.integers(0, 4))):
        proto = draw(st.sampled_from(FOREIGN_PROTOS))
        i = draw(st.integers(0, n - 1))
        rules.append(
            Rule(
                AF_INET,
                draw(st.sampled_from([100, 30000, 31000])),
                draw(st.integers(1, 4)),
                proto,
                src=f"10.{i}.0.{draw(st.integers(2, 5))}",
                src_len=32,
            )
        )
        routes.append(
            Route(
                AF_INET,
                draw(st.integers(1, 4)),
                f"192.0.2.{draw(st.integers(0, 3)) * 4}",
                30,
                proto,
                oif=10 + i,
                scope=RT_SCOPE_LINK,
            )
        )
    # stale or drifted objects of our own
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, n - 1))
        rules.append(
            Rule(
                AF_INET,
                30000,
                draw(st.integers(1, 4)),
                PROTO,
                src=f"10.{i}.0.{draw(st.integers(2, 7))}",
                src_len=32,
            )
        )
        routes.append(
            Route(
                AF_INET,
                draw(st.integers(1, 4)),
                "0.0.0.0",
                0,
                PROTO,
                oif=10 + i,
                gateway=f"10.{i}.0.{draw(st.integers(1, 3))}",
            )
        )
    return KernelState(tuple(links), tuple(addresses), tuple(routes), tuple(rules))
