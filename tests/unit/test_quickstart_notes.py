"""What the quickstart report says beside its numbers, and how its figures stay readable."""

from __future__ import annotations

import shlex
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from cytoimagenet.evaluation.figures import draw_confusion
from cytoimagenet.quickstart.notes import small_n_caveat, transfer_checkpoint, validation_loss
from cytoimagenet.quickstart.reproduce import reproduce_commands
from cytoimagenet.quickstart.run import Run
from cytoimagenet.reporting.figures import pca_2d, robust_scale, view_limits

HEADER = "epoch,train_loss,train_top1,val_loss,val_top1\n"


def _run(tmp_path: Path, val_losses: list[str]) -> Path:
    pretrain = tmp_path / "pretrain"
    (pretrain / "checkpoints").mkdir(parents=True)
    rows = [f"{e},{2 - 0.1 * e},0.5,{v},0.4" for e, v in enumerate(val_losses, start=1)]
    (pretrain / "metrics.csv").write_text(HEADER + "\n".join(rows) + "\n")
    for e in range(1, len(val_losses) + 1):
        (pretrain / "checkpoints" / f"epoch_{e:03d}.pt").write_bytes(b"x")
    (pretrain / "checkpoints" / "last.pt").write_bytes(b"x")
    return pretrain


def test_rising_validation_loss_is_reported_and_the_best_epoch_transferred(
    tmp_path: Path,
) -> None:
    pretrain = _run(tmp_path, ["1.4", "1.2", "", "1.3", "1.6"])  # epoch 3 not validated
    summary = validation_loss(pretrain / "metrics.csv")
    assert summary is not None and summary.rose
    assert (summary.best_epoch, summary.last_epoch, summary.epochs) == (2, 5, 5)
    text = summary.paragraph()
    assert "rose over the run: lowest at epoch 2 of 5 (1.200" in text
    assert "1.600 at epoch 5 (+0.400, +33 %)" in text and "training loss kept falling" in text
    assert "epoch_002.pt" in text and "not from last.pt" in text
    assert summary.line().endswith("features from epoch_002.pt")
    assert transfer_checkpoint(pretrain) == pretrain / "checkpoints" / "epoch_002.pt"


def test_falling_validation_loss_transfers_the_last_epoch(tmp_path: Path) -> None:
    pretrain = _run(tmp_path, ["1.4", "1.2", "1.2", "1.1"])
    summary = validation_loss(pretrain / "metrics.csv")
    assert summary is not None and not summary.rose and summary.best_epoch == 4
    assert "lowest at the last epoch (4: 1.100)" in summary.paragraph()
    assert transfer_checkpoint(pretrain).name == "epoch_004.pt"
    # a tie keeps the earlier epoch
    tied = _run(tmp_path / "tie", ["1.2", "1.2"])
    assert validation_loss(tied / "metrics.csv").best_epoch == 1  # type: ignore[union-attr]


def test_without_validation_or_the_epoch_file_last_pt_is_transferred(tmp_path: Path) -> None:
    pretrain = _run(tmp_path, ["", ""])
    assert validation_loss(pretrain / "metrics.csv") is None
    assert transfer_checkpoint(pretrain).name == "last.pt"
    pruned = _run(tmp_path / "pruned", ["1.0", "2.0"])
    (pruned / "checkpoints" / "epoch_001.pt").unlink()
    assert transfer_checkpoint(pruned).name == "last.pt"
    assert validation_loss(tmp_path / "missing.csv") is None


def _result(name: str, correct: int, n: int = 12) -> dict[str, object]:
    from cytoimagenet.evaluation.stats import wald_interval, wilson_interval

    p = correct / n
    wald, wilson = wald_interval(correct, n), wilson_interval(correct, n)
    score = {"accuracy": p, "n": n, "ci95": wald, "extra": {"wilson_ci95": wilson}}
    return {"feature_set": name, "primary": "nsc", "accuracy": p, "n": n, "ci95": wald,
            "scores": {"nsc": score}}  # fmt: skip


def test_small_n_caveat_says_what_one_item_is_and_whether_intervals_overlap() -> None:
    close = [_result("A", 7), _result("B", 11), _result("C", 12)]
    text = small_n_caveat(close)
    assert text is not None and text.startswith("n = 12 treatments: one treatment is 8.33 points")
    # Wald's interval of 12/12 is [1, 1]: Wilson's says it still overlaps 7/12
    assert "all 3 Wilson 95 % intervals overlap" in text and "Wald ± is 0 wide" in text
    assert "does not rank these feature sets" in text
    apart = small_n_caveat([_result("A", 10, 200), _result("B", 190, 200)])
    assert apart == (
        "n = 200 treatments: one treatment is 0.50 points; the Wilson 95 % intervals of A "
        "and B do not overlap, those of every other pair do."
    )
    assert small_n_caveat([]) is None
    assert small_n_caveat([_result("A", 3)]) == "n = 12 treatments: one treatment is 8.33 points."


def test_reproduce_block_is_complete_and_shell_safe(tmp_path: Path) -> None:
    run = Run(tmp_path / "my run", "tiny", seed=3, workers=1, progress=False)
    lines = reproduce_commands(run)
    commands = [shlex.split(line) for line in lines if line.startswith("cytoimagenet ")]
    verbs = [c[1] for c in commands]
    # every stage, in order: the evaluation screen's `sample --kind bbbc021` included
    assert verbs[:5] == ["sample", "metadata", "labels", "build", "pretrain"]
    assert verbs[5:7] == ["sample", "benchmark-images"] and verbs[-1] == "report"
    assert commands[5][2:4] == ["--kind", "bbbc021"]
    assert "--dmso-wells" in commands[5] and "--cells" in commands[0]
    assert [c[c.index("--model") + 1] for c in commands if c[1] == "extract"][:2] == [
        "random",
        "intensity",
    ]
    assert all(c[c.index("--seed") + 1] == "3" for c in commands if c[1] in ("sample", "pretrain"))
    # quoted paths survive the space in the folder name
    assert str(run.out / "raw/sample") in commands[0]
    assert lines[1].startswith("export ONEDNN_MAX_CPU_ISA=AVX2")


def test_robust_feature_map_is_not_owned_by_one_outlier() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat([0.0, 3.0], 50)
    signal = groups[:, None] + rng.normal(0, 0.3, (100, 3))
    x = np.column_stack([signal, rng.normal(size=(100, 3))])
    x[0] = 1e4  # one broken field in every feature
    z = robust_scale(x)
    assert np.abs(z).max() == 5.0 and np.allclose(np.median(z, axis=0), 0, atol=1e-9)
    coords, _ = pca_2d(x)
    plain, _ = pca_2d(x, robust=False)

    def squashed(c: np.ndarray) -> float:  # outlier's distance over the others' spread
        return float(np.abs(c[0]).max() / np.abs(c[1:]).max())

    # plain z-scores squash the 99 good fields into a dot beside the outlier
    assert squashed(plain) > 50 and squashed(coords) < 10
    assert abs(np.corrcoef(coords[1:, 0], groups[1:])[0, 1]) > 0.8  # the groups, apart
    low, high = view_limits(coords)
    outside = ((coords < low) | (coords > high)).any(axis=1)
    assert outside[0] and outside[1:].sum() <= 4  # the view is the bulk, not the outlier


@pytest.mark.parametrize("k", [3, 13])
def test_confusion_matrix_labels_do_not_overlap_and_every_cell_has_its_count(k: int) -> None:
    names = ["Actin disruptors", "Microtubule destabilizers", "Aurora kinase inhibitors",
             "DNA damage", "Cholesterol-lowering", "Protein synthesis", "DMSO", "Epithelial",
             "Eg5 inhibitors", "Kinase inhibitors", "Microtubule stabilizers",
             "Protein degradation", "DNA replication"][:k]  # fmt: skip
    counts = np.random.default_rng(k).integers(0, 5, (k, k)) + 6 * np.eye(k, dtype=int)
    fig = draw_confusion(names, counts.tolist(), "title")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    ax = fig.axes[0]
    for ticks in (ax.get_xticklabels(), ax.get_yticklabels()):
        assert len(ticks) == k
        for a, b in pairwise(ticks):
            box_a, box_b = a.get_window_extent(renderer), b.get_window_extent(renderer)
            angle = np.deg2rad(a.get_rotation())
            if angle == 0:
                assert not box_a.overlaps(box_b), (a.get_text(), k)
            else:  # slanted: neighbours a tick apart, across the text, clear a line height
                apart = abs(box_b.x1 - box_a.x1) * np.sin(angle)
                line = 1.2 * a.get_fontsize() * fig.dpi / 72
                assert apart > line, (a.get_text(), apart, line)
    cells = [t.get_text() for t in ax.texts]
    assert cells == [str(v) for v in counts.ravel()]  # zeros too
    width, height = fig.get_size_inches()
    assert 4 <= width <= 14 and 3 <= height <= 14
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_sample_job_takes_cells_and_dmso_wells_for_the_reproduce_block(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from cytoimagenet.config import SampleJob

    job = SampleJob(out=tmp_path / "s", kind="bbbc021", cells=4, dmso_wells=2)
    assert (job.cells, job.dmso_wells) == (4, 2)
    assert SampleJob(out=tmp_path / "s").cells is None  # the kind's own default
    with pytest.raises(ValidationError, match="--dmso-wells is for --kind bbbc021"):
        SampleJob(out=tmp_path / "s", kind="source", dmso_wells=2)
