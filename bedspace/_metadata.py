"""Region-set metadata: reading it and matching its rows to the region sets, never dropping any silently."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pandas as pd

KEY_COLUMN = "file_name"


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
            table = pd.read_csv(path, sep=sep, dtype={KEY_COLUMN: str})
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise ValueError(
                f"{path}: could not be read as a {'TSV' if sep == chr(9) else 'CSV'} table: {err}"
            ) from None
        source = str(path)
    if KEY_COLUMN not in table.columns:
        raise ValueError(
            f"{source}: no '{KEY_COLUMN}' column (the BED file names without folder); columns are {list(table.columns)}"
        )
    if table[KEY_COLUMN].isna().any():
        rows = (table.index[table[KEY_COLUMN].isna()] + 2).tolist() if source != "metadata" else []
        raise ValueError(f"{source}: empty '{KEY_COLUMN}' in {'line(s) ' + str(rows[:10]) if rows else 'some rows'}")
    table[KEY_COLUMN] = table[KEY_COLUMN].astype(str)
    repeated = table[KEY_COLUMN][table[KEY_COLUMN].duplicated()].unique().tolist()
    if repeated:
        raise ValueError(f"{source}: '{KEY_COLUMN}' values must be unique; repeated: {repeated[:10]}")
    table.attrs["source"] = source
    return table


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
