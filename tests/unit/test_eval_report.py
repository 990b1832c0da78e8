"""The results report: cell format, the paper-style table (golden), figures, UMAP extra."""

from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from cytoimagenet.errors import ConfigError, CytoImageNetError, SchemaError
from cytoimagenet.evaluation.figures import (
    MissingExtraError,
    confusion_figure,
    require_umap,
    umap_figure,
)
from cytoimagenet.evaluation.report import (
    format_cell,
    read_result,
    results_grid,
    results_table,
)

BBBC021_DESC = "DMSO dropped; z-score; treatment mean; cosine 1-NN, not the same compound (NSC)."
STANDARD_DESC = "Per-plate z-score against DMSO; treatment mean; cosine 1-NN; NSC and NSCB."
COOS7_DESC = "z-score on train; Euclidean 11-NN fitted on train; accuracy per test set."
CYCLOPS_DESC = "z-score; Euclidean 11-NN, leave-one-out."


def wald(correct: int, n: int) -> dict[str, Any]:
    p = correct / n
    half = 1.96 * math.sqrt(p * (1 - p) / n)
    return {"method": "wald", "low": p - half, "high": p + half, "half_width": half}


def wilson(correct: int, n: int) -> dict[str, Any]:
    p, z = correct / n, 1.96
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {"method": "wilson", "low": centre - half, "high": centre + half}


def score(correct: int, n: int, ci: Any = wald, labels: list[str] | None = None) -> dict:
    out = {"accuracy": correct / n, "correct": correct, "n": n, "ci95": ci(correct, n)}
    if labels:
        k = len(labels)
        matrix = np.zeros((k, k), dtype=int)
        for i in range(n):  # spread: `correct` on the diagonal, the rest one class off
            t = i % k
            matrix[t, t if i < correct else (t + 1) % k] += 1
        out |= {"labels": labels, "confusion": matrix.tolist()}
    return out


def result(
    benchmark: str, feature_set: str, protocol: str, desc: str, scores: dict[str, dict], **kw: Any
) -> dict[str, Any]:
    primary = next(iter(scores))
    return {
        "format": "cytoimagenet-result/1",
        "benchmark": benchmark,
        "feature_set": feature_set,
        "features": f"{feature_set}.parquet",
        "features_sha256": "0" * 64,
        "protocol": {"name": protocol, "description": desc, **kw},
        "primary": primary,
        **{k: scores[primary][k] for k in ("accuracy", "correct", "n", "ci95")},
        "scores": scores,
        "versions": {"cytoimagenet": "0.0.0"},
        "created": "2025-01-01T00:00:00Z",
    }


def paper_results() -> list[dict[str, Any]]:
    """The paper's Table 2 counts, plus a standard-protocol BBBC021 run with Wilson CIs."""
    out = []
    bbbc = {"Random": 28, "ImageNet": 86, "CytoImageNet": 86, "Fusion": 89}
    cyclops = {"Random": 14357, "ImageNet": 18527, "CytoImageNet": 17639, "Fusion": 21097}
    for name in bbbc:
        out.append(
            result(
                "bbbc021",
                name,
                "cytoimagenet",
                BBBC021_DESC,
                {"nsc": score(bbbc[name], 103)},
                metric="cosine",
                k=1,
            )
        )
        out.append(
            result(
                "cyclops", name, "cyclops", CYCLOPS_DESC, {"loo": score(cyclops[name], 27058)}, k=11
            )
        )
    coos = {"ImageNet": (9064, 9075), "Fusion": (9670, 9700)}
    for name, (a, b) in coos.items():
        tests = {f"test{i}": score(a + 5 * i, 10200) for i in (1, 2)}
        tests |= {f"test{i}": score(b - 7 * i, 17100) for i in (3, 4)}
        out.append(result("coos7", name, "coos7", COOS7_DESC, tests, k=11))
    out.append(
        result(
            "bbbc021",
            "ImageNet",
            "standard",
            STANDARD_DESC,
            {"nsc": score(88, 103, wilson), "nscb": score(70, 92, wilson)},
        )
    )
    return out


GOLDEN = """\
| Benchmark | Protocol | n | Random | ImageNet | CytoImageNet | Fusion |
| --- | --- | ---: | ---: | ---: | ---: | ---: |
| BBBC021 | cytoimagenet | 103 | 27.18 ± 8.59 | 83.50 ± 7.17 | 83.50 ± 7.17 | **86.41 ± 6.62** |
| BBBC021 NSC | standard | 103 | — | 85.44 [77.35, 90.97] | — | — |
| BBBC021 NSCB | standard | 92 | — | 76.09 [66.44, 83.64] | — | — |
| CYCLoPs | cyclops | 27058 | 53.06 ± 0.59 | 68.47 ± 0.55 | 65.19 ± 0.57 | **77.97 ± 0.49** |
| COOS-7 test1 | coos7 | 10200 | — | 88.91 ± 0.61 | — | **94.85 ± 0.43** |
| COOS-7 test2 | coos7 | 10200 | — | 88.96 ± 0.61 | — | **94.90 ± 0.43** |
| COOS-7 test3 | coos7 | 17100 | — | 52.95 ± 0.75 | — | **56.60 ± 0.74** |
| COOS-7 test4 | coos7 | 17100 | — | 52.91 ± 0.75 | — | **56.56 ± 0.74** |

kNN accuracy in % with its 95 % confidence interval: ± the half-width where the interval \
is symmetric, [low, high] where it is not. Best per row in **bold**. n = items scored \
(treatments, images or cells).

### Protocols

- **BBBC021 · cytoimagenet**: DMSO dropped; z-score; treatment mean; cosine 1-NN, not the \
same compound (NSC).
  Settings: `metric=cosine, k=1`.
  Confidence interval: wald.
- **BBBC021 · standard**: Per-plate z-score against DMSO; treatment mean; cosine 1-NN; NSC \
and NSCB.
  Confidence interval: wilson.
- **CYCLoPs · cyclops**: z-score; Euclidean 11-NN, leave-one-out.
  Settings: `k=11`.
  Confidence interval: wald.
- **COOS-7 · coos7**: z-score on train; Euclidean 11-NN fitted on train; accuracy per test set.
  Settings: `k=11`.
  Confidence interval: wald.
"""


def test_paper_cis_reproduce() -> None:
    # The paper's BBBC021 row: 28, 86 and 89 of 103 treatments with Wald CIs.
    assert format_cell(score(86, 103)) == "83.50 ± 7.17"
    assert format_cell(score(28, 103)) == "27.18 ± 8.59"
    assert format_cell(score(89, 103)) == "86.41 ± 6.62"


def test_cell_formats() -> None:
    assert format_cell({"accuracy": 0.5, "ci95": {"low": 0.4, "high": 0.55}}) == (
        "50.00 [40.00, 55.00]"
    )
    assert format_cell({"accuracy": 0.5, "ci95": {"half_width": 0.1}}) == "50.00 ± 10.00"
    assert format_cell({"accuracy": 0.25}) == "25.00"
    # A Wald interval clipped at 100 % still reads as ± half-width, as evaluate prints it.
    clipped = {"accuracy": 0.99, "ci95": {"low": 0.97, "high": 1.0, "half_width": 0.02}}
    assert format_cell(clipped) == "99.00 ± 2.00"
    # An asymmetric interval that carries a half_width is still shown as its bounds.
    wide = {"accuracy": 0.9, "ci95": {"low": 0.8, "high": 0.95, "half_width": 0.075}}
    assert format_cell(wide) == "90.00 [80.00, 95.00]"
    assert format_cell({"accuracy": None}) == "—"
    # Symmetric at the printed precision but without a half_width: derived from the bounds.
    assert format_cell({"accuracy": 0.5, "ci95": {"low": 0.45, "high": 0.55}}) == "50.00 ± 5.00"


def test_golden_table() -> None:
    assert results_table(paper_results()) == GOLDEN


def test_grid_bolds_ties_and_not_lone_cells() -> None:
    results = [
        result("coos7", "A", "coos7", COOS7_DESC, {"test1": score(50, 100)}),
        result("coos7", "B", "coos7", COOS7_DESC, {"test1": score(50, 100)}),
        result("cyclops", "A", "cyclops", CYCLOPS_DESC, {"loo": score(10, 20)}),
    ]
    results[1]["protocol"]["feature_columns"] = 512  # per feature set, not a protocol split
    grid = results_grid(results)
    assert grid.header == ["Benchmark", "Protocol", "n", "A", "B"]
    coos = grid.protocols[1]
    assert coos.settings == {} and coos.varying == ("feature_columns",)
    assert "Varies by feature set: feature_columns." in results_table(results)
    assert [r[0] for r in grid.rows] == ["CYCLoPs", "COOS-7"]
    assert grid.bold == {(1, 3), (1, 4)}  # tie on COOS-7 bold twice; lone CYCLoPs cell plain


def test_same_protocol_name_with_other_settings_gets_its_own_row() -> None:
    a = result("cyclops", "A", "cyclops", "11-NN", {"loo": score(10, 20)})
    b = result("cyclops", "A", "cyclops", "5-NN", {"loo": score(12, 20)})
    grid = results_grid([a, b])
    assert [r[1] for r in grid.rows] == ["cyclops (1)", "cyclops (2)"]
    assert [p.description for p in grid.protocols] == ["11-NN", "5-NN"]
    with pytest.raises(ConfigError, match="two results for CYCLoPs cyclops loo of feature set 'A'"):
        results_grid([a, a])
    with pytest.raises(ConfigError, match="no results"):
        results_grid([])


def test_free_text_benchmark_and_headline_only_result() -> None:
    r = result("my screen", "X|Y", "score", "held-out accuracy\nper image", {"acc": score(3, 4)})
    del r["scores"]
    table = results_table([r])
    assert "| my screen | score | 4 | 75.00 ± 42.44 |" in table and "X\\|Y" in table
    assert "- **my screen · score**: held-out accuracy\n  per image\n" in table


def test_read_result_checks_the_file(tmp_path: Path) -> None:
    good = tmp_path / "r.json"
    good.write_text(json.dumps(paper_results()[0]))
    assert read_result(good)["feature_set"] == "Random"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SchemaError, match=r"bad\.json: not a readable JSON result"):
        read_result(bad)
    bad.write_text(json.dumps({"format": "other/2"}))
    with pytest.raises(SchemaError, match=r"result/1 result \(format='other/2'\)"):
        read_result(bad)
    bad.write_text(json.dumps({"format": "cytoimagenet-result/1", "benchmark": "coos7"}))
    with pytest.raises(SchemaError, match=r"missing field\(s\) \['feature_set', 'protocol'"):
        read_result(bad)
    with pytest.raises(SchemaError, match="no such result file"):
        read_result(tmp_path / "absent.json")


def test_confusion_figure_png(tmp_path: Path) -> None:
    plt = pytest.importorskip("matplotlib.pyplot")
    labels = [f"class {i}" for i in range(17)]
    s = score(80, 170, labels=labels)
    path = confusion_figure(labels, s["confusion"], "CYCLoPs — test", tmp_path / "f" / "c.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = plt.imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) > 300
    with pytest.raises(ConfigError, match="must be 2x2"):
        confusion_figure(["a", "b"], [[1, 2, 3]], "bad", tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_umap_missing_extra_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "umap", None)  # import umap raises ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'cytoimagenet\[umap\]'") as err:
        require_umap()
    assert isinstance(err.value, ImportError) and isinstance(err.value, CytoImageNetError)


def test_umap_figure_with_a_stand_in_umap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    class StandIn:  # projects on the first two features: enough to exercise the plotting
        def __init__(self, random_state: int) -> None:
            seen["seed"] = random_state

        def fit_transform(self, x: np.ndarray) -> np.ndarray:
            seen["shape"] = x.shape
            return x[:, :2]

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=StandIn))
    rng = np.random.default_rng(0)
    table = pl.DataFrame(
        {"Metadata_Label": ["a", "b", None] * 10, "Metadata_Plate": ["p"] * 30}
        | {f"feature_{i}": rng.normal(size=30) for i in range(4)}
    )
    table.write_parquet(tmp_path / "f.parquet")
    path = umap_figure(tmp_path / "f.parquet", tmp_path / "u.png", seed=3, max_points=15)
    assert path.read_bytes()[:4] == b"\x89PNG" and seen == {"seed": 3, "shape": (15, 4)}
    with pytest.raises(ConfigError, match="no label column"):
        umap_figure(tmp_path / "f.parquet", tmp_path / "v.png", label_column="Metadata_MoA")
