"""Fake raw trees of the RxRx sources, in the layouts Recursion (and Kaggle) publish.

RxRx1's default fake is the Kaggle competition form (one row per well, two implicit
sites); :func:`write_rxrx1_release` writes the release ``metadata.csv`` form instead.
"""

from __future__ import annotations

from pathlib import Path

_KAGGLE = {
    "train.csv": (
        "id_code,experiment,plate,well,sirna\n"
        "HEPG2-01_1_B03,HEPG2-01,1,B03,513\n"
        "U2OS-01_2_C05,U2OS-01,2,C05,0\n"
    ),
    "test.csv": "id_code,experiment,plate,well\nHUVEC-17_3_D04,HUVEC-17,3,D04\n",
    "train_controls.csv": (
        "id_code,experiment,plate,well,sirna,well_type\n"
        "HEPG2-01_1_B02,HEPG2-01,1,B02,1138,negative_control\n"
        "HEPG2-01_1_C03,HEPG2-01,1,C03,1109,positive_control\n"
    ),
    "test_controls.csv": (
        "id_code,experiment,plate,well,sirna,well_type\n"
        "RPE-08_4_B02,RPE-08,4,B02,1138,negative_control\n"
    ),
}


def fake_rxrx1(root: Path) -> int:
    """Kaggle competition files: 6 wells, 2 sites each."""
    for name, text in _KAGGLE.items():
        (root / name).write_text(text)
    return 12


def write_rxrx1_release(root: Path) -> int:
    """Release ``rxrx1/metadata.csv`` (one row per site) with two of its images."""
    folder = root / "rxrx1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.csv").write_text(
        "site_id,well_id,cell_type,dataset,experiment,plate,well,site,well_type,sirna,sirna_id\n"
        "HEPG2-01_1_B03_1,HEPG2-01_1_B03,HEPG2,train,HEPG2-01,1,B03,1,treatment,s35651,513\n"
        "HEPG2-01_1_B03_2,HEPG2-01_1_B03,HEPG2,train,HEPG2-01,1,B03,2,treatment,s35651,513\n"
        "HEPG2-01_1_B02_1,HEPG2-01_1_B02,HEPG2,train,HEPG2-01,1,B02,1,negative_control,EMPTY,1138\n"
        "U2OS-04_2_C03_1,U2OS-04_2_C03,U2OS,test,U2OS-04,2,C03,1,positive_control,n337250,1109\n"
        "U2OS-04_2_D07_2,U2OS-04_2_D07,U2OS,test,U2OS-04,2,D07,2,treatment,,17\n"
    )
    return 5


def fake_rxrx2(root: Path) -> int:
    """RxRx2 ``metadata.csv``: soluble factors and an ``EMPTY`` well."""
    (root / "rxrx2").mkdir()
    (root / "rxrx2" / "metadata.csv").write_text(
        "site_id,well_id,cell_type,experiment,plate,well,site,treatment,treatment_conc\n"
        "HUVEC-1_1_AA02_1,HUVEC-1_1_AA02,HUVEC,HUVEC-1,1,AA02,1,Activin-A,0.1\n"
        "HUVEC-1_1_AA02_2,HUVEC-1_1_AA02,HUVEC,HUVEC-1,1,AA02,2,Activin-A,0.1\n"
        "HUVEC-1_1_AB03_1,HUVEC-1_1_AB03,HUVEC,HUVEC-1,1,AB03,1,IFN-gamma,0.01\n"
        "HUVEC-2_3_B04_4,HUVEC-2_3_B04,HUVEC,HUVEC-2,3,B04,4,EMPTY,\n"
    )
    return 4


def fake_rxrx19a(root: Path) -> int:
    """RxRx19a ``metadata.csv``: HRCE and VERO, treated and untreated wells."""
    (root / "metadata.csv").write_text(
        "site_id,well_id,cell_type,experiment,plate,well,site,disease_condition,treatment,"
        "treatment_conc,SMILES\n"
        "HRCE-1_1_AA02_1,HRCE-1_1_AA02,HRCE,HRCE-1,1,AA02,1,Active SARS-CoV-2,Remdesivir,"
        '1.0,"CCC(CC)COC(=O)[C@H](C)N"\n'
        "HRCE-1_1_AA03_3,HRCE-1_1_AA03,HRCE,HRCE-1,1,AA03,3,Active SARS-CoV-2,,,\n"
        "HRCE-1_2_B02_4,HRCE-1_2_B02,HRCE,HRCE-1,2,B02,4,Mock,,,\n"
        "HRCE-2_1_C02_2,HRCE-2_1_C02,HRCE,HRCE-2,1,C02,2,UV Inactivated SARS-CoV-2,,,\n"
        "VERO-1_1_D05_1,VERO-1_1_D05,VERO,VERO-1,1,D05,1,Active SARS-CoV-2,Chloroquine,"
        "10.0,CCN(CC)CCCC(C)NC1=C2C=CC(Cl)=CC2=NC=C1\n"
    )
    return 5


def fake_rxrx19b(root: Path) -> int:
    """RxRx19b ``metadata.csv``: HUVEC, one site per well, cytokine-storm conditions."""
    (root / "metadata.csv").write_text(
        "site_id,well_id,cell_type,experiment,plate,well,site,disease_condition,treatment,"
        "treatment_conc,SMILES\n"
        "HUVEC-1_1_AA02_1,HUVEC-1_1_AA02,HUVEC,HUVEC-1,1,AA02,1,storm-severe,Baricitinib,"
        "0.3,CCS(=O)(=O)N1CC(CC#N)(C1)N1C=C(C=N1)C1=NC=NC2=C1C=CN2\n"
        "HUVEC-1_1_AA03_1,HUVEC-1_1_AA03,HUVEC,HUVEC-1,1,AA03,1,storm-severe,,,\n"
        "HUVEC-1_1_AA04_1,HUVEC-1_1_AA04,HUVEC,HUVEC-1,1,AA04,1,healthy,,,\n"
        "HUVEC-1_1_AA05_1,HUVEC-1_1_AA05,HUVEC,HUVEC-1,1,AA05,1,,,,\n"
    )
    return 4


FAKES = {
    "rec_rxrx1": fake_rxrx1,
    "rec_rxrx2": fake_rxrx2,
    "rec_rxrx19a": fake_rxrx19a,
    "rec_rxrx19b": fake_rxrx19b,
}
