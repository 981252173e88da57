"""Every op's ``triton`` backend over its option space, on tiny CPU inputs, under the
Triton interpreter (``TRITON_INTERPRET=1``), recording each kernel launch.

tools/cuda_check.py compiles every recorded specialization for a GPU. The sweep goes
through the public ops (so it follows whatever constexprs the op wrappers pass) and covers
each option value the tests use: every dtype x reset x surrogate for mt_lif with levels,
form, detach, synaptic current, v0, v_reset, streaming state, per-channel parameters and
gradient modes cycling through their values; every output/mask mode of stcb; every split,
weighting, pooling and event dtype of events_to_current; every activation, bit count,
alpha/bias and dtype of binary_conv2d; resets, forms and level counts of the packed-spike
kernels.
"""

from __future__ import annotations

import inspect
import itertools

import torch

LAUNCH_OPTIONS = ("num_warps", "num_stages", "enable_fp_fusion", "num_ctas")
POINTERS = {torch.float32: "*fp32", torch.float16: "*fp16", torch.bfloat16: "*bf16",
            torch.float64: "*fp64", torch.int8: "*i8", torch.int16: "*i16",
            torch.int32: "*i32", torch.int64: "*i64", torch.uint8: "*u8", torch.bool: "*i1"}


def _type(value):
    """Triton's type of a runtime launch argument (tensors already recorded as pointers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "i1"
    if isinstance(value, int):
        return "i32" if -2**31 <= value < 2**31 else "i64" if value < 2**63 else "u64"
    if isinstance(value, float):
        return "fp32"
    raise TypeError(f"no Triton type for a launch argument {value!r}")


def _is_constexpr(param: inspect.Parameter) -> bool:
    import triton.language as tl

    ann = param.annotation
    return ann is tl.constexpr or (isinstance(ann, str) and ann.endswith("constexpr"))


def canonical(fn_params, args: dict) -> dict:
    """``{name: type or constexpr value}``: what a compiled specialization depends on."""
    return {n: args.get(n) if const else _type(args.get(n)) for n, const in fn_params}


def _install_recorder(launches: dict) -> None:
    """Wraps the interpreter's launch: every distinct specialization goes to ``launches``.

    Tensors are recorded as their pointer type, scalars as their values (the compile step
    types the runtime ones).
    """
    from triton.runtime.interpreter import InterpretedFunction

    original = InterpretedFunction.run

    def run(self, *args, **kwargs):
        fn = self.fn
        params = inspect.signature(fn).parameters
        bound = dict(zip(params, args))
        bound.update({k: v for k, v in kwargs.items() if k in params})
        raw = {n: POINTERS[v.dtype] if isinstance(v, torch.Tensor) else v
               for n, v in bound.items()}
        record = {"module": fn.__module__, "name": fn.__name__, "args": raw,
                  "options": {k: kwargs[k] for k in LAUNCH_OPTIONS if k in kwargs}}
        key = canonical([(n, _is_constexpr(p)) for n, p in params.items()], raw)
        launches.setdefault(repr((fn.__module__, fn.__name__, key, record["options"])), record)
        return original(self, *args, **kwargs)

    InterpretedFunction.run = run


def _grad(out, *leaves):
    if any(t.requires_grad for t in leaves):
        torch.autograd.grad(out.float().sum(), [t for t in leaves if t.requires_grad])


def sweep_mt_lif(fastsnn) -> None:
    from fastsnn.ops.mt_lif import FORMS, OP, RESETS
    from fastsnn.reference.surrogate import SURROGATES

    grads = ("none", "x", "decay", "syn", "v0", "all")
    for i, (dtype, reset, surrogate) in enumerate(itertools.product(
            OP.dtypes["triton"], RESETS, SURROGATES)):
        levels, form = 1 + i % 4, FORMS[i % len(FORMS)]
        grad = grads[i % len(grads)]
        per_c, syn_on, v0_on = i % 2 == 0, i % 3 != 1 or grad == "syn", i % 4 < 2 or grad == "v0"
        g = torch.Generator().manual_seed(i)
        x = torch.randn(3, 2, 3, 5, generator=g).to(dtype).requires_grad_(grad in ("x", "all"))
        acc = torch.float32
        decay = (torch.rand(3, generator=g) if per_c else torch.rand((), generator=g)).to(acc)
        decay.requires_grad_(grad in ("decay", "all"))
        syn = torch.rand(3 if per_c else (), generator=g).to(acc).requires_grad_(
            grad in ("syn", "all")) if syn_on else None
        v0 = torch.randn(2, 3, 5, generator=g).to(acc).requires_grad_(
            grad in ("v0", "all")) if v0_on else None
        leaves = [t for t in (x, decay, syn, v0) if t is not None]
        kw = dict(levels=levels, reset=reset, surrogate=surrogate, form=form,
                  detach_reset=i % 5 == 1, syn_decay=syn, v_reset=(0.0, 0.3, -0.5)[i % 3],
                  backend="triton")
        if i % 3 == 2:  # streaming: two chunks, the state (and its gradient) in between
            first, state = fastsnn.mt_lif(x[:1], decay, v0=v0, return_state=True, **kw)
            out = torch.cat([first, fastsnn.mt_lif(x[1:], decay, state=state, **kw)])
        else:
            out = fastsnn.mt_lif(x, decay, v0=v0, **kw)
        _grad(out, *leaves)
    with torch.no_grad():  # nothing saved for a backward
        fastsnn.mt_lif(torch.randn(2, 1, 2, 3), backend="triton")
    # the largest block (1024 elements per program) needs 512 programs per step
    x = torch.randn(1, 1, 1, 512 * 1024).requires_grad_()
    _grad(fastsnn.mt_lif(x, 0.5, levels=2, backend="triton"), x)


def sweep_stcb(fastsnn) -> None:
    for output, levels in (("train", 1), ("count", 3)):
        a = (torch.rand(2, 3, 4) * 6).requires_grad_()
        _grad(fastsnn.stcb(a, 4, levels=levels, threshold=0.7, output=output,
                                   backend="triton"), a)
        with torch.no_grad():
            fastsnn.stcb(a, 4, levels=levels, output=output, backend="triton")
    fastsnn.spike_count(torch.rand(4, 2, 3).round(), backend="triton")


def sweep_events(fastsnn) -> None:
    from fastsnn.reference import events_to_current as ref

    g = torch.Generator().manual_seed(0)
    n = 40
    rows = torch.stack([torch.randint(0, 7, (n,), generator=g),
                        torch.randint(0, 5, (n,), generator=g),
                        torch.cumsum(torch.randint(0, 20, (n,), generator=g), 0),
                        torch.randint(0, 2, (n,), generator=g)], 1)
    offsets = torch.tensor([0, 15, 15, n])
    for i, (split, weighting, dtype) in enumerate(itertools.product(
            ref.SPLITS, ref.WEIGHTINGS, (torch.int32, torch.int64))):
        fastsnn.events_to_current(rows.to(dtype), (7, 5, 2), 3, offsets=offsets,
                                  split_by=split, weighting=weighting,
                                  tau_syn=30.0 if weighting == "exp" else None,
                                  spatial_factor=1 + i % 2, merge_polarity=i % 3 == 0,
                                  backend="triton")


def sweep_binary_conv(fastsnn) -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 3, 3, 3, generator=g)
    cases = [("spike", 1, None, False, torch.float32), ("spike", 3, "channel", True,
             torch.float16), ("spike", 7, 0.5, False, torch.bfloat16),
             ("sign", 1, "channel", True, torch.float32), ("sign", 1, None, False, torch.float16)]
    for activation, levels, alpha, bias, dtype in cases:
        if activation == "sign":
            x = torch.randint(0, 2, (2, 3, 5, 5), generator=g).float() * 2 - 1
        else:
            x = torch.randint(0, levels + 1, (2, 3, 5, 5), generator=g).float()
        x = x.to(dtype)
        b = torch.randn(4, generator=g) if bias else None
        wr = w.clone().requires_grad_()
        _grad(fastsnn.binary_conv2d(x, wr, alpha, b, padding=1,
                                            activation=activation, levels=levels,
                                            backend="triton"), wr)


def sweep_spike_bits(fastsnn) -> None:
    """The bit packing of spikes kept for backward (SpikeConv2d & co.): every bit count the
    levels 1..7 need, in the float dtypes spikes come in, round-tripped through Triton."""
    from fastsnn.spike_bits import pack

    g = torch.Generator().manual_seed(0)
    for levels, dtype in ((1, torch.float32), (3, torch.float16), (7, torch.bfloat16)):
        x = torch.randint(0, levels + 1, (3, 37), generator=g).to(dtype)
        packed = pack(x, levels, backend="triton")
        if not torch.equal(packed.unpack(backend="triton"), x):
            raise AssertionError(f"spike_bits: triton round trip differs (levels={levels})")


def sweep_packed_spikes(fastsnn) -> None:
    """Packed spikes: binary_conv2d on PackedSpikes, mt_lif(packed=True) and the fused
    binary_snn_layer over resets, forms, level counts (bit-planes in and out), shared and
    per-channel decay, with and without scale / bias."""
    from fastsnn.ops.binary_conv import PackedBinaryWeight
    from fastsnn.ops.mt_lif import FORMS, RESETS

    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 3, 3, 3, generator=g)
    for i, (reset, levels) in enumerate(itertools.product(RESETS, (1, 3, 5))):
        form = FORMS[i % len(FORMS)]
        x = torch.randint(0, levels + 1, (2, 2, 3, 5, 5), generator=g).float()
        px = fastsnn.PackedSpikes.from_float(x, levels)
        decay = torch.rand(4, generator=g) if i % 2 else 0.5
        scale, bias = (torch.rand(4, generator=g), torch.randn(4, generator=g)) if i % 3 \
            else (None, None)
        fastsnn.binary_snn_layer(px, PackedBinaryWeight.from_float(w, None), scale, bias,
                                 padding=1, levels=levels, decay=decay, reset=reset, form=form,
                                 backend="triton")
        fastsnn.mt_lif(x.flatten(3), torch.rand(3, generator=g) if i % 2 else 0.5,
                       levels=levels, reset=reset,
                       form=form, packed=True, backend="triton")
        fastsnn.binary_conv2d(px, w, "channel" if i % 2 else None,
                              torch.randn(4, generator=g) if i % 3 else None, padding=1,
                              backend="triton")


SWEEPS = (sweep_mt_lif, sweep_stcb, sweep_events, sweep_binary_conv, sweep_spike_bits,
          sweep_packed_spikes)


def recorded_sweep() -> list[dict]:
    """Runs every sweep; the distinct launches, in first-seen order."""
    launches: dict = {}
    _install_recorder(launches)
    import fastsnn

    for sweep in SWEEPS:
        sweep(fastsnn)
    return list(launches.values())


if __name__ == "__main__":
    import os

    os.environ.setdefault("TRITON_INTERPRET", "1")
    for launch in recorded_sweep():
        print(launch["module"], launch["name"], launch["args"], launch["options"])
