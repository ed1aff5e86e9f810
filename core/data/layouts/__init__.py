"""Dataset layouts, one module each; importing this package registers every one of them.

A new layout is one new file here that calls :func:`register_layout` (see ``casia.py``); its
protocols become ``--protocol`` choices.
"""

import importlib
import pkgutil

from core.data.layouts.registry import (
    AUTO,
    Found,
    Layout,
    Protocol,
    check_one_database,
    database_layouts,
    detect,
    folds,
    get_protocol,
    layout_names,
    protocol_names,
    register_layout,
    whole_protocols,
)

__all__ = [
    "AUTO",
    "Found",
    "Layout",
    "Protocol",
    "check_one_database",
    "database_layouts",
    "detect",
    "folds",
    "get_protocol",
    "layout_names",
    "protocol_names",
    "register_layout",
    "whole_protocols",
]

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "registry":
        importlib.import_module(f"{__name__}.{_module.name}")
