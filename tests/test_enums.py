"""The enums of csrc/common/enums.h and fastsnn/_enums.py are the same (names and values)."""

import re
from enum import IntEnum
from pathlib import Path

from fastsnn import _enums

HEADER = Path(__file__).resolve().parents[1] / "csrc" / "common" / "enums.h"


def _header_enums() -> dict[str, dict[str, int]]:
    text = HEADER.read_text()
    found = {}
    for name, body in re.findall(r"enum class (\w+) : int \{([^}]*)\}", text):
        members = {}
        for item in body.split(","):
            key, value = (part.strip() for part in item.split("="))
            members[re.sub(r"(?<=[a-z])(?=[A-Z])", "_", key).upper()] = int(value)
        found[name] = members
    return found


def _python_enums() -> dict[str, dict[str, int]]:
    found = {name: obj for name, obj in vars(_enums).items()
             if isinstance(obj, type) and issubclass(obj, IntEnum) and obj is not IntEnum}
    assert set(found.values()) == set(_enums.ENUMS)
    return {name: {m.name: int(m) for m in obj} for name, obj in found.items()}


def test_header_and_python_agree():
    header, python = _header_enums(), _python_enums()
    assert header, f"no enum found in {HEADER}"
    assert header == python


def test_counts_bound_the_values():
    """The k<Enum>s constants of the header (what the bindings accept) count the members."""
    counts = dict(re.findall(r"\b(k\w+) = (\d+)", HEADER.read_text()))
    for name, enum in (("kResets", _enums.Reset), ("kSurrogates", _enums.Surrogate),
                       ("kForms", _enums.Form), ("kSaves", _enums.Save),
                       ("kBinaryActivations", _enums.BinaryActivation),
                       ("kEventFaultKinds", _enums.EventFault)):
        assert int(counts[name]) == len(_enums.options(enum)), name


def test_option_strings_are_the_lower_case_names():
    assert _enums.options(_enums.Reset) == ("hard", "soft", "none", "subtract_next")
    assert _enums.options(_enums.Surrogate)[3:] == ("atan", "fast_sigmoid")
    assert _enums.options(_enums.EventFault) == ("x", "y", "p", "order")
    assert _enums.parse(_enums.Surrogate, "sigmoid", "surrogate") == _enums.Surrogate.SIGMOID
