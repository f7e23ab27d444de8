"""Fixtures of the poolchain tests (the leak check is in the repository's conftest)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from typing import Any

import pytest
from poolchain_kinds import KINDS, Kind


@pytest.fixture(params=KINDS, ids=[kind.name for kind in KINDS])
def stage_kind(request: pytest.FixtureRequest) -> Kind:
    """Each stage kind in turn (dask: see test_dask_stage.py, which has a cluster)."""
    kind: Kind = request.param
    return kind


@pytest.fixture
def stage_backend(stage_kind: Kind) -> Iterator[Any]:
    """What the kind needs beside the function: the user's executor for ``user_executor``."""
    if stage_kind.name != "user_executor":
        yield None
        return
    with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="users-own") as pool:
        yield pool
