"""One reconcile, as the commands and the daemon share it: read, decide, record names, apply.

The deciding is pure (desired.py, plan.py); this module gathers its inputs from the kernel and
the files beside it, and hands the plan to the kernel.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from polroutd.core import tables
from polroutd.core.decision import Decision
from polroutd.core.describe import Names
from polroutd.core.desired import (
    Inputs,
    desired_state,
    main_table_defaults,
    managed_links,
    table_requests,
)
from polroutd.core.limits import AF_INET
from polroutd.core.model import DesiredState, KernelState, Link, Operation, OpResult, Plan
from polroutd.core.plan import make_plan
from polroutd.core.settings import Config, InterfaceSpec
from polroutd.core.uplinks import HealthView
from polroutd.inputs import leases, rt_tables

UPLINK_TABLE_KEY = "/uplinks"  # the uplink table's request among the interfaces' ('/': no ifname)


class Kernel(Protocol):
    def read_state(self) -> KernelState: ...

    def apply(self, operations: Sequence[Operation]) -> list[OpResult]: ...


LeaseReader = Callable[[Mapping[str, int]], Mapping[str, str]]

RECORD_SETTLED = 1.0  # seconds after a change from which the recorded-tables file is cached


def resolve_names(config: Config) -> tuple[tables.NameRegistry, int]:
    """The name registry and protocol number for a configuration; raises ConfigError for names
    that cannot be resolved, before anything touches the kernel."""
    registry = rt_tables.read_registry(rt_tables.config_dirs_for(config.daemon.rt_tables_file))
    protocol = tables.resolve_protocol(config.daemon.protocol, registry, config.source)
    tables_file = config.daemon.rt_tables_file
    recorded = rt_tables.read_recorded(Path(tables_file)) if tables_file else {}
    tables.check_route_tables(config, registry, recorded)
    return registry, protocol


class Engine:
    """Turns a configuration into decisions against whatever kernel it is given."""

    def __init__(
        self,
        config: Config,
        kernel: Kernel,
        *,
        lease_reader: LeaseReader | None = None,
        applied_tables: Mapping[str, int] | None = None,
    ) -> None:
        self.config = config
        self.kernel = kernel
        self.registry, self.protocol = resolve_names(config)
        self._lease_reader = lease_reader or self._read_leases
        self._tables_file = (
            Path(config.daemon.rt_tables_file) if config.daemon.rt_tables_file else None
        )
        self._recorded_cache: tuple[tuple[int, ...], dict[str, int]] | None = None
        # The table numbers last applied: they stay with their names even when there is no
        # recorded-tables file (disabled, or not writable), as long as this process runs.
        self._applied_tables: dict[str, int] = dict(applied_tables or {})
        self.tables_file_error: str | None = None  # why the file could not be written, if so
        # What the daemon observed of its uplinks (daemon/uplinks.py); None: links decide.
        self.uplink_health: HealthView | None = None

    def _read_leases(self, interfaces: Mapping[str, int]) -> Mapping[str, str]:
        found = leases.lease_gateways(interfaces, self.config.daemon.dhcp_lease_paths, time.time())
        return {name: lease.gateway for name, lease in found.items() if lease.gateway}

    def _recorded(self) -> dict[str, int]:
        """The table numbers applied so far in this process, overridden by the recorded-tables
        file (which carries them across restarts)."""
        return {**self._applied_tables, **self._recorded_file()}

    def _recorded_file(self) -> dict[str, int]:
        """The recorded-tables file, parsed again only when it changed (by its inode, size and
        times; contents read within a second of a change are not reused, since a quick second
        change could keep the same timestamp)."""
        if self._tables_file is None:
            return {}
        try:
            info = os.stat(self._tables_file)
        except OSError:
            self._recorded_cache = None
            return rt_tables.read_recorded(self._tables_file)
        key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        cached = self._recorded_cache
        if cached is not None and cached[0] == key:
            return dict(cached[1])
        recorded = rt_tables.read_recorded(self._tables_file)
        settled = time.time() - max(info.st_mtime, info.st_ctime) > RECORD_SETTLED
        self._recorded_cache = (key, dict(recorded)) if settled else None
        return recorded

    def _lease_candidates(
        self, state: KernelState, managed: Sequence[tuple[Link, InterfaceSpec | None]]
    ) -> dict[str, int]:
        """The interfaces whose IPv4 gateway may come from a DHCP lease (``auto``, and no
        default route on them in the main table): only these need lease files read."""
        defaults = main_table_defaults(state, self.protocol)
        return {
            link.name: link.ifindex
            for link, spec in managed
            if (spec.gateway if spec else "auto") == "auto"
            and (link.ifindex, AF_INET) not in defaults
        }

    def decide(self, state: KernelState) -> Decision:
        managed = managed_links(state, self.config)
        foreign_tables = {r.table for r in state.routes if r.protocol != self.protocol}
        requests = table_requests(managed)
        if self.config.daemon.uplinks != "off":
            requests.append((UPLINK_TABLE_KEY, self.config.daemon.uplink_table))
        assignment = tables.assign_tables(
            requests,
            registry=self.registry,
            recorded=self._recorded(),
            table_range=self.config.daemon.table_range,
            in_use=foreign_tables,
            source=self.config.source,
        )
        named = {**self.registry.tables, **assignment.recorded}
        named.update({ref.name: ref.id for ref in assignment.by_interface.values() if ref.name})
        uplink_table = assignment.by_interface.get(UPLINK_TABLE_KEY)
        inputs = Inputs(
            config=self.config,
            protocol=self.protocol,
            tables=assignment.by_interface,
            named_tables=named,
            lease_gateways=self._lease_reader(self._lease_candidates(state, managed)),
            uplink_table=uplink_table,
            uplink_health=self.uplink_health,
        )
        desired = desired_state(state, inputs)
        table_names = {number: name for name, number in self.registry.tables.items()}
        table_names.update({number: name for name, number in named.items()})
        description = Names(
            links={link.ifindex: link.name for link in state.links},
            tables=table_names,
            protocols={number: name for name, number in self.registry.protocols.items()}
            | {self.protocol: self._protocol_name()},
        )
        return Decision(state, desired, make_plan(desired, state, self.protocol), description,
                        assignment.recorded)

    def _protocol_name(self) -> str:
        setting = self.config.daemon.protocol
        return setting if isinstance(setting, str) else str(setting)

    def read_and_decide(self) -> Decision:
        return self.decide(self.kernel.read_state())

    @property
    def applied_tables(self) -> Mapping[str, int]:
        """Table name -> number as last applied (hand it to the Engine that replaces this one)."""
        return self._applied_tables

    def record_tables(self, decision: Decision) -> bool:
        """Keeps the rt_tables.d file in step, so ``ip`` shows table names and numbers survive a
        restart. True if rewritten. A file that cannot be written stops nothing: the reason is
        kept in ``tables_file_error`` (the kernel needs numbers, not names)."""
        self._applied_tables = dict(decision.recorded_tables)
        if self._tables_file is None:
            return False
        content = tables.render_recorded(decision.recorded_tables)
        try:
            written = rt_tables.write_if_changed(self._tables_file, content)
        except OSError as exc:
            self.tables_file_error = f"cannot write {self._tables_file}: {exc.strerror or exc}"
            return False
        self.tables_file_error = None
        return written

    def apply(self, decision: Decision) -> list[OpResult]:
        results = self.kernel.apply(decision.plan.operations) if not decision.plan.empty else []
        self.record_tables(decision)
        return results

    def flush_plan(self, state: KernelState) -> Plan:
        """Every object with polroutd's protocol, deleted."""
        nothing = DesiredState(interfaces=(), rules=(), routes=(), tables=frozenset())
        return make_plan(nothing, state, self.protocol)
