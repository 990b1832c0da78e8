"""Fake raw trees of the BBBC sources labelled by folder and file names.

Each writer creates empty placeholder images with the names the source publishes (real
names where the authors' early tables or public code give them) and returns the number of
records the adapter must produce.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

UUID = "9E84F49F-1B25-4E7E-8040-D1BB2D7E73EA"


def touch(root: Path, paths: Iterable[str]) -> None:
    """Create an empty file at every relative path under ``root``."""
    for rel in paths:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def fake_bbbc005(root: Path) -> int:
    images = [
        f"BBBC005_v1_images/SIMCEPImages_{w}_C{c}_F{f}_s{s}_w{ch}.TIF"
        for w, c, f, s in (("A05", "18", "1", "05"), ("P24", "100", "48", "03"))
        for ch in (1, 2)
    ]
    masks = ["BBBC005_v1_ground_truth/SIMCEPImages_A05_C18_F1_s05_w1.TIF"]
    touch(root, images + masks)
    return 5  # one record per channel file


def fake_bbbc010(root: Path) -> int:
    prefix = "1649_1109_0003_Amp5-1_B_20070424"
    touch(
        root,
        [
            f"BBBC010_v2_images/{prefix}_{w}_w{ch}_{UUID}.tif"
            for w in ("A01", "A13")
            for ch in (1, 2)
        ],
    )
    return 2


def fake_bbbc011(root: Path) -> int:
    touch(root, ["BBBC011_v1_images/A01.png", "BBBC011_v1_images/B07.png"])
    return 2


def fake_bbbc012(root: Path) -> int:
    prefix = "BBBC012_v1_images/ce_infection_20080204"
    complete = [f"{prefix}_A01_w{ch}_{UUID}.tif" for ch in (1, 2, 3)]
    partial = [f"{prefix}_B02_w{ch}_{UUID}.tif" for ch in (1, 2)]  # w3 missing
    touch(root, complete + partial)
    return 2


def fake_bbbc013(root: Path) -> int:
    touch(
        root,
        [
            f"BBBC013_v1_images_bmp/Channel{ch}-{n}.BMP"
            for n in ("01-A-01", "36-C-12")
            for ch in (1, 2)
        ],
    )
    return 2


def fake_bbbc014(root: Path) -> int:
    touch(
        root,
        [
            f"BBBC014_v1_images/Channel {ch}-{n}-00.Bmp"
            for n in ("01-A-01", "29-C-05")
            for ch in (1, 2)
        ],
    )
    return 2


def fake_bbbc015(root: Path) -> int:
    touch(root, [f"BBBC015_v1_images/{f}_{ch}.JPG" for f in ("54_4", "62_1") for ch in (0, 1)])
    return 2


def fake_bbbc020(root: Path) -> int:
    files = []
    for image in ("jw-1h 1", "jw-30min 2"):
        folder = f"BBBC020_v1_images/{image}/{image}"
        files += [f"{folder}_c1.TIF", f"{folder}_c5.TIF", f"{folder}_(c1+c5).TIF"]
    touch(root, files)
    return 2


def fake_bbbc026(root: Path) -> int:
    plate = "BBBC026_v1_images/ADSASS092408-GHAD2-D6-20x"
    touch(
        root,
        [
            f"{plate}_A01_s1_w1D751105E-2D33-485F-9FF9-061C4CB2F27A.png",
            f"{plate}_A01_s2_w102757319-E524-42CB-9884-F1608FFBD7EF.png",
        ],
    )
    return 2


def fake_bbbc045(root: Path) -> int:
    touch(
        root,
        [
            "Stained_Montages/Donor1/Neutrophil/montage_1.tif",
            "Stained_Montages/Donor1/Bcell/montage_1.tif",
        ],
    )
    return 2


def fake_bbbc048(root: Path) -> int:
    touch(
        root,
        [
            f"CellCycle/{p}/{n}_Ch{ch}.jpg"
            for p, n in (("G1", 1), ("Anaphase", 7))
            for ch in (3, 4, 6)
        ],
    )
    return 2


def fake_bbbc051(root: Path) -> int:
    touch(
        root,
        [
            "CD_CNT/All_3D/object_38359_333__4395__44_1.tif",
            "CD45.1/All_3D/object_11666_3111__5885__23_1.tif",
        ],
    )
    return 2


FAKES = {
    "bbbc005": fake_bbbc005,
    "bbbc010": fake_bbbc010,
    "bbbc011": fake_bbbc011,
    "bbbc012": fake_bbbc012,
    "bbbc013": fake_bbbc013,
    "bbbc014": fake_bbbc014,
    "bbbc015": fake_bbbc015,
    "bbbc020": fake_bbbc020,
    "bbbc026": fake_bbbc026,
    "bbbc045": fake_bbbc045,
    "bbbc048": fake_bbbc048,
    "bbbc051": fake_bbbc051,
}
