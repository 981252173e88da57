"""mt_lif: every available backend against the eager reference, torch.compile of the
reference and SpikingJelly's multi-step LIFNode, forward and forward+backward.

Options benchmarked are the paper-B neuron that SpikingJelly also implements (form "plif",
hard reset, sigmoid surrogate of width 1, decay 0.5 = tau 2): with levels=1 the two compute
the same function, which each SpikingJelly row verifies before it is timed. With levels=3
SpikingJelly still runs its single-threshold neuron (it has no multi-threshold one).

Byte floor per element and step (float32): forward reads x and writes s (8 B); the
forward+backward pass moves x, s and the saved h in the forward (12 B) and reads grad_s and
h, writes grad_x in the backward (12 B): 24 B. Each row's floor time is those bytes at the
rate of ``x.clone()`` measured beside it (same size: same cache and page-fault costs).

Where the time went (T=4, [32, 128, 16, 16], plif, hard reset, sigmoid; torch.profiler and
side-by-side medians on the shared 2-core VM, so the shares are rough): the backward kernel
about twice the forward kernel, and ``aten::fill_`` 10-15 %: autograd materialised zero
gradients for the two outputs nobody differentiates (saved h and j). Since then the op takes
no materialised gradients (no fills), the backward without a decay gradient skips u[t-1] and
its accumulator, and the kernels ask for transparent huge pages on their fresh outputs
(fewer first-touch page faults, which ``clone()`` pays as well). The no-grad forward runs at
about half ``clone()``'s rate on an AVX2 CPU (T = 4, one thread); the backward is compute
bound (the sigmoid's exp and division, ~45 vector operations per 16 lanes), not memory bound.
"""

from __future__ import annotations

import torch
from harness import fast_backends

import fastsnn
from fastsnn.reference.mt_lif import mt_lif as reference_mt_lif

OPTIONS = dict(threshold=1.0, reset="hard", surrogate="sigmoid", width=1.0, form="plif")
DECAY = 0.5


def _spikingjelly(device):
    """SpikingJelly's LIFNode in multi-step mode on its fastest backend for ``device``.

    SpikingJelly >= 2.0 picks the backend itself (its Triton kernels on CUDA); older
    releases take ``backend=``.
    """
    try:
        import spikingjelly
        from spikingjelly.activation_based import neuron, surrogate
    except Exception as exc:  # not installed, or incompatible with this torch
        return None, f"spikingjelly unavailable ({exc.__class__.__name__}: {exc})"
    kwargs = dict(tau=1 / (1 - DECAY), decay_input=True, v_threshold=1.0, v_reset=0.0,
                  surrogate_function=surrogate.Sigmoid(alpha=4.0), detach_reset=False,
                  step_mode="m")
    version = getattr(spikingjelly, "__version__", "")
    try:
        return neuron.LIFNode(**kwargs).to(device), f"{version or 'auto'}"
    except TypeError:
        pass
    for backend in ("triton", "cupy", "torch") if device.type == "cuda" else ("torch",):
        try:
            return neuron.LIFNode(backend=backend, **kwargs).to(device), backend
        except Exception:  # that backend is not available here
            continue
    return None, "no spikingjelly backend could be built"


def _step(fn, x, backward):
    """One timed call: forward, or forward+backward with a fixed incoming gradient."""
    if not backward:
        def fwd():
            with torch.no_grad():
                return fn(x)
        return fwd
    grad = torch.ones_like(x)

    def fwd_bwd():
        x.grad = None
        out = fn(x)
        out.backward(grad)
        return out
    return fwd_bwd


def _shapes(quick):
    if quick:
        return [(t, (t, 2, 8, 4, 4)) for t in (1, 4)]
    return [(t, (t, 32, 128, 16, 16)) for t in (1, 2, 4, 8, 32)]


def run(suite) -> None:
    device = suite.device
    sj_node, sj_backend = _spikingjelly(device)
    if sj_node is None:
        suite.note(f"mt_lif: {sj_backend}")
    # the reference's loop over T unrolls, so every (T, dtype, levels) case is its own
    # graph: lift dynamo's recompile limit, or later cases would silently run eager
    torch._dynamo.config.recompile_limit = 1024
    compiled = torch.compile(reference_mt_lif, dynamic=True)
    fast = fast_backends("mt_lif", device)
    ours = fast[0] if fast else "reference"
    panel = f"mt_lif fwd+bwd float32 K=1 {'x'.join(map(str, _shapes(suite.quick)[0][1][1:]))}"
    peers = ["compiled-ref"] + ([f"spikingjelly-{sj_backend}"] if sj_node is not None else [])
    suite.panel(panel, "T", ours, peers, targets={"compiled-ref": 1.5}, floor_targets=1.5)
    for dtype in (torch.float32,) if suite.quick else (torch.float32, torch.bfloat16):
        for levels in (1,) if suite.quick else (1, 3):
            for t, shape in _shapes(suite.quick):
                x = torch.randn(shape, device=device, dtype=dtype) * 1.5
                case = f"T={t} {'x'.join(map(str, shape[1:]))} K={levels}"
                headline = panel if dtype == torch.float32 and levels == 1 else None
                _bench_case(suite, x, levels, case, fast, compiled, sj_node, sj_backend,
                            headline, t)


def _bench_case(suite, x, levels, case, fast, compiled, sj_node, sj_backend, panel, t):
    dt = str(x.dtype).replace("torch.", "")
    elems = x.numel()
    opts = dict(OPTIONS, levels=levels)
    xr = x.detach().clone().requires_grad_(True)
    expected = fastsnn.mt_lif(xr, DECAY, backend="reference", **opts)
    expected.backward(torch.ones_like(expected))
    exp_grad = xr.grad.clone()
    tol = dict(atol=1e-5, rtol=1e-5) if x.dtype == torch.float32 else dict(atol=2e-2, rtol=2e-2)
    impls = {b: (lambda v, b=b: fastsnn.mt_lif(v, DECAY, backend=b, **opts)) for b in fast}
    impls["reference"] = lambda v: fastsnn.mt_lif(v, DECAY, backend="reference", **opts)
    impls["compiled-ref"] = lambda v: compiled(v, torch.tensor(DECAY, device=v.device), **opts)
    if sj_node is not None:
        impls[f"spikingjelly-{sj_backend}"] = lambda v: _run_sj(sj_node, v)
    for name, fn in impls.items():
        xv = x.detach().clone().requires_grad_(True)
        out = fn(xv)
        # ours must match; a peer's rounding may put a membrane on the other side of a
        # threshold tie: its flipped spikes (and the gradients they move) are counted
        peer = None if name in fast or name == "reference" else name
        if name.startswith("spikingjelly") and levels != 1:
            suite.note(f"mt_lif {name} {case} {dt}: single-threshold neuron, a different "
                       "function from K>1: timed for scale, not compared")
        else:
            out.backward(torch.ones_like(out))
            suite.verify(f"mt_lif {name} {case} {dt} spikes", out, expected,
                         exact=x.dtype == torch.float32, peer=peer)
            suite.verify(f"mt_lif {name} {case} {dt} grad", xv.grad, exp_grad, peer=peer,
                         **tol)
        item = x.element_size()
        copy_bps = suite.clone_bps(x)  # the floor's rate at this size, next to the timing
        for backward in (False, True):
            floor = elems * (2 * item + (4 + 4 + 2 * item) * backward)
            suite.time(_step(fn, xv, backward), op="mt_lif", case=case, dtype=dt, impl=name,
                       direction="fwd+bwd" if backward else "fwd", bytes_moved=floor,
                       work=elems, panel=panel if backward else None, scale=t,
                       copy_bps=copy_bps)
    suite.end_case()


def _run_sj(node, x):
    from spikingjelly.activation_based import functional

    functional.reset_net(node)
    return node(x)
