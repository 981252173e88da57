"""Building a network from its per-dataset configuration table."""

from __future__ import annotations

from ..data.catalog import dataset_info


def from_config(cls, configs: dict, dataset: str, overrides: dict, input_size: bool = True):
    """``cls(**configs[dataset])`` with the dataset's channels and classes (and input size
    when the network takes one), ``overrides`` last."""
    if dataset not in configs:
        raise ValueError(f"{cls.__name__} has no configuration for dataset {dataset!r}; "
                         f"known: {sorted(configs)}")
    info = dataset_info(dataset)
    kw = dict(configs[dataset], in_channels=info.channels, num_classes=info.num_classes)
    if input_size:
        kw["input_size"] = info.size
    kw.update(overrides)
    return cls(**kw)
