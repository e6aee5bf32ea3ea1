"""Prometheus metrics declared before prometheus_client is loaded.

A :class:`MetricSet` hands out metrics that can be counted with at once. Until
:meth:`MetricSet.load` they record what is done to them (nothing is lost); ``load`` imports
prometheus_client, creates the real metrics in a registry, in the order they were declared, and
replays the record into them; from then on every call goes straight to prometheus_client (and
``labels()`` returns its own child). The daemon loads its set after the first reconcile, so
that its start (up to ``STATUS=starting``) does not pay for the library.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

Kind = Literal["counter", "gauge", "histogram"]


class CounterMetric(Protocol):
    def labels(self, *values: str, **labels: str) -> CounterMetric: ...

    def inc(self, amount: float = 1) -> None: ...


class GaugeMetric(Protocol):
    def labels(self, *values: str, **labels: str) -> GaugeMetric: ...

    def set(self, value: float) -> None: ...

    def inc(self, amount: float = 1) -> None: ...

    def remove(self, *values: str) -> None: ...


class HistogramMetric(Protocol):
    def labels(self, *values: str, **labels: str) -> HistogramMetric: ...

    def observe(self, amount: float) -> None: ...


# One recorded call: (label values, method, its arguments); method None is a bare ``labels(...)``,
# which creates the child (a series at 0).
_Call = tuple[tuple[str, ...], str | None, tuple[Any, ...]]


class _Deferred:
    """One metric: prometheus_client's once loaded, a record of the calls until then."""

    def __init__(self, owner: MetricSet, kind: Kind, name: str, documentation: str,
                 labelnames: Sequence[str], buckets: Sequence[float] | None) -> None:
        self.kind, self.name, self.documentation = kind, name, documentation
        self.labelnames = tuple(labelnames)
        self.buckets = buckets
        self._owner = owner
        self._calls: list[_Call] = []
        self.real: Any = None

    def load(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        extra = {} if self.buckets is None else {"buckets": self.buckets}
        kind = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}[self.kind]
        real = kind(self.name, self.documentation, self.labelnames, registry=registry, **extra)
        for values, method, args in self._calls:
            target = real.labels(*values) if values else real
            if method is not None:
                getattr(target, method)(*args)
        self.real, self._calls = real, []

    def __getattr__(self, name: str) -> Any:
        """The rest of prometheus_client's metric (``collect()``, say), once loaded."""
        real = self.__dict__.get("real")
        if real is None:
            raise AttributeError(f"{name}: metric {self.name!r} is not loaded yet")
        return getattr(real, name)

    # --- what the daemon calls ----------------------------------------------------------------

    def labels(self, *values: str, **labels: str) -> Any:
        if self.real is not None:
            return self.real.labels(*values, **labels)
        child = self._label_values(values, labels)
        self.record(child, None, ())
        return _RecordedChild(self, child)

    def inc(self, amount: float = 1) -> None:
        self._unlabelled("inc", amount)

    def set(self, value: float) -> None:
        self._unlabelled("set", value)

    def observe(self, amount: float) -> None:
        self._unlabelled("observe", amount)

    def remove(self, *values: str) -> None:
        if self.real is not None:
            self.real.remove(*values)
            return
        child = self._label_values(values, {})
        # A child that does not exist is no error (prometheus_client before 0.20 raised
        # KeyError: callers allow for that).
        self._calls = [call for call in self._calls if call[0] != child]

    def _unlabelled(self, method: str, *args: Any) -> None:
        if self.real is not None:
            getattr(self.real, method)(*args)
            return
        if self.labelnames:
            raise ValueError(f"{self.name}: no labels given (it has {self.labelnames})")
        self.record((), method, args)

    def record(self, values: tuple[str, ...], method: str | None, args: tuple[Any, ...]) -> None:
        if self._owner.recording:
            self._calls.append((values, method, args))

    def _label_values(self, values: tuple[str, ...], labels: dict[str, str]) -> tuple[str, ...]:
        """The child's label values in declaration order; the errors prometheus_client would
        raise, raised where the call is made."""
        if values and labels:
            raise ValueError(f"{self.name}: label values and names cannot both be given")
        if labels:
            if set(labels) != set(self.labelnames):
                raise ValueError(f"{self.name}: wrong labels {labels} (it has {self.labelnames})")
            return tuple(str(labels[name]) for name in self.labelnames)
        if not self.labelnames or len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: wrong labels {values} (it has {self.labelnames})")
        return tuple(str(value) for value in values)


class _RecordedChild:
    """A labelled child of a metric not loaded yet: its calls are recorded by the parent (or
    go to the real child, if the parent was loaded meanwhile)."""

    def __init__(self, parent: _Deferred, values: tuple[str, ...]) -> None:
        self._parent, self._values = parent, values

    def _call(self, method: str, *args: Any) -> None:
        parent = self._parent
        if parent.real is not None:
            getattr(parent.real.labels(*self._values), method)(*args)
        else:
            parent.record(self._values, method, args)

    def inc(self, amount: float = 1) -> None:
        self._call("inc", amount)

    def set(self, value: float) -> None:
        self._call("set", value)

    def observe(self, amount: float) -> None:
        self._call("observe", amount)


class MetricSet:
    """Metrics declared together and loaded together into one registry (their own, so that
    tests can run several daemons side by side). While ``recording`` is False, calls made
    before the load are dropped (for a daemon whose metrics nothing exposes)."""

    def __init__(self) -> None:
        self.recording = True
        self._metrics: list[_Deferred] = []
        self._registry: CollectorRegistry | None = None

    @property
    def loaded(self) -> bool:
        return self._registry is not None

    @property
    def registry(self) -> CollectorRegistry:
        """The registry (prometheus_client is loaded first, if it is not yet)."""
        self.load()
        assert self._registry is not None
        return self._registry

    def load(self) -> None:
        """Imports prometheus_client, creates every metric declared and replays what was
        recorded; nothing the second time."""
        if self._registry is not None:
            return
        from prometheus_client import CollectorRegistry

        registry = CollectorRegistry(auto_describe=True)
        for metric in self._metrics:
            metric.load(registry)
        self._registry = registry

    def counter(self, name: str, documentation: str,
                labelnames: Sequence[str] = ()) -> CounterMetric:
        return self._declare("counter", name, documentation, labelnames)

    def gauge(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> GaugeMetric:
        return self._declare("gauge", name, documentation, labelnames)

    def histogram(self, name: str, documentation: str, labelnames: Sequence[str] = (), *,
                  buckets: Sequence[float]) -> HistogramMetric:
        return self._declare("histogram", name, documentation, labelnames, buckets)

    def _declare(self, kind: Kind, name: str, documentation: str, labelnames: Sequence[str],
                 buckets: Sequence[float] | None = None) -> _Deferred:
        metric = _Deferred(self, kind, name, documentation, labelnames, buckets)
        self._metrics.append(metric)
        if self._registry is not None:
            metric.load(self._registry)
        return metric
