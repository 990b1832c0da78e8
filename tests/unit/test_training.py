"""Pretraining: job validation, data pipeline, metrics, the loop, checkpoints and exact resume.

Runs on CPU with timm's tiny ``test_efficientnet`` at 32 px on a 3-class dataset of 24 PNGs.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import cv2
import numpy as np
import polars as pl
import pytest
import torch

from cytoimagenet.config import validate_job
from cytoimagenet.errors import ConfigError
from cytoimagenet.models.factory import CHECKPOINT_FORMAT, create_backbone
from cytoimagenet.training.checkpoint import read_resume_state
from cytoimagenet.training.config import PretrainJob
from cytoimagenet.training.data import (
    EpochSampler,
    ImageDataset,
    ShardSampler,
    read_grey,
    read_splits,
    resize_square,
    rotate,
    rotation_angle,
)
from cytoimagenet.training.distributed import env_ranks, resolve_amp, resolve_channels_last
from cytoimagenet.training.loop import run_pretrain
from cytoimagenet.training.metrics import (
    METRIC_COLUMNS,
    PER_CLASS_COLUMNS,
    EpochTotals,
    append_rows,
    class_counts,
    classes_without_correct,
    keep_epochs,
    topk_hits,
)

MODEL = "test_efficientnet"


def write_tiny_dataset(root: Path, classes: int = 3, per_class: int = 8, val: int = 2) -> Path:
    """3 classes with distinct stripes; some images 28×52 so both resize paths run."""
    rng = np.random.default_rng(0)
    rows = []
    for c in range(classes):
        for i in range(per_class):
            h, w = (40, 40) if i % 3 else (28, 52)
            yy, xx = np.mgrid[0:h, 0:w]
            pattern = [(yy // 4) % 2, (xx // 4) % 2, (yy // 5 + xx // 5) % 2][c % 3]
            image = (pattern * 180 + rng.integers(0, 60, (h, w))).astype(np.uint8)
            folder = f"src/cls{c}"
            (root / folder).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / folder / f"img{i}.png"), image)
            dset = "val" if i < val else "train"
            rows.append({"label": f"label-{c}", "path": folder, "filename": f"img{i}.png",
                         "dset": dset, "idx": f"{c}-{i}"})  # fmt: skip
    pl.DataFrame(rows).write_parquet(root / "metadata.parquet")
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny") / "ds")


def make_job(data: Path, out: Path, **kw: object) -> PretrainJob:
    values: dict[str, object] = {"model": MODEL, "epochs": 2, "batch_size": 6, "size": 32,
                                 "workers": 0, **kw}  # fmt: skip
    return validate_job(PretrainJob, data=data, out=out, **values)


@pytest.fixture(scope="module")
def reference(dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    """An uninterrupted 2-epoch run."""
    out = tmp_path_factory.mktemp("ref") / "run"
    return run_pretrain(make_job(dataset, out), progress=False)


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


# --- job validation ---------------------------------------------------------------------------


def test_job_defaults_are_the_papers(dataset: Path, tmp_path: Path) -> None:
    job = validate_job(PretrainJob, data=dataset, out=tmp_path / "run", batch_size=8)
    assert (job.model, job.epochs, job.lr, job.size, job.in_chans) == (
        "efficientnet_b0",
        24,
        1e-3,
        224,
        1,
    )
    assert job.weights == "random" and job.amp == "auto" and job.val_every == 1
    fp = job.fingerprint()
    assert "workers" not in fp and "epochs" not in fp and "out" not in fp and "data" not in fp
    assert fp["lr"] == 1e-3 and fp["batch_size"] == 8 and fp["max_steps"] is None


def _bad_table(root: Path, frame: pl.DataFrame) -> Path:
    root.mkdir()
    frame.write_parquet(root / "metadata.parquet")
    return root


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-dir", "no such directory"),
        ("no-table", "no metadata.parquet"),
        ("no-column", "lacks column(s) ['dset']"),
        ("bad-dset", "dset must be 'train' or 'val'"),
        ("one-label", "at least 2 labels"),
        ("small", "fewer than one batch of 64"),
        ("model", "unknown timm model 'nonet'"),
        ("amp", "amp"),
        ("device", "expected auto, cpu, cuda or cuda:N"),
        ("weights", "nor an existing weights file"),
        ("lr", "lr"),
    ],
)
def test_job_rejects_bad_input(tmp_path: Path, dataset: Path, case: str, message: str) -> None:
    data, kw = dataset, {"batch_size": 6, "model": MODEL}
    good = {"label": ["a", "b"], "path": ["p", "p"], "filename": ["x", "y"]}
    if case == "no-dir":
        data = tmp_path / "missing"
    elif case == "no-table":
        data = tmp_path
    elif case == "no-column":
        data = _bad_table(tmp_path / "d", pl.DataFrame(good))
    elif case == "bad-dset":
        data = _bad_table(tmp_path / "d", pl.DataFrame({**good, "dset": ["train", "test"]}))
    elif case == "one-label":
        frame = pl.DataFrame({**good, "label": ["a", "a"], "dset": ["train", "train"]})
        data, kw["batch_size"] = _bad_table(tmp_path / "d", frame), 1
    elif case == "small":
        kw["batch_size"] = 64
    elif case == "model":
        kw["model"] = "nonet"
    elif case == "amp":
        kw["amp"] = "fp8"
    elif case == "device":
        kw["device"] = "gpu"
    elif case == "weights":
        kw["weights"] = str(tmp_path / "nothing.pt")
    elif case == "lr":
        kw["lr"] = 0
    with pytest.raises(ConfigError, match="invalid options") as info:
        validate_job(PretrainJob, data=data, out=tmp_path / "run", **kw)
    assert message in str(info.value)


def test_env_ranks() -> None:
    assert env_ranks({}) == (0, 1, 0)
    assert env_ranks({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == (3, 4, 1)
    with pytest.raises(ConfigError, match="inconsistent"):
        env_ranks({"RANK": "4", "WORLD_SIZE": "4"})


def test_resolve_amp_and_channels_last_on_cpu() -> None:
    cpu = torch.device("cpu")
    assert resolve_amp("auto", cpu) == "off" and resolve_amp("off", cpu) == "off"
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        resolve_amp("bf16", cpu)
    assert resolve_channels_last("auto", cpu) is True
    assert resolve_channels_last("on", cpu) is True
    assert resolve_channels_last("off", cpu) is False


# --- data -------------------------------------------------------------------------------------


def test_read_splits(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "label": ["b", "a", "b", "c", "a", "z"],
            "path": ["p/q"] * 6,
            "filename": [f"{i}.png" for i in range(6)],
            "dset": ["train", "train", "val", "train", "val", "val"],
        }
    )
    frame.write_parquet(tmp_path / "metadata.parquet")
    splits = read_splits(tmp_path)
    assert splits.labels == ["a", "b", "c"]
    assert splits.root == str(tmp_path.resolve())
    assert splits.train_paths.tolist() == [b"p/q/0.png", b"p/q/1.png", b"p/q/3.png"]
    assert splits.train_targets.tolist() == [1, 0, 2]
    assert splits.val_paths.tolist() == [b"p/q/2.png", b"p/q/4.png"]  # "z" is not a train label
    assert splits.val_targets.tolist() == [1, 0]
    assert splits.val_dropped == 1


def test_read_grey_kinds(tmp_path: Path) -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    assert np.array_equal(read_grey(tmp_path / "g.png"), grey)
    deep = np.array([[0, 128, 385], [65535, 257, 1000]], dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    assert read_grey(tmp_path / "d.png").tolist() == [[0, 0, 1], [255, 1, 4]]  # round(v / 257)
    colour = np.zeros((2, 2, 3), np.uint8)
    colour[..., 1] = 200  # pure green in BGR → 0.587 * 200
    cv2.imwrite(str(tmp_path / "c.png"), colour)
    assert read_grey(tmp_path / "c.png").tolist() == [[117, 117], [117, 117]]
    with pytest.raises(Exception, match="cannot read this image"):
        read_grey(tmp_path / "missing.png")


def test_resize_square_area_down_linear_up() -> None:
    image = np.random.default_rng(0).integers(0, 64, (40, 40)).astype(np.uint8) * 4
    down = resize_square(image, 20)
    assert np.array_equal(down, image.reshape(20, 2, 20, 2).mean(axis=(1, 3)))  # exact averages
    assert resize_square(image, 40) is image
    up = resize_square(np.array([[0, 100], [0, 100]], np.uint8), 4)  # half-pixel bilinear
    assert up.tolist() == [[0, 25, 75, 100]] * 4
    mixed = resize_square(np.tile(np.array([0, 100], np.uint8), (8, 1)), 4)  # up in x, down in y
    assert mixed.tolist() == [[0, 25, 75, 100]] * 4


def _rotate_oracle(image: np.ndarray, angle: float) -> np.ndarray:
    """Inverse-map every output pixel, bilinear, half-sample mirror (scipy/Keras 'reflect')."""
    n = image.shape[0]
    c = (n - 1) / 2
    t = math.radians(angle)
    out = np.zeros_like(image, dtype=np.float64)

    def mirror(i: int) -> int:
        i = -i - 1 if i < 0 else i
        return 2 * n - 1 - i if i > n - 1 else i

    for y in range(n):
        for x in range(n):
            # cv2's positive angle turns the picture anticlockwise on screen
            sx = math.cos(t) * (x - c) - math.sin(t) * (y - c) + c
            sy = math.sin(t) * (x - c) + math.cos(t) * (y - c) + c
            x0, y0 = math.floor(sx), math.floor(sy)
            fx, fy = sx - x0, sy - y0
            acc = 0.0
            for dy, wy in ((0, 1 - fy), (1, fy)):
                for dx, wx in ((0, 1 - fx), (1, fx)):
                    acc += wy * wx * image[mirror(y0 + dy), mirror(x0 + dx)]
            out[y, x] = acc
    return out


def test_rotate_exact_turns_and_reflect_fill() -> None:
    image = (np.arange(36, dtype=np.uint8) * 7).reshape(6, 6)
    assert np.array_equal(rotate(image, 0), image)
    assert np.array_equal(rotate(image, 90), np.rot90(image, 1))
    assert np.array_equal(rotate(image, 180), image[::-1, ::-1])
    assert np.unique(rotate(np.full((9, 9), 77, np.uint8), 45)).tolist() == [77]  # no black
    ramp = np.tile(np.arange(9, dtype=np.uint8) * 20, (9, 1))
    got = rotate(ramp, 45).astype(np.int64)
    want = _rotate_oracle(ramp, 45)
    assert np.abs(got - want).max() <= 1  # cv2 uses 1/32-pixel fixed-point weights
    m = cv2.getRotationMatrix2D((4.0, 4.0), 45, 1.0)
    about_edge = cv2.warpAffine(ramp, m, (9, 9), borderMode=cv2.BORDER_REFLECT_101)
    assert np.abs(about_edge.astype(np.int64) - want).max() > 1  # the oracle tells them apart


def test_rotation_angle_is_a_function_of_seed_epoch_index() -> None:
    a = rotation_angle(0, 1, 5)
    assert a == rotation_angle(0, 1, 5)
    assert a == float(np.random.default_rng([0, 1, 5]).uniform(0, 360))
    angles = {rotation_angle(s, e, i) for s in (0, 1) for e in (1, 2) for i in range(5)}
    assert len(angles) == 20 and all(0 <= x < 360 for x in angles)


def test_image_dataset_items(dataset: Path) -> None:
    splits = read_splits(dataset)
    plain = ImageDataset(
        splits.root, splits.train_paths, splits.train_targets, 32, augment=False, seed=0
    )
    aug = ImageDataset(
        splits.root, splits.train_paths, splits.train_targets, 32, augment=True, seed=0
    )
    assert len(plain) == 18
    x, y = plain[4]
    assert x.dtype == torch.uint8 and tuple(x.shape) == (1, 32, 32)
    assert y == int(splits.train_targets[4])
    for index, shape, how in ((0, (40, 40), cv2.INTER_AREA), (4, (28, 52), cv2.INTER_LINEAR)):
        raw = cv2.imread(str(dataset / splits.train_paths[index].decode()), cv2.IMREAD_UNCHANGED)
        assert raw.shape == shape
        want = cv2.resize(raw, (32, 32), interpolation=how)
        assert np.array_equal(plain[index][0][0].numpy(), want)
    first, again = aug[(1, 4)][0], aug[(1, 4)][0]
    assert torch.equal(first, again)
    turned = rotate(x[0].numpy(), rotation_angle(0, 1, 4))
    assert np.array_equal(first[0].numpy(), turned)
    assert not torch.equal(first, aug[(2, 4)][0])


def test_epoch_sampler_order_and_shards() -> None:
    one = EpochSampler(10, seed=3)
    one.set_epoch(2)
    keys = list(one)
    assert [e for e, _ in keys] == [2] * 10
    order = [i for _, i in keys]
    g = torch.Generator()
    g.manual_seed(3 + 2)  # DistributedSampler's rule
    assert order == torch.randperm(10, generator=g).tolist()
    one.set_epoch(3)
    assert [i for _, i in one] != order
    shards = []
    for rank in (0, 1, 2):
        s = EpochSampler(10, seed=3, rank=rank, world_size=3)
        s.set_epoch(2)
        shards.append([i for _, i in s])
    assert [len(s) for s in shards] == [3, 3, 3]  # the tail is dropped so shares are equal
    union = {i for shard in shards for i in shard}
    assert len(union) == 9 and union <= set(range(10))


def test_shard_sampler_covers_each_index_once() -> None:
    parts = [list(ShardSampler(7, rank=r, world_size=3)) for r in range(3)]
    assert parts == [[0, 3, 6], [1, 4], [2, 5]]
    assert len(ShardSampler(7, rank=1, world_size=3)) == 2


# --- metrics ----------------------------------------------------------------------------------


def _topk_oracle(logits: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    order = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return np.array([t in row for t, row in zip(targets, order, strict=True)])


def test_topk_hits_against_argsort() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(50, 9))
    targets = rng.integers(0, 9, 50)
    for k in (1, 3, 5, 9):
        got = topk_hits(torch.from_numpy(logits), torch.from_numpy(targets), k).numpy()
        assert np.array_equal(got, _topk_oracle(logits, targets, k))


def test_topk_hits_ties_count_and_nan_misses() -> None:
    logits = torch.tensor([[1.0, 1.0, 0.0], [2.0, 1.0, 1.0], [math.nan, 0.0, 0.0]])
    targets = torch.tensor([1, 2, 0])
    assert topk_hits(logits, targets, 1).tolist() == [True, False, False]
    assert topk_hits(logits, targets, 2).tolist() == [True, True, False]


def test_class_counts_and_classes_without_correct() -> None:
    targets = torch.tensor([0, 0, 1, 3, 3, 3])
    hits = torch.tensor([True, False, False, True, True, False])
    n, correct = class_counts(targets, hits, 5)
    assert n.tolist() == [2, 1, 0, 3, 0] and correct.tolist() == [1, 0, 0, 2, 0]
    assert classes_without_correct(n.tolist(), correct.tolist()) == 1  # class 1; 2 and 4 empty


def test_epoch_totals_equal_whole_epoch_oracle() -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(23, 7)).astype(np.float32)
    targets = rng.integers(0, 7, 23)
    losses = rng.random(23)
    totals = EpochTotals(7)
    for lo in range(0, 23, 5):
        sl = slice(lo, lo + 5)
        totals.update(
            torch.tensor(losses[sl].sum()),
            torch.from_numpy(logits[sl]),
            torch.from_numpy(targets[sl]),
        )
    s = totals.summary()
    top1 = _topk_oracle(logits, targets, 1)
    assert s.n == 23
    assert s.loss == pytest.approx(losses.sum() / 23, rel=1e-12)
    assert s.top1 == top1.mean() and s.top5 == _topk_oracle(logits, targets, 5).mean()
    assert s.class_n == np.bincount(targets, minlength=7).tolist()
    assert s.class_correct == np.bincount(targets[top1], minlength=7).tolist()
    empty = EpochTotals(3).summary()
    assert empty.n == 0 and math.isnan(empty.loss) and math.isnan(empty.top1)


def test_append_rows_and_keep_epochs(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    append_rows(path, ("epoch", "x", "y"), [{"epoch": 1, "x": 0.1, "y": math.nan}])
    append_rows(
        path,
        ("epoch", "x", "y"),
        [{"epoch": 2, "x": 1 / 3, "y": None}, {"epoch": 3, "x": 2, "y": 5}],
    )
    assert path.read_text().splitlines() == [
        "epoch,x,y", "1,0.1,", "2,0.3333333333333333,", "3,2,5"
    ]  # fmt: skip
    assert keep_epochs(path, 3) == 0
    assert keep_epochs(path, 1) == 2
    assert path.read_text().splitlines() == ["epoch,x,y", "1,0.1,"]
    assert keep_epochs(tmp_path / "absent.csv", 1) == 0


# --- the loop ---------------------------------------------------------------------------------


def test_two_step_run_writes_everything(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_pretrain(make_job(dataset, out, epochs=1, max_steps=2), progress=False)
    assert result.labels == ["label-0", "label-1", "label-2"]
    assert result.settings["train_images"] == 18 and result.settings["val_images"] == 6
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert files == {
        "config.json",
        "provenance.json",
        "metrics.csv",
        "per_class_val.csv",
        "checkpoints/epoch_001.pt",
        "checkpoints/last.pt",
    }
    rows = read_csv(out / "metrics.csv")
    assert list(rows[0]) == list(METRIC_COLUMNS) and len(rows) == 1
    assert rows[0]["epoch"] == "1" and float(rows[0]["lr"]) == 1e-3
    assert 0 <= float(rows[0]["val_top1"]) <= float(rows[0]["val_top5"]) == 1.0  # 3 classes
    per_class = read_csv(out / "per_class_val.csv")
    assert list(per_class[0]) == list(PER_CLASS_COLUMNS)
    assert [r["label"] for r in per_class] == result.labels
    assert sum(int(r["n"]) for r in per_class) == 1 * 6  # max_steps also caps val batches
    missed = sum(1 for r in per_class if r["correct"] == "0")
    assert rows[0]["classes_without_correct"] == str(missed)
    ckpt = load(out / "checkpoints" / "last.pt")
    assert ckpt["format"] == CHECKPOINT_FORMAT and ckpt["model_name"] == MODEL
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == 2  # 2 of the 3 batches
    assert ckpt["labels"] == result.labels and ckpt["num_classes"] == 3
    assert ckpt["optimizer"]["state"][0]["step"].item() == 2.0
    assert ckpt["fingerprint"]["metadata_sha256"] and ckpt["metrics"]["epoch"] == 1
    assert (out / "checkpoints" / "last.pt").read_bytes() == (
        out / "checkpoints" / "epoch_001.pt"
    ).read_bytes()


def test_resume_is_bit_identical(dataset: Path, reference, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = run_pretrain(make_job(dataset, out, epochs=1), progress=False)
    assert first.epoch == 1 and first.start_epoch == 0
    # a run killed after writing epoch 2's metrics but before its checkpoint
    append_rows(out / "metrics.csv", METRIC_COLUMNS, [{"epoch": 2, "lr": 9.0}])
    second = run_pretrain(make_job(dataset, out, epochs=2), progress=False)
    assert second.start_epoch == 1 and second.epoch == 2
    want, got = load(reference.checkpoint), load(out / "checkpoints" / "last.pt")
    assert want["state_dict"].keys() == got["state_dict"].keys()
    for key, value in want["state_dict"].items():
        assert torch.equal(value, got["state_dict"][key]), key
    for index, state in want["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, got["optimizer"]["state"][index][name]), (index, name)
    assert got["global_step"] == want["global_step"] == 6
    timing = {"seconds", "images_per_s"}
    strip = [{k: v for k, v in r.items() if k not in timing} for r in read_csv(out / "metrics.csv")]
    ref_rows = read_csv(reference.out / "metrics.csv")
    assert strip == [{k: v for k, v in r.items() if k not in timing} for r in ref_rows]
    assert read_csv(out / "per_class_val.csv") == read_csv(reference.out / "per_class_val.csv")


def test_finished_run_does_nothing_and_other_settings_are_refused(
    dataset: Path, reference, tmp_path: Path
) -> None:
    again = run_pretrain(make_job(dataset, reference.out), progress=False)
    assert again.rows == [] and again.epoch == 2
    with pytest.raises(ConfigError, match=r"other settings \(lr: 0.001 → 0.01\)"):
        run_pretrain(make_job(dataset, reference.out, lr=0.01, epochs=3), progress=False)
    state = load(reference.checkpoint)
    changed = {**state["fingerprint"], "seed": 5}
    with pytest.raises(ConfigError, match="seed: 0 → 5"):
        read_resume_state(reference.out / "checkpoints" / "last.pt", changed)
    (tmp_path / "stranger.txt").write_text("x")
    with pytest.raises(ConfigError, match="not empty and holds no pretraining run"):
        run_pretrain(make_job(dataset, tmp_path), progress=False)


def test_checkpoint_round_trip_gives_identical_features(reference) -> None:
    trained = reference.backbone.model.eval()
    loaded = create_backbone(weights=reference.checkpoint)
    assert loaded.name == MODEL and loaded.num_features == reference.backbone.num_features
    assert loaded.mean == reference.backbone.mean and loaded.std == reference.backbone.std
    assert loaded.extra["labels"] == ["label-0", "label-1", "label-2"]
    x = torch.rand(3, 1, 32, 32)
    # The run trained channels-last (auto on CPU too); compare with the same kernels.
    loaded.model.to(memory_format=torch.channels_last)
    with torch.no_grad():
        want = trained.forward_head(trained.forward_features(x), pre_logits=True)
        got = loaded.model.eval()(x)
    assert torch.equal(want, got)


def test_worker_processes_give_the_same_weights(dataset: Path, reference, tmp_path: Path) -> None:
    result = run_pretrain(make_job(dataset, tmp_path / "run", workers=2), progress=False)
    want, got = load(reference.checkpoint), load(result.checkpoint)
    assert all(torch.equal(v, got["state_dict"][k]) for k, v in want["state_dict"].items())
