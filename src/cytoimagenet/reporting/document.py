"""A report as a list of blocks, rendered to both HTML and Markdown.

The report pages are simple (headings, paragraphs, tables, figures, code), so a tiny block
model beats a template engine: one description, two renderers, every string escaped once.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 72rem; padding: 0 1rem; color: #1d232a; line-height: 1.45; }
h1 { border-bottom: 2px solid #3b6ea5; padding-bottom: .3rem; }
h2 { margin-top: 2.2rem; color: #24476b; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .92rem; }
th, td { border: 1px solid #c9d1d9; padding: .3rem .6rem; text-align: left; }
th { background: #eef3f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; border: 1px solid #e1e4e8; }
figure.inline { display: inline-block; width: 31%; margin: .5rem 1% .5rem 0;
                vertical-align: top; }
figcaption { font-size: .88rem; color: #57606a; }
pre { background: #f6f8fa; padding: .7rem; overflow-x: auto; font-size: .85rem; }
.note { color: #57606a; font-size: .9rem; }
"""


@dataclass(frozen=True)
class Heading:
    """A section heading."""

    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of plain text; ``note`` renders it smaller and grey."""

    text: str
    note: bool = False


@dataclass(frozen=True)
class Table:
    """A table of cells; numbers are right-aligned in HTML."""

    header: Sequence[str]
    rows: Sequence[Sequence[object]]
    #: Cells to render in bold, as (row, column) pairs.
    bold: frozenset[tuple[int, int]] = frozenset()
    table_id: str | None = None


@dataclass(frozen=True)
class Figure:
    """An image file, linked relative to the report."""

    src: str
    caption: str
    alt: str = ""
    #: Shown side by side with its inline neighbours (HTML), e.g. a row of small matrices.
    inline: bool = False


@dataclass(frozen=True)
class Code:
    """Preformatted text (commands)."""

    text: str


Block = Heading | Paragraph | Table | Figure | Code


@dataclass
class Document:
    """An ordered list of blocks with a title."""

    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> Document:
        """Append blocks; returns ``self`` for chaining."""
        self.blocks.extend(blocks)
        return self


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _html_block(block: Block) -> str:
    esc = html.escape
    if isinstance(block, Heading):
        return f"<h{block.level}>{esc(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        cls = ' class="note"' if block.note else ""
        return f"<p{cls}>{esc(block.text)}</p>"
    if isinstance(block, Code):
        return f"<pre><code>{esc(block.text)}</code></pre>"
    if isinstance(block, Figure):
        alt = esc(block.alt or block.caption)
        cls = ' class="inline"' if block.inline else ""
        return (
            f'<figure{cls}><img src="{esc(block.src)}" alt="{alt}">'
            f"<figcaption>{esc(block.caption)}</figcaption></figure>"
        )
    head = "".join(f"<th>{esc(str(h))}</th>" for h in block.header)
    body = []
    for r, row in enumerate(block.rows):
        cells = []
        for c, value in enumerate(row):
            text = esc(str(value))
            if (r, c) in block.bold:
                text = f"<strong>{text}</strong>"
            cls = ' class="num"' if _is_number(value) else ""
            cells.append(f"<td{cls}>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    ident = f' id="{esc(block.table_id)}"' if block.table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def to_html(doc: Document) -> str:
    """Render a self-contained HTML page (inline CSS; figures are relative links)."""
    body = "\n".join(_html_block(b) for b in doc.blocks)
    title = html.escape(doc.title)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{title}</h1>\n{body}\n</body>\n</html>\n"
    )


def _md_cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _md_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {block.text}"
    if isinstance(block, Paragraph):
        return f"*{block.text}*" if block.note else block.text
    if isinstance(block, Code):
        return f"```\n{block.text}\n```"
    if isinstance(block, Figure):
        return f"![{block.alt or block.caption}]({block.src})\n\n*{block.caption}*"
    lines = [
        "| " + " | ".join(_md_cell(h) for h in block.header) + " |",
        "|" + "|".join("---:" if i else "---" for i in range(len(block.header))) + "|",
    ]
    for r, row in enumerate(block.rows):
        cells = [
            f"**{_md_cell(v)}**" if (r, c) in block.bold else _md_cell(v) for c, v in enumerate(row)
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_markdown(doc: Document) -> str:
    """Render GitHub-flavoured Markdown (figures as relative image links)."""
    return f"# {doc.title}\n\n" + "\n\n".join(_md_block(b) for b in doc.blocks) + "\n"
