"""Datasets by name: what each one is (classes, input shape, static or events) and a loader.

``dataset_info(name)`` is the single source of the facts the models and the training CLI
need; ``load(name, train, root)`` returns a torch ``Dataset`` of ``(image tensor, label)``
for static data or ``(event array, label)`` for event data. File-based datasets live in
``root/<folder>``; the built-in ones (``digits``, ``digit-saccades``) need no files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    channels: int               # input channels (polarities for event data)
    size: tuple[int, int]       # (H, W) of the network input
    events: bool                # event streams (-> [T, N, P, H, W] currents) or images
    folder: str = ""            # under the data root; "" = built in, no files needed

    @property
    def sensor_size(self) -> tuple[int, int, int]:
        """``(W, H, P)`` as tonic and ``events_to_current`` spell it (event data)."""
        return (self.size[1], self.size[0], self.channels)


DATASETS: dict[str, DatasetInfo] = {info.name: info for info in (
    DatasetInfo("digits", 10, 1, (8, 8), False),
    DatasetInfo("mnist", 10, 1, (28, 28), False, "mnist"),
    DatasetInfo("fashion-mnist", 10, 1, (28, 28), False, "fashion-mnist"),
    DatasetInfo("cifar10", 10, 3, (32, 32), False, "cifar10"),
    DatasetInfo("cifar100", 100, 3, (32, 32), False, "cifar100"),
    DatasetInfo("digit-saccades", 10, 2, (34, 34), True),
    DatasetInfo("n-mnist", 10, 2, (34, 34), True, "n-mnist"),
    DatasetInfo("cifar10-dvs", 10, 2, (128, 128), True, "cifar10-dvs"),
    DatasetInfo("dvs128-gesture", 11, 2, (128, 128), True, "dvs128-gesture"),
)}


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    return DATASETS[name]


def load(name: str, train: bool, root: os.PathLike = "data", seed: int = 0,
         augment: bool = True) -> Dataset:
    """The train or test side of dataset ``name``.

    ``root``: the data directory (``root/<folder>`` per dataset; the error of a missing
    dataset says which files go where). ``seed`` only affects ``digit-saccades`` (sensor
    threshold mismatch). ``augment``: random crop + flip for CIFAR training images.
    """
    from . import augment as aug
    from . import files
    from .digits import Digits
    from .saccades import DigitSaccades

    info = dataset_info(name)
    where = Path(root) / info.folder
    if name == "digits":
        return Digits(train=train)
    if name == "digit-saccades":
        return DigitSaccades(train=train, seed=seed)
    if name in ("mnist", "fashion-mnist"):
        cls = files.MNIST if name == "mnist" else files.FashionMNIST
        return cls(where, train=train)
    if name in ("cifar10", "cifar100"):
        cls = files.CIFAR10 if name == "cifar10" else files.CIFAR100
        mean, std = ((aug.CIFAR10_MEAN, aug.CIFAR10_STD) if name == "cifar10"
                     else (aug.CIFAR100_MEAN, aug.CIFAR100_STD))
        steps = ([aug.RandomCropFlip(4)] if train and augment else []) + [aug.Normalize(mean, std)]
        return cls(where, train=train, transform=aug.Compose(*steps))
    if name == "n-mnist":
        return files.NMNIST(where, train=train)
    if name == "dvs128-gesture":
        return files.DVSGesture(where, train=train)
    raise ValueError(_NO_READER.get(name, f"no loader for {name!r}"))


_NO_READER: dict[str, str] = {
    "cifar10-dvs": "fastsnn has no CIFAR10-DVS reader (its AEDAT4 files need the `aedat` "
                   "package); build the STCNet configuration 'cifar10-dvs' and feed it "
                   "[T, N, 2, 128, 128] currents from your own event arrays with "
                   "fastsnn.events_to_current",
}

