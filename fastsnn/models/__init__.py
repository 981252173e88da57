"""The networks of the four papers, and a registry that builds them by name.

``build(name, dataset, **options)`` returns the network ``name`` configured for dataset
``dataset`` (see ``fastsnn.data.DATASETS``); ``names()`` lists what is registered.

Adding a network (this is how STCSNN and ALBSNN plug in): give it a constructor
``builder(dataset: str, **options) -> nn.Module`` (the convention is a ``from_dataset``
classmethod reading the class's ``CONFIGS`` and ``fastsnn.data.dataset_info``), then add
one line below, ``register("stcsnn", STCSNN.from_dataset)``. A network that takes event
currents ``[T, N, P, H, W]`` sets the class attribute ``input_time_major = True``; the
training CLI and ``fastsnn.energy`` read it.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..data.catalog import dataset_info
from .albsnn import ALBSNN
from .mtsnn import MTSNN
from .stcnet import STCNet
from .stcsnn import STCSNN

Builder = Callable[..., nn.Module]
_REGISTRY: dict[str, Builder] = {}


def register(name: str, builder: Builder) -> None:
    """Make ``build(name, dataset, **options)`` call ``builder(dataset, **options)``."""
    if name in _REGISTRY and _REGISTRY[name] != builder:
        raise ValueError(f"a model named {name!r} is already registered")
    _REGISTRY[name] = builder


def names() -> list[str]:
    return sorted(_REGISTRY)


def build(name: str, dataset: str, **options) -> nn.Module:
    """Network ``name`` configured for ``dataset``; ``options`` override the configuration."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered: {names()}")
    return _REGISTRY[name](dataset, **options)


def _stcsnn(dataset: str, **options) -> nn.Module:
    """STCSNN for ``dataset``: ``cfg`` "vgg11" for colour images, "fmnist" otherwise."""
    info = dataset_info(dataset)
    cfg = options.pop("cfg", "vgg11" if info.channels == 3 else "fmnist")
    model = STCSNN(cfg, in_channels=info.channels, num_classes=info.num_classes, **options)
    model.input_time_major = info.events  # event data arrive as [T, N, P, H, W]
    return model


register("mtsnn", MTSNN.from_dataset)
register("stcnet", STCNet.from_dataset)
register("stcsnn", _stcsnn)
register("albsnn", ALBSNN.from_dataset)

__all__ = ["ALBSNN", "MTSNN", "STCNet", "STCSNN", "build", "names", "register"]
