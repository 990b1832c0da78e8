"""The IDR studies CytoImageNet draws on, one declarative :class:`IdrStudy` each.

Why each choice was made is in the comment above the study. Importing this module registers
an :class:`IdrAdapter` per study.
"""

from __future__ import annotations

from typing import Final

from cytoimagenet.sources.base import register
from cytoimagenet.sources.idr import QC_FAIL, Exclude, IdrAdapter, IdrStudy


def _channels(template: str, tokens: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(template.replace("<c>", t) for t in tokens)


SCREEN_BASICS: Final = {
    "organism": ("Characteristics [Organism]",),
    "cell_type": ("Characteristics [Cell Line]",),
}

# Per-study specs. Why each choice was made is in the comment above it.
STUDIES: Final[dict[str, IdrStudy]] = {
    # Library (pre-annotation, tab-separated) or final annotation. The environmental stress
    # (DTT, hydrogen peroxide, starvation, or the unstressed synthetic dextrose medium) is
    # the plate's growth condition, not an observed phenotype: it goes to `condition`.
    # Y6545 is the yeast strain of the GFP collection (idr0003 study file), not a cell type.
    # Gene Symbol is the GFP-tagged protein, i.e. what is *visible*, not a perturbation; the
    # placeholder control marks empty wells.
    "idr0003": IdrStudy(
        labels={
            "organism": ("Characteristics [Organism]",),
            "strain": ("Characteristics [Strain]",),
            "cell_visible": (("Gene Symbol", "Gene Identifier"),),
            "condition": ("Experimental Condition [Environmental Stress]",),
        },
        constants={"strain": ("Y6545",)},
        control_values={"missing_info_possibly_empty": "empty well"},
        files=_channels("{plate}/{well}--<c>.tif", ("Cherry", "GFP", "Transmit")),
    ),
    # siRNA screen; two gene-symbol columns (Ensembl 81 preferred, 61 as fallback). The
    # Ambion siRNA ids are written with a 'Q' on plate group 0305 and without on 0311, in
    # the same wells with the same gene (Q103860/103860 non-targeting, Q120368/120368
    # RAB1A …): one id, written as the number.
    "idr0009": IdrStudy(
        rewrite={"sirna": (r"^[Qq](\d+)$", "${1}")},
        labels={
            **SCREEN_BASICS,
            "gene": (("Gene Symbol (Ensembl 81)", "Gene Symbol (Ensembl 61)", "Gene Symbol"),),
            "sirna": ("siRNA Identifier",),
            "phenotype": (r"re:^Phenotype \d+$",),
        },
        exclude=(QC_FAIL, Exclude("Comments", "images missing", "images missing for well")),
        files=_channels("{plate}/{well}--<c>.tif", ("nucleus-dapi", "pm-647", "vsvg-cfp")),
    ),
    # Compound Group (the library) is the survey's pseudo-label; one record per well,
    # paths of site 1 (6 sites; IDR names add a UUID after _w<n>, resolved at image time).
    "idr0016": IdrStudy(
        labels={**SCREEN_BASICS, "compound": ("Compound Name",), "phenotype": ("Compound Group",)},
        site="1",
        files=tuple(
            f"{{plate}}-{folder}/cdp2bioactives_{{well02l}}_s1_w{n}.tif"
            for folder, n in (
                ("ERSyto", 2),
                ("ERSytoBleed", 3),
                ("Hoechst", 1),
                ("Mito", 5),
                ("Ph_golgi", 4),
            )
        ),
    ),
    # Cell line from the annotation, else from the readable plate name ("PTEN-/-_LOPAC_…").
    "idr0017": IdrStudy(
        labels={**SCREEN_BASICS, "compound": ("Compound Name",)},
        plate_labels={"cell_type": r"^(.+?)_LOPAC"},
        files=_channels("{plate}/{well}_<c>.tif", ("DAPI", "Cy3")),
    ),
    # Experiment; the antibody target is the protein seen at the centrosome.
    "idr0021": IdrStudy(
        layout="experiment",
        labels={
            "organism": ("Characteristics [Organism]",),
            "cell_type": ("Characteristics [Cell Line]",),
            "cell_visible": ("Comment [Gene Symbol]",),
            "phenotype": (r"re:^Phenotype \d+$",),
        },
        constants={"cell_visible": ("centrosome",)},
        folder="{dataset}",
        stem="{image}",
        files=("{dataset}/{image}",),
    ),
    "idr0037": IdrStudy(
        labels={**SCREEN_BASICS, "compound": ("Experimental Condition [Compound]",)},
        files=tuple(f"{{plate}}/{{well}}-ch{n}.tiff" for n in (1, 2, 3)),
    ),
    # Genome-edited lines: the tagged protein is visible; masks and concentration maps
    # are derived images, not microscopy.
    "idr0041": IdrStudy(
        layout="experiment",
        labels={
            "organism": ("Characteristics [Organism]",),
            "cell_type": ("Characteristics [Cell Line]",),
            "cell_visible": ("Comment [Gene Symbol]",),
        },
        exclude=(Exclude("Comment [Image File Type]", r"(?i)mask|concentration"),),
        folder="{dataset}",
        stem="{image}",
        files=("{dataset}/{image}.tif",),
    ),
    # Tagged proteins are visible; SK1 is the yeast strain (`strain`, not a cell type);
    # electron micrographs are out of scope (paper).
    "idr0067": IdrStudy(
        layout="experiment",
        labels={
            "organism": ("Characteristics [Organism]",),
            "strain": ("Characteristics [Strain]",),
            "cell_visible": ("Comment [Protein] 1", "Comment [Protein] 2"),
        },
        microscopy=(
            "Experimental Condition [Imaging Type]",
            {"Electron microscopy": "electron microscopy"},
        ),
        exclude=(
            Exclude(
                "Experimental Condition [Imaging Type]",
                "(?i)electron",
                "electron microscopy (out of scope)",
            ),
        ),
        folder="{dataset}",
        stem="{image}",
        files=("{dataset}/{image}",),
    ),
    # DRAQ5 stains the nucleus; the EGFP marker's localisation and its abbreviation
    # (calr-kdel, pcna …) are what is visible. Term Source accessions are autofill-damaged
    # and never read.
    "idr0072": IdrStudy(
        labels={
            **SCREEN_BASICS,
            "cell_visible": (
                "Experimental Condition [Subcellular Localization]",
                "Comment [Protein Name Abbreviation]",
            ),
        },
        constants={"cell_visible": ("nucleus",)},
        split={"Experimental Condition [Subcellular Localization]": ", "},
        files=("{plate}/{well}_draq5.tif", "{plate}/{well}_egfp.tif"),
    ),
    # Raw plates are kept; their `_illum_corrected` copies duplicate every well.
    "idr0080": IdrStudy(
        labels={**SCREEN_BASICS, "gene": ("Gene Symbol",)},
        empty_well=("Comment [Image]", "(?i)empty well"),
        plate_variants=("_illum_corrected",),
        files=tuple(f"{{plate}}/{{well}}-ch{n}sk1fk1fl1.tiff" for n in range(1, 6)),
    ),
    # Five screens; B/C and D/E image the same plates at two sites, hence the screen
    # folder in the paths.
    "idr0081": IdrStudy(
        labels={
            "organism": (("Characteristics [Organism 1]", "Characteristics [Organism]"),),
            "cell_type": ("Characteristics [Cell Line]",),
            "compound": ("Compound Name",),
        },
        folder="{screen}/{plate}",
        files=tuple(f"{{screen}}/{{plate}}/{{well}}_w{n}.tif" for n in (1, 2)),
    ),
    # Compound MoA ('|'-joined) is a fact about the compound, not a phenotype seen in the
    # image: it goes to `moa`, not a label category by default (docs/labels.md).
    "idr0088": IdrStudy(
        labels={
            **SCREEN_BASICS,
            "compound": ("Compound Name",),
            "moa": ("Compound MoA",),
        },
        required=("Compound Name",),
        files=tuple(f"{{plate}}/{{well02}}{n}.tif" for n in (1, 2, 3)),
    ),
    "idr0093": IdrStudy(
        labels={
            **SCREEN_BASICS,
            "gene": (("Gene Symbol", "HGNC Gene Symbol"),),
            "sirna": ("siRNA Identifier", r"re:^siRNA Pool Identifier \d+$"),
            "phenotype": ("Phenotype",),
        },
        files=tuple(f"{{plate}}/{{well}}{n}.tif" for n in (1, 2, 3, 4)),
    ),
}

for _name, _study in STUDIES.items():
    register(IdrAdapter(_name, _study))
