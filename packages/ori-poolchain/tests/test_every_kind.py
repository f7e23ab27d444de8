"""What must hold for every stage kind: errors, policies, retries, timeouts, break, stats.

Each test runs the shared check of ``poolchain_kinds`` for every kind of the
``stage_kind`` fixture; ``test_dask_stage.py`` runs the same checks on a dask
cluster. The autouse leak check holds each of them to leaving nothing behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import poolchain_kinds as kinds
from poolchain_kinds import Kind


def test_an_error_keeps_its_type_and_names_the_item(stage_kind: Kind, stage_backend: Any) -> None:
    kinds.check_error_keeps_its_type_and_names_the_item(stage_kind, stage_backend)


def test_error_policies(stage_kind: Kind, stage_backend: Any) -> None:
    kinds.check_policies(stage_kind, stage_backend)


def test_retries(stage_kind: Kind, stage_backend: Any, tmp_path: Path) -> None:
    kinds.check_retries(stage_kind, str(tmp_path), stage_backend)


def test_break_closes_the_run(stage_kind: Kind, stage_backend: Any) -> None:
    kinds.check_break_closes_the_run(stage_kind, stage_backend)


def test_statistics_count_every_item(stage_kind: Kind, stage_backend: Any) -> None:
    kinds.check_stats_count_every_item(stage_kind, stage_backend)


def test_a_timeout_reports_the_item(stage_kind: Kind, stage_backend: Any) -> None:
    kinds.check_timeout_reports_the_item(stage_kind, stage_backend)
