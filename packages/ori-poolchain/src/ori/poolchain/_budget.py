"""The byte budget of a run (``max_memory``): how it is written, checked and shown.

``max_memory`` is an int (bytes) or a string of a number and a unit:

* ``KiB``, ``MiB``, ``GiB``, ``TiB`` are powers of 1024; ``KB``, ``MB``, ``GB``,
  ``TB`` powers of 1000; ``B`` or no unit means bytes;
* units are case-insensitive (``"256mib"``, ``"1gb"``), spaces around the number
  and the unit are allowed (``" 1.5 GiB "``), the number may have a decimal part;
* the result is rounded down to whole bytes and must be at least 1 byte.

``None`` means no byte budget (the item window alone bounds the run).
"""

from __future__ import annotations

import re

from ori.errors import OriValidationError
from ori.errors.validation import describe

# Small enough for a container with 512 MiB to 1 GiB of memory to run any chain
# untuned (results, the interpreter and the libraries need room too), and far
# above what small items ever reach (10^3 items of a few hundred bytes), so it
# never slows down a chain that moves small things.
DEFAULT_MAX_MEMORY = 256 << 20

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
}
_AMOUNT = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*")
_RULES = (
    "an int number of bytes or a string such as '256MiB', '1.5GiB' or '500MB' "
    "(KiB, MiB, GiB, TiB are powers of 1024, KB, MB, GB, TB powers of 1000; case and "
    "spaces do not matter), or None for no byte limit"
)


def check_max_memory(value: object) -> int | None:
    """*value* as a number of bytes (None: no byte budget).

    Raises:
        OriValidationError: *value* is not None, an int >= 1 or a string of a
            number and a known unit that comes to at least one byte.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise OriValidationError(f"max_memory must be {_RULES}; got {describe(value)}")
    if isinstance(value, int):
        if value < 1:
            raise OriValidationError(f"max_memory must be at least 1 byte, got {value}: {_RULES}")
        return value
    match = _AMOUNT.fullmatch(value)
    unit = _UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        raise OriValidationError(f"max_memory must be {_RULES}; got {value!r}")
    # int(float) would lose precision for large exact byte counts: split the digits.
    whole, _, fraction = match.group(1).partition(".")
    amount: int = int(whole or "0") * unit + int(fraction or "0") * unit // 10 ** len(fraction)
    if amount < 1:
        raise OriValidationError(f"max_memory must be at least 1 byte, got {value!r}")
    return amount


def format_bytes(amount: float) -> str:
    """*amount* bytes for people: ``512 B``, ``1.5 KiB``, ``64.0 MiB``, ``2.00 GiB``."""
    if amount < 1024:
        return f"{amount:.0f} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        amount /= 1024
        if amount < 1024 or unit == "TiB":
            break
    return f"{amount:.3g} {unit}" if amount < 100 else f"{amount:.0f} {unit}"
