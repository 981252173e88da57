"""scikit-learn's handwritten digits (1797 real 8x8 images) with a fixed train/test split.

The images ship inside scikit-learn (UCI "optdigits" test set, 16 gray levels), so every
machine has the same real data without a download. The split is stratified and seeded by
``split_seed`` alone, independent of the training seed, so every run of an experiment is
scored on the same test images.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset

NUM_CLASSES = 10
IMAGE_SIZE = 8
TEST_FRACTION = 0.25


def digits_split(split_seed: int = 0, test_fraction: float = TEST_FRACTION
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train_images, train_labels, test_images, test_labels)``.

    Images are float32 ``[n, 8, 8]`` in [0, 1] (ink = 1); labels int64. The split keeps the
    class proportions (stratified) and depends only on ``split_seed``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)  # 16 gray levels -> [0, 1]
    labels = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, random_state=split_seed, stratify=labels)
    return x_train, y_train, x_test, y_test


class Digits(Dataset):
    """The digits as ``(image [1, 8, 8] float32 tensor, label)`` pairs.

    ``train`` picks the side of the fixed split (``split_seed``, ``test_fraction``);
    ``transform`` is applied to the image tensor.
    """

    num_classes = NUM_CLASSES

    def __init__(self, train: bool = True, split_seed: int = 0,
                 test_fraction: float = TEST_FRACTION,
                 transform: Optional[Callable] = None):
        x_train, y_train, x_test, y_test = digits_split(split_seed, test_fraction)
        images, labels = (x_train, y_train) if train else (x_test, y_test)
        self.images = torch.from_numpy(images).unsqueeze(1)
        self.labels = torch.from_numpy(labels)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])
