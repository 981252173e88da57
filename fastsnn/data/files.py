"""Loaders for the papers' datasets from local files in their published formats.

Nothing here downloads. Each loader looks for the files where the ``DatasetFilesMissing``
error says (under ``root``) and reads them with NumPy only:

* MNIST / Fashion-MNIST: the four IDX files (``.gz`` or uncompressed).
* CIFAR-10 / CIFAR-100: the "python version" pickles (read with an unpickler that only
  admits NumPy arrays, so a tampered file cannot run code).
* N-MNIST: the ``Train/<digit>/*.bin`` / ``Test/<digit>/*.bin`` files, 5 bytes per event.
* DVS128 Gesture: the per-sample ``.npy`` layout that tonic distributes
  (``ibmGestureTrain/user01_fluorescent/<label>.npy``, columns x, y, p, t in ms); read
  directly, so it works with or without tonic and never triggers tonic's downloader.

Images come out as float tensors ``[C, H, W]`` in [0, 1] (before ``transform``); event
streams as structured arrays with fields ``x, y, t, p`` (``t`` in µs), like tonic.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from .saccades import EVENT_DTYPE


class DatasetFilesMissing(FileNotFoundError):
    """A dataset's files are not where the loader looks; the message says what goes where."""


def _missing(name: str, root: Path, files: list[str], source: str) -> DatasetFilesMissing:
    listing = "\n".join(f"    {root / f}" for f in files)
    return DatasetFilesMissing(
        f"{name} files not found. fastsnn never downloads; put these files here:\n{listing}\n"
        f"(published at {source})")


def _find(root: Path, name: str) -> Optional[Path]:
    """``root/name`` or ``root/name.gz``, whichever exists."""
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


# ---------------------------------------------------------------------------- IDX (MNIST)

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
              0x0E: ">f8"}


def read_idx(path: os.PathLike) -> np.ndarray:
    """An IDX file (``.gz`` allowed): magic ``0 0 type ndim``, big-endian int32 dims, data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic {raw[:4]!r})")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    body = raw[4 + 4 * ndim:]
    if len(body) != expected:
        raise ValueError(f"{path}: header says {tuple(dims)} ({expected} bytes) but the "
                         f"file holds {len(body)} data bytes")
    return np.frombuffer(body, dtype=dtype).reshape(tuple(int(d) for d in dims))


class IDXImages(Dataset):
    """MNIST-format images and labels: ``(image [1, 28, 28] in [0, 1], label)``."""

    title = "MNIST"
    source = "http://yann.lecun.com/exdb/mnist/"
    num_classes = 10

    def __init__(self, root: os.PathLike, train: bool = True,
                 transform: Optional[Callable] = None):
        root = Path(root)
        prefix = "train" if train else "t10k"
        names = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
        paths = [_find(root, n) for n in names]
        if None in paths:
            raise _missing(self.title, root, [f"{n}.gz" for n in names], self.source)
        images, labels = (read_idx(p) for p in paths)
        if images.ndim != 3 or len(images) != len(labels):
            raise ValueError(f"{self.title}: {paths[0]} holds {images.shape} but "
                             f"{paths[1]} holds {labels.shape}")
        self.images = torch.from_numpy(images.astype(np.uint8)).unsqueeze(1)
        self.labels = torch.from_numpy(labels.astype(np.int64))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = self.images[index].float() / 255.0
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])


class MNIST(IDXImages):
    pass


class FashionMNIST(IDXImages):
    title = "Fashion-MNIST"
    source = "https://github.com/zalandoresearch/fashion-mnist"


# ----------------------------------------------------------------------- CIFAR pickles

_NUMPY_GLOBALS = {("numpy.core.multiarray", "_reconstruct"),
                  ("numpy._core.multiarray", "_reconstruct"),
                  ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                  ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _ArrayUnpickler(pickle.Unpickler):
    """Admits only what a CIFAR batch holds: dicts, lists, bytes, numbers, NumPy arrays."""

    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def read_cifar_batch(path: os.PathLike, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [n, 3, 32, 32], labels int64 [n])`` of one CIFAR python pickle."""
    with open(path, "rb") as f:
        batch = _ArrayUnpickler(io.BufferedReader(f), encoding="bytes").load()
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or label_key not in batch:
        raise ValueError(f"{path}: expected keys 'data' and {label_key!r}, found "
                         f"{sorted(batch)}")
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise ValueError(f"{path}: data {data.shape} / labels {labels.shape} are not "
                         f"[n, 3072] / [n]")
    return data.reshape(-1, 3, 32, 32), labels


class _CIFAR(Dataset):
    folder = ""
    title = ""
    label_key = ""
    num_classes = 0

    def __init__(self, root: os.PathLike, train: bool = True,
                 transform: Optional[Callable] = None):
        root = Path(root)
        names = self.train_files if train else self.test_files
        base = root / self.folder if (root / self.folder).is_dir() else root
        missing = [n for n in names if not (base / n).is_file()]
        if missing:
            raise _missing(self.title, root / self.folder, names,
                           "https://www.cs.toronto.edu/~kriz/cifar.html (python version)")
        parts = [read_cifar_batch(base / n, self.label_key) for n in names]
        self.images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
        self.labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = self.images[index].float() / 255.0
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])


class CIFAR10(_CIFAR):
    """CIFAR-10 from ``cifar-10-batches-py/`` (``data_batch_1..5``, ``test_batch``)."""

    folder, title, label_key, num_classes = "cifar-10-batches-py", "CIFAR-10", "labels", 10
    train_files = [f"data_batch_{i}" for i in range(1, 6)]
    test_files = ["test_batch"]


class CIFAR100(_CIFAR):
    """CIFAR-100 (fine labels) from ``cifar-100-python/`` (``train``, ``test``)."""

    folder, title, label_key, num_classes = "cifar-100-python", "CIFAR-100", "fine_labels", 100
    train_files = ["train"]
    test_files = ["test"]


# ------------------------------------------------------------------------ event streams

def read_nmnist_bin(path: os.PathLike) -> np.ndarray:
    """Events of one N-MNIST ``.bin`` file.

    Each event is 5 bytes: x, y, then a 24-bit big-endian word whose bit 23 is the polarity
    and bits 22..0 the timestamp in µs. Records with y == 240 mark a timestamp overflow
    (add 2**13 to every later event), as in Orchard's reference reader and tonic.
    """
    raw = np.fromfile(path, dtype=np.uint8)
    if len(raw) % 5:
        raise ValueError(f"{path}: {len(raw)} bytes is not a whole number of 5-byte events")
    raw = raw.reshape(-1, 5).astype(np.int64)
    x, y = raw[:, 0], raw[:, 1]
    p = raw[:, 2] >> 7
    t = ((raw[:, 2] & 0x7F) << 16) | (raw[:, 3] << 8) | raw[:, 4]
    overflow = y == 240
    t = t + np.cumsum(overflow) * (1 << 13)
    keep = ~overflow
    events = np.empty(int(keep.sum()), dtype=EVENT_DTYPE)
    events["x"], events["y"], events["t"], events["p"] = x[keep], y[keep], t[keep], p[keep]
    return events


class _EventFiles(Dataset):
    """A list of ``(path, label)`` read lazily into event arrays."""

    sensor_size: tuple[int, int, int] = (0, 0, 0)

    def __init__(self, samples: list[tuple[Path, int]], transform: Optional[Callable]):
        self.samples, self.transform = samples, transform

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, path: Path) -> np.ndarray:
        raise NotImplementedError

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        events = self.read(path)
        if self.transform is not None:
            events = self.transform(events)
        return events, label


class NMNIST(_EventFiles):
    """N-MNIST from ``root/Train/<digit>/*.bin`` and ``root/Test/<digit>/*.bin``."""

    sensor_size = (34, 34, 2)
    num_classes = 10

    def __init__(self, root: os.PathLike, train: bool = True,
                 transform: Optional[Callable] = None):
        root = Path(root)
        folder = root / ("Train" if train else "Test")
        samples = [(path, digit) for digit in range(10)
                   for path in sorted((folder / str(digit)).glob("*.bin"))]
        if not samples:
            raise _missing("N-MNIST", root, [f"{folder.name}/0/00002.bin",
                                             f"{folder.name}/<digit 0-9>/<id>.bin ..."],
                           "https://www.garrickorchard.com/datasets/n-mnist "
                           "(unzip Train.zip and Test.zip)")
        super().__init__(samples, transform)

    def read(self, path: Path) -> np.ndarray:
        return read_nmnist_bin(path)


def read_gesture_npy(path: os.PathLike) -> np.ndarray:
    """One DVS128 Gesture sample in tonic's layout: ``[n, 4]`` columns x, y, p, t (ms)."""
    raw = np.load(path, allow_pickle=False)
    if raw.ndim != 2 or raw.shape[1] != 4:
        raise ValueError(f"{path}: expected an [n, 4] array (x, y, p, t), got {raw.shape}")
    events = np.empty(len(raw), dtype=EVENT_DTYPE)
    events["x"], events["y"], events["p"] = raw[:, 0], raw[:, 1], raw[:, 2]
    events["t"] = np.rint(raw[:, 3].astype(np.float64) * 1000).astype(np.int64)
    return events


class DVSGesture(_EventFiles):
    """DVS128 Gesture (11 classes) from tonic's per-sample ``.npy`` files.

    ``root/ibmGestureTrain/<user>_<lighting>/<label>.npy`` (and ``ibmGestureTest``): the
    contents of tonic's ``ibmGestureTrain.tar.gz`` / ``ibmGestureTest.tar.gz``.
    """

    sensor_size = (128, 128, 2)
    num_classes = 11

    def __init__(self, root: os.PathLike, train: bool = True,
                 transform: Optional[Callable] = None):
        root = Path(root)
        folder = root / ("ibmGestureTrain" if train else "ibmGestureTest")
        samples = [(path, int(path.stem)) for path in sorted(folder.glob("*/*.npy"))]
        if not samples:
            raise _missing("DVS128 Gesture", root,
                           [f"{folder.name}/user01_fluorescent/0.npy",
                            f"{folder.name}/<user>_<lighting>/<label 0-10>.npy ..."],
                           "tonic's DVSGesture archives ibmGestureTrain.tar.gz / "
                           "ibmGestureTest.tar.gz (extract them here)")
        super().__init__(samples, transform)

    def read(self, path: Path) -> np.ndarray:
        return read_gesture_npy(path)
