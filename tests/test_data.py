"""Datasets: the digits split, the saccade event generator, and the file loaders against
small files written here in each published format."""

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from fastsnn.data import (
    CIFAR10,
    CIFAR100,
    NMNIST,
    DatasetFilesMissing,
    Digits,
    DigitSaccades,
    DVSGesture,
    FashionMNIST,
    dataset_info,
    digits_split,
    load,
    read_idx,
    read_nmnist_bin,
    saccade_events,
)
from fastsnn.data.augment import RandomCropFlip
from fastsnn.data.saccades import log_events

# ------------------------------------------------------------------------------- digits


def test_digits_split_fixed_stratified_disjoint():
    x_tr, y_tr, x_te, y_te = digits_split()
    assert len(y_tr) + len(y_te) == 1797 and len(y_te) == 450
    x2_tr, y2_tr, _, _ = digits_split()
    assert np.array_equal(x_tr, x2_tr) and np.array_equal(y_tr, y2_tr)
    counts_tr, counts_te = np.bincount(y_tr), np.bincount(y_te)
    assert np.all(np.abs(counts_te / 450 - counts_tr / 1347) < 0.01)
    flat_tr = {im.tobytes() for im in x_tr}
    overlap = sum(im.tobytes() in flat_tr for im in x_te)
    assert overlap <= 2  # the source holds a handful of duplicate images, nothing more
    assert x_tr.dtype == np.float32 and 0 <= x_tr.min() and x_tr.max() == 1.0
    other = digits_split(split_seed=1)[1]
    assert not np.array_equal(other, y_tr)


def test_digits_dataset_items():
    ds = Digits(train=False)
    image, label = ds[0]
    assert image.shape == (1, 8, 8) and image.dtype == torch.float32
    assert isinstance(label, int) and len(ds) == 450
    assert len(Digits(train=True, transform=lambda im: im * 2)) == 1347


# ----------------------------------------------------------------------------- saccades


def test_log_events_hand_computed():
    # One pixel whose log intensity ramps 0 -> 1 in one 1000 µs step, threshold 0.25:
    # four ON events when the ramp crosses 0.25, 0.5, 0.75, 1.0.
    frames = np.array([0.0, 1.0]).reshape(2, 1, 1)
    ev = log_events(frames, np.array([0, 1000]), np.full((1, 1), 0.25))
    assert ev["t"].tolist() == [250, 500, 750, 1000]
    assert ev["p"].tolist() == [1, 1, 1, 1] and ev["x"].tolist() == [0] * 4
    # Going back down to 0.1 from the reference level 1.0: 3 OFF events (0.75, 0.5, 0.25).
    frames = np.array([0.0, 1.0, 0.1]).reshape(3, 1, 1)
    ev = log_events(frames, np.array([0, 1000, 2000]), np.full((1, 1), 0.25))
    assert ev["p"].tolist() == [1, 1, 1, 1, 0, 0, 0]
    assert ev["t"][4:].tolist() == [1277, 1555, 1833]  # (1 - 0.75) / 0.9 of the step, ...


def test_saccades_deterministic_and_seeded():
    a = DigitSaccades(train=False, seed=3)
    b = DigitSaccades(train=False, seed=3, cache=False)
    c = DigitSaccades(train=False, seed=4)
    for i in (0, 7):
        assert np.array_equal(a.events(i), b.events(i))
    assert not np.array_equal(a.events(0), c.events(0))


@pytest.mark.parametrize("index", [0, 1, 2])
def test_saccade_events_valid(index):
    ds = DigitSaccades(train=True)
    events, label = ds[index]
    assert events.dtype.names == ("x", "y", "t", "p")
    assert label == int(ds.labels[index])
    assert 1000 < len(events) < 20000
    assert events["x"].min() >= 0 and events["x"].max() < 34
    assert events["y"].min() >= 0 and events["y"].max() < 34
    assert np.all(np.diff(events["t"]) >= 0) and events["t"][0] >= 0
    assert events["t"][-1] <= 300_000
    assert set(np.unique(events["p"]).tolist()) == {0, 1}
    # All three saccades (100 ms each) produce events.
    assert all(np.any((events["t"] > k * 100_000) & (events["t"] <= (k + 1) * 100_000))
               for k in range(3))


def test_saccade_events_physics():
    black = np.zeros((8, 8))
    assert len(saccade_events(black)) == 0
    dot = np.zeros((8, 8))
    dot[3, 4] = 1.0
    ev = saccade_events(dot)
    # Image pixel (3, 4) spans x in [4, 5) * 3.5, y in [3, 4) * 3.5 (+ bilinear fade of one
    # image pixel); the path moves it by at most 6 px.
    assert ev["x"].min() >= int(3 * 3.5) and ev["x"].max() <= int(6 * 3.5) + 6
    assert ev["y"].min() >= int(2 * 3.5) and ev["y"].max() <= int(5 * 3.5) + 6
    fewer = saccade_events(dot, contrast=0.7)
    assert 0 < len(fewer) < len(ev)
    with pytest.raises(ValueError, match="square"):
        saccade_events(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="image_size"):
        saccade_events(dot, sensor_size=20, image_size=28)


# ---------------------------------------------------------------------- IDX (MNIST-like)


def _write_idx(path, array, compress):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}i", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_idx(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", images, compress)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels, compress)
    ds = FashionMNIST(tmp_path, train=False)
    assert len(ds) == 5
    image, label = ds[2]
    assert image.shape == (1, 28, 28) and label == 4
    torch.testing.assert_close(image[0], torch.from_numpy(images[2]).float() / 255)
    with pytest.raises(DatasetFilesMissing, match="train-images-idx3-ubyte"):
        FashionMNIST(tmp_path, train=True)


def test_idx_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="not an IDX"):
        read_idx(tmp_path / "bad")
    short = struct.pack(">BBBBi", 0, 0, 8, 1, 10) + b"\x00" * 3
    (tmp_path / "short").write_bytes(short)
    with pytest.raises(ValueError, match="header says"):
        read_idx(tmp_path / "short")


# -------------------------------------------------------------------------------- CIFAR


def _cifar_batch(path, n, label_key, seed):
    rng = np.random.default_rng(seed)
    batch = {b"batch_label": b"x", label_key.encode(): rng.integers(0, 10, n).tolist(),
             b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             b"filenames": [b"a.png"] * n}
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)
    return batch


def test_cifar10_pickles(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = [_cifar_batch(folder / f"data_batch_{i}", 3, "labels", i) for i in range(1, 6)]
    _cifar_batch(folder / "test_batch", 2, "labels", 9)
    ds = CIFAR10(tmp_path, train=True)
    assert len(ds) == 15 and len(CIFAR10(tmp_path, train=False)) == 2
    image, label = ds[4]  # batch 2, row 1
    assert image.shape == (3, 32, 32) and label == batches[1][b"labels"][1]
    raw = batches[1][b"data"][1]
    # Row layout: 1024 red, 1024 green, 1024 blue values, each 32x32 row-major.
    assert image[1, 2, 5] == pytest.approx(raw[1024 + 2 * 32 + 5] / 255)


def test_cifar100_pickles_and_missing(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    with pytest.raises(DatasetFilesMissing, match="cifar-100-python"):
        CIFAR100(tmp_path, train=False)
    batch = _cifar_batch(folder / "test", 4, "fine_labels", 0)
    ds = CIFAR100(tmp_path, train=False)
    assert [ds[i][1] for i in range(4)] == batch[b"fine_labels"]


def test_cifar_refuses_code_in_pickles(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(folder / "test", "wb") as f:
        pickle.dump({b"data": Evil(), b"fine_labels": [1]}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        CIFAR100(tmp_path, train=False)


# ------------------------------------------------------------------------------ N-MNIST


def _nmnist_bytes(events, overflow_after=None):
    out = bytearray()
    for i, (x, y, t, p) in enumerate(events):
        word = (p << 23) | (t & 0x7FFFFF)
        out += bytes([x, y, word >> 16, (word >> 8) & 0xFF, word & 0xFF])
        if overflow_after == i:
            out += bytes([0, 240, 0, 0, 0])
    return bytes(out)


def test_nmnist_bin(tmp_path):
    events = [(0, 0, 5, 1), (33, 2, 70000, 0), (12, 33, 8191, 1), (7, 7, 100, 0)]
    for split in ("Train", "Test"):
        (tmp_path / split / "3").mkdir(parents=True)
    (tmp_path / "Train" / "3" / "00001.bin").write_bytes(_nmnist_bytes(events, 2))
    (tmp_path / "Test" / "3" / "00002.bin").write_bytes(_nmnist_bytes(events[:1]))
    ev = read_nmnist_bin(tmp_path / "Train" / "3" / "00001.bin")
    assert ev["x"].tolist() == [0, 33, 12, 7] and ev["y"].tolist() == [0, 2, 33, 7]
    assert ev["p"].tolist() == [1, 0, 1, 0]
    assert ev["t"].tolist() == [5, 70000, 8191, 100 + 8192]  # overflow record adds 2**13
    ds = NMNIST(tmp_path, train=True)
    assert len(ds) == 1 and ds[0][1] == 3 and np.array_equal(ds[0][0], ev)
    assert len(NMNIST(tmp_path, train=False)[0][0]) == 1
    (tmp_path / "bad.bin").write_bytes(b"\x00" * 7)
    with pytest.raises(ValueError, match="5-byte"):
        read_nmnist_bin(tmp_path / "bad.bin")
    with pytest.raises(DatasetFilesMissing, match="Train"):
        NMNIST(tmp_path / "elsewhere", train=True)


# ------------------------------------------------------------------------- DVS Gesture


def test_dvs_gesture_npy(tmp_path):
    folder = tmp_path / "ibmGestureTrain" / "user01_fluorescent"
    folder.mkdir(parents=True)
    raw = np.array([[1, 2, 1, 0.5], [127, 0, 0, 2.0], [5, 6, 1, 2.25]])
    np.save(folder / "4.npy", raw)
    np.save(folder / "10.npy", raw[:1])
    ds = DVSGesture(tmp_path, train=True)
    labels = sorted(ds[i][1] for i in range(len(ds)))
    assert labels == [4, 10]
    ev = next(ds[i][0] for i in range(2) if ds[i][1] == 4)
    assert ev["x"].tolist() == [1, 127, 5] and ev["p"].tolist() == [1, 0, 1]
    assert ev["t"].tolist() == [500, 2000, 2250]  # ms -> µs
    with pytest.raises(DatasetFilesMissing, match="ibmGestureTest"):
        DVSGesture(tmp_path, train=False)


# ------------------------------------------------------------------------------ catalog


def test_catalog():
    info = dataset_info("dvs128-gesture")
    assert (info.num_classes, info.events, info.sensor_size) == (11, True, (128, 128, 2))
    assert dataset_info("digit-saccades").sensor_size == (34, 34, 2)
    with pytest.raises(ValueError, match="unknown dataset"):
        dataset_info("imagenet")
    with pytest.raises(ValueError, match="CIFAR10-DVS"):
        load("cifar10-dvs", True)
    assert len(load("digits", False)) == 450


def test_catalog_missing_files_say_where(tmp_path):
    with pytest.raises(DatasetFilesMissing) as err:
        load("fashion-mnist", True, root=tmp_path)
    message = str(err.value)
    assert str(tmp_path / "fashion-mnist") in message and "never downloads" in message
    with pytest.raises(DatasetFilesMissing, match="cifar-10-batches-py"):
        load("cifar10", True, root=tmp_path)


def test_random_crop_flip():
    image = torch.arange(3 * 6 * 6, dtype=torch.float32).reshape(3, 6, 6)
    torch.manual_seed(0)
    out = RandomCropFlip(2)(image)
    assert out.shape == image.shape
    assert torch.equal(RandomCropFlip(0, flip=False)(image), image)


def test_event_currents_conserve_events():
    from fastsnn.data import EventCurrents

    ds = DigitSaccades(train=False)
    currents = EventCurrents(ds, ds.sensor_size, 4, cache=True)
    x, label = currents[0]
    assert x.shape == (4, 2, 34, 34) and label == ds[0][1]
    assert float(x.sum()) == len(ds.events(0))
    assert currents[0][0] is x  # cached
