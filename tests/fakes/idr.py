"""Fake raw trees of the IDR studies, in the layouts and column sets IDR publishes.

Each writer puts the study's annotation file(s) where a metadata-only download would
(``screenA/idrNNNN-screenA-annotation.csv`` …), with the quirks of
the real files: URL templates in headers, a CSV inside a zip, plate names with spaces,
re-processed duplicate plates, plate names repeated across screens, a ragged copy …
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

Row = Sequence[str]


def _csv(header: Row, rows: Sequence[Row], delimiter: str = ",") -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def write_table(
    path: Path, header: Row, rows: Sequence[Row], *, delimiter: str = ",", zip_it: bool = False
) -> Path:
    """Write ``rows`` under ``header`` to ``path`` (plain, or one CSV inside ``path``.zip)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = _csv(header, rows, delimiter)
    if zip_it:
        target = path.with_name(path.name + ".zip")
        with zipfile.ZipFile(target, "w") as zf:
            zf.writestr(path.name, text)
        return target
    path.write_text(text, encoding="utf-8")
    return path


HUMAN = ("Homo sapiens", "NCBITaxon", "NCBITaxon_9606")


def fake_idr0003(root: Path) -> int:
    header = [
        "Plate", "Well Number", "Well", "Plate_Well", "Gene Identifier", "Gene Symbol",
        "Control Type", "Control Comments", "Quality Control",
        "Experimental Condition [environmental stress]", "Comment",
    ]  # fmt: skip
    rows = [
        ["DTT p1", "1", "A1", "DTT p1_A1", "YLR106C", "", "", "", "", "dithiothreitol", ""],
        ["DTT p1", "2", "A2", "DTT p1_A2", "YAL001C", "TFC3", "", "", "", "dithiothreitol", ""],
        ["SD1 p1", "1", "A1", "SD1 p1_A1", "YJR151C", "DAN4", "", "",
         "Excluded: GPI-anchored protein", "synthetic medium with dextrose", ""],
        ["SD1 p1", "33", "B9", "SD1 p1_B9", "", "missing_info_possibly_empty",
         "missing_info_possibly_empty", "", "", "synthetic medium with dextrose", ""],
    ]  # fmt: skip
    write_table(root / "screenA" / "idr0003-screenA-library.txt", header, rows, delimiter="\t")
    return len(rows)


def fake_idr0009(root: Path) -> int:
    header = [
        "Plate", "Plate Group", "Well Number", "Well", "siRNA Identifier", "Antisense Sequence",
        "Sense Sequence", "Gene Identifier %% url=http://www.ensembl.org/id/%s",
        "Gene Symbol (Ensembl 81)", "Control Type", "Control Comments", "Comments",
        "Gene Symbol (Ensembl 61)", "Phenotype 1",
        "Phenotype 1 Term Accession %% url=http://www.ebi.ac.uk/cmpo/%s",
    ]  # fmt: skip
    rows = [
        ["0305-01--2007-04-03", "305", "1", "A1", "", "", "", "", "", "empty well", "", "",
         "", "", ""],
        ["0305-01--2007-04-03", "305", "2", "A2", "SI00289037", "UAAC", "CCCU",
         "ENSG00000109576", "AADAT", "", "", "", "AADAT", "strong inhibition of secretion",
         "CMPO_0000246"],
        ["0305-01--2007-04-03", "305", "3", "A3", "103860", "", "", "", "", "negative control",
         "non-targeting siRNA", "", "", "", ""],
        ["0305-01--2007-04-03", "305", "4", "A4", "S1", "", "", "ENSG1;ENSG2", "", "", "",
         "images missing for well", "OLDSYM", "", ""],
    ]  # fmt: skip
    write_table(root / "screenA" / "idr0009-screenA-annotation.csv", header, rows)
    return len(rows)


def fake_idr0016(root: Path) -> int:
    header = [
        "Plate", "Well", "Characteristics [Organism]", "Term Source 1 REF",
        "Term Source 1 Accession", "Characteristics [Cell Line]", "Compound Name",
        "Compound Broad Identifier", "Compound Group", "Compound SMILES", "Dose",
        "Control Type", "Control Comments", "Channels", "Comments", "Plate Issues",
    ]  # fmt: skip
    rows = [
        ["24277", "A01", *HUMAN, "U2OS", "DMSO", "", "", "", "", "negative control", "", "", "",
         ""],
        ["24277", "A02", *HUMAN, "U2OS", "BRD-K1234", "BRD-K12345678", "DOS - Click Library",
         "CCO", "5 micromolar", "", "", "", "", ""],
    ]  # fmt: skip
    write_table(root / "screenA" / "idr0016-screenA-annotation.csv", header, rows)
    return len(rows)


def fake_idr0017(root: Path) -> int:
    header = [
        "Plate", "Well", "Characteristics [Organism]", "Term Source 1 REF",
        "Term Source 1 Accession", "Characteristics [Cell Line]", "Mutation Detailed",
        "Compound Name", "Compound Class", "Control Type", "Control Comments", "Channels",
    ]  # fmt: skip
    plate = "PTEN-/-_LOPAC_Plate_1_Replicate_1"
    rows = [
        [plate, "A1", *HUMAN, "104-001", "PTEN knockout", "DMSO", "", "negative control", "",
         "DAPI:nuclei;Cy3:actin"],
        [plate, "A2", *HUMAN, "", "", "Taxol", "Tubulin", "", "", "DAPI:nuclei;Cy3:actin"],
    ]  # fmt: skip
    write_table(root / "screenA" / "idr0017-screenA-annotation.csv", header, rows)
    return len(rows)


def fake_idr0021(root: Path) -> int:
    header = [
        "Dataset Name", "Image Name", "Characteristics [Organism]", "Characteristics [Cell Line]",
        "Comment [Gene Symbol]", "Channels", "Has Phenotype", "Phenotype 1",
        "Phenotype 1 Term Name",
    ]  # fmt: skip
    rows = [
        ["CEP120/20111106", "a_SIR_PRJ.dv", "Homo sapiens", "HeLa", "CEP120",
         "442:CENT2; 525:PCNT", "yes", "protein localized to centrosome", "x"],
        ["CEP120/20111209", "a_SIR_PRJ.dv", "Homo sapiens", "HeLa", "CEP120",
         "442:CENT2; 525:PCNT", "yes", "protein localized to centrosome", "x"],
    ]  # fmt: skip
    write_table(root / "experimentA" / "idr0021-experimentA-annotation.csv", header, rows)
    return len(rows)


def fake_idr0037(root: Path) -> int:
    header = [
        "Plate", "Comment [Operetta Plate Name]", "Plate Column", "Plate Row", "Well",
        "Well Number", "Characteristics [Organism]", "Term Source 1 REF",
        "Term Source 1 Accession", "Characteristics [Cell Line]", "Characteristics [Cell Type]",
        "Experimental Condition [Compound]", "Experimental Condition [Dose]", "Control Type",
        "Control Comments", "Channels",
    ]  # fmt: skip
    rows = [
        ["experiment_1", "20140424_HipSci + BJ/well_OC", "1", "1", "A1", "1", *HUMAN,
         "HPSI0813i-ffdm_3", "induced pluripotent stem cell", "fibronectin",
         "1 microgram per milliliter", "", "", "DAPI:nuclei"],
        ["experiment_1", "20140424_HipSci + BJ/well_OC", "10", "1", "A10", "10", *HUMAN,
         "CTRL0214pf-iely", "", "", "", "", "control cell line", "DAPI:nuclei"],
    ]  # fmt: skip
    write_table(root / "screenA" / "idr0037-screenA-annotation.csv", header, rows)
    return len(rows)


def fake_idr0041(root: Path) -> int:
    header = [
        "Dataset Name", "Image Name", "Source Name", "Characteristics [Organism]",
        "Characteristics [Cell Line]", "Experimental Condition [ # fill in]",
        "Comment [Gene Identifier]", "Comment [Gene Symbol]", "Comment [Image File Type]",
        "Channels",
    ]  # fmt: skip

    def row(dataset: str, image: str, gene: str, kind: str) -> list[str]:
        return [dataset, image, gene, "Homo sapiens", "HeLa", "Genome-edited cell", "ENSG1",
                gene, kind, "490-552:GFP"]  # fmt: skip

    newer = [
        row("170428_MAD2L1_MitoSys1_raw", "cell0001_T0001", "MAD2L1", "original images"),
        row("170428_MAD2L1_MitoSys1_mask", "cell0001_T0001", "MAD2L1", "segmentation masks"),
    ]
    older = [
        row("140411_KIF11_MitoSys1_raw", "TR1_T0001", "KIF11", "original images"),
        newer[0],  # an image both versions list: kept once
    ]
    write_table(root / "experimentA" / "idr0041-experimentA-annotation.csv", header, newer)
    write_table(root / "51a4029" / "idr0041-experimentA-annotation.csv", header, older)
    return 3


IDR0067_HEADER = [
    "Dataset Name", "Image Name", "Characteristics [Organism]", "Characteristics [Strain]",
    "Protocol", "Experimental Condition [Imaging Type]", "Comment [Gene Symbol] 1",
    "Comment [Protein] 1", "Comment [Gene Symbol] 2", "Comment [Protein] 2",
    "Comment [Image File Type]", "Channels",
]  # fmt: skip


def fake_idr0067(root: Path) -> int:
    rows = [
        ["Figure 1B", "1B_01_R3D.dv", "Saccharomyces cerevisiae", "SK1", "Growth - SPO, 30C",
         "Live cell imaging", "HSP104", "Hsp104", "HTB1", "Htb1", "Raw",
         "FITC = Hsp104-eGFP, mCherry = Htb1-mCherry"],
        ["Figure 5D", "5D_em.tif", "Saccharomyces cerevisiae", "SK1", "Growth - SPO, 30C",
         "Electron microscopy", "", "", "", "", "Raw", ""],
    ]  # fmt: skip
    write_table(root / "experimentA" / "idr0067-experimentA-annotation.csv", IDR0067_HEADER, rows)
    # CytoImageNet's copy: same images, unquoted commas (ragged rows) and one extra image.
    ragged = [",".join(r) for r in rows]
    only_here = ["Figure 6A", "6A_only_here.dv", *rows[0][2:6], "NUP170", "Nup170", "", "",
                 "Raw", "FITC"]  # fmt: skip
    ragged.append(",".join(only_here))
    copy = root / "annotations" / "idr0067_metadata.csv"
    copy.parent.mkdir(parents=True)
    copy.write_text("\n".join([",".join(IDR0067_HEADER), *ragged]) + "\n", encoding="utf-8")
    return 3


IDR0072_HEADER = [
    "Plate", "Well", "Characteristics [Organism]", "Term Source 1 REF", "Term Source 1 Accession",
    "Characteristics [Cell Line]", "Comment [Gene Symbol]", "Comment [Protein Name Abbreviation]",
    "Experimental Condition [Subcellular Localization]", "Channels",
]  # fmt: skip


def fake_idr0072(root: Path) -> int:
    a = [["WS_MCF10A_Landmark_20180613/Meas_01", "N1", *HUMAN, "MCF 10A", "CALR", "Calr-KDEL",
          "endoplasmic reticulum", "EGFP, DRAQ5"]]  # fmt: skip
    b = [
        ["20130208_TA_VAMP1_DEG/Meas_01", "A3", "Mus musculus", "NCBITaxon", "NCBITaxon_10090",
         "NMuMG", "PTDSS1", "PTDSS1",
         "mitochondria-associated ER-membrane, endoplasmic reticulum", "EGFP, DRAQ5"],
        ["20130208_TA_VAMP1_DEG/Meas_01", "B3", "Mus musculus", "NCBITaxon", "NCBITaxon_10091",
         "NMuMG", "PCNA", "PCNA", "nucleus", "EGFP, DRAQ5"],
    ]  # fmt: skip
    write_table(root / "screenA" / "idr0072-screenA-annotation.csv", IDR0072_HEADER, a)
    write_table(root / "screenB" / "idr0072-screenB-annotation.csv", IDR0072_HEADER, b)
    return 3


def fake_idr0080(root: Path) -> int:
    header = [
        "Plate", "Well", "Characteristics [Organism]", "Term Source 1 REF",
        "Term Source 1 Accession", "Characteristics [Cell Line]", "Term Source 2 REF",
        "Term Source 2 Accession", "Reagent Identifier", "Sense Sequence", "Antisense Sequence",
        "Reagent Design Gene Annotation Build", "Gene Identifier", "Gene Symbol", "Control Type",
        "Channels", "Comment [Image]",
    ]  # fmt: skip
    rows = []
    for plate, note in (("SQ00014610_illum_corrected", "images are illumination corrected"),
                        ("SQ00014610", "nan")):  # fmt: skip
        rows += [
            [plate, "A1", *HUMAN, "A549", "EFO", "EFO_0001086", "", "", "", "", "", "",
             "no reagent", "Hoechst", f"{note}; empty well"],
            [plate, "A2", *HUMAN, "A549", "EFO", "EFO_0001086", "MCL1-5", "CAT", "GTA",
             "Ensembl 101", "ENSG00000143384", "MCL1", "", "Hoechst", note],
            [plate, "B1", *HUMAN, "A549", "EFO", "EFO_0001086", "Chr2-1", "GAC", "CTG", "", "",
             "Chr2", "negative", "Hoechst", ""],
        ]  # fmt: skip
    # A plate published only as its corrected copy is kept.
    rows.append(["SQ00014611_illum_corrected", "A1", *HUMAN, "ES2", "EFO", "x", "", "", "",
                 "", "ENSG00000133703", "KRAS", "", "Hoechst", ""])  # fmt: skip
    write_table(root / "screenA" / "idr0080-screenA-annotation.csv", header, rows)
    return 4


IDR0081_HEADER = [
    "Plate", "Comment [Plate Replicate]", "Well", "Characteristics [Organism 1]",
    "Term Source 1 REF", "Term Source 1 Accession", "Characteristics [Organism 2]",
    "Characteristics [Cell Line]", "Compound Name", "Compound Concentration (microMolar)",
    "Experimental Condition [DMSO solvent]", "Control Type", "Comment [Control Type Comments]",
    "Quality Control", "Comment [Quality Control Comments]", "Number Of Nuclei",
]  # fmt: skip


def fake_idr0081(root: Path) -> int:
    def row(well: str, compound: str, control: str, qc: str) -> list[str]:
        return ["Za_BSF018104", "Za", well, *HUMAN, "Human adenovirus 2", "A549", compound,
                "1762.5", "0.01%", control, "", qc, "", "11558315037"]  # fmt: skip

    b = [row("A1", "Dimethyl sulfoxide", "negative control", "pass"),
         row("A2", "", "", "fail")]  # fmt: skip
    c = [row("A1", "Dimethyl sulfoxide", "negative control", "pass")]
    write_table(root / "screenB" / "idr0081-screenB-annotation.csv", IDR0081_HEADER, b)
    write_table(root / "screenC" / "idr0081-screenC-annotation.csv", IDR0081_HEADER, c)
    return 3


IDR0088_HEADER = [
    "Plate", "Well", "Characteristics [Organism]", "Term Source 1 REF", "Term Source 1 Accession",
    "Characteristics [Cell Line]", "Comment [Cell Line with Markers]",
    "Compound Concentration (microMolar)", "Compound Set", "Compound MoA", "Compound Name",
    "Compound PubChem CID", "Control Type", "Channels",
]  # fmt: skip


def fake_idr0088(root: Path) -> int:
    rows = [
        ["1013608248", "L10", *HUMAN, "A549", "A549-ACTB", "10", "MoA Reference",
         "topoisomerase inhibitor|dna synthesis inhibitor", "Etoposide", "36462.0", "",
         "Ch1 (blue): Nuclei"],
        ["1013608248", "A1", *HUMAN, "HepG2", "HepG2-ACTB-RAB5A", "", "", "", "DMSO", "",
         "Negative Control", "Ch1 (blue): Nuclei"],
    ]  # fmt: skip
    write_table(root / "screenA" / "idr0088-screenA-annotation.csv", IDR0088_HEADER, rows,
                zip_it=True)  # fmt: skip
    return len(rows)


def fake_idr0093(root: Path) -> int:
    header = [
        "Plate", "Well", "Characteristics [Organism]", "Term Source 1 REF",
        "Term Source 1 Accession", "Characteristics [Cell Line]", "Comment [Cell Line]",
        "Gene Identifier", "Gene Symbol", "HGNC Gene Symbol", "siRNA Pool Identifier 1",
        "Comment [siRNA Pool]", "siRNA Pool Identifier 2", "siRNA Pool Identifier 3",
        "Control Type", "Comment [Control Type Comments]", "Quality Control", "n_cells",
        "Has Phenotype", "Phenotype", "Channels",
    ]  # fmt: skip
    rows = [
        ["001", "A1", *HUMAN, "HeLa", "", "3832", "KIF11", "KIF11", "s7902", "", "s7903",
         "s7904", "positive control", "", "pass", "120", "yes", "decreased cell number",
         "DAPI"],
        ["001", "A2", *HUMAN, "HeLa", "", "", "", "", "", "Scrambled, s229174", "", "",
         "negative control", "", "pass", "800", "no", "", "DAPI"],
    ]  # fmt: skip
    write_table(root / "screenA" / "idr0093-screenA-annotation.csv", header, rows)
    return len(rows)


FAKES = {
    "idr0003": fake_idr0003,
    "idr0009": fake_idr0009,
    "idr0016": fake_idr0016,
    "idr0017": fake_idr0017,
    "idr0021": fake_idr0021,
    "idr0037": fake_idr0037,
    "idr0041": fake_idr0041,
    "idr0067": fake_idr0067,
    "idr0072": fake_idr0072,
    "idr0080": fake_idr0080,
    "idr0081": fake_idr0081,
    "idr0088": fake_idr0088,
    "idr0093": fake_idr0093,
}
