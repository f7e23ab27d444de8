"""How many bytes a batch of items takes, measured cheaply where it is produced.

The byte budget (``max_memory``) needs the size of the items in flight, but a
trivial stage moves a million items a second: measuring must cost next to
nothing for small items and be right for large ones. So a batch is measured
as a whole, and only types that can be large are looked at one by one:

* a batch whose first and last items are numbers or None counts as that many
  small objects, without looking inside (one type check per batch: a batch of
  counting numbers with a huge item in its middle would be undercounted);
* bytes, bytearray and str count their ``len()``; a batch that starts and ends
  with the same one of these types is summed in C;
* buffer objects (memoryview, numpy arrays, ...) count their ``.nbytes``;
* a short tuple, list or dict (a record such as ``(url, payload)``) counts
  itself plus each of its fields, one level deep;
* anything else counts ``sys.getsizeof``.

Process stages do not measure their results: the pickled size of each reply
is already known (see ``ProcessStage._deliver``).
"""

from __future__ import annotations

import sys
from typing import Any

SMALL_ITEM_BYTES = 32  # what an int, a float or None takes (sys.getsizeof: 16 to 32)
RECORD_FIELDS = 16  # containers up to this long are measured field by field
_SMALL = frozenset({int, float, bool, complex, type(None)})
_TEXT = frozenset({bytes, bytearray, str})
_RECORDS = frozenset({tuple, list})
_getsizeof = sys.getsizeof


def batch_nbytes(values: list[Any]) -> int:
    """The bytes of a batch of items (see the module docstring for the rules)."""
    if not values:
        return 0
    first = type(values[0])
    last = type(values[-1])
    if first in _SMALL and last in _SMALL:
        return len(values) * SMALL_ITEM_BYTES
    if first in _TEXT and last is first:
        try:
            return sum(map(len, values))
        except TypeError:  # something without a len() in between
            pass
    return sum(map(item_nbytes, values))


def item_nbytes(value: Any) -> int:
    """The bytes of one item: its fields too if it is a short record."""
    kind = type(value)
    if kind in _RECORDS and len(value) <= RECORD_FIELDS:
        return _getsizeof(value) + sum(map(_field_nbytes, value))
    if kind is dict and len(value) <= RECORD_FIELDS:
        return _getsizeof(value) + sum(map(_field_nbytes, value.values()))
    return _field_nbytes(value)


def _field_nbytes(value: Any) -> int:
    kind = type(value)
    if kind in _SMALL:
        return SMALL_ITEM_BYTES
    if kind in _TEXT:
        return len(value)
    try:
        nbytes = getattr(value, "nbytes", None)  # memoryview, numpy, pyarrow, ...
        if type(nbytes) is int:
            return nbytes
        return int(_getsizeof(value))
    except Exception:  # a broken __getattr__ or __sizeof__: count it as small
        return SMALL_ITEM_BYTES
