"""Datasets: the built-in real digits (images and saccade event streams), loaders for the
papers' datasets from local files, and the event-to-current dataset wrapper."""

from .catalog import DATASETS, DatasetInfo, dataset_info, load
from .collate import collate_events
from .currents import EventCurrents
from .digits import Digits, digits_split
from .files import (
    CIFAR10,
    CIFAR100,
    MNIST,
    NMNIST,
    DatasetFilesMissing,
    DVSGesture,
    FashionMNIST,
    read_cifar_batch,
    read_gesture_npy,
    read_idx,
    read_nmnist_bin,
)
from .saccades import EVENT_DTYPE, DigitSaccades, saccade_events
from .transforms import ToCurrent

__all__ = [
    "CIFAR10", "CIFAR100", "DATASETS", "DVSGesture", "DatasetFilesMissing", "DatasetInfo",
    "DigitSaccades", "Digits", "EVENT_DTYPE", "EventCurrents", "FashionMNIST", "MNIST",
    "NMNIST", "collate_events", "dataset_info", "digits_split", "load", "read_cifar_batch",
    "read_gesture_npy", "read_idx", "read_nmnist_bin", "saccade_events", "ToCurrent",
]
