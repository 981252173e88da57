"""The command-line tools as a user meets them: --help, one-line errors, threads, --plot,
``python -m fastsnn.evaluate`` and ``fastsnn.from_checkpoint``."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fastsnn
from fastsnn import _cli, evaluate, train

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "mtsnn", "--dataset", "digits", "--T", "2", "--batch-size", "16",
        "--train-samples", "64", "--test-samples", "40", "--energy-samples", "16",
        "--no-progress", "--seed", "0", "--epochs", "1", "--max-steps", "2"]


def _cli_run(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=300)


@pytest.mark.parametrize("parser", [train.build_parser, evaluate.build_parser])
def test_help_shows_every_default_and_choice(parser):
    p = parser()
    for action in p._actions:
        if action.dest != "help":
            assert action.help, f"--{action.dest} has no help text, so no default shown"
    text = p.format_help()
    assert "default:" in text
    if parser is train.build_parser:
        assert "{albsnn,mtsnn,stcnet,stcsnn}" in text  # choices from the registry
        assert "digit-saccades" in text and "(default: 30)" in text


@pytest.mark.parametrize("args, words", [
    (["--model", "nope"], "invalid choice: 'nope'"),
    (["--dataset", "imagenet"], "invalid choice: 'imagenet'"),
    (["--epochs", "0"], "must be >= 1"),
    (["--model-option", "no_such_option=1", "--epochs", "1"], "cannot build mtsnn"),
    (["--backend", "cuda"], "--backend cuda: "),
])
def test_user_mistakes_exit_with_one_line(args, words, tmp_path):
    r = _cli_run("fastsnn.train", *args, "--out", str(tmp_path), "--no-progress")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], r.stderr


def test_missing_dataset_says_where_the_files_go(tmp_path):
    r = _cli_run("fastsnn.train", "--dataset", "mnist", "--data-root", str(tmp_path / "no"),
                 "--out", str(tmp_path), "--no-progress")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    first, *where = r.stderr.strip().splitlines()
    assert first.startswith("python -m fastsnn.train: error: MNIST files not found")
    assert any("train-images-idx3-ubyte" in line for line in where)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda_is_one_line(tmp_path):
    r = _cli_run("fastsnn.train", "--device", "cuda", "--out", str(tmp_path))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert "--device cuda" in r.stderr and "--device cpu" in r.stderr


def test_thread_default_is_min_cores_4_and_printed(tmp_path, capsys):
    before = torch.get_num_threads()
    try:
        train.main(TINY + ["--out", str(tmp_path)])
        expected = min(_cli.cores(), 4)
        assert torch.get_num_threads() == expected
        assert f"threads: {expected} of {_cli.cores()} cores" in capsys.readouterr().out
        train.main(TINY + ["--out", str(tmp_path), "--threads", "1"])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_default_threads_share_the_cores_between_processes(monkeypatch):
    monkeypatch.setattr(_cli, "cores", lambda: 16)
    assert _cli.default_threads() == 4 and _cli.default_threads(8) == 2
    assert _cli.default_threads(32) == 1


def test_plot_writes_png_and_evaluate_reproduces_the_run(tmp_path, capsys):
    before = torch.get_num_threads()
    try:
        result = train.main(TINY + ["--out", str(tmp_path), "--plot", "--epochs", "2"])
    finally:
        torch.set_num_threads(before)
    name = "mtsnn_digits_T2_L3_rect_s0"
    png = tmp_path / f"{name}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    ckpt = tmp_path / f"{name}.pt"

    # the loader gives the trained network in eval mode
    model, state = fastsnn.from_checkpoint(ckpt)
    assert not model.training and state["epoch"] == 2
    assert state["history"] == result["history"]

    # the CLI scores the same test samples the run scored, with the same result
    out_json = tmp_path / "eval.json"
    r = _cli_run("fastsnn.evaluate", str(ckpt), "--test-samples", "40", "--energy-samples",
                 "16", "--json", str(out_json))
    assert r.returncode == 0, r.stderr
    ev = json.loads(out_json.read_text())
    assert ev["test_accuracy"] == pytest.approx(result["test_accuracy"], abs=1e-12)
    assert ev["test_samples"] == 40 and ev["energy"]["energy_snn_pj"] > 0
    assert ev["spike_rate"] == pytest.approx(result["spike_rate"])
    assert "test accuracy" in r.stdout and "E_ANN / E_SNN" in r.stdout


def test_evaluate_bad_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "not_a_checkpoint.pt"
    bad.write_text("hello")
    for path, words in ((bad, "not a readable torch checkpoint"),
                        (tmp_path / "missing.pt", "no checkpoint at")):
        r = _cli_run("fastsnn.evaluate", str(path))
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and words in r.stderr


def test_from_checkpoint_restores_albsnn_binarised_layers(tmp_path):
    before = torch.get_num_threads()
    try:
        args = train.parse_args(["--model", "albsnn", "--dataset", "digits", "--T", "1",
                                 "--epochs", "2", "--train-samples", "128", "--test-samples",
                                 "32", "--energy-samples", "8", "--no-progress",
                                 "--out", str(tmp_path)])
        result, trained = train.run(args)
    finally:
        torch.set_num_threads(before)
    assert result["storage_saving"] > 0  # the selector binarised a layer
    model, _ = fastsnn.from_checkpoint(next(tmp_path.glob("*.pt")))
    binarised = {n for n, m in model.named_modules() if getattr(m, "binarized", False)}
    assert binarised == {n for n, m in trained.named_modules()
                         if getattr(m, "binarized", False)}
    x = torch.rand(5, 1, 8, 8)
    trained.eval()
    torch.testing.assert_close(model(x), trained(x), rtol=0, atol=0)
