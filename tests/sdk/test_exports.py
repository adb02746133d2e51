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


def test_the_async_client_has_every_public_method_of_the_sync_one() -> None:
    def methods(cls: type) -> set[str]:
        public = vars(cls).items()
        return {name for name, value in public if inspect.isfunction(value) and not name.startswith("_")}

    sync_methods = methods(asg_gateway.ASGGatewayClient) - {"close"}
    async_methods = methods(asg_gateway.AsyncASGGatewayClient) - {"aclose"}
    assert sync_methods == async_methods
    assert {"create_webhook", "list_webhooks", "delete_webhook", "list_deliveries"} <= async_methods
    for name in async_methods:
        assert inspect.iscoroutinefunction(getattr(asg_gateway.AsyncASGGatewayClient, name))
        sync_sig = inspect.signature(getattr(asg_gateway.ASGGatewayClient, name))
        async_sig = inspect.signature(getattr(asg_gateway.AsyncASGGatewayClient, name))
        assert sync_sig.parameters.keys() == async_sig.parameters.keys()
