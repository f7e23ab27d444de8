from __future__ import annotations

import pickle

import pytest

import ori.errors
from ori.errors import (
    OriError,
    OriInvalidStateError,
    OriNoInteractiveProcessPools,
    OriTimeoutError,
    OriValidationError,
    OriWorkerCrashedError,
    OriWorkerStartError,
    RemoteTraceback,
)


def test_all_matches_public_names() -> None:
    public = {n for n in dir(ori.errors) if not n.startswith("_")} - {
        "annotations",
        "remote",
        "validation",
    }
    assert set(ori.errors.__all__) == public


@pytest.mark.parametrize(
    ("cls", "bases"),
    [
        (OriError, (Exception,)),
        (OriValidationError, (OriError, ValueError)),
        (OriNoInteractiveProcessPools, (OriError,)),
        (OriInvalidStateError, (OriError, RuntimeError)),
        (OriTimeoutError, (OriError, TimeoutError)),
        (OriWorkerCrashedError, (OriError,)),
        (OriWorkerStartError, (OriWorkerCrashedError, OriError)),
        (RemoteTraceback, (OriError,)),
    ],
)
def test_hierarchy(cls: type[Exception], bases: tuple[type[Exception], ...]) -> None:
    for base in bases:
        assert issubclass(cls, base)
    assert cls.__module__ == "ori.errors"
    assert cls.__doc__


@pytest.mark.parametrize(
    "cls",
    [
        OriError,
        OriValidationError,
        OriInvalidStateError,
        OriNoInteractiveProcessPools,
        OriTimeoutError,
        OriWorkerCrashedError,
        OriWorkerStartError,
    ],
)
def test_errors_pickle_with_message(cls: type[Exception]) -> None:
    # Errors cross process boundaries inside Ori, so they must survive pickling.
    err = cls("what went wrong; how to fix it")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is cls
    assert str(copy) == "what went wrong; how to fix it"


def test_builtin_handlers_catch_ori_errors() -> None:
    with pytest.raises(ValueError, match="bad"):
        raise OriValidationError("bad")
    with pytest.raises(TimeoutError, match="slow"):
        raise OriTimeoutError("slow")
