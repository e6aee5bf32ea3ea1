"""Isolated networks: ``gateway = "unreachable"`` / ``gateway6 = "unreachable"`` and typed extra
routes (``type`` and ``metric``), from the file to the kernel's wire format (no kernel needed;
the real packets are in tests/test_guide_netns.py)."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from polroutd.cli.render import render
from polroutd.config.parse import load_config, parse_config
from polroutd.core.decision import Decision
from polroutd.core.describe import Names, route_json, route_text
from polroutd.core.desired import Inputs, desired_state
from polroutd.core.errors import ConfigError
from polroutd.core.limits import (
    AF_INET,
    AF_INET6,
    RTN_BLACKHOLE,
    RTN_PROHIBIT,
    RTN_UNICAST,
    RTN_UNREACHABLE,
)
from polroutd.core.model import KernelState
from polroutd.core.plan import make_plan
from polroutd.core.record import replace
from polroutd.core.settings import Config
from polroutd.core.tables import TableRef
from polroutd.netlink import codec as rtnl
from tests.support.article import PROTO, article_state

_WHEN = datetime(2024, 5, 1, tzinfo=UTC)
TABLES = {"ens192": TableRef(30000, "mgt"), "ens224": TableRef(30001, "data")}


def parse(text: str) -> Config:
    return parse_config(tomllib.loads(text), "t.toml", text)


def decide(config: Config, state: KernelState | None = None) -> Decision:
    state = state or article_state()
    inputs = Inputs(config=config, protocol=PROTO, tables=TABLES,
                    named_tables={"mgt": 30000, "data": 30001}, leases={})
    desired = desired_state(state, inputs)
    names = Names(links={link.ifindex: link.name for link in state.links},
                  tables={30000: "mgt", 30001: "data"}, protocols={PROTO: "polroutd"})
    return Decision(state, desired, make_plan(desired, state, PROTO), names,
                    {"mgt": 30000, "data": 30001})


ISOLATED = """
[[interface]]
name = "ens192"
table = "mgt"

[[interface]]
name = "ens224"
table = "data"
gateway = "unreachable"
gateway6 = "unreachable"
routes = [ { to = "192.0.2.0/24", type = "blackhole", metric = 7 },
           { to = "198.51.100.0/24", type = "prohibit" },
           { to = "2001:db8:66::/48", type = "unreachable" } ]
"""


def test_unreachable_gateways_and_route_types_parse() -> None:
    config = parse(ISOLATED)
    data = config.interfaces[1]
    assert (data.gateway, data.gateway6) == ("unreachable", "unreachable")
    assert [(r.to, r.type, r.metric) for r in data.routes] == [
        ("192.0.2.0/24", "blackhole", 7), ("198.51.100.0/24", "prohibit", None),
        ("2001:db8:66::/48", "unreachable", None)]
    assert parse('[[interface]]\nname = "x"\nroutes = [{ to = "10.0.0.0/8" }]').interfaces[0] \
        .routes[0].type == "unicast"


@pytest.mark.parametrize(("entry", "key", "problem"), [
    ('gateway = "unreachabel"', "interface[1].gateway",
     'must be "auto", "none", "unreachable" or an IPv4 address, got "unreachabel"'),
    ('routes = [{ to = "10.0.0.0/8", type = "throw" }]', "interface[1].routes[1].type",
     'must be "unicast", "unreachable", "blackhole" or "prohibit", got "throw"'),
    ('routes = [{ to = "10.0.0.0/8", type = 7 }]', "interface[1].routes[1].type",
     "must be a string, got 7"),
    ('routes = [{ to = "10.0.0.0/8", type = "blackhole", via = "10.0.0.1" }]',
     "interface[1].routes[1].via", 'must be absent for type = "blackhole"'),
    ('routes = [{ to = "10.0.0.0/8", metric = -1 }]', "interface[1].routes[1].metric",
     "must be an integer from 0 to 4294967295, got -1"),
])
def test_wrong_types_and_metrics_are_named(entry: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(f'[[interface]]\nname = "x"\n{entry}\n')
    assert caught.value.key == key
    assert problem in str(caught.value)
    assert caught.value.line == 3


def test_the_table_ends_with_unreachable_default_per_family() -> None:
    decision = decide(parse(ISOLATED))
    data = [r for r in decision.desired.routes if r.table == 30001]
    defaults = [r for r in data if r.dst_len == 0]
    # IPv4 has no device; the kernel stores an IPv6 reject route on lo (ifindex 1 here)
    assert sorted((r.family, r.type, r.oif, r.gateway) for r in defaults) == [
        (AF_INET, RTN_UNREACHABLE, None, None), (AF_INET6, RTN_UNREACHABLE, 1, None)]
    assert {(r.dst, r.type, r.metric) for r in data if r.type != RTN_UNICAST} >= {
        ("192.0.2.0", RTN_BLACKHOLE, 7), ("198.51.100.0", RTN_PROHIBIT, 0),
        ("2001:db8:66::", RTN_UNREACHABLE, 1024)}
    ens224 = next(i for i in decision.desired.interfaces if i.name == "ens224")
    assert not ens224.gateway4.present and ens224.gateway4.unreachable
    assert ens224.gateway6.reason is not None and "gateway6" in ens224.gateway6.reason
    # the connected routes stay: on-link neighbours are still reachable
    assert any(r.dst == "10.225.176.0" and r.type == RTN_UNICAST for r in data)


def test_an_unreachable_default_as_the_kernel_stores_it_is_in_sync() -> None:
    """The kernel's form (IPv6 on lo, IPv4 without device) is what polroutd wants: applying it
    twice is nothing to do."""
    first = decide(parse(ISOLATED))
    applied = replace(first.state, routes=first.state.routes + first.desired.routes,
                      rules=first.state.rules + first.desired.rules)
    again = decide(parse(ISOLATED), applied)
    assert again.plan.operations == ()


def test_typed_routes_are_written_as_ip_writes_them() -> None:
    decision = decide(parse(ISOLATED))
    texts = {route_text(r, decision.names) for r in decision.desired.routes}
    assert "unreachable default table data" in texts
    assert "unreachable ::/0 dev lo table data" in texts
    assert "blackhole 192.0.2.0/24 metric 7 table data" in texts
    unreachable = next(r for r in decision.desired.routes if r.type == RTN_UNREACHABLE)
    assert route_json(unreachable, decision.names)["type"] == "unreachable"


@pytest.mark.parametrize(("fmt", "expected"), [
    ("ip-batch", "route add unreachable default metric 0 table 30001 proto polroutd"),
    ("ifcfg", "unreachable default metric 0 table data proto polroutd"),
    ("interfaces", "#    post-up ip -6 route add unreachable ::/0 dev lo metric 1024 table data"),
    ("networkd", "Type=unreachable"),
    ("nmcli", "'::/0 1024 table=30001 type=unreachable'"),
])
def test_every_render_format_carries_the_unreachable_default(fmt: str, expected: str) -> None:
    files = render(decide(parse(ISOLATED)), fmt, "polroutd", generated_at=_WHEN)
    text = "\n".join(files.values())
    assert expected in text
    assert "not expressible here: unreachable" not in text  # reject routes need no device


@pytest.mark.parametrize("rtype", [RTN_UNREACHABLE, RTN_BLACKHOLE, RTN_PROHIBIT])
def test_the_codec_carries_the_route_type(rtype: int) -> None:
    route = next(r for r in decide(parse(ISOLATED)).desired.routes if r.dst_len == 0)
    typed = route._replace(type=rtype)
    message = rtnl.encode_route(rtnl.RTM_NEWROUTE, 0, 1, typed)
    (decoded,) = [rtnl.decode_route(m[4]) for m in rtnl.iter_messages(message)]
    assert decoded == typed


def test_the_example_file_documents_the_gateway_words() -> None:
    example = Path(__file__).parents[2] / "contrib" / "polroutd.example.toml"
    text = example.read_text()
    assert "auto | none | unreachable | an IPv4 address" in text
    assert "auto | none | unreachable | an IPv6 address (link-local allowed)" in text
    assert "a number 5..255" in text
    load_config(example)

