"""Region-set metadata: reading it and matching its rows to the region sets, never dropping any silently."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd

from ._warnings import excerpt, warn

KEY_COLUMN = "file_name"
#: Cells that ``pandas.read_csv`` reads as missing by default (its ``na_values``), besides an empty one. A metadata
#: file's cell holding one of them is missing, as pandas, R and scanpy users mean it, and said so in a warning
#: naming the sets: a label ``NA`` is never learned, and a set never loses its label without a word.
MISSING_MARKERS = frozenset(
    {"#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA",
     "NULL", "NaN", "None", "n/a", "nan", "null"}
)  # fmt: skip
# a whole number as written by anyone: no sign but "-", no leading zero, fits 64 bits (18 digits always do)
_WHOLE = r"0|-?[1-9][0-9]{0,17}"


def read_metadata(metadata: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    """Read a metadata table with a ``file_name`` column from a CSV/TSV path or a DataFrame."""
    if isinstance(metadata, pd.DataFrame):
        table, source = metadata.copy(), "metadata"
    else:
        path = Path(metadata)
        if not path.exists():
            raise FileNotFoundError(f"metadata file not found: {path}")
        sep = "\t" if path.name.lower().endswith((".tsv", ".tsv.gz", ".txt")) else ","
        try:
            # every cell as the text written: pandas' guesses would make "1", "01" and "1.0" one label 1.0
            table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise ValueError(
                f"{path}: could not be read as a {'TSV' if sep == chr(9) else 'CSV'} table: {err}"
            ) from None
        source = str(path)
        if KEY_COLUMN in table.columns:
            table = _as_written(table, source)
    if KEY_COLUMN not in table.columns:
        raise ValueError(
            f"{source}: no '{KEY_COLUMN}' column (the BED file names without folder); columns are {excerpt(str(list(table.columns)), quote=False)}"
        )
    empty = table[KEY_COLUMN].isna() | (table[KEY_COLUMN].astype(str).str.strip() == "")
    if empty.any():
        rows = (table.index[empty] + 2).tolist() if source != "metadata" else []
        raise ValueError(f"{source}: empty '{KEY_COLUMN}' in {'line(s) ' + str(rows[:10]) if rows else 'some rows'}")
    table[KEY_COLUMN] = table[KEY_COLUMN].astype(str)
    repeated = table[KEY_COLUMN][table[KEY_COLUMN].duplicated()].unique().tolist()
    if repeated:
        raise ValueError(f"{source}: '{KEY_COLUMN}' values must be unique; repeated: {repeated[:10]}")
    table.attrs["source"] = source
    return table


def _as_written(table: pd.DataFrame, source: str) -> pd.DataFrame:
    """The cells of a metadata file (all text) as values: missing, numbers that give back the text, or text.

    An empty cell is missing; so is a cell of :data:`MISSING_MARKERS` (``NA``, ``None``, ``null``...), with one
    warning naming the column, the text and the sets. A column stays text unless every value is the number it
    reads as, written the way Python writes that number back (:func:`_numbers`): ``n_regions`` stays numbers,
    ``1``, ``01`` and ``1.0`` stay three texts.
    """
    marked = []
    for column in table.columns:
        if column == KEY_COLUMN:
            continue
        text = table[column]
        marker = text.isin(MISSING_MARKERS)
        for written in pd.unique(text[marker]):
            names = table.loc[text == written, KEY_COLUMN].tolist()
            marked.append(f"{column!r} is {written!r} for {len(names)} set(s): {_preview(names, 5)}")
        # a cell of spaces only looks empty wherever the table is shown: it is empty
        table[column] = _numbers(text.mask(marker | (text.str.strip() == "")))
    if marked:
        warn(
            f"{source}: cells read as missing, as pandas reads them (a set without a value has no label in that "
            f"column): {'; '.join(marked)}. Leave a cell empty to say missing; to keep such a text as a value, "
            "write it otherwise (e.g. 'none', 'not applicable')"
        )
    return table


def _numbers(text: pd.Series) -> pd.Series:
    """A column of text (missing: NaN) as numbers when no text is lost by it, else as it is.

    Whole numbers (``12``, ``-3``) give integers (nullable ``Int64`` with missing cells); whole and decimal numbers
    each written as Python writes them (``0.5``, ``2``, ``1e-05``) give floats, unless two texts give one number
    (``1`` and ``1.0``). ``True``/``False`` in every cell give booleans. Anything else (``01``, ``+5``, ``1.50``, a
    word) keeps the column text, so that labels stay as written.
    """
    present = text.dropna()
    if present.empty:
        return pd.Series(np.nan, index=text.index)  # a column of empty cells, as pandas reads it
    if present.str.fullmatch(_WHOLE).all():
        return present.astype(np.int64) if present.size == text.size else text.astype("Int64")
    if present.isin(["True", "False"]).all() and present.size == text.size:
        return text == "True"
    numbers = pd.to_numeric(present, errors="coerce")
    if numbers.isna().any() or pd.unique(numbers).size != pd.unique(present).size:
        return text  # not all numbers, or two texts of one number ("1" and "1.0")
    whole = present.str.fullmatch(_WHOLE)
    back = [str(int(x)) if w else str(x) for x, w in zip(numbers, whole, strict=True)]
    return pd.to_numeric(text) if back == present.tolist() else text


def match_metadata(table: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Rows of ``table`` in the order of ``names``; an error lists mismatches on both sides.

    Names are compared in Unicode normal form NFC, so ``café.bed`` written by one system (composed) matches the
    same name written by another (decomposed, as macOS file systems give it).
    """
    source = table.attrs.get("source", "metadata")
    table = table.copy()
    table[KEY_COLUMN] = [unicodedata.normalize("NFC", k) for k in table[KEY_COLUMN]]
    repeated = table[KEY_COLUMN][table[KEY_COLUMN].duplicated()].unique().tolist()
    if repeated:
        raise ValueError(f"{source}: '{KEY_COLUMN}' values must be unique (up to Unicode normalisation): {repeated}")
    keys = pd.Index(table[KEY_COLUMN])
    wanted = pd.Index([unicodedata.normalize("NFC", n) for n in names])
    no_row = wanted.difference(keys, sort=False).tolist()
    no_file = keys.difference(wanted, sort=False).tolist()
    if no_row or no_file:
        parts = []
        if no_row:
            parts.append(f"{len(no_row)} region set(s) have no metadata row: {_preview(no_row)}")
        if no_file:
            parts.append(f"{len(no_file)} metadata row(s) have no region set: {_preview(no_file)}")
        raise ValueError(f"{source} does not match the region sets: " + "; ".join(parts))
    obs = table.set_index(KEY_COLUMN).loc[wanted]
    obs.index = pd.Index(names)  # the sets keep their own names
    obs.index.name = None
    for column in obs.columns:
        if obs[column].dtype == object or pd.api.types.is_string_dtype(obs[column]):
            obs[column] = obs[column].astype("category")
    return obs


def _preview(values: list[str], limit: int = 10) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (f", ... ({len(values) - limit} more)" if len(values) > limit else "")
