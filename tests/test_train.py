"""The training CLI: smoke runs, the run JSON, resume, callbacks, and 2-process DDP."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from helpers import DEVICE

from fastsnn import train
from fastsnn._cli import UsageError
from fastsnn.models import build

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "mtsnn", "--dataset", "digits", "--T", "2", "--batch-size", "16",
        "--train-samples", "64", "--test-samples", "40", "--energy-samples", "16",
        "--no-progress", "--seed", "0", "--device", DEVICE.type]


def _run(tmp_path, *extra):
    return train.main(TINY + ["--out", str(tmp_path)] + list(extra))


def test_cli_smoke_writes_run_json(tmp_path, capsys):
    result = _run(tmp_path, "--epochs", "1", "--max-steps", "2")
    files = sorted(p.name for p in tmp_path.iterdir())
    name = "mtsnn_digits_T2_L3_rect_s0"
    assert files == [f"{name}.json", f"{name}.pt"]
    saved = json.loads((tmp_path / f"{name}.json").read_text())
    for key in ("model", "dataset", "T", "seed", "test_accuracy", "epoch_seconds",
                "spike_rate", "energy_ratio", "args", "history", "energy"):
        assert key in saved, key
    assert saved["args"]["batch_size"] == 16 and saved["args"]["max_steps"] == 2
    assert 0 <= saved["test_accuracy"] <= 1 and saved["epoch_seconds"] > 0
    assert saved["test_accuracy"] == result["test_accuracy"]
    assert saved["energy_ratio"] == pytest.approx(saved["energy"]["ratio"])
    out = capsys.readouterr().out
    assert "test accuracy" in out and "E_ANN / E_SNN" in out and "s/epoch" in out


def test_resume_is_bit_exact(tmp_path):
    straight = _run(tmp_path / "a", "--epochs", "2", "--max-steps", "3")
    _run(tmp_path / "b", "--epochs", "2", "--max-steps", "3", "--stop-after", "1")
    partial = json.loads(next((tmp_path / "b").glob("*.json")).read_text())
    assert partial["epochs_done"] == 1 and not partial["complete"]
    resumed = _run(tmp_path / "b", "--epochs", "2", "--max-steps", "3", "--resume")
    assert resumed["epochs_done"] == 2 and resumed["complete"]
    for key in ("train_loss", "test_accuracy", "test_loss"):
        assert [h[key] for h in resumed["history"]] == [h[key] for h in straight["history"]]
    a = torch.load(next((tmp_path / "a").glob("*.pt")), weights_only=False)["model"]
    b = torch.load(next((tmp_path / "b").glob("*.pt")), weights_only=False)["model"]
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_refuses_other_config(tmp_path, capsys):
    _run(tmp_path, "--epochs", "1", "--max-steps", "1", "--name", "x")
    with pytest.raises(SystemExit):
        _run(tmp_path, "--epochs", "1", "--max-steps", "1", "--name", "x", "--resume",
             "--levels", "1")
    assert "levels=3, this run 1" in capsys.readouterr().err


def test_callbacks_and_model_options(tmp_path):
    class Recorder:
        def __init__(self):
            self.epochs, self.batches = [], 0

        def on_batch_end(self, step, model, loss):
            self.batches += 1

        def on_epoch_end(self, epoch, model, metrics):
            self.epochs.append((epoch, metrics["test_accuracy"]))

        def on_train_end(self, model, result):
            result["recorded"] = len(self.epochs)

    rec = Recorder()
    args = train.parse_args(TINY + ["--out", str(tmp_path), "--epochs", "2",
                                    "--max-steps", "2", "--model-option", "hidden=(32,)",
                                    "--levels", "1", "--surrogate", "sigmoid"])
    result, model = train.run(args, callbacks=[rec])
    assert rec.batches == 4 and [e for e, _ in rec.epochs] == [0, 1]
    assert result["recorded"] == 2
    assert json.loads(next(tmp_path.glob("*.json")).read_text())["recorded"] == 2
    assert model.hidden[0].out_features == 32 and model.levels == 1
    assert model.surrogate == "sigmoid"
    with pytest.raises(UsageError, match="KEY=VALUE"):
        train.model_options(train.parse_args(["--model-option", "oops"]))


def test_cli_event_pipeline(tmp_path):
    result = train.main(["--model", "stcnet", "--dataset", "digit-saccades", "--T", "4",
                         "--epochs", "1", "--batch-size", "4", "--train-samples", "8",
                         "--test-samples", "4", "--energy-samples", "4", "--no-progress",
                         "--device", DEVICE.type, "--out", str(tmp_path)])
    assert 0 <= result["test_accuracy"] <= 1
    first = result["energy"]["layers"][0]
    assert first["analog"] and first["steps"] == 4  # event input: first layer every step


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DDP_SCRIPT = textwrap.dedent("""
    import os, sys, torch
    from fastsnn import train
    out = sys.argv[1]
    args = train.parse_args(sys.argv[2:] + ["--out", out])
    result, model = train.run(args)
    rank = int(os.environ["RANK"])
    torch.save({k: v.cpu() for k, v in model.state_dict().items()},
               os.path.join(out, f"params_rank{rank}.pt"))
    torch.distributed.destroy_process_group()
""")


def test_ddp_two_cpu_processes_stay_identical(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT)
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH",
                                                                             ""),
               OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(script), str(out),
           *TINY, "--epochs", "2", "--max-steps", "3", "--device", "cpu"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    p0 = torch.load(out / "params_rank0.pt")
    p1 = torch.load(out / "params_rank1.pt")
    for key in p0:
        assert torch.equal(p0[key], p1[key]), key
    runs = list(out.glob("mtsnn_*.json"))
    assert len(runs) == 1  # only rank 0 writes
    saved = json.loads(runs[0].read_text())
    assert saved["world_size"] == 2 and len(saved["history"]) == 2
    # The model trained: its weights moved away from the seeded initialisation.
    torch.manual_seed(0)
    fresh = build("mtsnn", "digits", T=2)
    assert not torch.equal(fresh.state_dict()["encoder.0.weight"], p0["encoder.0.weight"])


def test_missing_dataset_files_exit_with_where_to_put_them(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        train.main(["--dataset", "fashion-mnist", "--data-root", str(tmp_path), "--out",
                    str(tmp_path / "out"), "--no-progress"])
    assert err.value.code == 2
    message = capsys.readouterr().err
    assert "never downloads" in message
    assert "t10k-images-idx3-ubyte" in message or "train-images" in message
