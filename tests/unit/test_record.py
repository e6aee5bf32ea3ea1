"""polroutd.core.record: value classes that behave as frozen, slotted dataclasses do.

A dataclass declared the same way is the oracle for construction, equality, hashing, repr and
replace; the rest states what the daemon's value classes rely on."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import subprocess
import sys
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polroutd.core.record import MISSING, FrozenInstanceError, field, fields, record, replace


@record
class Point:
    """A point."""

    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list)
    UNIT: ClassVar[int] = 1

    def norm1(self) -> int:
        return abs(self.x) + abs(self.y)


@dataclasses.dataclass(frozen=True, slots=True)
class PointDC:
    x: int
    y: int = 0
    tags: list[str] = dataclasses.field(default_factory=list)


@record
class Other:
    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list)


@record
class Point3(Point):
    z: int = 0


@record(frozen=False)
class Counter:
    name: str
    count: int = 0


@record(kw_only=True)
class Options:
    verbose: bool
    level: int = 1


values = st.integers() | st.text(max_size=3) | st.none() | st.floats(allow_nan=False)
args = st.tuples(values, values, st.lists(st.text(max_size=2), max_size=2))


def test_init_takes_positional_and_keyword_arguments_and_fills_in_defaults() -> None:
    assert (Point(1).x, Point(1).y, Point(1).tags) == (1, 0, [])
    p = Point(y=2, x=1, tags=["a"])
    assert (p.x, p.y, p.tags) == (1, 2, ["a"])


def test_a_default_factory_is_called_for_each_instance_and_only_when_not_given() -> None:
    a, b = Point(1), Point(1)
    assert a.tags == [] and a.tags is not b.tags
    given_list = ["x"]
    assert Point(1, tags=given_list).tags is given_list


@pytest.mark.parametrize("args, kwargs", [((), {}), ((1, 2, [], 4), {}), ((1,), {"x": 1}),
                                          ((1,), {"w": 1})])
def test_init_refuses_what_the_signature_does_not_take(args: tuple[Any, ...],
                                                       kwargs: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        Point(*args, **kwargs)


def test_keyword_only_fields_must_be_named() -> None:
    assert Options(verbose=True).level == 1
    with pytest.raises(TypeError):
        Options(True)  # type: ignore[call-arg]
    assert Options.__match_args__ == ()


def test_fields_cannot_be_assigned_or_deleted_nor_attributes_added() -> None:
    p = Point(1)
    with pytest.raises(FrozenInstanceError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del p.x
    with pytest.raises(AttributeError):
        p.extra = 1  # type: ignore[attr-defined]
    assert p.x == 1
    assert issubclass(FrozenInstanceError, AttributeError)


def test_instances_have_slots_and_no_dict_and_are_no_larger_than_a_slotted_dataclass() -> None:
    p = Point(1)
    assert not hasattr(p, "__dict__")
    assert vars(Point)["__slots__"] == ("x", "y", "tags")
    assert sys.getsizeof(p) <= sys.getsizeof(PointDC(1))
    assert vars(Point3)["__slots__"] == ("z",)  # the base's fields stay in the base's slots
    assert not hasattr(Point3(1), "__dict__")


@given(args, args)
def test_equality_and_hash_follow_the_fields_as_a_dataclass_does(a: Any, b: Any) -> None:
    left, right = Point(*a), Point(*b)
    assert (left == right) == (PointDC(*a) == PointDC(*b)) == (a == b)
    assert (left != right) == (a != b)
    if left == right:
        assert hash(Point(a[0], a[1], ())) == hash(Point(b[0], b[1], ()))  # type: ignore[arg-type]


@given(values, values)
def test_a_hash_is_the_same_for_equal_records_and_stable(x: Any, y: Any) -> None:
    assert hash(Point(x, y, ())) == hash(Point(x, y, ()))  # type: ignore[arg-type]
    assert {Point(x, y, ()), Point(x, y, ())} == {Point(x, y, ())}  # type: ignore[arg-type]


def test_records_of_different_classes_are_never_equal_even_with_equal_fields() -> None:
    assert Point(1) != Other(1)  # type: ignore[comparison-overlap]
    assert Point(1, 0, []) != (1, 0, [])  # type: ignore[comparison-overlap]
    assert Point(1) != Point3(1)
    assert Point3(1) != Point(1)


def test_a_hash_needs_no_comparison_first_nor_a_comparison_a_hash() -> None:
    @record
    class Fresh:
        a: int

    assert hash(Fresh(1)) == hash(Fresh(1))

    @record
    class Fresh2:
        a: int

    assert Fresh2(1) == Fresh2(1) and Fresh2(1) != Fresh2(2)


@given(args)
def test_repr_reads_as_a_dataclass_s(a: Any) -> None:
    assert repr(Point(*a)) == repr(PointDC(*a)).replace("PointDC(", "Point(")


def test_repr_names_nested_classes_by_their_qualified_name() -> None:
    @record
    class Inner:
        a: str

    assert repr(Inner("x")) == ("test_repr_names_nested_classes_by_their_qualified_name."
                                "<locals>.Inner(a='x')")


@given(args, st.integers())
def test_replace_changes_the_given_fields_and_keeps_the_rest(a: Any, y: int) -> None:
    p = Point(*a)
    changed = replace(p, y=y)
    assert changed == Point(a[0], y, a[2])
    assert p == Point(*a)  # the original is untouched
    assert repr(changed) == repr(dataclasses.replace(PointDC(*a), y=y)).replace("DC(", "(")


def test_replace_keeps_the_subclass_and_refuses_unknown_fields_and_non_records() -> None:
    assert replace(Point3(1, z=3), x=2) == Point3(2, 0, [], 3)
    with pytest.raises(TypeError):
        replace(Point(1), w=3)
    with pytest.raises(TypeError):
        replace((1, 2), x=1)


def test_fields_lists_names_defaults_and_factories_in_init_order() -> None:
    got = [(f.name, f.default, f.default_factory) for f in fields(Point3)]
    assert got == [("x", MISSING, MISSING), ("y", 0, MISSING), ("tags", MISSING, list),
                   ("z", 0, MISSING)]
    assert fields(Point(1)) == fields(Point)
    with pytest.raises(TypeError):
        fields(PointDC)


def test_a_subclass_takes_the_base_fields_first_then_its_own() -> None:
    p = Point3(1, 2, ["t"], 3)
    assert (p.x, p.y, p.tags, p.z) == (1, 2, ["t"], 3)
    assert Point3.__match_args__ == ("x", "y", "tags", "z")
    assert repr(p) == "Point3(x=1, y=2, tags=['t'], z=3)"
    assert p.norm1() == 3


def test_match_takes_the_fields_positionally() -> None:
    match Point3(1, 2):
        case Point3(x, y, _, z):
            assert (x, y, z) == (1, 2, 0)
        case _:
            pytest.fail("no match")


def test_class_variables_methods_and_docstrings_are_kept() -> None:
    assert Point.UNIT == 1
    assert "UNIT" not in [f.name for f in fields(Point)]
    assert Point(3, -4).norm1() == 7
    assert Point.__doc__ == "A point."
    assert Point.__qualname__ == "Point" and Point.__module__ == __name__


def test_methods_the_body_declares_are_not_replaced() -> None:
    @record
    class Loose:
        a: int
        b: int

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Loose) and self.a == other.a

        def __hash__(self) -> int:
            return hash(self.a)

        def __repr__(self) -> str:
            return "loose"

    assert Loose(1, 2) == Loose(1, 3)
    assert hash(Loose(1, 2)) == hash(Loose(1, 3))
    assert repr(Loose(1, 2)) == "loose"


def test_a_field_without_a_default_cannot_follow_one_with_a_default() -> None:
    with pytest.raises(TypeError, match="'b'"):
        @record
        class Bad:
            a: int = 0
            b: int  # type: ignore[misc]


def test_a_field_takes_a_default_or_a_factory_not_both() -> None:
    with pytest.raises(ValueError):
        field(default=1, default_factory=int)  # type: ignore[call-overload]


def test_a_mutable_record_can_be_assigned_and_is_compared_by_value_so_unhashable() -> None:
    c = Counter("a")
    c.count += 1
    assert c == Counter("a", 1) and c != Counter("b", 1)
    with pytest.raises(TypeError):
        hash(c)
    assert not hasattr(c, "__dict__")
    with pytest.raises(AttributeError):
        c.other = 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", [Point(1, 2, ["a"]), Point3(1, z=5), Counter("a", 2)])
def test_copies_and_pickles_are_equal_to_the_original(value: Any) -> None:
    assert copy.copy(value) == value
    assert copy.deepcopy(value) == value
    assert pickle.loads(pickle.dumps(value)) == value


def test_what_polroutd_run_imports_declares_its_value_classes_as_records() -> None:
    # A frozen dataclass costs about a millisecond of every start to create; a record a tiny
    # fraction. Dataclasses of libraries (structlog's) are not polroutd's to change.
    probe = (
        "import dataclasses, sys\n"
        "import polroutd.cli.main, polroutd.cli.run, polroutd.daemon.service\n"
        "import polroutd.adapters.http  # loaded after the first reconcile\n"
        "print(sorted({f'{v.__module__}.{v.__qualname__}' for m in list(sys.modules.values())\n"
        "              if m.__name__.startswith('polroutd') for v in vars(m).values()\n"
        "              if isinstance(v, type) and v.__module__.startswith('polroutd')\n"
        "              and dataclasses.is_dataclass(v)}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=60)
    assert proc.stdout.strip().splitlines()[-1] == "[]"
