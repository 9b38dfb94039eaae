"""PEFT methods, one folder each (``methods/<name>/``: ``config.py`` with the ``peft`` section's class,
``method.py`` with the MethodSpec), found by discovery: importing this package imports every folder, and each
registers itself. Shared helpers (peft_common, own_format, selective, configured, registry) are modules here.
"""

import importlib
import pkgutil

from fedpeft.methods.registry import METHODS, MethodSpec

for _info in pkgutil.iter_modules(__path__):  # sorted by name, so registration order is stable
    if _info.ispkg and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["METHODS", "MethodSpec"]
