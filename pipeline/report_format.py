"""The report's document model and its two renderings: blocks → markdown, blocks → HTML.

A document is a list of blocks: ("h", level, text) | ("p", text) | ("ul", items) |
("table", head, rows) | ("img", alt, src). Text may hold `code` spans, the only inline markup.
Also the number formats every section uses (n/a for a missing or non-finite figure).
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

Block = tuple  # one of the shapes above


def num(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def fmt(value: Any, spec: str = ",.0f", scale: float = 1.0, suffix: str = "") -> str:
    x = num(value)
    return "n/a" if x is None else f"{scale * x:{spec}}{suffix}"


def pct(value: Any, digits: int = 2) -> str:
    return fmt(value, f".{digits}f", 100.0, "%")


def vol(value: Any) -> str:
    """An IV figure (0.0075) in vol points (0.751)."""
    return fmt(value, ".3f", 100.0)


def version_label(version: Any) -> str:
    return "none" if version in (None, "", "none") else f"v{version}"


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block]) -> str:
    out = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            out.append(f"{'#' * block[1]} {block[2]}")
        elif kind == "p":
            out.append(block[1])
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in block[1]) or "- (none)")
        elif kind == "table":
            head, rows = block[1], block[2]
            lines = ["| " + " | ".join(map(_md_cell, head)) + " |",
                     "|" + "|".join("---" for _ in head) + "|"]  # fmt: skip
            lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in rows]
            out.append("\n".join(lines))
        elif kind == "img":
            out.append(f"![{block[1]}]({block[2]})")
    return "\n\n".join(out) + "\n"


def _inline(text: Any) -> str:
    """Escaped HTML with `code` spans (the only inline markup the report uses)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(str(text), quote=False))


STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}"
    "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}th{background:#f0f0f0}"
    "img{max-width:100%}code{background:#f4f4f4;padding:0 .2em}"
)


def to_html(blocks: list[Block], title: str) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{html.escape(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>"]  # fmt: skip
    for block in blocks:
        kind = block[0]
        if kind == "h":
            out.append(f"<h{block[1]}>{_inline(block[2])}</h{block[1]}>")
        elif kind == "p":
            out.append(f"<p>{_inline(block[1])}</p>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            out.append("<table>")
            out.append("<tr>" + "".join(f"<th>{_inline(h)}</th>" for h in block[1]) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
                    for row in block[2]]  # fmt: skip
            out.append("</table>")
        elif kind == "img":
            alt, src = html.escape(block[1]), html.escape(block[2])
            out.append(f'<p><img src="{src}" alt="{alt}"></p>')
    return "\n".join([*out, "</body>", "</html>"]) + "\n"
