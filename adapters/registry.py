"""Adapter names -> classes, imported lazily so one adapter's heavy dependencies never load for another."""

from __future__ import annotations

import importlib

from adapters.base import Adapter
from adapters.errors import AdapterError

ADAPTERS: dict[str, str] = {
    "native": "adapters.native:NativeAdapter",
    "onnx": "adapters.onnx_runtime:OnnxAdapter",
    "codegen-c": "adapters.codegen_c:CodegenCAdapter",
    "h2o-mojo": "adapters.h2o_mojo:H2OMojoAdapter",
    "pmml": "adapters.pmml:PmmlAdapter",
    "pfa": "adapters.pfa:PfaAdapter",
    "rest": "adapters.rest:RestAdapter",
    "identity": "adapters.identity:IdentityAdapter",
    "online": "adapters.online:OnlineAdapter",
}


def adapter_class(name: str) -> type[Adapter]:
    """A registered adapter by name, or your own as "package.module:ClassName" (an Adapter subclass)."""
    target = ADAPTERS.get(name) or (name if ":" in name else None)
    if target is None:
        raise AdapterError(
            f"unknown adapter {name!r}; valid: {', '.join(sorted(ADAPTERS))} (or your own as module:Class)"
        )
    module, _, attr = target.partition(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise AdapterError(f"adapter {name!r} cannot load its dependencies: {e}") from None
    cls = getattr(mod, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise AdapterError(f"{target} is not an Adapter subclass")
    return cls
