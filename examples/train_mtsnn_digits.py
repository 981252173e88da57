"""Train paper A's multi-threshold network (MTSNN) on the built-in handwritten digits.

    python examples/train_mtsnn_digits.py            # 5 epochs, about 98 % test accuracy
    python examples/train_mtsnn_digits.py --quick    # a few steps: checks that it runs

The same as ``python -m fastsnn.train --model mtsnn --dataset digits``, written out: the
data, the network, a plain training loop, eval-mode accuracy and the energy estimate.
"""

import argparse

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

import fastsnn
from fastsnn.data import load


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a few steps on a subset (CI)")
    p.add_argument("--epochs", type=int, default=5)
    args = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(min(torch.get_num_threads(), 4))

    train_set, test_set = load("digits", train=True), load("digits", train=False)
    if args.quick:
        train_set, test_set = Subset(train_set, range(128)), Subset(test_set, range(64))
    epochs = 1 if args.quick else args.epochs
    train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=256)

    # T = 2 steps, 3 thresholds per neuron; every neuron is fastsnn.nn.MultiThresholdLIF
    model = fastsnn.models.build("mtsnn", "digits", T=2, levels=3, surrogate="triangle")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(epochs):
        model.train()
        for x, y in train_loader:
            loss = F.cross_entropy(model(x), y)      # logits averaged over the T steps
            opt.zero_grad()
            loss.backward()                          # fused mt_lif backward, BPTT over T
            opt.step()
        model.eval()                                 # batch norm uses its running statistics
        with torch.no_grad():
            correct = sum(int((model(x).argmax(-1) == y).sum()) for x, y in test_loader)
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}, "
              f"test accuracy {correct / len(test_set):.4f}")

    images = torch.stack([test_set[i][0] for i in range(64)])
    report = fastsnn.energy.count_ops(model, images)
    print(f"spikes per neuron and step {report.spike_rate:.4f}; energy per sample: "
          f"SNN {report.energy_snn_pj / 1e6:.3f} uJ, ANN {report.energy_ann_pj / 1e6:.3f} uJ "
          f"({report.ratio:.1f}x)")


if __name__ == "__main__":
    main()
