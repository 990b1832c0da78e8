"""Fake raw trees of the Kaggle sources, in the layouts the Kaggle downloads unpack to."""

from __future__ import annotations

from pathlib import Path

# Not decoded by the adapters: only names and folders matter.
_IMAGE_BYTES = b"BM fake image"


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_IMAGE_BYTES)


def fake_hpa(root: Path) -> int:
    """HPA 2018 ``train.csv`` (``Id,Target``, space-separated ids), metadata only."""
    (root / "train.csv").write_text(
        "Id,Target\n"
        "00070df0-bbc3-11e8-b2bc-ac1f6b6435d0,16 0\n"
        "000a6c98-bb9b-11e8-b2b9-ac1f6b6435d0,7 1 2 0\n"
        "000a9596-bbc4-11e8-b2bc-ac1f6b6435d0,5\n"
        "000c99ba-bba4-11e8-b2b9-ac1f6b6435d0,6 7\n"
    )
    return 16


def fake_hpa_single(root: Path) -> int:
    """HPA 2021 ``train.csv`` (``ID,Label``, ``|``-separated ids), metadata only."""
    (root / "train.csv").write_text(
        "ID,Label\n"
        "5c27f04c-bb99-11e8-b2b9-ac1f6b6435d0,8|5|0\n"
        "5fb643ee-bb99-11e8-b2b9-ac1f6b6435d0,14|0\n"
        "60b57878-bb99-11e8-b2b9-ac1f6b6435d0,6|1\n"
        "5b931256-bb99-11e8-b2b9-ac1f6b6435d0,18\n"
    )
    return 16


def write_leukemia_labels(folder: Path) -> None:
    """Write the C-NMC validation labels CSV into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "C-NMC_test_prelim_phase_data_labels.csv").write_text(
        "Patient_ID,new_names,labels\nUID_57_29_1_all.bmp,1.bmp,1\nUID_H49_35_1_hem.bmp,2.bmp,0\n"
    )


def fake_leukemia(root: Path) -> int:
    """C-NMC 2019 as Kaggle ships it: folds by class, numbered validation and test images."""
    base = root / "C-NMC_Leukemia"
    for rel in (
        "training_data/fold_0/all/UID_11_10_1_all.bmp",
        "training_data/fold_0/hem/UID_H10_43_1_hem.bmp",
        "training_data/fold_1/all/UID_12_1_2_all.bmp",
        "validation_data/C-NMC_test_prelim_phase_data/1.bmp",
        "validation_data/C-NMC_test_prelim_phase_data/2.bmp",
        "testing_data/C-NMC_test_final_phase_data/1.bmp",
    ):
        _touch(base / rel)
    write_leukemia_labels(base / "validation_data")
    return 6


def fake_cell_cycle(root: Path) -> int:
    """Cell Cycle Experiments: one folder per phase, as in the Kaggle archive."""
    base = root / "nematode cells" / "nematode cells"
    for rel in ("interphase/IMG_1667-1.jpg", "interphase/IMG_1667-2.jpg", "mitosis/IMG_1670-4.jpg"):
        _touch(base / rel)
    return 3


FAKES = {
    "kag_hpa": fake_hpa,
    "kag_hpa_single": fake_hpa_single,
    "kag_leukemia": fake_leukemia,
    "kag_cell_cycle": fake_cell_cycle,
}
