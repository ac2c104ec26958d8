"""The index.html pages of translated folders: gennorm's (input | output | target per row) and
pytorch-CycleGAN-and-pix2pix's (its HTML class's layout, for naming "junyanz")."""
from __future__ import annotations

import html
import os
from pathlib import Path
from urllib.parse import quote

from gennorm.atomic import atomic_write_bytes


def _href(name: str) -> str:
    """A file name as a URL path: percent-encoded bytes, so names that are not UTF-8 still link."""
    return html.escape(quote(os.fsencode(name)))


def _text(name: str) -> str:
    """A file name as page text: undecodable bytes shown as U+FFFD."""
    return html.escape(os.fsencode(name).decode("utf-8", "replace"))


def write_junyanz_index(output_dir: Path, stems: list[str], rows: list[list[str]], title: str) -> Path:
    """index.html as pytorch-CycleGAN-and-pix2pix's HTML class writes it: per image a heading and a
    row of its images, each captioned with its visual name (real_A, fake_B, real_B)."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_text(title)}</title></head><body>"]
    for stem, files in zip(stems, rows):
        parts.append(f"<h3>{_text(stem)}</h3><table border='1' style='table-layout: fixed;'><tr>")
        for file in files:
            label = Path(file).stem[len(Path(stem).name) + 1:]  # stem may hold subfolders: a/x
            q = _href(file)
            parts.append(f"<td halign='center' style='word-wrap: break-word;' valign='top'><p><a href='{q}'>"
                         f"<img style='width:256px' src='{q}'></a><br><p>{_text(label)}</p></p></td>")
        parts.append("</tr></table>")
    parts.append("</body></html>\n")
    path = Path(output_dir) / "index.html"
    atomic_write_bytes(path, "".join(parts).encode())
    return path


def write_index(output_dir: Path, names: list[str], with_target: bool, title: str) -> Path:
    """output_dir/index.html: one row per image, input | output (| target)."""
    head = "<tr><th>name</th><th>input</th><th>output</th>" + ("<th>target</th>" if with_target else "") + "</tr>"
    style = 'style="width:256px;image-rendering:pixelated"'
    body = []
    for n in names:
        q, label = _href(n), _text(n)
        cells = [f"<td>{label}</td>", f'<td><img {style} src="inputs/{q}"></td>', f'<td><img {style} src="{q}"></td>']
        if with_target:
            cells.append(f'<td><img {style} src="targets/{q}"></td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{_text(title)}</title></head><body>"
            f"<h1>{_text(title)}</h1><table>{head}{''.join(body)}</table></body></html>\n")
    path = Path(output_dir) / "index.html"
    atomic_write_bytes(path, page.encode())
    return path
