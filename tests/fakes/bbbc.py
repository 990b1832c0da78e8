"""Fake raw trees of the BBBC sources with metadata files, in their published layouts.

Values mimic the real files' quirks: BBBC021's '0.003' vs '3.000000' concentrations,
BBBC006's quoted names, lower-case wells and trailing commas, BBBC022's ragged rows,
BBBC017's ';'-joined classes with duplicates and control wells, DSB2018's ``Usage``.
"""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

UUID = "0c9e4dbf-b710-488a-94f8-fb769a829474"


def write_xlsx(path: Path, rows: list[list[str | None]], sheet: str = "Data") -> None:
    """Write a minimal one-sheet spreadsheet (no writer library is a dependency)."""

    def cell(r: int, c: int, v: str) -> str:
        return f'<c r="{chr(65 + c)}{r + 1}" t="inlineStr"><is><t>{escape(v)}</t></is></c>'

    data = "".join(
        f'<row r="{i + 1}">'
        + "".join(cell(i, j, v) for j, v in enumerate(row) if v is not None)
        + "</row>"
        for i, row in enumerate(rows)
    )
    ns = "http://schemas.openxmlformats.org"
    rel = f"{ns}/officeDocument/2006/relationships"
    files = {
        "[Content_Types].xml": (
            f'<Types xmlns="{ns}/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/'
            'vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>'
        ),
        "_rels/.rels": (
            f'<Relationships xmlns="{ns}/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/>'
            "</Relationships>"
        ),
        "xl/workbook.xml": (
            f'<workbook xmlns="{ns}/spreadsheetml/2006/main" xmlns:r="{rel}"><sheets>'
            f'<sheet name="{sheet}" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            f'<Relationships xmlns="{ns}/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/>'
            "</Relationships>"
        ),
        "xl/worksheets/sheet1.xml": (
            f'<worksheet xmlns="{ns}/spreadsheetml/2006/main"><sheetData>{data}'
            "</sheetData></worksheet>"
        ),
    }
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, '<?xml version="1.0" encoding="UTF-8"?>' + text)


def fake_bbbc006(root: Path) -> int:
    lines = ["Image_Count_Nuclei,Image_FileName_OrigDAPI,Image_Metadata_Site,Image_Metadata_Well"]
    for i, (well, site) in enumerate([("a01", 1), ("a01", 2), ("p24", 1)]):
        name = f"mcf-z-stacks-03212011_{well}_s{site}_w1{UUID}.tif"
        lines.append(f'{7 + i},"{name}",{site},"{well}",')
    (root / "bbbc_u2os_focus_metadata.csv").write_text("\n".join(lines) + "\n")
    return 3


PLATE_MAP = [
    ["384well-index", "384-Plate#", "384-well", "gene name", "class", None, None],
    ["1", "1", "A01", "Gabra3", "NONE", "noAltHuman", "noAltMouse"],
    ["2", "1", "A02", "MAPK11", "kinase;kinase_atp;kinase", None, None],
    ["3", "1", "A03", "EMPTY", None, None, None],
    ["4", "2", "A01", "shLuc", None, None, None],
    ["5", "2", "A02", "PTPN1", "phosphatase;geneCards.disease", None, None],
]


def fake_bbbc017(root: Path) -> int:
    # The plate map is Excel-97 .xls as published; with no .xls writer installed the
    # fake writes the same sheet as .xlsx (the real .xls is covered by real-file tests).
    header = [*PLATE_MAP[0][:5], "", ""]
    write_xlsx(root / "BBBC017_v1_metadata.xlsx", [header, *PLATE_MAP[1:]])
    n = 0
    for folder, barcode in [("NIRHTa-001", "050116110001"), ("NIRHTa+002", "050117080001")]:
        plate = root / "BBBC017_v1_images" / folder
        plate.mkdir(parents=True)
        for well in ("A01", "A02"):
            for site in range(2):
                n += 1
                for d in range(3):
                    (plate / f"AS_09125_{barcode}_{well}f{site:02d}d{d}.DIB").write_bytes(b"")
    return n


def fake_bbbc021(root: Path) -> int:
    head = (
        "TableNumber,ImageNumber,Image_FileName_DAPI,Image_PathName_DAPI,"
        "Image_FileName_Tubulin,Image_PathName_Tubulin,Image_FileName_Actin,"
        "Image_PathName_Actin,Image_Metadata_Plate_DAPI,Image_Metadata_Well_DAPI,"
        "Replicate,Image_Metadata_Compound,Image_Metadata_Concentration"
    )
    rows = [head]
    wells = [("G10", "taxol", "0.003"), ("B02", "DMSO", "0"), ("C03", "mystery", "1")]
    for i, (well, compound, conc) in enumerate(wells):
        for site in (1, 2):
            names = [f"{well}_s{site}_w{w}{UUID.upper()}.tif" for w in (1, 2, 4)]
            folder = "Week4/Week4_27481"
            cells = [x for name in names for x in (name, folder)]
            rows.append(",".join(["4", str(2 * i + site), *cells, "Week4_27481", well, "1"]))
            rows[-1] += f",{compound},{conc}"
    with gzip.open(root / "BBBC021_v1_image.csv.gz", "wt") as fh:
        fh.write("\n".join(rows) + "\n")
    (root / "BBBC021_v1_moa.csv").write_text(
        '"compound",concentration,"moa"\n"taxol",0.003000,"Microtubule stabilizers"\n'
        '"DMSO",0.000000,"DMSO"\n'
    )
    return 6


def fake_bbbc022(root: Path) -> int:
    head = (
        "ImageNumber,Image_FileName_OrigER,Image_FileName_OrigHoechst,Image_FileName_OrigMito,"
        "Image_FileName_OrigPh_golgi,Image_FileName_OrigSyto,Image_Metadata_PlateID,"
        "Image_Metadata_Site,Image_Metadata_CPD_WELL_POSITION,Image_Metadata_ASSAY_WELL_ROLE,"
        "Image_Metadata_BROAD_ID,Image_Metadata_SOURCE_COMPOUND_NAME"
    )
    rows = [head]
    fields = [
        ("A01", 1, "mock", "", ""),
        ("A02", 1, "treated", "BRD-K001", "cytochalasin D"),
        ("A03", 2, "treated", "BRD-K002", ""),
        ("A04", 1, "treated", "BRD-K003", "1,2-dithiane"),  # unquoted comma: ragged row
    ]
    for n, (well, site, role, brd, name) in enumerate(fields):
        files = [f"IXMtest_{well}_s{site}_w{w}{UUID}.tif" for w in (2, 1, 5, 4, 3)]
        rows.append(",".join([str(n + 1), *files, "20585", str(site), well, role, brd, name]))
    (root / "BBBC022_v1_image.csv").write_text("\n".join(rows) + "\n")
    return 4


def fake_bbbc025(root: Path) -> int:
    head = (
        "ImageNumber,Image_FileName_OrigHoechst,Image_FileName_OrigERSyto,"
        "Image_FileName_OrigERSytoBleed,Image_FileName_OrigPh_golgi,Image_FileName_OrigMito,"
        "Image_Metadata_Plate,Image_Metadata_Well,Image_Metadata_Site,"
        "Image_Metadata_GeneSymbol,Image_Metadata_ASSAY_WELL_ROLE"
    )
    rows = [head]
    for n, (well, gene, role) in enumerate([("f08", "KIF11", "treated"), ("p12", "", "mock")]):
        files = [f"cellpaintingfollowup-reimage_{well}_s8_w{w}{UUID}.tif" for w in (1, 2, 3, 4, 5)]
        rows.append(",".join([str(n + 1), *files, "37983", well, "8", gene, role]))
    (root / "BBBC025_v1_image.csv").write_text("\n".join(rows) + "\n")
    return 2


def fake_bbbc038(root: Path) -> int:
    ids = [f"{i:064x}" for i in range(1, 6)]
    (root / "stage1_train_labels.csv").write_text(
        "ImageId,EncodedPixels\n" + "".join(f"{ids[0]},{r} 3\n" for r in (1, 40, 90))
    )
    (root / "stage1_solution.csv").write_text(
        "ImageId,EncodedPixels,Height,Width,Usage\n"
        f"{ids[1]},1 4,256,256,Public\n{ids[1]},50 4,256,256,Public\n"
    )
    (root / "stage2_solution_final.csv").write_text(
        "ImageId,EncodedPixels,Height,Width,Usage\n"
        f"{ids[2]},1 1,10,10,Ignored\n{ids[3]},5 5,512,512,Private\n{ids[4]},1 1,10,10,Ignored\n"
    )
    return 5


def fake_bbbc041(root: Path) -> int:
    folder = root / "malaria"
    folder.mkdir()

    def image(stem: str, boxes: list[tuple[int, int, int, int, str]]) -> dict[str, object]:
        return {
            "image": {
                "checksum": stem[::-1],
                "pathname": f"/images/{stem}.png",
                "shape": {"r": 1200, "c": 1600, "channels": 3},
            },
            "objects": [
                {
                    "bounding_box": {"minimum": {"r": r0, "c": c0}, "maximum": {"r": r1, "c": c1}},
                    "category": cat,
                }
                for r0, c0, r1, c1, cat in boxes
            ],
        }

    training = [
        image("8d02117d-6c71", [(10, 20, 110, 120, "red blood cell"), (5, 5, 50, 60, "ring")])
    ]
    test = [image("41be1bd3-0d31", [(1, 2, 3, 4, "trophozoite"), (7, 8, 90, 99, "difficult")])]
    (folder / "training.json").write_text(json.dumps(training))
    (folder / "test.json").write_text(json.dumps(test))
    return 4


FAKES = {
    "bbbc006": fake_bbbc006,
    "bbbc017": fake_bbbc017,
    "bbbc021": fake_bbbc021,
    "bbbc022": fake_bbbc022,
    "bbbc025": fake_bbbc025,
    "bbbc038": fake_bbbc038,
    "bbbc041": fake_bbbc041,
}
