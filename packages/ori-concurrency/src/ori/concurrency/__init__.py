"""Run a function in a background thread or process and get a Future back.

>>> from ori.concurrency import run_in_background_thread
>>> double = run_in_background_thread(lambda x: 2 * x)
>>> double(21).result()
42
>>> double.shutdown()
"""

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
