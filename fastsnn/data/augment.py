"""Image-tensor transforms for training on static images (torchvision-free).

Randomness comes from torch's global generator, which the training loop seeds and
checkpoints, so a resumed run sees the same augmentations as an uninterrupted one
(with ``num_workers=0``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


class RandomCropFlip:
    """Zero-pad by ``padding``, crop back to the original size at random, flip half."""

    def __init__(self, padding: int = 4, flip: bool = True):
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding!r}")
        self.padding, self.flip = padding, flip

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        _, h, w = image.shape
        p = self.padding
        if p:
            padded = F.pad(image, (p, p, p, p))
            top, left = (int(v) for v in torch.randint(0, 2 * p + 1, (2,)))
            image = padded[:, top:top + h, left:left + w]
        if self.flip and bool(torch.rand(()) < 0.5):
            image = image.flip(-1)
        return image


class Normalize:
    """``(image - mean) / std`` per channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return (image - self.mean) / self.std


class Compose:
    def __init__(self, *transforms):
        self.transforms = transforms

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x
