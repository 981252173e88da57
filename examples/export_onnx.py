"""Export a trained MTSNN to ONNX and check onnxruntime against PyTorch on the test set.

    python examples/export_onnx.py           # train 3 epochs, export, compare
    python examples/export_onnx.py --quick   # a few training steps (CI)

``fastsnn.export.to_onnx`` exports through the reference backend (plain torch), so the
ONNX file holds standard operators; the spikes equal the fast kernels'. Also shown:
``torch.export`` (keeps the fast ops) and ``torch.jit.trace``. Needs ``onnx``,
``onnxscript`` and ``onnxruntime``; without them the example says so and exits.
"""

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

import fastsnn
from fastsnn.data import load


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a few training steps (CI)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--out", default=None, help="where to write mtsnn.onnx (default: temp)")
    args = p.parse_args()
    try:
        import onnxruntime
        import onnxscript  # noqa: F401
    except ImportError as exc:
        print(f"skipped: this example needs onnx, onnxscript and onnxruntime ({exc}); "
              "pip install onnx onnxscript onnxruntime")
        return
    torch.manual_seed(0)
    torch.set_num_threads(min(torch.get_num_threads(), 4))

    train_set, test_set = load("digits", train=True), load("digits", train=False)
    if args.quick:
        train_set = Subset(train_set, range(128))
    model = fastsnn.models.build("mtsnn", "digits", T=2, levels=3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(1 if args.quick else args.epochs):
        for x, y in DataLoader(train_set, batch_size=64, shuffle=True):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()

    images = torch.stack([test_set[i][0] for i in range(len(test_set))])
    labels = torch.tensor([test_set[i][1] for i in range(len(test_set))])
    with torch.no_grad():
        expected = model(images)  # the fast backend (cpu here)

    out = Path(args.out or tempfile.mkdtemp()) / "mtsnn.onnx"
    fastsnn.export.to_onnx(model, images[:8], out)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: images.numpy()})[0]
    same = float((got.argmax(-1) == expected.argmax(-1).numpy()).mean())
    diff = float(np.abs(got - expected.numpy()).max())
    print(f"ONNX ({out.stat().st_size // 1024} KiB) vs PyTorch on {len(images)} test "
          f"images: same prediction on {100 * same:.2f} %, largest logit difference "
          f"{diff:.2e}; accuracy ONNX {(got.argmax(-1) == labels.numpy()).mean():.4f}, "
          f"PyTorch {(expected.argmax(-1) == labels).float().mean():.4f}")
    assert same >= 0.99

    # torch.export keeps the fast custom ops (import fastsnn before loading the program)
    program = torch.export.export(model, (images[:8],))
    assert torch.equal(program.module()(images[:8]), expected[:8])
    # torch.jit.trace records the reference ops (TorchScript knows no custom ops)
    with warnings.catch_warnings():  # tracing warns about every Python-level branch
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, images[:8])
    assert torch.allclose(traced(images), expected, atol=1e-5)
    print("torch.export and torch.jit.trace reproduce the model's logits")


if __name__ == "__main__":
    main()
