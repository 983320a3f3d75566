"""The training loop: the paper's schedule, what each network learns from, resume after a
hard kill, the NaN guard, atomic checkpoints and multi-process (gloo) equality."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_iam import synthetic_sets

from scriptvit_lib.errors import UserError
from scriptvit_lib.iam import write_iam_pickle
from scriptvit_lib.trainer import (
    CheckpointError,
    TrainConfig,
    TrainingDiverged,
    _batch,
    build_trainer,
    list_checkpoints,
    load_checkpoint,
    train,
)
from scriptvit_lib.words import WordSample, WordSet

WORDS = ("the", "Move", "A-2", "of", "and", "1960", "it's", "house")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data():
    sets = synthetic_sets(writers=("w1", "w2", "w3", "w4"), words=WORDS)
    return {"train": sets["train"], "val": sets["train"], "test": sets["test"]}


def _graph_reaches(loss: torch.Tensor, params) -> bool:
    grads = torch.autograd.grad(loss, list(params), retain_graph=True, allow_unused=True)
    return any(g is not None and g.abs().sum() > 0 for g in grads)


def test_schedule_and_real_only_updates(data, tmp_path):
    torch.manual_seed(0)
    cfg = TrainConfig(preset="tiny", out=str(tmp_path), g_every=2, w_recon=1.0)
    tr, ds, _ = build_trainer(cfg, data["train"])
    seen = []
    original = tr._step

    def spy(name, loss):
        # what each network learns from: D from detached fakes, R and W from real words only
        if name in "DRW":
            assert not _graph_reaches(loss, tr.G.parameters()), (
                f"{name}'s own loss depends on G (saw a live fake)"
            )
        if name in "RW":
            fake = tr.G(b.style, b.text_ids, b.text_lengths, b.style_widths)
            assert not torch.equal(fake[..., : b.target.shape[-1]], b.target[..., : fake.shape[-1]])
        before = {n: [p.detach().clone() for p in getattr(tr, n).parameters()] for n in "DRW"}
        original(name, loss)
        if name == "G":  # the generator's step leaves D, R and W untouched
            for n in "DRW":
                assert all(torch.equal(a, p) for a, p in zip(before[n], getattr(tr, n).parameters())), n
        seen.append((tr.step, name))

    tr._step = spy
    for step in range(4):
        b = _batch(ds, cfg, step, 0)
        logs = tr.train_step(b)
        assert ("G_adv" in logs) == (step % 2 == 0)
    g_steps = [s for s, n in seen if n == "G"]
    assert g_steps == [0, 2], "the generator must be updated on every 2nd iteration"
    for n in "DRW":
        assert [s for s, m in seen if m == n] == [0, 1, 2, 3], f"{n} must be updated every iteration"


def test_nan_guard_names_the_loss_and_keeps_checkpoint(data, tmp_path):
    cfg = TrainConfig(preset="tiny", out=str(tmp_path), steps=2, ckpt_every_steps=1, sample_every=100)
    train(cfg, data, progress=False)
    good = list_checkpoints(tmp_path / "checkpoints")
    tr, ds, _ = build_trainer(cfg, data["train"])
    with torch.no_grad():
        next(tr.D.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="D_hinge"):
        tr.train_step(_batch(ds, cfg, 0, 0))
    assert list_checkpoints(tmp_path / "checkpoints") == good


@pytest.mark.parametrize("keep, kept", [(0, [2, 4, 6]), (2, [4, 6])])
def test_keep_last_checkpoints(data, tmp_path, keep, kept):
    cfg = TrainConfig(preset="tiny", out=str(tmp_path), steps=6, sample_every=100)
    cfg.ckpt_every_steps, cfg.keep_last = 2, keep
    train(cfg, data, progress=False)
    assert [load_checkpoint(p)["step"] for p in list_checkpoints(tmp_path / "checkpoints")] == kept


def test_keep_last_flag_reaches_the_config():
    from scriptvit_lib.cli import build_parser, train_config_from_namespace

    argv = ["train", "--data", "d", "--out", "o", "--recipe", "cpu", "--steps", "1"]
    assert train_config_from_namespace(build_parser().parse_args(argv)).keep_last == 3
    assert train_config_from_namespace(build_parser().parse_args([*argv, "--keep-last", "0"])).keep_last == 0
    assert build_parser().parse_args(argv).data == ["d"]  # several folders train together
    both = build_parser().parse_args([*argv, "--data", "full", "extra"])
    assert both.data == ["full", "extra"]
    assert train_config_from_namespace(both).data == ("full", "extra")  # recorded in the lineage


def test_negative_keep_last_is_refused(data, tmp_path):
    with pytest.raises(UserError, match="keep_last must be >= 0"):
        train(TrainConfig(preset="tiny", out=str(tmp_path), steps=2, keep_last=-1), data, progress=False)


def test_truncated_checkpoint_is_refused(data, tmp_path):
    cfg = TrainConfig(preset="tiny", out=str(tmp_path), steps=2, sample_every=100)
    train(cfg, data, progress=False)
    last = list_checkpoints(tmp_path / "checkpoints")[-1]
    assert load_checkpoint(last)["step"] == 2
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        train(TrainConfig(preset="tiny", out=str(tmp_path), steps=4, resume=True), data, progress=False)
    assert not list((tmp_path / "checkpoints").glob("*.tmp")), "no half-written files left"


def _cli(out: Path, data_file: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    args = ["--data", str(data_file), "--out", str(out), "--preset", "tiny", "--recipe", "cpu"]
    args += ["--pretrain-steps", "2", "--steps", "40", "--ckpt-every-steps", "5", "--sample-every", "1000"]
    return subprocess.Popen(
        [sys.executable, "-m", "scriptvit_lib", "train", *args, *extra], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def test_resume_after_sigkill_matches_uninterrupted_run(data, tmp_path):
    data_file = tmp_path / "words.pickle"
    write_iam_pickle({"train": data["train"], "test": data["test"]}, data_file)
    full = _cli(tmp_path / "full", data_file)
    killed = _cli(tmp_path / "killed", data_file)
    ckpts = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 120
    while not any(p.name.startswith("step_0000010") for p in ckpts.glob("step_*.pt")):
        assert killed.poll() is None and time.time() < deadline, "training ended before it could be killed"
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "model").exists(), "the killed run must not have finished"
    resumed = _cli(tmp_path / "killed", data_file, "--resume")
    assert resumed.wait() == 0, resumed.stderr.read().decode()
    assert full.wait() == 0, full.stderr.read().decode()
    a = load_checkpoint(list_checkpoints(tmp_path / "full" / "checkpoints")[-1])
    b = load_checkpoint(list_checkpoints(tmp_path / "killed" / "checkpoints")[-1])
    assert a["step"] == b["step"] == 40
    for net in ("G", "D", "R", "W", "G_ema"):
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), f"{net}.{key} differs after resume"


def _fixed_width(image, width: int):
    import numpy as np

    out = np.full((image.shape[0], width), 255, np.uint8)
    out[:, : min(width, image.shape[1])] = image[:, :width]
    return out


def _record_grads(tr) -> dict:
    """Snapshot each network's (rank-averaged) gradients at its optimizer step."""
    grads = {}
    for name, opt in tr.opt.items():

        def step(*a, _orig=opt.step, _name=name, **kw):
            net = getattr(tr, _name)
            grads[_name] = {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}
            return _orig(*a, **kw)

        opt.step = step
    return grads


def _rank_main(rank: int, port: int, cfg: TrainConfig, data, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2")
    torch.set_num_threads(1)
    tr, ds, _ = build_trainer(cfg, data["train"])
    grads = _record_grads(tr)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    tr.train_step(_batch(ds, cfg, 0, rank))
    torch.save({"grads": grads, **{n: getattr(tr, n).state_dict() for n in "GDRW"}}, f"{out}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_two_gloo_processes_equal_one_process_on_merged_batch(data, tmp_path):
    import socket

    import torch.multiprocessing as mp

    from scriptvit_lib.sampler import collate_style_batch
    from scriptvit_lib.trainer import batch_items

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Two things make a word's loss depend on the rest of its batch, and are kept out here:
    # BatchNorm statistics (per process on CPU: gloo has no SyncBatchNorm; on GPUs the trainer
    # converts them to SyncBatchNorm) -> recognizer without them; and zero-padded convolutions,
    # which see the batch's widest word at the right edge -> words of one length and width.
    texts = ("Move", "1960", "it's", "have", "A-2,", "from")
    data = {
        split: WordSet(
            WordSample(s.writer, texts[i % len(texts)], _fixed_width(s.image, 64)) for i, s in enumerate(ws)
        )
        for split, ws in data.items()
    }
    cfg = TrainConfig(preset="tiny", out=str(tmp_path), batch_size=3, model_overrides={"rec_norm": "none"})
    mp.start_processes(_rank_main, args=(port, cfg, data, str(tmp_path)), nprocs=2, start_method="spawn")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))

    torch.set_num_threads(1)
    single, ds, _ = build_trainer(cfg, data["train"])
    grads = _record_grads(single)
    single.train_step(collate_style_batch(batch_items(ds, cfg, 0, 0) + batch_items(ds, cfg, 0, 1)))
    assert set(grads) == set("GDRW")
    for net in "GDRW":
        for key in getattr(single, net).state_dict():
            assert torch.equal(r0[net][key], r1[net][key]), f"ranks disagree on {net}.{key} after the step"
        # the averaged gradient of the two half-batches is the gradient of the whole batch (up to
        # float rounding, measured against the network's largest gradient: some tensors, e.g. a
        # conv bias right before a norm, have gradients that are pure rounding noise)
        scale = max(g.abs().max() for g in grads[net].values())
        for key, g in grads[net].items():
            err = (r0["grads"][net][key] - g).abs().max() / scale
            assert err < 1e-4, f"{net}.{key}: gradient differs from the merged batch's by {err:.2e}"


def test_train_writers_subsets_are_nested_and_stable():
    from scriptvit_lib.trainer import subset_writers

    blank = np.full((32, 20), 255, np.uint8)
    words = WordSet(
        [WordSample(writer=f"w{i}", text="the", image=blank) for i in range(20) for _ in range(2)]
    )
    five, ten = subset_writers(words, 5), subset_writers(words, 10)
    assert len(five.writers) == 5 and len(ten.writers) == 10
    assert set(five.writers) <= set(ten.writers)
    assert subset_writers(words, 0) is words and subset_writers(words, 99) is words
    assert set(subset_writers(words, 5).writers) == set(five.writers)


def test_export_checkpoint_equals_the_exported_model(data, tmp_path):
    from safetensors.torch import load_file

    from scriptvit_lib.trainer import export_checkpoint, sampling_generator

    cfg = TrainConfig(preset="tiny", out=str(tmp_path / "run"), steps=4, ema=0.9, sample_every=100)
    train(cfg, data, progress=False)
    last = list_checkpoints(tmp_path / "run" / "checkpoints")[-1]
    export_checkpoint(last, tmp_path / "exported")
    final = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    again = load_file(str(tmp_path / "exported" / "model.safetensors"))
    assert final.keys() == again.keys() and all(torch.equal(final[k], again[k]) for k in final)
    # in memory, from the checkpoint or from a model folder: the same (EMA) weights
    for source in (last, tmp_path / "exported"):
        got = sampling_generator(source).state_dict()
        assert got.keys() == final.keys() and all(torch.equal(got[k], final[k]) for k in final)


def test_ship_model_packages_generator_recognizer_and_card(data, tmp_path):
    from safetensors.torch import load_file

    from scriptvit_lib.adaptation import load_recognizer
    from scriptvit_lib.generator import ScriptViT

    cfg = TrainConfig(preset="tiny", out=str(tmp_path / "run"), steps=4, ckpt_every_steps=2, sample_every=100)
    train(cfg, data, progress=False)
    first, last = list_checkpoints(tmp_path / "run" / "checkpoints")[-2:]
    ship = [
        sys.executable,
        str(ROOT / "bench" / "ship_model.py"),
        str(tmp_path / "run"),
        "--data",
        str(tmp_path),
    ]
    subprocess.run(ship + ["--dest", str(tmp_path / "a")], check=True, cwd=tmp_path, capture_output=True)
    model = ScriptViT.from_pretrained(tmp_path / "a")
    r = load_recognizer(tmp_path / "a", model.config)
    ck = load_checkpoint(last)
    assert all(torch.equal(r.state_dict()[k], v) for k, v in ck["R"].items())  # R of the last checkpoint
    assert "MODEL_CARD.md" in {p.name for p in (tmp_path / "a").iterdir()}
    critics = load_file(str(tmp_path / "a" / "critics.safetensors"))  # D and W go on with the model
    assert {k.split(".")[0] for k in critics} == {"D", "W"}
    assert all(torch.equal(critics[f"D.{k}"], v) for k, v in ck["D"].items())
    assert "synthesis channels 32 → 16 → 8 → 4" in (tmp_path / "a" / "MODEL_CARD.md").read_text()
    assert "character widths" not in (tmp_path / "a" / "MODEL_CARD.md").read_text()  # none fitted
    # a model with character widths (bench/char_widths.py) says so in its card's config line
    cfg_file = tmp_path / "run" / "model" / "config.json"
    plain = cfg_file.read_text()
    cfg_file.write_text(
        json.dumps({**json.loads(plain), "width_mode": "predicted", "char_widths": [1.0] * 81})
    )
    subprocess.run(ship + ["--dest", str(tmp_path / "w")], check=True, cwd=tmp_path, capture_output=True)
    assert (
        "character widths fitted on the training words, 80 characters"
        in (tmp_path / "w" / "MODEL_CARD.md").read_text()
    )
    cfg_file.write_text(plain)
    assert (
        "| minutes to CER(test) <= 0.15 | not reached in this run folder |"
        in (tmp_path / "a" / "MODEL_CARD.md").read_text()
    )  # 4 iterations write nothing legible
    # the card reads this run's own eval.csv up to the shipped checkpoint: CER at that step, and
    # the first row at CER(test) <= 0.15 for the legibility row
    first_ck = load_checkpoint(first)
    assert first_ck["step"] == 2
    (tmp_path / "run" / "eval.csv").write_text(
        "step,minutes,cer_val,cer_test\n1,0.5,0.9,0.95\n2,1.3,0.2,0.14\n4,1.5,0.1,0.09\n"
    )
    subprocess.run(
        ship + ["--dest", str(tmp_path / "b"), "--checkpoint", str(first)],
        check=True,
        cwd=tmp_path,
        capture_output=True,
    )
    g = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert all(torch.equal(g[k], v) for k, v in first_ck["G"].items())  # the given checkpoint's generator
    assert f"| steps | {first_ck['step']} iterations" in (tmp_path / "b" / "MODEL_CARD.md").read_text()
    assert (
        "| 1.3 (iteration 2, this run folder's `eval.csv`) |"
        in (tmp_path / "b" / "MODEL_CARD.md").read_text()
    )
    assert "test (unseen writers) 0.14 |" in (tmp_path / "b" / "MODEL_CARD.md").read_text()  # not step 4's
    # a run on an `--only-train` build (no test split): the card names the flag, leaves out the
    # empty test split and says why there is no test CER, instead of '?' and "not reached"
    (tmp_path / "run" / "eval.csv").write_text("step,minutes,cer_val\n2,1.3,0.2\n4,1.5,0.1\n")
    build = {
        "args": {"families": "all", "writers_per_family": 5, "splits": ["train"]},
        "counts": {"writers": 680, "samples": {"train": 187229, "val": 16771, "test": 0}},
    }
    (tmp_path / "x5").mkdir()
    (tmp_path / "x5" / "build.json").write_text(json.dumps(build))
    subprocess.run(
        ship[:-1] + [str(tmp_path / "x5"), "--dest", str(tmp_path / "c")],
        check=True,
        cwd=tmp_path,
        capture_output=True,
    )
    card = (tmp_path / "c" / "MODEL_CARD.md").read_text()
    assert "--families all --writers-per-family 5 --only-train`: 680 training font writers " in card
    assert "{'train': 187229, 'val': 16771}" in card and "'test'" not in card
    assert "test (unseen writers) none (no test split in this run's data) |" in card
    assert "| minutes to CER(test) <= 0.15 | no test split in this run's data |" in card


def test_append_csv_adds_new_columns_without_shifting_values(tmp_path):
    import csv

    from scriptvit_lib.monitor import append_csv

    path = tmp_path / "log.csv"
    append_csv(path, {"step": 1, "a": 0.5}, ["step", "a"])
    append_csv(path, {"step": 2, "a": 0.25, "b": 9}, ["step", "a", "b"])  # a newer version's columns
    append_csv(path, {"step": 3, "b": 7}, ["step", "b"])
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["step"], r["a"], r["b"]) for r in rows] == [
        ("1", "0.5", ""),
        ("2", "0.25", "9"),
        ("3", "", "7"),
    ]


def test_sigterm_saves_a_checkpoint_of_the_current_step(data, tmp_path):
    data_file = tmp_path / "words.pickle"
    write_iam_pickle({"train": data["train"], "test": data["test"]}, data_file)
    run = _cli(tmp_path / "run", data_file, "--steps", "100000", "--ckpt-every-steps", "100000")
    log = tmp_path / "run" / "log.csv"
    deadline = time.time() + 120
    while not (log.exists() and len(log.read_text().splitlines()) >= 3):  # a header and two rows
        assert run.poll() is None and time.time() < deadline, "training ended before it could be stopped"
        time.sleep(0.05)
    logged = int(log.read_text().splitlines()[-1].split(",")[0])
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=120) == 130  # scriptvit's "interrupted" exit status, not a kill
    assert "interrupted" in run.stderr.read().decode()
    (ck,) = list_checkpoints(tmp_path / "run" / "checkpoints")  # periodic checkpoints never came due
    assert load_checkpoint(ck)["step"] >= max(logged, 2)  # the step it was stopped at, not step 0


def test_elapsed_minutes_survive_a_kill_mid_write(tmp_path):
    from scriptvit_lib.trainer import _elapsed_minutes, _save_elapsed

    _save_elapsed(tmp_path, 12.5)
    assert _elapsed_minutes(tmp_path) == 12.5 and not list(tmp_path.glob("*.tmp"))
    (tmp_path / "elapsed.json").write_text("")  # what a SIGKILL during a plain write_text left behind
    assert _elapsed_minutes(tmp_path) == 0.0
    (tmp_path / "log.csv").write_text("step,minutes,D_hinge\n10,3.25,0.9\n20,7.5,0.8\n")
    assert _elapsed_minutes(tmp_path) == 7.5  # the last logged minute


def test_lineage_follows_resumes_and_branches_into_the_model_card(data, tmp_path):
    from scriptvit_lib.trainer import lineage_summary, read_lineage

    base = dict(preset="tiny", sample_every=100, ckpt_every_steps=100)
    train(TrainConfig(**base, out=str(tmp_path / "a"), steps=3), data, progress=False)
    train(TrainConfig(**base, out=str(tmp_path / "a"), steps=5, resume=True), data, progress=False)
    parent = list_checkpoints(tmp_path / "a" / "checkpoints")[-1]
    first = list_checkpoints(tmp_path / "a" / "checkpoints")[0]  # the critics come from another checkpoint
    cfg_b = TrainConfig(
        **base, out=str(tmp_path / "b"), steps=7, init_from=str(parent), critics_from=str(first), data=("d",)
    )
    train(cfg_b, data, progress=False)
    ck = load_checkpoint(list_checkpoints(tmp_path / "b" / "checkpoints")[-1])
    segs = read_lineage(ck)
    assert [(s["how"], s["from_step"], s["to_step"]) for s in segs] == [
        ("fresh", 0, 3),
        ("resumed", 3, 5),
        ("branched", 5, 7),
    ]
    assert [Path(s["run"]).name for s in segs] == ["a", "a", "b"] and segs[2]["source"] == str(parent)
    assert all(s["minutes"] > 0 and "CPU" in s["hardware"] for s in segs)
    summary = lineage_summary(segs)  # the resume merges into its run's row
    assert [(r["from_step"], r["to_step"], r["processes"]) for r in summary["rows"]] == [(0, 5, 2), (5, 7, 1)]
    assert summary["minutes"] == pytest.approx(sum(s["minutes"] for s in segs))
    assert summary["unrecorded_steps"] == 0 and sum(summary["hardware"].values()) == 7
    # a checkpoint from before lineages: one segment of unknown minutes up to its step
    old = read_lineage({"step": 40})
    assert lineage_summary(old + segs[2:])["unrecorded_steps"] == 40
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ship_model.py"), str(tmp_path / "b"), "--data", str(tmp_path),
         "--dest", str(tmp_path / "m")],
        check=True, cwd=tmp_path, capture_output=True,
    )  # fmt: skip
    card = (tmp_path / "m" / "MODEL_CARD.md").read_text()
    assert "over 2 segment(s)" in card and "| a | fresh | 0 -> 5 |" in card
    assert f"| b | branched from a/{parent.name}; critics from a/{first.name}; data d | 5 -> 7 |" in card


def test_lineage_records_the_data_folders_and_a_change_of_data_starts_a_row(data, tmp_path):
    from scriptvit_lib.trainer import lineage_summary, read_lineage

    base = dict(preset="tiny", sample_every=100, ckpt_every_steps=100, out=str(tmp_path / "a"))
    train(TrainConfig(**base, steps=3, data=("fonts-all",)), data, progress=False)
    both = ("fonts-all", "fonts-rare")  # resumed with a folder of extra words beside the first
    train(TrainConfig(**base, steps=5, resume=True, data=both), data, progress=False)
    train(TrainConfig(**base, steps=6, resume=True, data=both), data, progress=False)
    segs = read_lineage(load_checkpoint(list_checkpoints(tmp_path / "a" / "checkpoints")[-1]))
    assert [s["data"] for s in segs] == [["fonts-all"], list(both), list(both)]
    rows = lineage_summary(segs)["rows"]  # same run and machine, but other data: not merged
    assert [(r["from_step"], r["to_step"], r["processes"], r["data"]) for r in rows] == [
        (0, 3, 1, ["fonts-all"]),
        (3, 6, 2, list(both)),
    ]
    assert json.loads((tmp_path / "a" / "train_config.json").read_text())["data"] == list(both)


def test_gpu_leg_round_trip_carries_the_lineage(data, tmp_path):
    """bench/gpu_leg on CPU: pack a checkpoint, continue it elsewhere, unpack - the weights'
    history keeps every segment, the leg included."""
    from scriptvit_lib.trainer import read_lineage

    data_file = tmp_path / "words.pickle"
    write_iam_pickle({"train": data["train"], "test": data["test"]}, data_file)
    cfg = TrainConfig(preset="tiny", out=str(tmp_path / "run"), steps=3, sample_every=100, log_every=1)
    train(cfg, data, progress=False)
    ck = list_checkpoints(tmp_path / "run" / "checkpoints")[-1]
    leg = ROOT / "bench" / "gpu_leg"

    def run(*args):
        subprocess.run([sys.executable, *map(str, args)], check=True, cwd=tmp_path, capture_output=True)

    run(leg / "pack.py", ck, tmp_path / "pack", 0.5)
    there = ["--run", tmp_path / "there", "--minutes", 0.02, "--device", "cpu", "--out", tmp_path / "back"]
    run(
        leg / "continue_on_gpu.py",
        "--pack",
        tmp_path / "pack",
        "--data",
        data_file,
        "--batch-size",
        3,
        *there,
    )
    meta = json.loads((tmp_path / "back" / "meta_back.json").read_text())
    assert json.loads(meta["run_files"]["train_config.json"])["batch_size"] == 3  # the leg's own batch
    run(leg / "unpack.py", tmp_path / "back", tmp_path / "run", tmp_path / "home", data_file)
    back = load_checkpoint(list_checkpoints(tmp_path / "home" / "checkpoints")[-1])
    segs = read_lineage(back)
    assert [(Path(s["run"]).name, s["how"], s["from_step"]) for s in segs] == [
        ("run", "fresh", 0),
        ("there", "resumed", 3),
    ]
    assert segs[-1]["to_step"] == back["step"] > 3  # the leg trained, and its iterations are in the record


def test_gpu_leg_from_a_model_folder_needs_no_source_run(data, tmp_path):
    """bench/gpu_leg --from-model: a new run from a model folder with `scriptvit train` flags;
    unpack rebuilds the run folder from what came back alone, and the run resumes on CPU."""
    from scriptvit_lib.trainer import read_lineage

    data_file = tmp_path / "words.pickle"
    write_iam_pickle({"train": data["train"], "test": data["test"]}, data_file)
    cfg = TrainConfig(preset="tiny", out=str(tmp_path / "run"), steps=3, sample_every=100, log_every=1)
    train(cfg, data, progress=False)
    leg = ROOT / "bench" / "gpu_leg"

    def run(*args):
        subprocess.run([sys.executable, *map(str, args)], check=True, cwd=tmp_path, capture_output=True)

    flags = "--preset tiny --recipe cpu --steps 11 --pretrain-steps 2 --pretrain-critics --batch-size 4"
    there = ["--run", tmp_path / "there", "--minutes", 0, "--device", "cpu", "--out", tmp_path / "back"]
    run(leg / "continue_on_gpu.py", "--from-model", tmp_path / "run" / "model", "--train-args", flags,
        "--data", data_file, *there)  # fmt: skip
    run(leg / "unpack.py", tmp_path / "back", "-", tmp_path / "home", data_file)
    back = load_checkpoint(list_checkpoints(tmp_path / "home" / "checkpoints")[-1])
    assert back["step"] == 11 and back["pretrain_done"] == 2
    assert json.loads(back["train_config"])["batch_size"] == 4
    assert (tmp_path / "home" / "log.csv").read_text().startswith("step,")
    segs = read_lineage(back)
    assert [s["how"] for s in segs][-1] == "branched" and segs[-1]["from_step"] == 3
    resumed = TrainConfig(**{**json.loads(back["train_config"]), "out": str(tmp_path / "home"),
                             "device": "cpu", "resume": True, "steps": 12, "minutes": 0})  # fmt: skip
    assert train(resumed, data, progress=False).step == 12


def test_gpu_leg_from_scratch_trains_a_new_output_path(data, tmp_path):
    """bench/gpu_leg --from-scratch: a new run from random weights with `scriptvit train` flags -
    the next long leg's box kernel and 32-px canvas, which a trained model cannot move to."""
    from scriptvit_lib.trainer import read_lineage

    data_file = tmp_path / "words.pickle"
    write_iam_pickle({"train": data["train"], "test": data["test"]}, data_file)
    flags = "--preset tiny --recipe cpu --steps 4 --pretrain-steps 2 --batch-size 4"
    flags += " --set width_mode=predicted --set resample=area --set char_width=32"
    there = ["--run", tmp_path / "there", "--minutes", 0, "--device", "cpu", "--out", tmp_path / "back"]

    def leg(script, *args):
        cmd = [sys.executable, str(ROOT / "bench" / "gpu_leg" / script), *map(str, args)]
        return subprocess.run(cmd, cwd=tmp_path, capture_output=True)

    both = leg("continue_on_gpu.py", "--from-scratch", "--from-model", tmp_path, "--data", data_file, *there)
    assert both.returncode != 0 and b"exclude each other" in both.stderr
    done = leg("continue_on_gpu.py", "--from-scratch", "--train-args", flags, "--data", data_file, *there)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert leg("unpack.py", tmp_path / "back", "-", tmp_path / "home", data_file).returncode == 0
    back = load_checkpoint(list_checkpoints(tmp_path / "home" / "checkpoints")[-1])
    model_cfg = json.loads(back["model_config"])
    assert back["step"] == 4 and (model_cfg["char_width"], model_cfg["resample"]) == (32, "area")
    assert [(s["how"], s["from_step"]) for s in read_lineage(back)] == [("fresh", 0)]


def test_lr_decay_follows_the_lineage_step_in_every_optimizer(data, tmp_path):
    cfg = TrainConfig(preset="tiny", out=str(tmp_path), lr=1e-3, w_style_id=1.0,
                      lr_decay_start=2, lr_decay_end=6, lr_end_factor=0.1)  # fmt: skip
    tr, ds, _ = build_trainer(cfg, data["train"])
    # a resumed optimizer carries whatever rate it was saved with: the schedule must override it
    for opt in tr.opt.values():
        for group in opt.param_groups:
            group["lr"] = 5.0
    seen = []
    for step in range(8):
        tr.train_step(_batch(ds, cfg, step, 0))
        seen.append({g["lr"] for opt in tr.opt.values() for g in opt.param_groups})
    assert len(tr.opt["G"].param_groups) == 2, "the style-id head's group must be covered too"
    expected = [1.0, 1.0, 1.0, 0.775, 0.55, 0.325, 0.1, 0.1]
    for got, want in zip(seen, expected):
        assert len(got) == 1 and got.pop() == pytest.approx(1e-3 * want)
    off = TrainConfig(preset="tiny", out=str(tmp_path / "off"), lr=1e-3)
    tr, ds, _ = build_trainer(off, data["train"])
    tr.train_step(_batch(ds, off, 0, 0))
    assert {g["lr"] for opt in tr.opt.values() for g in opt.param_groups} == {1e-3}
