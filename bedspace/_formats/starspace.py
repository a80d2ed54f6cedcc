"""StarSpace's file formats: token spelling, the fastText-style training file and the ``.tsv`` model.

Arrays in, files out (and back): which sets and labels go into a file is decided by the training layer.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np

from .._atomic import atomic_path

LABEL_PREFIX = "__label__"


def label_token(field: str, value: str) -> str:
    """The StarSpace token of a label: no spaces, colons or empty parts, and reversible."""
    return f"{LABEL_PREFIX}{quote(str(field), safe='')}={quote(str(value), safe='')}"


def parse_label_token(token: str) -> tuple[str, str]:
    """``(field, value)`` of a token written by :func:`label_token` (a plain ``__label__x`` is field ``label``)."""
    body = token.removeprefix(LABEL_PREFIX)
    field, sep, value = body.partition("=")
    if not sep:
        return "label", unquote(body)
    return unquote(field), unquote(value)


def region_token(chrom: str, start: int, end: int) -> str:
    """The StarSpace token of a universe region, ``chr1_100_200`` (no ``:``, which StarSpace reads as a weight)."""
    return f"{quote(str(chrom), safe='')}_{start}_{end}"


def write_training_file(
    path: str | os.PathLike,
    *,
    region_tokens: Sequence[str],
    label_tokens: Sequence[str],
    indptr: np.ndarray,
    indices: np.ndarray,
    label_ptr: np.ndarray,
    label_idx: np.ndarray,
) -> str:
    """Write one line per example: its region tokens, then its label tokens; returns the sha256 of the file.

    Every example must have at least one region and one label (an empty line would make StarSpace's
    ``embed_doc`` stop reading); no token holds a ``:``, no token is empty, no line has trailing spaces.
    """
    regions = np.asarray(region_tokens, dtype=object)
    labels = np.asarray(label_tokens, dtype=object)
    digest = hashlib.sha256()
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as out:
        for i in range(indptr.size - 1):
            row_regions = regions[indices[indptr[i] : indptr[i + 1]]]
            row_labels = labels[label_idx[label_ptr[i] : label_ptr[i + 1]]]
            if not row_regions.size or not row_labels.size:
                raise ValueError(f"training example {i} has no region or no label; it cannot be written")
            line = " ".join(row_regions) + " " + " ".join(row_labels) + "\n"
            digest.update(line.encode("utf-8"))
            out.write(line)
    return digest.hexdigest()


def read_starspace_tsv(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Read a StarSpace ``.tsv`` model: symbols and their vectors (float32).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        A line without a vector, of another width than the first, with a value that is not a number, or with a
        non-finite value (``nan``, ``inf``: a diverged run); the message names the file and line.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"StarSpace model not found: {path}")
    symbols: list[str] = []
    rows: list[np.ndarray] = []
    dim = None
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            fields = line.rstrip("\n").rstrip("\t ").split("\t")
            if len(fields) < 2:
                raise ValueError(f"{path}, line {line_no}: expected 'symbol<TAB>v1<TAB>...', got {line[:80]!r}")
            if dim is None:
                dim = len(fields) - 1
            elif len(fields) - 1 != dim:
                raise ValueError(f"{path}, line {line_no}: {len(fields) - 1} values, the first line had {dim}")
            try:
                row = np.array(fields[1:], dtype=np.float32)
            except ValueError:
                raise ValueError(f"{path}, line {line_no}: vector values must be numbers") from None
            if not np.isfinite(row).all():
                raise ValueError(
                    f"{path}, line {line_no}: the vector of {fields[0]!r} has non-finite values (nan or inf): the "
                    "training diverged (try a smaller learning rate)"
                )
            rows.append(row)
            symbols.append(fields[0])
    if not symbols:
        raise ValueError(f"{path}: empty StarSpace model")
    return symbols, np.vstack(rows)


def write_starspace_tsv(symbols: Sequence[str], vectors: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a StarSpace ``.tsv`` model (6 significant digits, as StarSpace writes it), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        for symbol, vector in zip(symbols, vectors, strict=True):
            out.write(symbol + "\t" + "\t".join(f"{x:.6g}" for x in vector) + "\n")
    return path


def place_symbols(
    symbols: Sequence[str], vectors: np.ndarray, region_tokens: Sequence[str]
) -> tuple[np.ndarray, list[tuple[str, str]], np.ndarray]:
    """Sort a StarSpace model's rows: region vectors onto ``region_tokens``' order, and the labels it holds.

    Returns ``(region_vectors, label_keys, label_vectors)``; regions the model lacks are 0, labels are in the
    model's order as ``(field, value)`` pairs.
    """
    row_of_region = {token: i for i, token in enumerate(region_tokens)}
    region_vectors = np.zeros((len(region_tokens), vectors.shape[1]), np.float32)
    label_rows, label_keys, unknown = [], [], []
    for k, symbol in enumerate(symbols):
        if symbol.startswith(LABEL_PREFIX):
            label_rows.append(k)
            label_keys.append(parse_label_token(symbol))
        elif symbol in row_of_region:
            region_vectors[row_of_region[symbol]] = vectors[k]
        else:
            unknown.append(symbol)
    if unknown:
        example = next(iter(row_of_region), "chr1_0_5000")
        raise ValueError(
            f"{len(unknown)} region token(s) of the StarSpace model are not regions of this universe "
            f"(expected tokens like {example!r}): {unknown[:5]}"
        )
    return region_vectors, label_keys, vectors[label_rows].astype(np.float32).reshape(len(label_rows), -1)
