"""Time the dataset builder's per-field cost on realistic synthetic fields, per input profile.

Each profile writes ``n`` synthetic fields (Gaussian "nuclei" and "cells" on a smooth background
with Poisson and read noise, one file per channel) in the file layout of a family of sources:

* ``bbbc-tiff`` — 3 × 1080×1080 16-bit (12-bit content) uncompressed TIFF per field
  (BBBC021 / BBBC022-like);
* ``idr-lzw`` — the same, LZW-compressed (common in IDR submissions; read through OpenCV's
  libtiff by ``read_planes``);
* ``rxrx-png`` — 6 × 512×512 8-bit grey PNG per field, written with ``cv2.imwrite``'s default
  parameters (RxRx1/2/19; RxRx sources are about 61 % of CytoImageNet's images). With 512 px
  the crops are at 1/2 (256 px) and 1/4 (128 px); 1/8 (64 px < 70) is dropped.

Every profile uses 4 crops per field (class size < 400); the default field counts (20, 20, 32)
keep ``--profile all`` near two minutes on one core. Three per-field paths are timed on one
core, files served from the page cache:

* **pipeline** — ``process_image(task, out, ImageOptions())``, exactly as the builder's worker
  calls it;
* **I/O bound** — read the channels with the same reader, then ``cv2.imencode`` and write the
  same output PNGs the pipeline produced (arrays prepared outside the timed region); nothing
  else, so no atomic rename and no sha256, which the pipeline also does;
* **original** — a re-implementation of the paper's per-image path written from the notes
  (original-code.md §2.7-2.8): ``cv2.imread`` with its default flag (8-bit BGR, whatever the
  file: a 16-bit TIFF is cut to its high byte, a grey PNG becomes three equal channels), float64
  ``normalize``, merge, Pillow PNG of the merged field, re-read as grey, whole-image QC, crops
  with the same geometry rules, crop QC, re-normalise, Pillow PNG of every kept crop
  (``fromarray(float).convert("L")`` with default settings, as ``save_crops`` did).

For each profile it prints per-field times, fields/s per core, the throughput ratios, and
breakdowns by stage: the pipeline's (its functions called one by one, in the order and with the
arguments ``process_image`` uses: read, plane stats, field QC, crop planning, then per crop:
region merge, crop QC, renormalize, PNG encode, atomic write + sha256) and the original's (laps
inside the timed runs). ``--profile all`` (the default) runs every profile and ends with one
summary table, a row per profile. Nothing is asserted; the numbers are for reading. Other
processes on the machine move absolute times by tens of percent; every path is timed on the same
field in turn, so the ratios move less.

The script restarts itself with ``OMP_NUM_THREADS=1`` (and the BLAS equivalents) when they are
not set, and calls ``cv2.setNumThreads(1)``; pin it to one core yourself::

    taskset -c 0 python benchmarks/bench_build.py [--profile all|bbbc-tiff|idr-lzw|rxrx-png]
        [--n N] [--repeats 5] [--original-repeats 2] [--seed 0] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import tifffile
from PIL import Image

from cytoimagenet.curation.dataset.tasks import ImageOptions, ImageTask
from cytoimagenet.curation.dataset.worker import process_image
from cytoimagenet.imaging.crops import plan_crops
from cytoimagenet.imaging.normalize import PlaneStats, merge_channels, renormalize, to_uint8
from cytoimagenet.imaging.png import encode_png, write_bytes_atomic
from cytoimagenet.imaging.quality import crop_reason, field_reason
from cytoimagenet.imaging.readers import read_field, read_planes

cv2.setNumThreads(1)

FOLDER = "bench-label"


@dataclass(frozen=True)
class Profile:
    """One family of input files."""

    name: str
    description: str
    channels: int
    size: int
    bits: int  # stored bit depth: 16 (12-bit content) or 8
    fmt: str  # "tiff" or "png"
    compression: str | None  # TIFF compression (None: uncompressed)
    n_crops: int
    n: int  # default number of fields


PROFILES = {
    p.name: p
    for p in (
        Profile(
            "bbbc-tiff",
            "3 x 1080x1080 uint16 (12-bit) uncompressed TIFF (BBBC021/022-like)",
            channels=3,
            size=1080,
            bits=16,
            fmt="tiff",
            compression=None,
            n_crops=4,
            n=20,
        ),
        Profile(
            "idr-lzw",
            "3 x 1080x1080 uint16 (12-bit) LZW TIFF (IDR-like)",
            channels=3,
            size=1080,
            bits=16,
            fmt="tiff",
            compression="lzw",
            n_crops=4,
            n=20,
        ),
        Profile(
            "rxrx-png",
            "6 x 512x512 uint8 grey PNG, cv2.imwrite defaults (RxRx1/2/19-like)",
            channels=6,
            size=512,
            bits=8,
            fmt="png",
            compression=None,
            n_crops=4,
            n=32,
        ),
    )
}


# --------------------------------------------------------------------------- synthetic inputs


def _add_blobs(
    canvas: np.ndarray,
    rng: np.random.Generator,
    centres: np.ndarray,
    sigma: tuple[float, float],
    amplitude: tuple[float, float],
) -> None:
    """Add anisotropic Gaussian blobs (log-normal amplitudes) at ``centres`` into ``canvas``."""
    h, w = canvas.shape
    log_mid, log_spread = np.log(amplitude[0]), amplitude[1]
    for cy, cx in centres:
        sy, sx = rng.uniform(*sigma, size=2)
        amp = min(rng.lognormal(log_mid, log_spread), 6000.0)
        ry, rx = int(3.5 * sy) + 1, int(3.5 * sx) + 1
        y0, y1 = max(int(cy) - ry, 0), min(int(cy) + ry + 1, h)
        x0, x1 = max(int(cx) - rx, 0), min(int(cx) + rx + 1, w)
        if y0 >= y1 or x0 >= x1:
            continue
        gy = np.exp(-0.5 * ((np.arange(y0, y1) - cy) / sy) ** 2).astype(np.float32)
        gx = np.exp(-0.5 * ((np.arange(x0, x1) - cx) / sx) ** 2).astype(np.float32)
        canvas[y0:y1, x0:x1] += np.float32(amp) * np.outer(gy, gx)


def make_field(rng: np.random.Generator, size: int, channels: int) -> list[np.ndarray]:
    """Return ``channels`` uint16 planes of one field with 12-bit content (0..4095).

    Cell and spot counts scale with the field's area (150-350 cells at 1080 px).
    """
    area = (size / 1080) ** 2
    n_cells = max(int(rng.integers(150, 350) * area), 8)
    nuclei = rng.uniform(0, size, size=(n_cells, 2))
    planes = []
    for c in range(channels):
        # Smooth background: a coarse random grid upsampled, plus vignetting.
        coarse = rng.uniform(60, 220, size=(6, 6)).astype(np.float32)
        bg = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
        yy, xx = np.ogrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
        bg *= (1.0 - 0.25 * (yy**2 + xx**2)).astype(np.float32)
        signal = np.maximum(bg, 1.0)
        if c == 0:  # nuclear stain: compact bright blobs
            _add_blobs(signal, rng, nuclei, (4.0, 8.0), (1200.0, 0.5))
        else:  # cytoplasmic / organelle stains: larger dimmer cells plus puncta
            jitter = nuclei + rng.normal(0, 6, size=nuclei.shape)
            _add_blobs(signal, rng, jitter, (10.0, 18.0), (350.0, 0.6))
            n_spots = max(int(rng.integers(200, 600) * area), 8)
            spots = rng.uniform(0, size, size=(n_spots, 2))
            _add_blobs(signal, rng, spots, (1.0, 2.0), (500.0, 0.6))
        counts = rng.poisson(signal).astype(np.float32)
        counts += 100.0 + rng.normal(0.0, 3.0, size=counts.shape).astype(np.float32)  # offset
        planes.append(np.clip(np.rint(counts), 0, 4095).astype(np.uint16))
    return planes


def to_8bit(plane: np.ndarray) -> np.ndarray:
    """A dim 8-bit export of a 12-bit plane (offset removed, / 8): background about 5-30."""
    return np.clip(np.rint((plane.astype(np.float32) - 100.0) / 8.0), 0, 255).astype(np.uint8)


def write_inputs(root: Path, profile: Profile, n: int, seed: int) -> list[tuple[str, ...]]:
    """Write ``n`` fields as one file per channel; return the channel paths of each field."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    fields = []
    for i in range(n):
        paths = []
        for c, plane in enumerate(make_field(rng, profile.size, profile.channels)):
            if profile.fmt == "png":
                path = root / f"field{i:03d}_w{c + 1}.png"
                if not cv2.imwrite(str(path), to_8bit(plane) if profile.bits == 8 else plane):
                    sys.exit(f"cv2.imwrite failed on {path}")
            else:
                path = root / f"field{i:03d}_ch{c + 1}.tif"
                data = to_8bit(plane) if profile.bits == 8 else plane
                tifffile.imwrite(
                    path, data, compression=profile.compression, photometric="minisblack"
                )
            paths.append(str(path))
        fields.append(tuple(paths))
    return fields


# --------------------------------------------------------------------------- original path
# Written from original-code.md §2.7-2.8 (preprocessor.normalize / merger / save_img and
# prepare_dataset.Upsampler.get_slicers / create_crops / save_crops / supplement_label).


def orig_normalize(img: np.ndarray) -> np.ndarray:
    """The original float64 normalisation (3-channel → mean; clip to p0.1..p99.9; / max)."""
    if img.ndim == 3 and img.shape[-1] == 3:
        img = img.mean(axis=-1)
    top = np.percentile(img.flatten(), 99.9)
    bot = np.percentile(img.flatten(), 0.1)
    img[img > top] = top
    img = img - bot
    img[img < 0] = 0
    return img / img.max()


class Laps:
    """Accumulate the time between successive calls under the given names (ms)."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self.start()

    def start(self) -> None:
        self._t = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.ms[name] = self.ms.get(name, 0.0) + (now - self._t) * 1e3
        self._t = now


ORIGINAL_STAGES = (
    "read (cv2.imread, 8-bit BGR)",
    "normalize + merge (float64)",
    "Pillow PNG, merged field",
    "re-read PNG + whole QC",
    "crop planning + QC + renorm",
    "Pillow PNG, crops",
)


def orig_merge(paths: tuple[str, ...], dest: Path, lap: Laps) -> None:
    """Read each channel 8-bit BGR, normalise, average, x255, save as grey PNG with Pillow."""
    stack = []
    for p in paths:
        img = cv2.imread(p)  # default flag: 8-bit BGR for TIFF and PNG alike
        if img is None:
            sys.exit(f"cv2.imread could not read {p}")
        lap(ORIGINAL_STAGES[0])
        stack.append(orig_normalize(img))
    merged = np.stack(stack, axis=-1).mean(axis=-1) * 255
    lap(ORIGINAL_STAGES[1])
    Image.fromarray(merged).convert("L").save(dest)
    lap(ORIGINAL_STAGES[2])


def orig_slicers(
    h: int, w: int, n_crops: int, rs: np.random.RandomState, rnd: random.Random
) -> tuple[list[tuple[int, int, int, int]], list[float]]:
    """Crop boxes (x_min, x_max, y_min, y_max) and scales by the original geometry rules."""
    scales = [r for r in (1 / 2, 1 / 4, 1 / 8, 1 / 16) if r * h >= 70 and r * w >= 70]
    if len(scales) < n_crops:
        scales = list(scales) + list(rs.choice(scales, size=n_crops - len(scales)))
    elif len(scales) > n_crops:
        scales = list(rs.choice(scales, size=n_crops))
    rnd.shuffle(scales)
    origins = np.array([(oy, ox) for oy in (0, h // 2) for ox in (0, w // 2)])
    if len(origins) > n_crops:
        origins = origins[rs.choice(len(origins), n_crops, replace=False)]
    boxes = []
    for (oy, ox), r in zip(origins, scales, strict=True):
        cw, ch = int(np.floor(w * r)), int(np.floor(h * r))
        if r == 1 / 2:
            x_min, y_min = int(ox), int(oy)
        else:
            x_min = int(ox) + rnd.randint(0, w // 2 - cw)
            y_min = int(oy) + rnd.randint(0, h // 2 - ch)
        boxes.append((x_min, min(x_min + cw, w), y_min, min(y_min + ch, h)))
    return boxes, [float(s) for s in scales]


def orig_upsample(merged_png: Path, n_crops: int, seed: int, out_dir: Path, lap: Laps) -> int:
    """Re-read the merged PNG, apply the whole-image QC, crop, re-normalise and save crops.

    Returns the number of crop files written (0: the merged image is kept whole).
    """
    img = cv2.imread(str(merged_png), cv2.IMREAD_GRAYSCALE)
    if img.max() == 0 or np.percentile(img, 0.01) == np.percentile(img, 99.9):
        return 0  # "bad image": dropped
    if len(np.unique(img)) == 2:
        return 0  # binary mask (the original re-merged; our inputs never are)
    lap(ORIGINAL_STAGES[3])
    if img.shape[0] < 140 or img.shape[1] < 140:
        return 0
    rs, rnd = np.random.RandomState(seed % 2**32), random.Random(seed)  # noqa: S311
    boxes, _ = orig_slicers(img.shape[0], img.shape[1], min(n_crops, 4), rs, rnd)
    crops = []
    for x_min, x_max, y_min, y_max in boxes:
        crop = img[y_min:y_max, x_min:x_max]
        if 1 < crop.mean() < 254 and np.percentile(crop, 75) != 0:
            crops.append(orig_normalize(crop) * 255)
    lap(ORIGINAL_STAGES[4])
    stem = merged_png.stem
    for i, crop in enumerate(crops):
        Image.fromarray(crop).convert("L").save(out_dir / f"{stem}-crop_{i}.png")
    lap(ORIGINAL_STAGES[5])
    return len(crops)


def run_original(
    paths: tuple[str, ...], index: int, task: ImageTask, out: Path, lap: Laps | None = None
) -> int:
    """The original per-field path: merge → merged/ PNG → upsample. Returns files written."""
    lap = lap or Laps()
    lap.start()
    merged = out / "merged" / f"field{index:03d}.png"
    orig_merge(paths, merged, lap)
    return 1 + orig_upsample(merged, task.n_crops, task.seed, out / "crops", lap)


# --------------------------------------------------------------------------- timing helpers


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn()
    return (time.perf_counter() - t0) * 1e3, result


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    return statistics.median(timed(fn)[0] for _ in range(repeats))


@dataclass
class Field:
    task: ImageTask
    outputs: list[tuple[str, np.ndarray]]  # (file name, 8-bit array) the pipeline wrote
    n_dropped: int


def make_task(i: int, paths: tuple[str, ...], seed: int, n_crops: int) -> ImageTask:
    return ImageTask(
        idx=f"bench-{i}",
        files=paths,
        folder=FOLDER,
        index=i * n_crops,
        width=5,
        n_crops=n_crops,
        seed=seed * 1_000_003 + i,
    )


def pipeline_outputs(task: ImageTask, out: Path, options: ImageOptions) -> Field:
    rows = process_image(task, out, options)
    if any(r["status"] == "rejected" for r in rows):
        sys.exit(f"synthetic field {task.idx} was rejected: {rows}")
    outputs = []
    for r in rows:
        if r["status"] == "ok":
            arr = cv2.imread(str(out / r["path"] / r["filename"]), cv2.IMREAD_UNCHANGED)
            outputs.append((r["filename"], arr))
    return Field(task, outputs, sum(r["status"] == "crop-dropped" for r in rows))


def io_bound(task: ImageTask, outputs: list[tuple[str, np.ndarray]], out: Path) -> None:
    """Read the channels and encode + write the given PNGs, nothing else."""
    for f in task.files:
        read_planes(Path(f))
    for name, arr in outputs:
        _ok, buf = cv2.imencode(".png", arr)
        (out / name).write_bytes(buf)


#: The pipeline's stages, in ``process_image``'s order; indented rows are parts of the row
#: above and are not added into the total.
STAGES = (
    "read (read_field)",
    "plane stats (PlaneStats.of)",
    "field QC (field_reason)",
    "crop planning",
    "per-crop merge (region)",
    "crop QC",
    "  to_uint8",
    "  crop_reason",
    "renormalize",
    "PNG encode",
    "atomic write + sha256",
    "whole merge (no crop kept)",
)


def stage_times(task: ImageTask, out: Path, options: ImageOptions) -> dict[str, float]:
    """One manual pass through ``process_image``'s steps, in its order; ms per stage.

    Per-crop stages are summed over the field's crops. The whole merged field is computed
    (and timed) only when no crop survives, as in ``process_image``.
    """
    qc, low, high = options.qc, options.low, options.high
    lap = Laps()
    planes = read_field([Path(f) for f in task.files])
    lap(STAGES[0])
    stats = [PlaneStats.of(p) for p in planes]
    lap(STAGES[1])
    reason = field_reason(stats, qc)
    lap(STAGES[2])
    if reason is not None:
        sys.exit(f"synthetic field {task.idx} was rejected: {reason}")
    height, width = planes[0].shape
    boxes = []
    if options.crops:
        rng = np.random.default_rng(task.seed)
        boxes = plan_crops(
            height,
            width,
            task.n_crops,
            rng,
            min_side=options.min_crop_side,
            min_croppable=options.min_croppable,
        )
    lap(STAGES[3])
    folder = out / task.folder
    kept = 0
    for box in boxes:
        merged = merge_channels(planes, low, high, stats=stats, region=box.region)
        lap(STAGES[4])
        small = to_uint8(merged)
        lap(STAGES[6])
        why = crop_reason(small, qc)
        lap(STAGES[7])
        if why is not None:
            continue
        image = renormalize(merged, low, high)
        lap(STAGES[8])
        blob = encode_png(image)
        lap(STAGES[9])
        write_bytes_atomic(folder / task.filename(box.slot), blob)
        lap(STAGES[10])
        kept += 1
    if not kept:
        whole = to_uint8(merge_channels(planes, low, high, stats=stats))
        lap(STAGES[11])
        blob = encode_png(whole)
        lap(STAGES[9])
        write_bytes_atomic(folder / task.filename(0), blob)
        lap(STAGES[10])
    t = {s: lap.ms.get(s, 0.0) for s in STAGES}
    t["crop QC"] = t["  to_uint8"] + t["  crop_reason"]
    return t


# --------------------------------------------------------------------------- one profile


def summary(ms: list[float]) -> dict[str, float]:
    mean = statistics.fmean(ms)
    return {"median_ms": statistics.median(ms), "mean_ms": mean, "fields_per_s": 1e3 / mean}


def run_profile(
    profile: Profile, n: int, args: argparse.Namespace, root: Path, options: ImageOptions
) -> dict:
    """Generate the profile's inputs, time the three paths and the stages, print, return."""
    print(f"=== profile {profile.name}: {profile.description}, {profile.n_crops} crops/field")
    t0 = time.perf_counter()
    fields = write_inputs(root / "in", profile, n, args.seed)
    in_mb = sum(Path(p).stat().st_size for f in fields for p in f) / 2**20
    print(
        f"inputs: {n} fields x {profile.channels} files, {in_mb / n:.2f} MiB/field on disk; "
        f"generated in {time.perf_counter() - t0:.1f} s"
    )

    dirs = {k: root / k for k in ("pipeline", "io", "original", "stages")}
    for d in dirs.values():
        d.mkdir()
    (dirs["original"] / "merged").mkdir()
    (dirs["original"] / "crops").mkdir()

    # Reference outputs (also the warm-up of every path).
    prepared = [
        pipeline_outputs(make_task(i, p, args.seed, profile.n_crops), dirs["pipeline"], options)
        for i, p in enumerate(fields)
    ]
    io_bound(prepared[0].task, prepared[0].outputs, dirs["io"])
    run_original(fields[0], 0, prepared[0].task, dirs["original"])
    stage_times(prepared[0].task, dirs["stages"], options)

    t0 = time.perf_counter()
    pipe_ms, io_ms, orig_ms, orig_files = [], [], [], []
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    orig_stages: dict[str, list[float]] = {s: [] for s in ORIGINAL_STAGES}
    out_o = dirs["original"]
    for i, fld in enumerate(prepared):
        task = fld.task
        pipe_ms.append(
            median_ms(lambda t=task: process_image(t, dirs["pipeline"], options), args.repeats)
        )
        io_ms.append(median_ms(lambda f=fld: io_bound(f.task, f.outputs, dirs["io"]), args.repeats))
        laps = [Laps() for _ in range(args.original_repeats)]
        runs = [
            timed(lambda i=i, t=task, lp=lp: run_original(fields[i], i, t, out_o, lp))
            for lp in laps
        ]
        orig_ms.append(statistics.median(r[0] for r in runs))
        orig_files.append(runs[0][1])
        for s in ORIGINAL_STAGES:
            orig_stages[s].append(statistics.fmean(lp.ms.get(s, 0.0) for lp in laps))
        per = [stage_times(task, dirs["stages"], options) for _ in range(args.repeats)]
        for s in STAGES:
            stages[s].append(statistics.median(p[s] for p in per))
    t_timing = time.perf_counter() - t0

    n_out = [len(f.outputs) for f in prepared]
    pix_out = [sum(a.size for _, a in f.outputs) / 1e6 for f in prepared]
    results = {
        "pipeline": summary(pipe_ms),
        "io_bound": summary(io_ms),
        "original": summary(orig_ms),
    }
    ratio_io = results["pipeline"]["fields_per_s"] / results["io_bound"]["fields_per_s"]
    ratio_orig = results["pipeline"]["fields_per_s"] / results["original"]["fields_per_s"]

    print(
        f"outputs per field: pipeline {statistics.fmean(n_out):.2f} PNGs "
        f"({statistics.fmean(pix_out):.3f} Mpx; {sum(f.n_dropped for f in prepared)} crops "
        f"dropped in all), original {statistics.fmean(orig_files):.2f} PNGs "
        f"(merged field + kept crops)"
    )
    print(
        f"timed {args.repeats} runs/field (original {args.original_repeats}), per-field "
        f"median; fields/s = 1000 / mean of the per-field medians; timing took {t_timing:.0f} s"
    )
    print()
    print(f"{'path':<34}{'median ms':>10}{'mean ms':>10}{'fields/s':>10}")
    labels = {
        "pipeline": "pipeline (process_image)",
        "io_bound": "I/O bound (read + PNG encode)",
        "original": "original (re-implemented)",
    }
    for key, label in labels.items():
        r = results[key]
        print(f"{label:<34}{r['median_ms']:>10.1f}{r['mean_ms']:>10.1f}{r['fields_per_s']:>10.2f}")
    print()
    print(f"pipeline / I/O bound throughput: {ratio_io:.2f}   (target >= 0.7)")
    print(f"pipeline / original throughput:  {ratio_orig:.1f}x")
    print()

    stage_mean = {s: statistics.fmean(v) for s, v in stages.items()}
    stage_mean["crop QC"] = stage_mean["  to_uint8"] + stage_mean["  crop_reason"]
    top = [s for s in STAGES if not s.startswith("  ")]
    total = sum(stage_mean[s] for s in top)
    print(f"pipeline by stage (mean over fields of per-field medians; sum {total:.1f} ms)")
    print(f"{'stage':<32}{'ms':>8}{'share':>8}")
    for s in STAGES:
        share = f"{100 * stage_mean[s] / total:.0f}%" if not s.startswith("  ") else ""
        print(f"{s:<32}{stage_mean[s]:>8.2f}{share:>8}")
    other = results["pipeline"]["mean_ms"] - total
    print(f"{'process_image - sum of stages':<32}{other:>8.2f}")

    orig_mean = {s: statistics.fmean(v) for s, v in orig_stages.items()}
    orig_total = sum(orig_mean.values())
    print()
    print(f"original by stage (mean over fields and runs; sum {orig_total:.1f} ms)")
    print(f"{'stage':<32}{'ms':>8}{'share':>8}")
    for s, v in orig_mean.items():
        print(f"{s:<32}{v:>8.2f}{f'{100 * v / orig_total:.0f}%':>8}")
    print()

    return {
        "profile": asdict(profile),
        "n": n,
        "input_mib_per_field": in_mb / n,
        "results": results,
        "ratio_pipeline_over_io_bound": ratio_io,
        "ratio_pipeline_over_original": ratio_orig,
        "stages_mean_ms": stage_mean,
        "original_stages_mean_ms": orig_mean,
        "outputs_per_field": {
            "pipeline_pngs": statistics.fmean(n_out),
            "pipeline_mpx": statistics.fmean(pix_out),
            "pipeline_crops_dropped": sum(f.n_dropped for f in prepared),
            "original_pngs": statistics.fmean(orig_files),
        },
        "per_field_ms": {"pipeline": pipe_ms, "io_bound": io_ms, "original": orig_ms},
        "timing_s": t_timing,
    }


def print_summary(runs: dict[str, dict]) -> None:
    print(
        "summary (ms = mean over fields of per-field medians; ratios are throughputs: "
        "pipeline fields/s / other fields/s)"
    )
    head = (
        f"{'profile':<11}{'fields':>7}{'pipeline ms':>13}{'I/O bound ms':>14}"
        f"{'original ms':>13}{'pipe/bound':>12}{'pipe/orig':>11}"
    )
    print(head)
    print("-" * len(head))
    for name, run in runs.items():
        r = run["results"]
        print(
            f"{name:<11}{run['n']:>7}{r['pipeline']['mean_ms']:>13.1f}"
            f"{r['io_bound']['mean_ms']:>14.1f}{r['original']['mean_ms']:>13.1f}"
            f"{run['ratio_pipeline_over_io_bound']:>12.2f}"
            f"{run['ratio_pipeline_over_original']:>10.1f}x"
        )
    print("pipe/bound target >= 0.7")


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--profile",
        choices=(*PROFILES, "all"),
        default="all",
        help="input profile, or all of them in turn (default)",
    )
    parser.add_argument(
        "--n",
        type=int,
        default=None,
        help="fields per profile (default: "
        + ", ".join(f"{p.name} {p.n}" for p in PROFILES.values())
        + ")",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per field")
    parser.add_argument("--original-repeats", type=int, default=2, help="for the original path")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = parser.parse_args()

    selected = list(PROFILES.values()) if args.profile == "all" else [PROFILES[args.profile]]
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    print(
        f"cpu affinity {affinity or '?'}, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, "
        f"cv2.getNumThreads()={cv2.getNumThreads()}, numpy {np.__version__}, "
        f"opencv {cv2.__version__}, tifffile {tifffile.__version__}, "
        f"Python {platform.python_version()}"
    )
    if len(affinity) > 1:
        print("note: more than one CPU allowed; run under `taskset -c 0` for one core")
    print()

    options = ImageOptions()
    runs: dict[str, dict] = {}
    t_all = time.perf_counter()
    for profile in selected:
        with tempfile.TemporaryDirectory(prefix=f"bench_build_{profile.name}_") as tmp:
            runs[profile.name] = run_profile(profile, args.n or profile.n, args, Path(tmp), options)
    t_all = time.perf_counter() - t_all

    print_summary(runs)
    print(f"total {t_all:.0f} s")

    if args.json is not None:
        payload = {
            "config": {
                **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "cpu_affinity": affinity,
                "numpy": np.__version__,
                "opencv": cv2.__version__,
                "tifffile": tifffile.__version__,
                "python": platform.python_version(),
            },
            "summary": {
                name: {
                    "n": run["n"],
                    "pipeline_ms": run["results"]["pipeline"]["mean_ms"],
                    "io_bound_ms": run["results"]["io_bound"]["mean_ms"],
                    "original_ms": run["results"]["original"]["mean_ms"],
                    "ratio_pipeline_over_io_bound": run["ratio_pipeline_over_io_bound"],
                    "ratio_pipeline_over_original": run["ratio_pipeline_over_original"],
                }
                for name, run in runs.items()
            },
            "profiles": runs,
            "total_s": t_all,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"\nwrote {args.json}")


THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

if __name__ == "__main__":
    if any(os.environ.get(v) != "1" for v in THREAD_VARS):
        # Thread pools are sized when numpy / OpenCV load: restart with one thread each.
        os.environ.update(dict.fromkeys(THREAD_VARS, "1"))
        os.execv(sys.executable, [sys.executable, *sys.argv])  # noqa: S606
    main()
