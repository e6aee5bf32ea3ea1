"""``python -m bench.records [ROUNDS]``: records against frozen slotted dataclasses, side by side.

Each record class ``polroutd run`` imports is declared again, from the same annotations and
defaults, both as a record and as ``@dataclass(frozen=True, slots=True)``; the two are timed
alternately in this one process (CPU time, the least of ``ROUNDS`` rounds, so that both share the
machine's load): the cost of creating the class, and of what the daemon does with its instances
(construction, comparison, hashing, ``replace``). No namespace, no root: pure Python.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import timeit
from collections.abc import Callable
from typing import Any

from polroutd.core import record as records

RUN_PATH = ("polroutd.cli.main", "polroutd.cli.run", "polroutd.daemon.service")
# Those built or compared on every reconcile or probe (the operations are timed on these).
HOT = ("Gateway", "ManagedInterface", "DesiredState", "Plan", "Piece", "Inputs", "Decision",
       "Touched", "Health", "LastReconcile", "Lease", "LeaseOffer")
OPERATIONS = (("new(pos)", "C(*args)", 20000), ("new(kw)", "C(**kwargs)", 20000),
              ("eq", "a == b", 50000), ("hash", "hash(a)", 50000),
              ("replace", "replace(a, **{first: 7})", 10000))


def run_path_records() -> list[type]:
    """The record classes the modules ``polroutd run`` imports define, in import order."""
    for name in RUN_PATH:
        __import__(name)
    found: dict[int, type] = {}
    for module in list(sys.modules.values()):
        for value in vars(module).values():
            if (isinstance(value, type) and "__record_fields__" in value.__dict__
                    and value.__module__.startswith("polroutd")):
                found.setdefault(id(value), value)
    return list(found.values())


def body(cls: type) -> dict[str, Any]:
    """A fresh class namespace declaring ``cls``'s fields with the given field specifier."""
    return {"__annotations__": {f.name: f.type for f in records.fields(cls)},
            "__module__": cls.__module__, "__qualname__": cls.__qualname__}


def declare(cls: type, as_record: bool) -> type:
    namespace = body(cls)
    for f in records.fields(cls):
        if f.default is not records.MISSING:
            namespace[f.name] = f.default
        elif f.default_factory is not records.MISSING:
            namespace[f.name] = (records.field(default_factory=f.default_factory) if as_record
                                 else dataclasses.field(default_factory=f.default_factory))
    bare = type(cls.__name__, (), namespace)
    if as_record:
        return records.record(bare)
    made: type = dataclasses.dataclass(frozen=True, slots=True)(bare)
    return made


def least(timings: dict[str, float], key: str, measure: Callable[[], float]) -> None:
    value = measure()
    timings[key] = min(timings.get(key, value), value)


def main(argv: list[str]) -> int:
    rounds = int(argv[0]) if argv else 9
    # The frozen ones: a mutable record is unhashable (three, none of them on a hot path).
    classes = [c for c in run_path_records() if vars(c).get("__hash__") is not None]
    hot = [c for c in classes if c.__name__ in HOT]
    creation: dict[str, float] = {}
    first_use: dict[str, float] = {}
    operations: dict[str, float] = {}
    for _ in range(rounds):
        for kind in ("dataclass", "record"):
            started = time.process_time()
            declared = [declare(cls, kind == "record") for cls in classes]
            least(creation, kind, lambda s=started: time.process_time() - s)  # type: ignore[misc]
            started = time.process_time()
            for cls, twin in zip(classes, declared, strict=True):
                # A record compiles __init__, then __eq__ and __hash__, here.
                instance = twin(*range(len(records.fields(cls))))
                hash(instance)
                _ = instance == instance
            least(first_use, kind, lambda s=started: time.process_time() - s)  # type: ignore[misc]
        for cls in hot:
            fields = records.fields(cls)
            args = tuple(range(len(fields)))
            for kind in ("dataclass", "record"):
                made = declare(cls, kind == "record")
                names = (f.name for f in fields)
                scope = {"C": made, "args": args, "kwargs": dict(zip(names, args, strict=True)),
                         "a": made(*args), "b": made(*args), "first": fields[0].name,
                         "replace": records.replace if kind == "record" else dataclasses.replace}
                for label, statement, number in OPERATIONS:
                    timer = timeit.Timer(statement, globals=scope, timer=time.process_time)
                    least(operations, f"{cls.__name__} {label} {kind}",
                          lambda t=timer, n=number: t.timeit(n) / n)  # type: ignore[misc]
    print(f"creating the {len(classes)} frozen value classes of `polroutd run`, CPU ms "
          f"(least of {rounds} rounds): dataclass {creation['dataclass'] * 1e3:.1f}, "
          f"record {creation['record'] * 1e3:.1f}; then a first instance, hash and comparison "
          f"of each: dataclass {first_use['dataclass'] * 1e3:.1f}, "
          f"record {first_use['record'] * 1e3:.1f} (its methods are compiled then)")
    print(f"{'class':16s} {'operation':9s} {'dataclass':>9s} {'record':>8s}  ns, CPU time")
    for cls in hot:
        for label, _, _ in OPERATIONS:
            old = operations[f"{cls.__name__} {label} dataclass"] * 1e9
            new = operations[f"{cls.__name__} {label} record"] * 1e9
            print(f"{cls.__name__:16s} {label:9s} {old:9.0f} {new:8.0f}  {new / old:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
