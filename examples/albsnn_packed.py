"""Train ALBSNN (paper D), let it binarise layers, then run it with packed binary weights.

    python examples/albsnn_packed.py           # 4 epochs on the digits
    python examples/albsnn_packed.py --quick   # a few steps (CI)

The accuracy loss estimator ranks the binarisable layers while the network trains; at
each epoch end the selector binarises the cheapest ones until 25 % of the weight storage
is saved. ``export_packed()`` then gives an inference copy whose binarised convolutions
hold int32 sign bits (32x smaller than float32) and run the popcount kernel
``fastsnn.binary_conv2d``; its predictions are checked against the trained model's.
"""

import argparse

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

import fastsnn
from fastsnn.albsnn import AccuracyLossEstimator, LayerSelector, storage_report
from fastsnn.data import load
from fastsnn.nn import BinaryConv2d


def accuracy(model, loader) -> float:
    model.eval()
    with torch.no_grad():
        hits = sum(int((model(x).argmax(-1) == y).sum()) for x, y in loader)
    return hits / len(loader.dataset)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a few steps on a subset (CI)")
    p.add_argument("--epochs", type=int, default=4)
    args = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(min(torch.get_num_threads(), 4))

    train_set, test_set = load("digits", train=True), load("digits", train=False)
    if args.quick:
        train_set, test_set = Subset(train_set, range(128)), Subset(test_set, range(64))
    train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=256)

    model = fastsnn.models.build("albsnn", "digits", T=1)
    estimator = AccuracyLossEstimator(model, metric="weight", every=10)
    selector = LayerSelector(estimator, storage_target=0.25)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(1 if args.quick else args.epochs):
        model.train()
        for x, y in train_loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            estimator.step()
        chosen = selector.step(epoch)   # binarise the layers of lowest estimated loss
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}, test accuracy "
              f"{accuracy(model, test_loader):.4f}, binarised now {chosen or 'nothing'}")

    report = storage_report(model)
    print(f"weight storage saved: {100 * report['storage_saving']:.1f} %")

    packed = model.export_packed()
    binary = [m for m in packed.modules() if isinstance(m, BinaryConv2d) and m.packed]
    assert binary, "no layer was binarised"
    bytes_packed = sum(m.weight_packed.numel() * 4 for m in binary)
    bytes_float = sum(m.out_channels * m.in_channels * m.kernel_size[0] * m.kernel_size[1] * 4
                      for m in binary)
    print(f"{len(binary)} packed layer(s): {bytes_packed} B of sign bits instead of "
          f"{bytes_float} B of float32 weights")

    model.eval()
    with torch.no_grad():
        x = torch.stack([test_set[i][0] for i in range(len(test_set))])
        same = (packed(x).argmax(-1) == model(x).argmax(-1)).float().mean().item()
    print(f"packed model: test accuracy {accuracy(packed, test_loader):.4f}; "
          f"same prediction as the trained model on {100 * same:.1f} % of the test set")
    assert same > 0.99


if __name__ == "__main__":
    main()
