"""Event camera data through a tonic pipeline into a spiking network, with ``ToCurrent``.

    python examples/event_pipeline_tonic.py           # train STCNet a few epochs
    python examples/event_pipeline_tonic.py --quick   # a few steps (CI)

The events are the built-in ``DigitSaccades`` (N-MNIST-style streams of the digits, in
tonic's structured format). A tonic ``Compose`` denoises them and ``fastsnn.ToCurrent``
turns each stream into T frames of input current; the frames are checked against tonic's
own ``ToFrame(n_event_bins=T)`` (bit-equal), then paper B's STCNet trains on them.
Needs tonic (``pip install tonic``); without it the example says so and exits.
"""

import argparse
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

import fastsnn
from fastsnn.data import DigitSaccades

T = 4


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a few steps on a subset (CI)")
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    try:
        import tonic.transforms as tt
    except Exception as exc:  # not installed, or installed without its dependencies
        print(f"skipped: this example needs tonic, which does not import here ({exc}); "
              "pip install tonic")
        return
    torch.manual_seed(0)
    torch.set_num_threads(min(torch.get_num_threads(), 4))
    sensor = (34, 34, 2)  # (W, H, P), tonic's order

    # 1. ToCurrent in a tonic Compose, against tonic's ToFrame on the same events
    denoise = tt.Denoise(filter_time=10_000)
    ours = tt.Compose([denoise, fastsnn.ToCurrent(sensor, T)])
    theirs = tt.Compose([denoise, tt.ToFrame(sensor, n_event_bins=T)])
    events, _ = DigitSaccades(train=True)[0]
    frames = ours(events)
    assert np.array_equal(frames.numpy(), theirs(events).astype(np.float32))
    print(f"ToCurrent == ToFrame(n_event_bins={T}): {tuple(frames.shape)} frames, "
          f"{int(frames.sum())} events after denoising")

    # 2. a dataset whose samples are [T, P, H, W] currents, batched to [N, T, P, H, W]
    train_set = DigitSaccades(train=True, transform=ours)
    test_set = DigitSaccades(train=False, transform=ours)
    if args.quick:
        train_set, test_set = Subset(train_set, range(64)), Subset(test_set, range(32))
    train_loader = DataLoader(train_set, batch_size=32, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=128)

    # 3. paper B's network: synaptic conv block, PLIF neurons, input [T, N, P, H, W]
    model = fastsnn.models.build("stcnet", "digit-saccades", levels=3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(1 if args.quick else args.epochs):
        model.train()
        for x, y in train_loader:
            loss = F.cross_entropy(model(x.transpose(0, 1)), y)  # time-major
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(x.transpose(0, 1)).argmax(-1) == y).sum())
                          for x, y in test_loader)
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}, "
              f"test accuracy {correct / len(test_set):.4f}")


if __name__ == "__main__":
    sys.exit(main())
