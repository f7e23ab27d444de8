"""Run a command in the background and get its output line by line.

>>> from ori.subprocess import run_process_in_background
>>> lines = []
>>> process = run_process_in_background(command=["echo", "hello"], stdout_function=lines.append)
>>> process.join()
>>> lines, process.exitcode
(['hello'], 0)
"""

# The distribution's version: hatchling reads it from this line when it builds
# (pyproject.toml, [tool.hatch.version]), so the two cannot differ.
__version__ = "1.1.0"

from ._process import BackgroundProcess as BackgroundProcess
from ._run import run_process_in_background as run_process_in_background

__all__ = (
    "BackgroundProcess",
    "run_process_in_background",
)

BackgroundProcess.__module__ = __name__
run_process_in_background.__module__ = __name__
