"""The benchmark harness: a result of ours that differs fails, a peer's differences are
counted into its rows; floors, panels and the README table come out of the JSON."""

import json
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))

import harness  # noqa: E402
import plot  # noqa: E402
import results_table  # noqa: E402


@pytest.fixture(scope="module")
def suite():
    return harness.Suite(torch.device("cpu"), quick=True)


def test_ours_must_match_and_a_peer_is_counted(suite):
    want = torch.tensor([0.0, 1.0, 0.0, 1.0])
    flipped = torch.tensor([0.0, 1.0, 1.0, 1.0])  # one spike flipped at a threshold tie
    with pytest.raises(harness.VerificationError, match="1 of 4"):
        suite.verify("ours", flipped, want, exact=True)
    assert suite.verify("ours", want.clone(), want, exact=True) == 0
    assert suite.verify("peer", flipped, want, exact=True, peer="peer-x") == 1
    assert suite.verify("peer grad", (want, want), (want, want), peer="peer-x") == 0
    row = suite.time(lambda: None, op="op", case="c", dtype="float32", impl="peer-x",
                     direction="fwd", bytes_moved=4096)
    assert (row.mismatches, row.compared) == (1, 12)
    ours = suite.time(lambda: None, op="op", case="c", dtype="float32", impl="cpu",
                      direction="fwd", bytes_moved=4096)
    assert ours.mismatches is None
    suite.end_case()
    again = suite.time(lambda: None, op="op", case="c2", dtype="float32", impl="peer-x",
                       direction="fwd")
    assert again.mismatches is None


def test_ours_and_peers_by_name():
    assert all(harness.is_ours(n) for n in ("cpu", "cpu+pack", "cuda", "ToCurrent-loop",
                                           "reference"))
    assert not any(harness.is_ours(n) for n in ("compiled-ref", "tonic-ToFrame", "torch.sum",
                                               "F.conv2d-fp32", "spikingjelly-auto"))


def test_floor_panels_table_and_plot(suite, tmp_path, capsys):
    suite.panel("op panel", "T", "cpu", ["peer-y"], targets={"peer-y": 2.0})
    for t, (ours_ms, peer_ms) in {1: (1.0, 3.0), 4: (2.0, 3.0)}.items():
        for impl, ms in (("cpu", ours_ms), ("peer-y", peer_ms)):
            suite.add(harness.Row(op="op", case=f"T={t}", dtype="float32", impl=impl,
                                  direction="fwd", median_ms=ms, bytes_moved=10**6,
                                  panel="op panel", scale=t, copy_bps=1e9))
    assert suite.floor_ms(suite.rows[-1]) == pytest.approx(1.0)  # 1 MB at 1 GB/s
    path = harness.write_results(suite, str(tmp_path))
    data = json.load(open(path))
    results_table.main([path])
    out = capsys.readouterr().out
    assert "| 1 | 1 | 1 ms (100 %) | 3.00x | >= 2x peer-y: met |" in out
    assert "| 4 | 2 | 1 ms (50 %) | 1.50x | >= 2x peer-y: not met |" in out
    speedups = dict(plot.headline_speedups(data["rows"], data["panels"][0]))
    assert speedups == {"op T=1 vs peer-y": 3.0, "op T=4 vs peer-y": 1.5}
    pytest.importorskip("matplotlib")
    assert plot.plot_results(data, str(tmp_path / "p.png"))
    assert os.path.getsize(tmp_path / "p.png") > 0


def test_readme_table_is_rewritten_between_its_markers(suite, tmp_path):
    suite.panel("readme panel", "T", "cpu", ["peer-z"], targets={"peer-z": 2.0})
    for impl, ms in (("cpu", 1.0), ("peer-z", 4.0)):
        suite.add(harness.Row(op="op2", case="T=2", dtype="float32", impl=impl,
                              direction="fwd", median_ms=ms, panel="readme panel", scale=2))
    suite.add(harness.Row(op="op3", case="no panel", dtype="float32", impl="cpu",
                          direction="fwd", median_ms=5.0))
    path = harness.write_results(suite, str(tmp_path))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{results_table.BEGIN}\nold table\n{results_table.END}\nafter\n")
    results_table.main([path, "--readme", str(readme)])
    text = readme.read_text()
    assert text.startswith("intro\n" + results_table.BEGIN) and text.endswith(
        results_table.END + "\nafter\n")
    assert "old table" not in text
    assert "| 2 | 1 |  | 4.00x | >= 2x peer-z: met |" in text
    assert "| op3 | no panel | float32 | fwd | cpu | 5 |" in text
    results_table.main([path, "--readme", str(readme)])  # idempotent
    assert readme.read_text() == text
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="bench-table:begin"):
        results_table.main([path, "--readme", str(readme)])


def test_the_readme_table_is_the_recorded_run():
    """The README's benchmark table is generated from the committed results, not edited by
    hand: regenerating it changes nothing (run the command in it after a new full run)."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    source = "bench/results/vm-cpu2.json"
    with open(os.path.join(root, source)) as f:
        data = json.load(f)
    with open(os.path.join(root, "README.md")) as f:
        text = f.read()
    assert results_table.readme_text(data, source, "README.md", text) == text
