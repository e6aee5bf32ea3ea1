"""One reconcile, as the commands and the daemon share it: read, decide, record names, apply.

The deciding is pure (desired.py, plan.py); this module gathers its inputs from the kernel and
the files beside it, and hands the plan to the kernel.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from polroutd.config.files import why_unreadable
from polroutd.core import tables
from polroutd.core.decision import Decision
from polroutd.core.describe import Names
from polroutd.core.desired import (
    Inputs,
    addresses_by_interface,
    assemble,
    desired_pieces,
    earliest_lease_expiry,
    main_table_defaults,
    select_links,
    table_requests,
    unmanaged_copies,
)
from polroutd.core.errors import ConfigError
from polroutd.core.incremental import Pieces, redecide, scope
from polroutd.core.kernelview import Touched, grouped
from polroutd.core.limits import AF_INET
from polroutd.core.model import (
    DesiredState,
    KernelState,
    LeaseFindings,
    Link,
    Operation,
    OpResult,
    Plan,
    Route,
)
from polroutd.core.plan import make_plan
from polroutd.core.record import record, replace
from polroutd.core.settings import Config, InterfaceSpec
from polroutd.core.uplinks import HealthView
from polroutd.inputs import leases, rt_tables
from polroutd.inputs.filecache import SETTLE, SettledFileCache
from polroutd.netlink.kernel import collector_paused

UPLINK_TABLE_KEY = "/uplinks"  # the uplink table's request among the interfaces' ('/': no ifname)


class Kernel(Protocol):
    def read_state(self) -> KernelState: ...

    def apply(self, operations: Sequence[Operation]) -> list[OpResult]: ...


LeaseReader = Callable[[Mapping[str, int]], Mapping[str, LeaseFindings]]

Records = tuple[dict[str, int], dict[str, float]]  # table name -> number; -> unused since
_NO_RECORDS: tuple[Mapping[str, int], Mapping[str, float]] = (MappingProxyType({}),
                                                              MappingProxyType({}))


def _stat_key(path: Path) -> tuple[int, ...]:
    info = os.stat(path)
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def read_system_registry(config: Config) -> tables.NameRegistry:
    """The system's table and protocol names: never polroutd's own records file."""
    tables_file = config.daemon.rt_tables_file
    return rt_tables.read_registry(
        rt_tables.config_dirs_for(tables_file), exclude=Path(tables_file) if tables_file else None
    )


def registry_signature(config: Config) -> rt_tables.RegistrySignature:
    tables_file = config.daemon.rt_tables_file
    return rt_tables.registry_signature(
        rt_tables.config_dirs_for(tables_file), exclude=Path(tables_file) if tables_file else None
    )


def resolve_names(config: Config) -> tuple[tables.NameRegistry, int]:
    """The name registry and protocol number for a configuration; raises ConfigError for names
    that cannot be resolved, before anything touches the kernel."""
    registry = read_system_registry(config)
    protocol = tables.resolve_protocol(config.daemon.protocol, registry, config.source)
    tables_file = config.daemon.rt_tables_file
    try:
        recorded = rt_tables.read_recorded(Path(tables_file)) if tables_file else {}
    except OSError as exc:
        raise ConfigError(
            config.source, "daemon.rt_tables_file",
            f"{tables_file} {why_unreadable(exc)}: point it at a regular file (or \"\" for none)",
        ) from None
    tables.check_route_tables(config, registry, recorded)
    return registry, protocol


@record
class _Basis:
    """A decision with what it was derived from, for deciding again after events."""

    decision: Decision
    pieces: Pieces  # interface index -> its share of the desired state
    skipped: frozenset[int]
    inputs: Inputs
    copies: Sequence[Route]  # the main-table routes strict mode copies
    specs: Mapping[int, InterfaceSpec | None]  # managed interface index -> its entry
    lease_candidates: Mapping[str, int]  # whose IPv4 gateway may come from a lease


@record
class Checkpoint:
    """What the engine's next ``decide_touched`` builds on, as it was before a decision that
    may not be applied (``Engine.checkpoint``, ``Engine.rollback``)."""

    basis: _Basis | None
    names_stale: bool  # a full decision since read the names again: the next must still


class Engine:
    """Turns a configuration into decisions against whatever kernel it is given."""

    def __init__(
        self,
        config: Config,
        kernel: Kernel,
        *,
        lease_reader: LeaseReader | None = None,
        applied_tables: Mapping[str, int] | None = None,
        applied_unused: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.time,
        adopt: frozenset[int] = frozenset(),
        lease_warning: Callable[[str], None] = leases.warn_through_logging,
    ) -> None:
        self.config = config
        self.kernel = kernel
        self._clock = clock  # Unix time: lease expiry, unused table numbers, files' timestamps
        self._registry_signature = registry_signature(config)
        self._names_stale = False  # names_changed() saw the names files change since read
        self.registry, self.protocol = resolve_names(config)
        # The protocols polroutd used before a reload changed it: their objects are taken over
        # (see make_plan) until a reconcile has applied in full (``adopted``).
        self.adopting = adopt - {self.protocol}
        self._lease_reader = lease_reader or self._read_leases
        # Interface -> lease files of it that exist but could not be read, as last searched.
        self.unreadable_leases: dict[str, tuple[str, ...]] = {}
        self._tables_file = (
            Path(config.daemon.rt_tables_file) if config.daemon.rt_tables_file else None
        )
        self._recorded_file = SettledFileCache(
            lambda path, _: rt_tables.read_records(Path(path)), clock=clock
        )
        self._lease_files = leases.LeaseFiles(clock, lease_warning)
        # The table numbers last applied: they stay with their names even when there is no
        # recorded-tables file (disabled, or not writable), as long as this process runs.
        self._applied_tables: dict[str, int] = dict(applied_tables or {})
        self._applied_unused: dict[str, float] = dict(applied_unused or {})
        self.tables_file_error: str | None = None  # why the file could not be written, if so
        self._last: _Basis | None = None  # what the last decision was made of
        # The table numbers (applied, and in the recorded-tables file) when the last decision
        # was applied: a change made by hand since calls for a full decision.
        self._records_applied: Records | None = None
        self._recorded_memo: tuple[tuple[object, ...], Records] | None = None
        # The recorded-tables file's stat when it was last written or found to hold these
        # records (see ``_tables_file_holds``).
        self._tables_file_held: tuple[tuple[int, ...], dict[str, int], dict[str, float]] | None = (
            None)
        # What the daemon observed of its uplinks (daemon/uplinks.py); None: links decide.
        self.uplink_health: HealthView | None = None

    def _read_leases(self, interfaces: Mapping[str, int]) -> Mapping[str, LeaseFindings]:
        return leases.lease_findings(
            interfaces, self.config.daemon.dhcp_lease_paths, self._clock(), self._lease_files
        )

    def _recorded(self) -> Records:
        """The table numbers applied so far in this process, overridden by the recorded-tables
        file (which carries them across restarts); and since when unused ones are unused.

        Made again only when one of its sources is another object (the file's parse is kept
        while the file is unchanged, the applied numbers are replaced at each apply): merging
        hundreds of tables is not for every event. Callers never change what it returns."""
        recorded, unused = self._recorded_tables_file()
        sources = (recorded, unused, self._applied_tables, self._applied_unused)
        memo = self._recorded_memo
        if memo is not None and all(a is b for a, b in zip(memo[0], sources, strict=True)):
            return memo[1]
        kept_here = {name: when for name, when in self._applied_unused.items()
                     if name not in recorded}
        records = {**self._applied_tables, **recorded}, {**kept_here, **unused}
        self._recorded_memo = (sources, records)
        return records

    def _refresh_registry(self) -> None:
        """Reads the system's names again when their files changed (the protocol stays)."""
        signature = registry_signature(self.config)
        if signature != self._registry_signature:
            self._registry_signature = signature
            self.registry = read_system_registry(self.config)
        self._names_stale = False

    def names_changed(self) -> bool:
        """Whether the system's names files changed since they were read (a ``stat`` of each).
        ``decide_touched`` does not look (the stats cost what an event's reconcile should
        not): the daemon asks after applying, and a change makes the next decision a full one.
        """
        if registry_signature(self.config) != self._registry_signature:
            self._names_stale = True
        return self._names_stale

    def _recorded_tables_file(self) -> tuple[Mapping[str, int], Mapping[str, float]]:
        """The recorded-tables file, parsed again only when it changed (the parse is shared:
        not to be changed)."""
        if self._tables_file is None:
            return _NO_RECORDS
        try:
            return self._recorded_file.get(str(self._tables_file))
        except OSError:
            return rt_tables.read_records(self._tables_file)

    def _lease_candidates(
        self, state: KernelState, managed: Iterable[tuple[Link, InterfaceSpec | None]]
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

    def _as_ours(self, state: KernelState) -> KernelState:
        """``state`` with the adopted protocols' objects shown as polroutd's own: the desired
        state does not take them for foreign (a main-table default, a table in use)."""
        if not self.adopting:
            return state
        mine, adopting = self.protocol, self.adopting
        return replace(
            state,
            routes=tuple(r._replace(protocol=mine) if r.protocol in adopting else r
                         for r in state.routes),
            rules=tuple(r._replace(protocol=mine) if r.protocol in adopting else r
                        for r in state.rules),
        )

    def adopted(self) -> None:
        """A reconcile applied in full: no object of the adopted protocols is left."""
        self.adopting = frozenset()

    def decide(self, actual: KernelState) -> Decision:
        with collector_paused():
            return self._decide(actual)

    def _decide(self, actual: KernelState) -> Decision:
        self._refresh_registry()
        state = self._as_ours(actual)
        by_index = addresses_by_interface(state)
        selection = select_links(state, self.config, by_index.keys())
        managed = selection[0]
        foreign_tables = {r.table for r in state.routes if r.protocol != self.protocol}
        recorded, unused_since = self._recorded()
        requests = table_requests(managed)
        if self.config.daemon.uplinks != "off":
            requests.append((UPLINK_TABLE_KEY, self.config.daemon.uplink_table))
        assignment = tables.assign_tables(
            requests,
            registry=self.registry,
            recorded=recorded,
            table_range=self.config.daemon.table_range,
            in_use=foreign_tables,
            source=self.config.source,
            unused_since=unused_since,
            now=self._clock(),
        )
        candidates = self._lease_candidates(state, managed)
        named = {**self.registry.tables, **assignment.recorded}
        named.update({ref.name: ref.id for ref in assignment.by_interface.values() if ref.name})
        uplink_table = assignment.by_interface.get(UPLINK_TABLE_KEY)
        inputs = Inputs(
            config=self.config,
            protocol=self.protocol,
            tables=assignment.by_interface,
            named_tables=named,
            leases=self._lease_reader(candidates),
            table_errors=assignment.unassigned,
            uplink_table=uplink_table,
            uplink_health=self.uplink_health,
        )
        pieces, skipped, _ = desired_pieces(state, inputs, selection, by_index)
        desired = assemble(pieces, skipped, inputs)
        table_names = {number: name for name, number in self.registry.tables.items()}
        table_names.update({number: name for name, number in named.items()})
        description = Names(
            links={link.ifindex: link.name for link in state.links},
            tables=table_names,
            protocols={number: name for name, number in self.registry.protocols.items()}
            | {self.protocol: self._protocol_name()},
        )
        plan = make_plan(desired, actual, self.protocol, self.adopting)
        decision = Decision(actual, desired, plan, description, assignment.recorded,
                            assignment.unused_since)
        copies = (unmanaged_copies(state, {p.interface.index for p in pieces}, self.protocol)
                  if self.config.daemon.mode == "strict" else [])
        self._last = _Basis(decision, Pieces(pieces),
                            frozenset(s.index for s in desired.skipped), inputs, copies,
                            {link.ifindex: spec for link, spec in managed}, candidates)
        return decision

    def decide_touched(self, state: KernelState, touched: Touched) -> Decision | None:
        """The decision for ``state`` (the last decision's state with events applied) found by
        deciding again only for the interfaces ``touched`` names, and those whose DHCP lease
        files changed (no event tells); None when that cannot tell and a full decision must
        (see core/incremental.py), or the recorded table numbers changed, or ``names_changed``
        saw the names files change."""
        last = self._last
        if last is None or self._names_stale:
            return None
        recorded = self._recorded()
        if recorded is not self._records_applied and recorded != self._records_applied:
            return None
        if self.adopting:
            return None  # the adopted protocols' objects are planned only by a full decision
        if self.uplink_health != last.inputs.uplink_health:
            return None  # the uplink table's objects depend on every uplink's health
        uplink_table = last.inputs.uplink_table.id if last.inputs.uplink_table else None
        chosen = scope(last.pieces, last.skipped, state, touched, self.config, self.protocol,
                       uplink_table)
        if chosen is None:
            return None
        if self.config.daemon.mode == "strict" and any(
            c.oif in touched.ifindexes for c in last.copies
        ):
            return None  # a device whose routes strict mode copies changed
        indexes = {link.ifindex for link, _ in chosen}
        candidates = {name: index for name, index in last.lease_candidates.items()
                      if index not in indexes}
        if chosen:
            through = grouped(state.routes, "oif")
            chosen_state = KernelState(routes=tuple(r for i in indexes for r in through.get(i, ())))
            candidates.update(self._lease_candidates(chosen_state, chosen))
        # A renewal may change only a lease file: every candidate's is looked at (the engine's
        # LeaseFiles reads again only what stat shows changed), and an interface whose
        # findings changed is decided again as if an event had touched it.
        found = dict(self._lease_reader(candidates)) if candidates else {}
        renewed = sorted(index for name, index in candidates.items() if index not in indexes
                         and found.get(name) != last.inputs.leases.get(name))
        if renewed:
            links = state.link_by_index()
            chosen = (*chosen, *((links[i], last.specs.get(i)) for i in renewed if i in links))
        inputs = replace(last.inputs, leases=found)
        decided = redecide(last.pieces, last.decision.desired, last.decision.plan, state,
                           chosen, inputs, last.copies)
        if decided is None:
            return None
        pieces, desired, plan = decided
        previous = last.decision
        decision = Decision(state, desired, plan, previous.names, previous.recorded_tables,
                            previous.unused_tables)
        self._last = replace(last, decision=decision, pieces=pieces, inputs=inputs,
                             lease_candidates=candidates)
        return decision

    def checkpoint(self) -> Checkpoint:
        """The basis of the next ``decide_touched`` now. A decision becomes the basis as soon
        as it is made, and ``decide_touched`` takes the basis as applied; a decision made
        ahead that is then not applied (the daemon decides while it waits for quiet, and
        events may come meanwhile) is withdrawn with ``rollback`` to this."""
        return Checkpoint(self._last, self._names_stale)

    def rollback(self, checkpoint: Checkpoint) -> None:
        """Forgets every decision made since ``checkpoint``: the next ``decide_touched``
        builds on the one before them, and leaves to a full decision what it would have (a
        change of the names files). What else a decision leaves behind (the names and lease
        files as read) reflects the files, not the decision."""
        self._last = checkpoint.basis
        self._names_stale = self._names_stale or checkpoint.names_stale

    def earliest_lease_expiry(self, decision: Decision) -> float | None:
        """``desired.earliest_lease_expiry`` of ``decision``: for the last one, from its pieces'
        layout (kept up to date by each event's decision, not a pass over every interface)."""
        last = self._last
        if last is not None and last.decision is decision:
            return last.pieces.layout.earliest_lease_expiry
        return earliest_lease_expiry(decision.desired)

    def _protocol_name(self) -> str:
        setting = self.config.daemon.protocol
        return setting if isinstance(setting, str) else str(setting)

    def read_and_decide(self) -> Decision:
        return self.decide(self.kernel.read_state())

    @property
    def applied_tables(self) -> Mapping[str, int]:
        """Table name -> number as last applied (hand it to the Engine that replaces this one)."""
        return self._applied_tables

    @property
    def applied_unused(self) -> Mapping[str, float]:
        """Since when the unused ones among ``applied_tables`` are unused."""
        return self._applied_unused

    def apply(self, decision: Decision) -> list[OpResult]:
        """Applies the plan and keeps the rt_tables.d file in step (so ``ip`` shows table names
        and numbers survive a restart). The file, when it changed, is written while the kernel
        works through the operations (its syncs wait on the disk, not on Python), and is on
        disk when this returns, also when the kernel apply raised (the numbers it records are
        the ones the next decision takes anyway). A file that cannot be written stops nothing:
        the reason is kept in ``tables_file_error`` (the kernel needs numbers, not names)."""
        writing = self._start_recording(decision)
        try:
            results = (self.kernel.apply(decision.plan.operations)
                       if not decision.plan.empty else [])
        finally:
            self._finish_recording(writing, decision)
        # Replaced only when they changed: ``_recorded`` is made again only then.
        if decision.recorded_tables != self._applied_tables:
            self._applied_tables = dict(decision.recorded_tables)
        if decision.unused_tables != self._applied_unused:
            self._applied_unused = dict(decision.unused_tables)
        self._records_applied = self._recorded()
        return results

    def _start_recording(self, decision: Decision) -> rt_tables.BackgroundWrite | None:
        """The write of the recorded-tables file under way, if it differs from ``decision``'s
        (None: no file, or already as it should be)."""
        if self._tables_file is None:
            return None
        if self._tables_file_holds(decision):
            return None  # as last written or found, and unchanged since: not rendered again
        self._tables_file_held = None
        content = tables.render_recorded(decision.recorded_tables, decision.unused_tables)
        if not rt_tables.differs(self._tables_file, content):
            self.tables_file_error = None
            self._hold_tables_file(decision)
            return None
        return rt_tables.BackgroundWrite(self._tables_file, content)

    def _finish_recording(self, writing: rt_tables.BackgroundWrite | None,
                          decision: Decision) -> None:
        if writing is None:
            return
        try:
            writing.wait()
        except OSError as exc:
            self.tables_file_error = f"cannot write {self._tables_file}: {exc.strerror or exc}"
            return
        self.tables_file_error = None
        self._hold_tables_file(decision)

    def _hold_tables_file(self, decision: Decision) -> None:
        """Remembers that the recorded-tables file holds ``decision``'s records, as it is now."""
        assert self._tables_file is not None
        with contextlib.suppress(OSError):
            self._tables_file_held = (_stat_key(self._tables_file),
                                      dict(decision.recorded_tables), dict(decision.unused_tables))

    def _tables_file_holds(self, decision: Decision) -> bool:
        """Whether the recorded-tables file holds what ``decision`` records: the same records
        as when it was last found to, and the file not changed since (its inode, size and
        times, settled as the file cache's are: a change within their granularity is not
        trusted to show)."""
        held = self._tables_file_held
        if held is None or self._tables_file is None:
            return False
        try:
            key = _stat_key(self._tables_file)
        except OSError:
            return False
        settled = self._clock() - max(key[3], key[4]) / 1e9 > SETTLE
        return (settled and key == held[0] and held[1] == decision.recorded_tables
                and held[2] == decision.unused_tables)

    def flush_plan(self, state: KernelState) -> Plan:
        """Every object with polroutd's protocol (and those it is adopting), deleted."""
        nothing = DesiredState(interfaces=(), rules=(), routes=(), tables=frozenset())
        return make_plan(nothing, state, self.protocol, self.adopting)

    def flush(self, state: KernelState | None = None) -> list[OpResult]:
        """Deletes every object with polroutd's protocol, as found in ``state`` (read now when
        not given): ``polroutd flush`` and the daemon's cleanup on exit."""
        plan = self.flush_plan(self.kernel.read_state() if state is None else state)
        return self.kernel.apply(plan.operations) if plan.operations else []
