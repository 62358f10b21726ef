"""Import the real training libraries the runtime checker is tested against.

`lightning`, `transformers`, `accelerate` and `timm` come from the optional
`test-integrations` extra (also in `dev`); a test skips when one is missing.
PyPI's torchvision wheel is a CUDA build: next to the CPU torch wheel its
compiled operators do not load and `import torchvision` (which timm, Lightning
and transformers' Trainer import) fails on registering fake kernels for
`torchvision::nms`. No torchvision operator is used here, so the two schemas it
needs are defined first, exactly once, and only when torchvision cannot load
its own.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Any

import pytest
import torch

_SCHEMA = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
_stand_in: list[Any] = []


def _load_torchvision() -> None:
    if _stand_in or importlib.util.find_spec("torchvision") is None:
        return
    try:
        importlib.import_module("torchvision")
        _stand_in.append(None)
    except RuntimeError as error:
        if "torchvision::" not in str(error):
            raise
        library = torch.library.Library("torchvision", "DEF")
        for operator in ("nms", "qnms"):
            library.define(operator + _SCHEMA)
        _stand_in.append(library)
        importlib.import_module("torchvision")


def import_library(name: str) -> ModuleType:
    """Import `name` (torchvision first, as the libraries do), or skip the test."""
    _load_torchvision()
    return pytest.importorskip(name)


def quiet_trainer(lightning: ModuleType, *callbacks: Any, **options: Any) -> Any:
    """A one-epoch CPU `Trainer` of `lightning` (or `pytorch_lightning`) that writes and
    prints nothing: what every real-Lightning test here runs."""
    options.setdefault("max_epochs", 1)
    return lightning.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=list(callbacks),
        **options,
    )
