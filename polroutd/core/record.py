"""Value classes that cost a fraction of a dataclass to create.

``@dataclass(frozen=True, slots=True)`` compiles each method it generates with its own ``exec``
when the class is created: about 1.2 ms a class, a quarter of the daemon's import time for its
forty-odd classes. ``@record`` makes the same classes (``__init__`` with defaults and default
factories, immutability, ``__eq__`` between instances of one class, a matching ``__hash__``, a
dataclass-like ``__repr__``, ``__slots__`` and ``__match_args__``) for a twentieth of that:

* ``__init__`` is compiled on the first instance (about 0.2 ms), ``__eq__`` and ``__hash__``
  together on the first comparison or hash; a class never used that way costs nothing more.
  Once compiled they are as fast as a dataclass's, and a frozen record's ``__init__`` twice as
  fast: it sets each field through its slot's descriptor, not ``object.__setattr__``.
* ``__repr__``, ``__setattr__`` and ``__delattr__`` are shared by every record.

``fields`` and ``replace`` stand in for the ``dataclasses`` ones. Not supported, as nothing here
needs them: ordering, ``__post_init__``, ``InitVar``, fields left out of ``__init__``, ``__eq__``
or ``__repr__``, and zero-argument ``super()`` in a record's methods (the class is rebuilt with
``__slots__``, as ``dataclass(slots=True)`` does).
"""

from collections.abc import Callable
from reprlib import recursive_repr
from typing import Any, ClassVar, Final, TypeVar, dataclass_transform, get_origin, overload

__all__ = ["MISSING", "Field", "FrozenInstanceError", "field", "fields", "record", "replace"]

T = TypeVar("T")
C = TypeVar("C", bound=type[Any])


class FrozenInstanceError(AttributeError):
    """Raised when a field of a frozen record is assigned or deleted."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final[Any] = _Missing()
"""The ``default`` or ``default_factory`` of a field that has none."""


class Field:
    """One field of a record, as ``fields`` lists it."""

    __slots__ = ("default", "default_factory", "kw_only", "name", "type")

    def __init__(self, default: Any = MISSING, default_factory: Any = MISSING,
                 kw_only: bool | None = None) -> None:
        if default is not MISSING and default_factory is not MISSING:
            raise ValueError("a field cannot have both a default and a default_factory")
        self.name = ""
        self.type: Any = None
        self.default = default
        self.default_factory = default_factory
        self.kw_only = kw_only

    def __repr__(self) -> str:
        return (f"Field(name={self.name!r}, default={self.default!r}, "
                f"default_factory={self.default_factory!r}, kw_only={self.kw_only!r})")


@overload
def field(*, default: T, kw_only: bool = ...) -> T: ...
@overload
def field(*, default_factory: Callable[[], T], kw_only: bool = ...) -> T: ...
@overload
def field(*, kw_only: bool = ...) -> Any: ...
def field(*, default: Any = MISSING, default_factory: Any = MISSING,
          kw_only: bool | None = None) -> Any:
    """A field's default or default factory, or that it is keyword-only (``dataclasses.field``)."""
    return Field(default, default_factory, kw_only)


def fields(class_or_instance: Any) -> tuple[Field, ...]:
    """A record's fields in ``__init__`` order: its base records', then its own as declared."""
    try:
        found: tuple[Field, ...] = class_or_instance.__record_fields__
    except AttributeError:
        raise TypeError(f"{class_or_instance!r} is not a record") from None
    return found


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of the record ``obj`` with the given fields changed (``dataclasses.replace``)."""
    for f in fields(obj):
        if f.name not in changes:
            changes[f.name] = getattr(obj, f.name)
    return obj.__class__(**changes)


@overload
def record(cls: C, /) -> C: ...
@overload
def record(*, frozen: bool = ..., kw_only: bool = ...) -> Callable[[C], C]: ...
@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: Any = None, /, *, frozen: bool = True, kw_only: bool = False) -> Any:
    """Makes ``cls`` a value class, as ``@dataclass(frozen=True, slots=True)`` does.

    ``frozen=False`` makes a mutable one (and so, compared by value, unhashable), still slotted;
    ``kw_only=True`` makes every field keyword-only, as ``field(kw_only=True)`` makes one.
    """

    def build(cls: type) -> type:
        inherited = {f.name: f for base in reversed(cls.__mro__[1:])
                     for f in base.__dict__.get("__record_fields__", ())}
        own = _own_fields(cls, kw_only)
        combined = {**inherited, **{f.name: f for f in own}}
        all_fields = tuple(combined.values())
        _check_order(cls, all_fields)

        namespace = dict(cls.__dict__)
        for name in ("__dict__", "__weakref__", *combined):
            namespace.pop(name, None)
        namespace["__slots__"] = tuple(f.name for f in own if f.name not in inherited)
        namespace["__record_fields__"] = all_fields
        namespace["__record_names__"] = tuple(combined)
        namespace["__match_args__"] = tuple(f.name for f in all_fields if not f.kw_only)
        namespace.setdefault("__repr__", _repr)
        namespace.setdefault("__getstate__", _getstate)
        namespace.setdefault("__setstate__", _setstate)
        if frozen:
            namespace.setdefault("__setattr__", _frozen_setattr)
            namespace.setdefault("__delattr__", _frozen_delattr)
        elif "__hash__" not in namespace:
            namespace["__hash__"] = None  # mutable and compared by value: unhashable
        rebuilt: type = type(cls)(cls.__name__, cls.__bases__, namespace)
        rebuilt.__qualname__ = cls.__qualname__

        declared = cls.__dict__
        _defer(rebuilt, declared, ("__init__",), lambda: _init_source(rebuilt, all_fields, frozen))
        compared = ("__eq__", "__hash__") if frozen else ("__eq__",)
        _defer(rebuilt, declared, compared, lambda: _compare_source(all_fields, frozen))
        return rebuilt

    return build if cls is None else build(cls)


# Shared by every record.

def _frozen_setattr(self: object, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: object, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


@recursive_repr()
def _repr(self: Any) -> str:
    shown = ", ".join([f"{name}={getattr(self, name)!r}" for name in self.__record_names__])
    return f"{self.__class__.__qualname__}({shown})"


def _getstate(self: Any) -> tuple[Any, ...]:
    return tuple([getattr(self, name) for name in self.__record_names__])


def _setstate(self: Any, state: tuple[Any, ...]) -> None:
    for name, value in zip(self.__record_names__, state, strict=True):
        object.__setattr__(self, name, value)


def _own_fields(cls: type, kw_only: bool) -> list[Field]:
    found = []
    # The class's own annotations (inspect.get_annotations would cost importing inspect).
    annotations = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
    for name, annotation in annotations.items():
        if _is_classvar(annotation):
            continue
        value = cls.__dict__.get(name, MISSING)
        f = value if isinstance(value, Field) else Field(default=value)
        f.name = name
        f.type = annotation
        if f.kw_only is None:
            f.kw_only = kw_only
        found.append(f)
    return found


def _is_classvar(annotation: Any) -> bool:
    if isinstance(annotation, str):  # postponed (``from __future__ import annotations``)
        return annotation.startswith(("ClassVar", "typing.ClassVar"))
    return annotation is ClassVar or get_origin(annotation) is ClassVar


def _check_order(cls: type, all_fields: tuple[Field, ...]) -> None:
    defaulted = None
    for f in all_fields:
        if f.kw_only:
            continue
        if f.default is not MISSING or f.default_factory is not MISSING:
            defaulted = f.name
        elif defaulted is not None:
            raise TypeError(f"{cls.__qualname__}: field {f.name!r} without a default follows "
                            f"{defaulted!r}, which has one")


Source = tuple[list[str], dict[str, Any]]


def _defer(cls: type, declared: Any, names: tuple[str, ...], source: Callable[[], Source]) -> None:
    """Gives ``cls`` stand-ins for the methods ``names`` (those its body does not declare) that
    compile them all from ``source`` on the first call, install them, and call the real one."""
    wanted = [name for name in names if name not in declared]

    def compile_now() -> None:
        lines, refs = source()
        refs["__name__"] = cls.__module__
        generated: dict[str, Any] = {}
        exec("\n".join(lines), refs, generated)  # the source is made of the fields' names
        for name in wanted:
            method = generated[name]
            method.__qualname__ = f"{cls.__qualname__}.{name}"
            setattr(cls, name, method)

    def stand_in(name: str) -> Callable[..., Any]:
        def first_call(self: Any, *args: Any, **kwargs: Any) -> Any:
            compile_now()
            return getattr(cls, name)(self, *args, **kwargs)

        first_call.__qualname__ = f"{cls.__qualname__}.{name}"
        return first_call

    for name in wanted:
        setattr(cls, name, stand_in(name))


def _init_source(cls: type, all_fields: tuple[Field, ...], frozen: bool) -> Source:
    # A frozen record's fields are set through their slots' descriptors (``_set_x``): a third
    # of the time of ``object.__setattr__``, what a frozen dataclass uses.
    refs: dict[str, Any] = {"_MISSING": MISSING}
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = []
    for f in all_fields:
        name = value = f.name
        if f.default is not MISSING:
            refs[f"_dflt_{name}"] = f.default
            parameter = f"{name}=_dflt_{name}"
        elif f.default_factory is not MISSING:
            refs[f"_fact_{name}"] = f.default_factory
            parameter = f"{name}=_MISSING"
            value = f"_fact_{name}() if {name} is _MISSING else {name}"
        else:
            parameter = name
        (keyword if f.kw_only else positional).append(parameter)
        if frozen:
            refs[f"_set_{name}"] = getattr(cls, name).__set__
            body.append(f" _set_{name}(self, {value})")
        else:
            body.append(f" self.{name} = {value}")
    parameters = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    return [f"def __init__({parameters}):", *(body or [" pass"])], refs


def _compare_source(all_fields: tuple[Field, ...], frozen: bool) -> Source:
    mine = "".join(f"self.{f.name}," for f in all_fields)
    theirs = mine.replace("self.", "other.")
    lines = [
        "def __eq__(self, other):",
        " if other.__class__ is self.__class__:",
        f"  return ({mine}) == ({theirs})",
        " return NotImplemented",
    ]
    if frozen:
        lines += ["def __hash__(self):", f" return hash(({mine}))"]
    return lines, {}
