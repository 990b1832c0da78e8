"""The paper-style results table: rows are benchmarks (and scores), columns are feature sets.

Reads RESULT.json files (``cytoimagenet-result/1``, written by ``evaluate`` and ``score``)
and renders every number next to the protocol that produced it. :func:`results_grid` is
the pure core (cells, bold marks, protocol groups) for any renderer; :func:`results_table`
renders it as Markdown. :func:`read_result` is :func:`cytoimagenet.evaluation.result.read_result`
(re-exported here for the readers of reports).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from cytoimagenet.errors import ConfigError
from cytoimagenet.evaluation.mean_ap import format_map
from cytoimagenet.evaluation.result import read_result as read_result  # re-exported

BENCHMARK_TITLES: Final = {
    "bbbc021": "BBBC021",
    "cyclops": "CYCLoPs",
    "coos7": "COOS-7",
    "bbbc014": "BBBC014",
    "profiles": "Profiles",
}
MAP_KINDS: Final = ("activity", "consistency")
#: Score keys written in capitals in row labels (NSC, NSCB …); others stay as written.
ACRONYMS: Final = frozenset({"nsc", "nscb", "nsb", "loo"})
EMPTY: Final = "—"
LEGEND: Final = (
    "kNN accuracy in % with its 95 % confidence interval: ± the half-width where the "
    "interval is symmetric, [low, high] where it is not. Best per row in **bold**. "
    "n = items scored (treatments, images or cells)."
)
MAP_LEGEND: Final = (
    " mAP rows: copairs' mean average precision averaged over the groups (treatments for "
    "activity, MoAs for consistency), with how many groups are significant at the FDR level; "
    "n = groups."
)


def scores_of(result: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """Return ``(key, score)`` pairs in file order; the headline alone when none is listed."""
    scores = result.get("scores") or {}
    if scores:
        return list(scores.items())
    if result.get("accuracy") is None and result.get("map"):
        return []  # an mAP-only result (evaluate profiles)
    return [(str(result.get("primary") or "accuracy"), result)]


def map_entries(result: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """Return ``(kind, entry)`` of the result's mAP analyses (activity, consistency)."""
    block = result.get("map") or {}
    return [(kind, block[kind]) for kind in MAP_KINDS if block.get(kind)]


def format_cell(score: Mapping[str, Any]) -> str:
    """Return ``83.50 ± 7.17`` (symmetric CI), ``83.50 [76.1, 89.9]`` or the bare accuracy.

    Examples
    --------
    >>> format_cell({"accuracy": 86 / 103, "ci95": {"low": 0.7632, "high": 0.9067,
    ...                                            "half_width": 0.07172}})
    '83.50 ± 7.17'
    >>> format_cell({"accuracy": 0.5, "ci95": {"low": 0.4, "high": 0.55}})
    '50.00 [40.00, 55.00]'
    """
    acc = score.get("accuracy")
    if acc is None:
        return EMPTY
    text = f"{100 * acc:.2f}"
    ci = score.get("ci95") or {}
    low, high, half = ci.get("low"), ci.get("high"), ci.get("half_width")
    if low is None or high is None:
        return text if half is None else f"{text} ± {100 * half:.2f}"
    # Symmetric at the printed precision (0.01 percentage points) reads as ± half-width; so
    # does a Wald interval clipped to [0, 1], as evaluate prints it.
    if half is not None:
        clipped = abs(low - max(0.0, acc - half)) < 5e-5 and abs(high - min(1.0, acc + half)) < 5e-5
        if clipped:
            return f"{text} ± {100 * half:.2f}"
    if abs((acc - low) - (high - acc)) < 5e-5:
        return f"{text} ± {100 * (high - low) / 2:.2f}"
    return f"{text} [{100 * low:.2f}, {100 * high:.2f}]"


@dataclass(frozen=True)
class ProtocolGroup:
    """One protocol as run on one benchmark (same name and same description).

    ``settings`` holds the resolved settings every result of the group shares; ``varying``
    names those that differ between its results (e.g. the feature count).
    """

    benchmark: str
    name: str
    description: str
    settings: dict[str, Any]
    label: str
    ci_methods: tuple[str, ...] = ()
    varying: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResultsGrid:
    """The results table before rendering.

    Attributes
    ----------
    header : list of str
        ``Benchmark``, ``Protocol``, ``n``, then one column per feature set.
    rows : list of list of str
        Formatted cells.
    bold : frozenset of (int, int)
        ``(row, column)`` cells holding the best accuracy of their row.
    protocols : list of ProtocolGroup
        Each protocol once, in table order.
    """

    header: list[str]
    rows: list[list[str]]
    bold: frozenset[tuple[int, int]]
    protocols: list[ProtocolGroup] = field(default_factory=list)


def benchmark_title(benchmark: str) -> str:
    """Return the display name of a benchmark (free text for ``score`` results stays as is)."""
    return BENCHMARK_TITLES.get(benchmark, benchmark)


def score_title(key: str) -> str:
    """Return a score key as a row label shows it (``nscb`` → ``NSCB``, ``test1`` stays)."""
    return key.upper() if key in ACRONYMS else key


def _group_key(result: Mapping[str, Any]) -> tuple[str, str, str]:
    protocol = result["protocol"]
    if isinstance(protocol, str):
        return str(result["benchmark"]), protocol, ""
    return str(result["benchmark"]), str(protocol.get("name", "")), protocol.get("description", "")


def _groups(results: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, str], ProtocolGroup]:
    keys: list[tuple[str, str, str]] = []
    methods: dict[tuple[str, str, str], list[str]] = {}
    for result in results:
        key = _group_key(result)
        if key not in keys:
            keys.append(key)
        for _, score in scores_of(result):
            method = (score.get("ci95") or {}).get("method")
            if method and method not in methods.setdefault(key, []):
                methods[key].append(method)
    groups = {}
    for key in keys:
        twins = [k for k in keys if k[:2] == key[:2]]
        label = key[1] if len(twins) == 1 else f"{key[1]} ({twins.index(key) + 1})"
        protocols = [
            r["protocol"] if isinstance(r["protocol"], dict) else {}
            for r in results
            if _group_key(r) == key
        ]
        names = [k for k in protocols[0] if k not in ("name", "description")]
        for p in protocols[1:]:
            names += [k for k in p if k not in names and k not in ("name", "description")]
        missing = object()
        same = [
            k for k in names if all(p.get(k, missing) == protocols[0].get(k) for p in protocols)
        ]
        groups[key] = ProtocolGroup(
            key[0],
            key[1],
            key[2],
            {k: protocols[0][k] for k in same},
            label,
            tuple(methods.get(key, ())),
            tuple(k for k in names if k not in same),
        )
    return groups


def results_grid(results: Sequence[Mapping[str, Any]]) -> ResultsGrid:
    """Arrange results into the paper-style grid.

    Rows: benchmarks in the paper's order (BBBC021, CYCLoPs, COOS-7, then others as
    given), one row per score of results with several (``COOS-7 test1`` …, ``BBBC021
    NSCB``). Columns: feature sets in the order given.

    Raises
    ------
    ConfigError
        When two results give the same cell (same benchmark, protocol, score and
        feature set); rename one with ``evaluate --name``.
    """
    if not results:
        raise ConfigError("no results to report")
    groups = _groups(results)
    feature_sets: list[str] = []
    cells: dict[tuple[tuple[str, str, str], str], dict[str, Mapping[str, Any]]] = {}
    multi: dict[tuple[str, str, str], bool] = {}
    for result in results:
        name, key = str(result["feature_set"]), _group_key(result)
        if name not in feature_sets:
            feature_sets.append(name)
        entries = scores_of(result)
        maps = [(f"mAP {kind}", entry) for kind, entry in map_entries(result)]
        multi[key] = multi.get(key, False) or len(entries) > 1 or bool(maps)
        for score_key, score in [*entries, *maps]:
            row = cells.setdefault((key, score_key), {})
            if name in row:
                raise ConfigError(
                    f"two results for {benchmark_title(key[0])} {key[1]} {score_key} of feature "
                    f"set {name!r}; give them distinct names (evaluate --name)"
                )
            row[name] = score
    order = list(BENCHMARK_TITLES)
    group_order = list(groups)

    def rank(item: tuple[tuple[str, str, str], str]) -> tuple[int, int]:
        bench = item[0][0]
        return (order.index(bench) if bench in order else len(order), group_order.index(item[0]))

    rows: list[list[str]] = []
    bold: set[tuple[int, int]] = set()
    used: list[ProtocolGroup] = []
    for r, (key, score_key) in enumerate(sorted(cells, key=rank)):  # stable: file order kept
        by_set = cells[(key, score_key)]
        title = benchmark_title(key[0])
        label = f"{title} {score_title(score_key)}" if multi[key] else title
        is_map = score_key.startswith("mAP ")
        count = "groups" if is_map else "n"
        ns = sorted({int(s[count]) for s in by_set.values() if s.get(count) is not None})
        n_text = EMPTY if not ns else str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"
        line = [label, groups[key].label, n_text]
        cell = format_map if is_map else format_cell
        line += [cell(dict(by_set[f])) if f in by_set else EMPTY for f in feature_sets]
        rows.append(line)
        values = {
            f: round(s["map"], 3) if is_map else round(100 * s["accuracy"], 2)
            for f, s in by_set.items()
            if s.get("map" if is_map else "accuracy") is not None
        }
        if len(values) > 1:
            best = max(values.values())
            bold |= {(r, 3 + feature_sets.index(f)) for f, v in values.items() if v == best}
        if groups[key] not in used:
            used.append(groups[key])
    header = ["Benchmark", "Protocol", "n", *feature_sets]
    return ResultsGrid(header, rows, frozenset(bold), used)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _settings_text(settings: Mapping[str, Any]) -> str:
    def value(v: Any) -> str:
        return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))

    return ", ".join(f"{k}={value(v)}" for k, v in settings.items())


def protocols_markdown(protocols: Sequence[ProtocolGroup]) -> str:
    """Return each protocol's frozen description once, as a Markdown list."""
    lines = []
    for p in protocols:
        head = f"- **{benchmark_title(p.benchmark)} · {_md(p.label)}**"
        text = p.description.strip() or "(no description given)"
        lines.append(f"{head}: " + text.replace("\n", "\n  "))  # continuation stays in the item
        if p.settings:
            lines.append(f"  Settings: `{_settings_text(p.settings)}`.")
        if p.varying:
            lines.append(f"  Varies by feature set: {', '.join(p.varying)}.")
        if p.ci_methods:
            lines.append(f"  Confidence interval: {', '.join(p.ci_methods)}.")
    return "\n".join(lines)


def grid_markdown(grid: ResultsGrid) -> str:
    """Render a :class:`ResultsGrid` as a GitHub-flavoured Markdown table."""
    align = ["---", "---", "---:", *("---:" for _ in grid.header[3:])]
    lines = [
        "| " + " | ".join(_md(h) for h in grid.header) + " |",
        "| " + " | ".join(align) + " |",
    ]
    for r, row in enumerate(grid.rows):
        cells = [f"**{_md(c)}**" if (r, i) in grid.bold else _md(c) for i, c in enumerate(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def results_table(results: Sequence[Mapping[str, Any]]) -> str:
    """Return the Markdown results table, its legend, and each protocol described once.

    Parameters
    ----------
    results : sequence of dict
        Parsed RESULT.json objects (see :func:`read_result`).
    """
    grid = results_grid(results)
    maps = list(
        dict.fromkeys(
            f"- **{benchmark_title(str(r['benchmark']))} · mAP**: {_md(r['map']['description'])}"
            for r in results
            if (r.get("map") or {}).get("description") and r["benchmark"] != "profiles"
        )
    )
    extra = "\n" + "\n".join(maps) if maps else ""
    legend = LEGEND + (MAP_LEGEND if any(r.get("map") for r in results) else "")
    return (
        f"{grid_markdown(grid)}\n\n{legend}\n\n### Protocols\n\n"
        f"{protocols_markdown(grid.protocols)}{extra}\n"
    )


def slug(text: str) -> str:
    """Return ``text`` as a file-name-safe lower-case slug."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"
