"""PackedSpikes, binary_conv2d on packed input, mt_lif(packed=True) and binary_snn_layer.

Every fast path is compared bit for bit with the float path / the reference composition on
fresh random inputs, on each popcount ISA this CPU runs.
"""

import os

import pytest
import torch
from helpers import generator, require_backend

import fastsnn
from fastsnn.ops.binary_conv import PackedBinaryWeight
from fastsnn.packed_spikes import PackedSpikes


def _isas():
    try:
        return list(torch.ops.fastsnn.binary_conv2d_cpu_isas())
    except (AttributeError, RuntimeError):
        return ["auto"]


@pytest.fixture(params=_isas())
def isa(request, monkeypatch):
    monkeypatch.setenv("FASTSNN_CPU_ISA", request.param)
    return request.param


# ---------------------------------------------------------------------- PackedSpikes

@pytest.mark.parametrize("levels", [1, 3, 5, 255])
@pytest.mark.parametrize("shape", [(2, 3, 40, 4, 5), (3, 2, 7), (1, 1, 65, 2, 1)])
def test_roundtrip_is_exact(levels, shape):
    x = torch.randint(0, levels + 1, shape, generator=generator(levels)).float()
    p = PackedSpikes.from_float(x, levels)
    assert torch.equal(p.unpack(), x) and p.unpack().dtype == x.dtype
    assert p.shape == x.shape and p.levels == levels and p.dtype == torch.float32
    assert p.nbytes == p.words.nbytes and p.to("cpu").words.data_ptr() == p.words.data_ptr()
    assert torch.equal(PackedSpikes.from_float(x.half(), levels).unpack(), x.half())


def test_layout_is_channels_last_bit_planes():
    x = torch.zeros(1, 1, 40, 2, 3)
    x[0, 0, 33, 1, 2] = 3  # word 1, bit 1, both planes
    x[0, 0, 31, 0, 0] = 2  # word 0, bit 31 (the int32 sign bit), plane 1
    w = PackedSpikes.from_float(x, 3).words
    assert w.shape == (1, 1, 2, 3, 2, 2)
    expect = torch.zeros_like(w)
    expect[0, 0, 1, 2, 0, 1] = 2
    expect[0, 0, 1, 2, 1, 1] = 2
    expect[0, 0, 0, 0, 1, 0] = -(2**31)
    assert torch.equal(w, expect)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="levels"):
        PackedSpikes.from_float(torch.zeros(1, 1, 2), 0)
    with pytest.raises(ValueError, match="0..1"):
        PackedSpikes.from_float(torch.full((1, 1, 2), 2.0), 1)
    with pytest.raises(ValueError, match="0..3"):
        PackedSpikes.from_float(torch.full((1, 1, 2), 0.5), 3)
    with pytest.raises(ValueError, match="3 dims"):
        PackedSpikes.from_float(torch.zeros(2, 2), 1)
    with pytest.raises(TypeError, match="floating"):
        PackedSpikes.from_float(torch.zeros(1, 1, 2, dtype=torch.int64), 1)
    with pytest.raises(ValueError, match="words must have shape"):
        PackedSpikes(torch.zeros(1, 1, 1, 2, dtype=torch.int32), 1, (1, 1, 2))


def test_float_operations_raise_type_error_naming_them():
    p = PackedSpikes.from_float(torch.ones(2, 1, 3), 1)
    with pytest.raises(TypeError, match="relu"):
        torch.relu(p)
    with pytest.raises(TypeError, match="PackedSpikes"):
        torch.ones(1) + p
    with pytest.raises(TypeError, match="PackedSpikes"):
        p * 2
    with pytest.raises(TypeError, match="conv2d"):
        torch.nn.functional.conv2d(p, torch.ones(1, 3, 1, 1))
    with pytest.raises(TypeError, match="PackedSpikes"):
        fastsnn.mt_lif(p)


# ---------------------------------------------------------------------- binary_conv2d

CONVS = [  # (N, Cin, H, W, Cout, k, stride, padding, dilation)
    (2, 5, 7, 6, 9, 3, 1, 1, 1),
    (1, 40, 9, 9, 33, 3, 2, 0, 1),
    (2, 70, 6, 7, 8, 3, (1, 2), (2, 1), 2),
    (3, 32, 5, 5, 64, 1, 1, 0, 1),
]


@pytest.mark.parametrize("levels", [1, 3, 7])
@pytest.mark.parametrize("case", CONVS)
def test_conv_on_packed_input_equals_float_input(case, levels, isa):
    require_backend("cpu", "binary_conv2d_packed")
    n, cin, h, w, cout, k, stride, padding, dilation = case
    g = generator(hash((case, levels)) % 2**31)
    x = torch.randint(0, levels + 1, (2, n, cin, h, w), generator=g).float()
    weight = torch.randn(cout, cin, k, k, generator=g)
    bias = torch.randn(cout, generator=g)
    px = PackedSpikes.from_float(x, levels)
    conv = dict(stride=stride, padding=padding, dilation=dilation)
    want = fastsnn.binary_conv2d(x, weight, "channel", bias, levels=levels, backend="cpu",
                                 **conv)
    for backend in ("cpu", "reference"):
        got = fastsnn.binary_conv2d(px, weight, "channel", bias, backend=backend, **conv)
        assert torch.equal(got, want), backend
    packed_w = PackedBinaryWeight.from_float(weight)
    assert torch.equal(fastsnn.binary_conv2d(px, packed_w, None, bias, **conv), want)


def test_conv_on_packed_input_rejects_what_it_cannot_do():
    px = PackedSpikes.from_float(torch.ones(1, 1, 3, 4, 4), 1)
    w = torch.randn(2, 3, 3, 3)
    with pytest.raises(ValueError, match="activation"):
        fastsnn.binary_conv2d(px, w, activation="sign")
    with pytest.raises(ValueError, match="levels"):
        fastsnn.binary_conv2d(px, w, levels=3)
    with pytest.raises(ValueError, match="input channels"):
        fastsnn.binary_conv2d(px, torch.randn(2, 4, 3, 3))
    with pytest.raises(ValueError, match="must hold"):
        fastsnn.binary_conv2d(PackedSpikes.from_float(torch.ones(1, 1, 3), 1), w)


def test_binary_conv_module_takes_packed_spikes():
    m = fastsnn.nn.BinaryConv2d(6, 4, 3, padding=1, levels=3).eval()
    x = torch.randint(0, 4, (2, 1, 6, 5, 5), generator=generator(3)).float()
    with torch.no_grad():
        want = m(x)
        assert torch.equal(m(PackedSpikes.from_float(x, 3)), want)
        m.pack()
        assert torch.equal(m(PackedSpikes.from_float(x, 3)), want)


# ---------------------------------------------------------------------- mt_lif packed

LIFS = [dict(levels=1), dict(levels=3, reset="soft", form="plif"),
        dict(levels=6, reset="none", threshold=0.7), dict(levels=2, reset="subtract_next")]


@pytest.mark.parametrize("options", LIFS)
@pytest.mark.parametrize("shape", [(4, 2, 40, 3, 5), (3, 5, 70), (2, 1, 33, 130)])
def test_mt_lif_packed_equals_float_spikes(shape, options):
    g = generator(len(shape) + options["levels"])
    x = torch.randn(shape, generator=g) * 1.5
    decay = torch.rand(shape[2], generator=g)
    want = fastsnn.mt_lif(x, decay, backend="reference", **options)
    for backend in ("reference", "cpu"):
        if backend == "cpu":
            require_backend("cpu", "mt_lif_packed")
        got = fastsnn.mt_lif(x, decay, backend=backend, packed=True, **options)
        assert isinstance(got, PackedSpikes) and got.levels == options["levels"]
        assert torch.equal(got.unpack(), want), backend
    half = fastsnn.mt_lif(x.half(), 0.5, packed=True, **options)
    assert torch.equal(half.unpack(), fastsnn.mt_lif(x.half(), 0.5, **options))


def test_mt_lif_packed_is_inference_only():
    x = torch.randn(2, 1, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match="inference only"):
        fastsnn.mt_lif(x, packed=True)
    with torch.no_grad():
        assert isinstance(fastsnn.mt_lif(x, packed=True), PackedSpikes)
    with pytest.raises(ValueError, match="syn_decay"):
        fastsnn.mt_lif(x.detach(), packed=True, syn_decay=0.5)
    with pytest.raises(TypeError, match="float32"):
        fastsnn.mt_lif(x.detach().double(), packed=True)
    with pytest.raises(ValueError, match="C"):
        fastsnn.mt_lif(torch.randn(2, 3), packed=True)
    m = fastsnn.nn.MultiThresholdLIF(levels=3, learnable_decay=True, packed=True)
    with pytest.raises(RuntimeError, match="inference only"):
        m(torch.randn(2, 1, 3))
    with torch.no_grad():
        assert torch.equal(m(torch.randn(2, 1, 3, generator=generator(1))).unpack(),
                           fastsnn.mt_lif(torch.randn(2, 1, 3, generator=generator(1)),
                                          m.decay, levels=3))


# ---------------------------------------------------------------------- the fused layer

LAYERS = [  # (T, N, Cin, H, W, Cout, k, stride, padding, levels_in, options)
    (3, 2, 5, 6, 7, 9, 3, 1, 1, 1, dict(levels=1)),
    (2, 1, 40, 5, 5, 70, 3, 2, 1, 3, dict(levels=3, reset="soft", form="plif")),
    (4, 2, 33, 4, 4, 32, 1, 1, 0, 2, dict(levels=5, reset="none", threshold=0.3)),
    (2, 3, 64, 9, 9, 40, 3, 1, 0, 1, dict(levels=2, reset="subtract_next")),
]


@pytest.mark.parametrize("case", LAYERS)
def test_fused_layer_equals_reference_composition(case, isa):
    require_backend("cpu", "binary_snn_layer")
    t, n, cin, h, w, cout, k, stride, padding, lv, options = case
    g = generator(cin * cout + t)
    x = torch.randint(0, lv + 1, (t, n, cin, h, w), generator=g).float()
    px = PackedSpikes.from_float(x, lv)
    weight = PackedBinaryWeight.from_float(torch.randn(cout, cin, k, k, generator=g), None)
    scale = torch.rand(cout, generator=g) * 0.2 + 0.01
    bias = torch.randn(cout, generator=g) * 0.5 + 0.5
    decay = torch.rand(cout, generator=g)
    args = dict(stride=stride, padding=padding, decay=decay, **options)
    want = fastsnn.binary_snn_layer(px, weight, scale, bias, backend="reference", **args)
    got = fastsnn.binary_snn_layer(px, weight, scale, bias, backend="cpu", **args)
    assert got.shape == want.shape and torch.equal(got.words, want.words)
    # the reference composition is the public ops' composition, float spikes throughout
    current = fastsnn.binary_conv2d(x, weight, scale, bias, stride=stride, padding=padding,
                                    levels=lv, backend="cpu")
    spikes = fastsnn.mt_lif(current, decay, backend="cpu", **options)
    assert torch.equal(got.unpack(), spikes)
    assert spikes.sum() > 0 and (spikes == 0).any()  # neither silent nor saturated


def test_fused_layer_bad_input():
    px = PackedSpikes.from_float(torch.ones(1, 1, 3, 4, 4), 1)
    w = PackedBinaryWeight.from_float(torch.randn(2, 3, 3, 3))
    with pytest.raises(TypeError, match="x must be PackedSpikes"):
        fastsnn.binary_snn_layer(torch.ones(1, 1, 3, 4, 4), w)
    with pytest.raises(TypeError, match="PackedBinaryWeight"):
        fastsnn.binary_snn_layer(px, torch.randn(2, 3, 3, 3))
    with pytest.raises(ValueError, match="scale given twice"):
        fastsnn.binary_snn_layer(px, w, torch.ones(2))
    with pytest.raises(ValueError, match="levels"):
        fastsnn.binary_snn_layer(px, w, levels=256)
    with pytest.raises(ValueError, match="decay"):
        fastsnn.binary_snn_layer(px, w, decay=torch.ones(3))


def test_kernel_thread_count_does_not_change_result():
    if os.cpu_count() == 1:
        pytest.skip("one core")
    require_backend("cpu", "binary_snn_layer")
    x = PackedSpikes.from_float(torch.randint(0, 2, (2, 4, 40, 8, 8),
                                              generator=generator(9)).float(), 1)
    w = PackedBinaryWeight.from_float(torch.randn(72, 40, 3, 3, generator=generator(8)))
    before = torch.get_num_threads()
    try:
        outs = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            outs.append(fastsnn.binary_snn_layer(x, w, None, torch.full((72,), 0.5),
                                                 padding=1, levels=2).words)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(outs[0], outs[1])


# ---------------------------------------------------------------------- block and ALBSNN

def _settled_block(levels):
    torch.manual_seed(levels)
    block = fastsnn.nn.BinarySNNBlock(40, 36, 3, padding=1, levels=levels, decay=0.6,
                                      reset="soft")
    x = torch.randint(0, levels + 1, (3, 4, 40, 6, 6)).float()
    with torch.no_grad():
        block.train()(x)  # running statistics of this input
        block.bn.weight.uniform_(0.5, 1.5)
        block.bn.bias.uniform_(-0.5, 0.5)
    return block.eval(), x


@pytest.mark.parametrize("levels", [1, 3])
def test_block_pack_equals_eval_block(levels):
    block, x = _settled_block(levels)
    with torch.no_grad():
        want = block(x)
        unfused = block(PackedSpikes.from_float(x, levels))
        block.pack()
        got = block(PackedSpikes.from_float(x, levels))
        from_float = block(x)
    assert isinstance(got, PackedSpikes) and torch.equal(got.unpack(), want)
    assert torch.equal(unfused, want) and torch.equal(from_float.words, got.words)
    assert want.sum() > 0 and (want == 0).any()
    # eval with the batch norm folded agrees with conv -> batch norm -> LIF to rounding
    block2, _ = _settled_block(levels)
    with torch.no_grad():
        y = block2.bn(block2.conv(x).flatten(0, 1)).unflatten(0, x.shape[:2])
        assert (block2.lif(y) != want).float().mean() < 1e-3


def test_block_pack_needs_binarised_conv_and_no_synaptic_current():
    block = fastsnn.nn.BinarySNNBlock(4, 4)
    block.conv.set_binarized(False)
    with pytest.raises(RuntimeError, match="binarised"):
        block.pack()
    with pytest.raises(ValueError, match="syn_decay"):
        fastsnn.nn.BinarySNNBlock(4, 4, syn_decay=0.5).pack()


@pytest.mark.parametrize("levels", [1, 3])
def test_packed_albsnn_predicts_exactly_as_eval_model_on_digits(levels):
    from fastsnn.data import digits_split
    from fastsnn.models.albsnn import ALBSNN

    x_train, _, x_test, _ = digits_split()
    torch.manual_seed(levels)
    model = ALBSNN.from_dataset("digits", T=2, levels=levels, num_classes=10)
    for stage in list(model.features)[1:]:
        stage.conv.set_binarized(True)
    model.classifier.set_binarized(True)
    with torch.no_grad():
        for i in range(0, 512, 128):  # batch-norm statistics from training images
            model(torch.as_tensor(x_train[i:i + 128]).unsqueeze(1) * 4)
    model.eval()
    packed = model.export_packed()
    assert all(stage.fused for stage in list(packed.features)[1:])
    x = torch.as_tensor(x_test).unsqueeze(1) * 4
    with torch.no_grad():
        want, got = model(x), packed(x)
        spikes = packed.features[:2](x.unsqueeze(0).expand(2, *x.shape))
    assert isinstance(spikes, PackedSpikes)
    assert torch.equal(got.argmax(1), want.argmax(1))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert len(want.argmax(1).unique()) > 1
