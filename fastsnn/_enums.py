"""Every enum the ops pass to their kernels as an integer, in one place for Python.

The C++ and CUDA kernels read the same values from ``csrc/common/enums.h``;
``tests/test_enums.py`` parses that header and fails when the two drift apart. The public
functions take the lower-case member names as option strings (``reset="hard"``); the ops
pass ``int(member)`` to the kernels, and the Triton kernels compare against these values.
"""

from __future__ import annotations

from enum import IntEnum

# Member order = value order; names as in the header, upper snake case (SubtractNext ->
# SUBTRACT_NEXT, whose option string is "subtract_next").
Reset = IntEnum("Reset", [("HARD", 0), ("SOFT", 1), ("NONE", 2), ("SUBTRACT_NEXT", 3)])
Surrogate = IntEnum("Surrogate", [("RECT", 0), ("TRIANGLE", 1), ("SIGMOID", 2), ("ATAN", 3),
                                  ("FAST_SIGMOID", 4)])
Form = IntEnum("Form", [("STBP", 0), ("PLIF", 1)])
# What mt_lif's forward keeps for the backward (table in fastsnn/ops/mt_lif.py).
Save = IntEnum("Save", [("NONE", 0), ("SG", 1), ("H", 2)])
BinaryActivation = IntEnum("BinaryActivation", [("SPIKE", 0), ("SIGN", 1)])
EventSplit = IntEnum("EventSplit", [("NUMBER", 0), ("TIME", 1)])
EventWeighting = IntEnum("EventWeighting", [("COUNT", 0), ("EXP", 1)])
# Why an event is invalid, in the order the checks run on one event.
EventFault = IntEnum("EventFault", [("NONE", -1), ("X", 0), ("Y", 1), ("P", 2), ("ORDER", 3)])
ENUMS = (Reset, Surrogate, Form, Save, BinaryActivation, EventSplit, EventWeighting,
         EventFault)


# Option string -> member, per enum, built once: the public functions parse their options
# while torch.compile traces them, and dynamo (torch 2.11) cannot iterate an Enum class; a
# lookup in a dict of strings it traces as a constant. EventFault.NONE (no fault) is not an
# option: only members >= 0 are.
_TABLES = {enum.__name__: {m.name.lower(): m for m in sorted(enum, key=int) if m >= 0}
           for enum in ENUMS}


def options(enum: type[IntEnum]) -> tuple[str, ...]:
    """The option strings of ``enum``: its member names in lower case, in value order."""
    return tuple(_TABLES[enum.__name__])


def parse(enum: type[IntEnum], value: str, name: str) -> IntEnum:
    """The member for option string ``value``; ``ValueError`` naming the argument if none."""
    table = _TABLES[enum.__name__]
    if not isinstance(value, str) or value not in table:
        raise ValueError(f"{name} must be one of {tuple(table)}, got {value!r}")
    return table[value]
