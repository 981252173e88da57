"""Smoke test of an installed fastsnn (run by tools/wheel_check.sh in a fresh venv).

Checks that the import resolves to the installed package (not a source tree), that the
compiled extension loads, and runs every op once on the C++ CPU backend against its
pure-PyTorch reference on random inputs. Exits non-zero on the first failure.
"""

import importlib.metadata
import os
import re
import sys

import torch

import fastsnn


def close(name, got, want, atol=0.0):
    torch.testing.assert_close(got, want, atol=atol, rtol=0.0 if atol == 0.0 else 1e-5,
                               msg=lambda m: f"{name}: cpu backend differs from the reference"
                                             f": {m}")
    print(f"  {name:<18} cpu == reference  {tuple(got.shape)}")


def check_metadata() -> None:
    """The wheel pins the torch minor version it was built against, has the extras and
    the licence."""
    meta = importlib.metadata.metadata("fastsnn")
    assert meta["Version"] == fastsnn.__version__, (meta["Version"], fastsnn.__version__)
    major, minor = (int(p) for p in re.match(r"(\d+)\.(\d+)", torch.__version__).groups())
    pins = [r for r in meta.get_all("Requires-Dist") if r.startswith("torch")]
    assert pins and set(pins[0][len("torch"):].split(",")) == \
        {f">={major}.{minor}", f"<{major}.{minor + 1}"}, pins
    extras = set(meta.get_all("Provides-Extra"))
    assert {"train", "events", "test", "bench", "dev"} <= extras, extras
    assert "MIT" in (meta["License-Expression"] or meta["License"] or ""), meta["License"]
    print(f"  metadata: {pins[0]}, extras {sorted(extras)}")


def check_installed() -> str:
    """The import resolves to an installed package whose compiled extension loads."""
    where = os.path.dirname(fastsnn.__file__)
    assert "site-packages" in where, f"fastsnn imported from {where}, not an installed package"
    reason = fastsnn.backends()["cpu"]["cpu"]
    assert not reason, f"the cpu backend is unavailable: {reason}"
    return where


def check_ops() -> None:
    """Every op once on the C++ CPU backend against the reference, on random inputs."""
    g = torch.Generator().manual_seed(0)

    x = torch.randn(3, 2, 4, 5, 5, generator=g) * 2
    decay = torch.rand(4, generator=g) * 0.8 + 0.1
    for backend in ("cpu", "reference"):
        xb = x.clone().requires_grad_(True)
        s = fastsnn.mt_lif(xb, decay, levels=3, reset="soft", surrogate="triangle",
                           backend=backend)
        s.sum().backward()
        if backend == "cpu":
            s_cpu, g_cpu = s.detach(), xb.grad
    close("mt_lif", s_cpu, s.detach())
    close("mt_lif grad", g_cpu, xb.grad, atol=1e-5)

    spikes = (torch.rand(2, 8, 6, 6, generator=g) < 0.4).float()
    weight = torch.randn(5, 8, 3, 3, generator=g)
    out = {b: fastsnn.binary_conv2d(spikes, weight, padding=1, backend=b)
           for b in ("cpu", "reference")}
    close("binary_conv2d", out["cpu"], out["reference"], atol=1e-4)

    n = 200
    events = torch.stack([torch.randint(0, 16, (n,), generator=g),
                          torch.randint(0, 12, (n,), generator=g),
                          torch.sort(torch.randint(0, 10_000, (n,), generator=g)).values,
                          torch.randint(0, 2, (n,), generator=g)], dim=1)
    out = {b: fastsnn.events_to_current(events, (16, 12, 2), T=4, backend=b)
           for b in ("cpu", "reference")}
    close("events_to_current", out["cpu"], out["reference"])

    a = torch.randn(2, 3, 4, 4, generator=g) * 4
    out = {b: fastsnn.stcb(a, T=6, levels=2, backend=b) for b in ("cpu", "reference")}
    close("stcb", out["cpu"], out["reference"])
    out = {b: fastsnn.spike_count(out["cpu"], backend=b) for b in ("cpu", "reference")}
    close("spike_count", out["cpu"], out["reference"])


def main() -> int:
    where = check_installed()
    check_metadata()
    check_ops()
    print(f"smoke: fastsnn {fastsnn.__version__} from {where}: every op matches its reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
