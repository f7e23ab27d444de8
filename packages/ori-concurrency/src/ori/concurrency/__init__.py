"""Run a function in a background thread or process and get a Future back.

:func:`run_in_background_thread` and :func:`run_in_background_process` wrap a
function so that each call is submitted to a thread pool or a process pool and
returns a :class:`concurrent.futures.Future` at once; :func:`run_in_background`
does the same with any :class:`concurrent.futures.Executor` subclass. All three
also work as decorators, with or without arguments, and return a
:class:`BackgroundFunction`.

>>> from ori.concurrency import run_in_background_thread
>>> double = run_in_background_thread(lambda x: 2 * x)
>>> double(21).result()
42
>>> double.shutdown()
"""

# The distribution's version: hatchling reads it from this line when it builds
# (pyproject.toml, [tool.hatch.version]), so the two cannot differ.
__version__ = "1.1.0"

from ._background import BackgroundFunction as BackgroundFunction
from ._background import run_in_background as run_in_background
from ._background import run_in_background_process as run_in_background_process
from ._background import run_in_background_thread as run_in_background_thread

__all__ = (
    "BackgroundFunction",
    "run_in_background",
    "run_in_background_process",
    "run_in_background_thread",
)

BackgroundFunction.__module__ = __name__
run_in_background.__module__ = __name__
run_in_background_process.__module__ = __name__
run_in_background_thread.__module__ = __name__
