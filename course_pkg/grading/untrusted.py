"""Everything a submission produces is hostile data: read it, bound it, clean it here.

* :func:`read_regular` reads a file that a submission may have made: never through a link,
  only a regular file, never more than a cap (the size is checked on the open file, not on a
  name that could be swapped in between).
* :func:`clean_outputs` keeps, of the outputs a sandboxed cell sent, only what nbgrader and the
  feedback page can show safely: text streams, plain text, PNG images (checked to be PNG) and
  errors, each bounded; no HTML, JavaScript, SVG or widget state ever reaches a page.
* :func:`clean_markdown` makes a student's Markdown cell render as text, not as HTML.
* :func:`one_line` makes a string safe for one line of the report.
* :func:`valid_text` makes any string valid UTF-8 (a lone surrogate from a notebook's JSON
  becomes ``?``); :func:`markdown_text`, :func:`csv_cell` and :func:`plot_text` escape it for
  where it is written: a Markdown report, a spreadsheet, a matplotlib label.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
from pathlib import Path
from typing import Any

from nbformat.notebooknode import NotebookNode, from_dict

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
SURROGATE = re.compile(r"[\ud800-\udfff]")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_IMAGE_BYTES = 2 * 2**20
MAX_TRACEBACK_LINES = 40


class UnsafeFile(ValueError):
    """A path that is a link, not a regular file, or over its size cap."""


def read_regular(path: Path, max_bytes: int, dir_fd: int | None = None) -> bytes:
    """The bytes of ``path``, refusing links, non-regular files and files over ``max_bytes``."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as err:
        raise UnsafeFile(f"{Path(path).name} cannot be opened without following a link "
                         f"({err.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile(f"{Path(path).name} is not a regular file")
        if info.st_size > max_bytes:
            raise UnsafeFile(f"{Path(path).name} is {_size(info.st_size)}, over the limit of "
                             f"{_size(max_bytes)}")
        chunks, total = [], 0
        while chunk := os.read(fd, min(1 << 20, max_bytes + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise UnsafeFile(f"{Path(path).name} grew past {max_bytes} bytes while read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _size(count: int) -> str:
    return f"{count / 2**20:.1f} MiB" if count >= 2**20 else f"{count} bytes"


def regular_files(folder: Path) -> tuple[list[str], list[str]]:
    """(names of the regular files, names of everything else) directly in ``folder``.

    ``folder`` itself must be a real folder, not a link to one.
    """
    if folder.is_symlink() or not folder.is_dir():
        raise UnsafeFile(f"{folder.name} is not a folder (a link, or missing)")
    regular, other = [], []
    with os.scandir(folder) as entries:
        for entry in entries:
            (regular if entry.is_file(follow_symlinks=False) else other).append(entry.name)
    return sorted(regular), sorted(other)


def valid_text(text: Any) -> str:
    """``str(text)`` as valid UTF-8: each lone surrogate (which JSON can carry and no UTF-8
    file or terminal can write) becomes ``?``."""
    value = text if isinstance(text, str) else str(text)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = SURROGATE.sub("?", value)
    return value


def one_line(text: Any, limit: int = 300) -> str:
    """``text`` without line breaks, control or bidirectional characters or lone surrogates,
    at most ``limit`` characters."""
    flat = CONTROL.sub("?", valid_text(text).replace("\r\n", " ").replace("\n", " ")
                       .replace("\r", " "))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]|<>$&])")


def markdown_text(text: Any, limit: int = 300) -> str:
    """``text`` as one line of literal Markdown inside a line: what could open code, a link
    or an image, emphasis, a table cell, HTML or MathJax is escaped (``<``, ``>`` and ``&``
    become entities, the rest a backslash)."""
    flat = one_line(text, limit)
    return MARKDOWN_SPECIAL.sub(lambda m: {"<": "&lt;", ">": "&gt;", "&": "&amp;"}.get(
        m.group(1), "\\" + m.group(1)), flat)


CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: Any, limit: int = 2000) -> str:
    """``text`` for a spreadsheet cell: one line, and a leading ``= + - @`` (which a
    spreadsheet would run as a formula) quoted with an apostrophe."""
    flat = one_line(text, limit)
    return "'" + flat if flat.startswith(CSV_FORMULA) else flat


def plot_text(text: Any, limit: int = 60) -> str:
    """``text`` for a matplotlib label: one line, with ``$`` escaped so that it is never read
    as mathematics (an unknown TeX macro would stop the whole figure)."""
    return one_line(text, limit).replace("$", r"\$")


def _text(value: Any, limit: int) -> str:
    if isinstance(value, list):
        value = "".join(v for v in value if isinstance(v, str))
    if not isinstance(value, str):
        return ""
    value = valid_text(value)
    if len(value) <= limit:
        return value
    return value[:max(limit, 0)] + f"\n[output cut at {max(limit, 0)} characters]"


def _png(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > MAX_IMAGE_BYTES * 4 // 3 + 8:
        return None
    try:
        raw = base64.b64decode(value.replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        return None
    return base64.b64encode(raw).decode("ascii") if raw.startswith(PNG_MAGIC) else None


def clean_outputs(outputs: Any, max_chars: int) -> tuple[list[NotebookNode], bool]:
    """The outputs of a sandboxed cell, reduced to safe, bounded nbformat outputs, and whether
    any were cut to fit ``max_chars``."""
    clean: list[dict[str, Any]] = []
    budget = max_chars
    for output in outputs if isinstance(outputs, list) else []:
        if budget <= 0:
            clean.append({"output_type": "stream", "name": "stdout",
                          "text": f"[further output cut: over {max_chars} characters]\n"})
            break
        if not isinstance(output, dict):
            continue
        kind = output.get("output_type")
        if kind == "stream":
            text = _text(output.get("text"), budget)
            name = "stderr" if output.get("name") == "stderr" else "stdout"
            if text:
                clean.append({"output_type": "stream", "name": name, "text": text})
                budget -= len(text)
        elif kind in ("display_data", "execute_result"):
            data = output.get("data") if isinstance(output.get("data"), dict) else {}
            kept: dict[str, str] = {}
            plain = _text(data.get("text/plain"), budget)
            if plain:
                kept["text/plain"] = plain
                budget -= len(plain)
            png = _png(data.get("image/png"))
            if png:
                kept["image/png"] = png
            if not kept:
                continue
            item: dict[str, Any] = {"output_type": kind, "data": kept, "metadata": {}}
            if kind == "execute_result":
                item["execution_count"] = None
            clean.append(item)
        elif kind == "error":
            traceback = output.get("traceback")
            lines = [_text(t, 2000) for t in traceback[:MAX_TRACEBACK_LINES]] if isinstance(
                traceback, list) else []
            clean.append({"output_type": "error", "ename": one_line(output.get("ename"), 100),
                          "evalue": _text(output.get("evalue"), 2000), "traceback": lines})
            budget -= sum(map(len, lines))
    return [from_dict(o) for o in clean], budget < 0 or any(
        "output cut" in str(o.get("text", "")) for o in clean)


def clean_markdown(source: str) -> str:
    """A student's Markdown as text: ``<`` escaped (no raw HTML), ``[`` escaped (no link or
    image) and ``://`` escaped (no address made a link), so that nothing on the page runs on a
    click or loads from an address the student chose.

    Mathematics is unchanged on the page: the browser turns the entities back into ``<`` and
    ``[`` before MathJax reads them.
    """
    return source.replace("<", "&lt;").replace("[", "&#91;").replace("://", "&#58;//")
