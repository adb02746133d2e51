from __future__ import annotations
import __future__

import inspect

import asg_gateway
from asg_gateway import _errors


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(asg_gateway).items()
        if (not name.startswith("_") or name == "__version__") and value is not __future__.annotations
    }
    assert sorted(asg_gateway.__all__) == sorted(public)


def test_every_exported_name_imports() -> None:
    namespace: dict[str, object] = {}
    exec("from asg_gateway import *", namespace)
    for name in asg_gateway.__all__:
        assert namespace[name] is getattr(asg_gateway, name)


def test_every_error_class_is_exported() -> None:
    errors = {
        name
        for name, value in vars(_errors).items()
        if inspect.isclass(value) and issubclass(value, asg_gateway.ASGError)
    }
    assert errors <= set(asg_gateway.__all__)
