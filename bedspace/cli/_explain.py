"""``bedspace search -t r2l --explain OUT.bed``: why a query got its label, printed, and its top regions as BED."""

from __future__ import annotations

import argparse
import json
import sys

import pandas as pd

#: Regions per label written to the BED file (those with a positive contribution among the top ones).
BED_REGIONS = 100
_NUMBERS = ("score", "probability", "baseline", "from_regions", "lift", "contribution", "share", "weight")


def explain(model, query, args: argparse.Namespace, options: dict) -> None:
    """Explain the query's label(s), write the BED file, print the labels, top regions and top sets (``-n`` each)."""
    if args.explain is None:
        raise ValueError("--label and --overwrite are options of --explain OUT.bed (why the query got a label)")
    if args.type != "r2l":
        raise ValueError(f"--explain is an option of -t r2l (why a query got a label), not of -t {args.type}")
    if args.method == "embedding":
        raise ValueError("--explain explains the default annotator's scores: leave out --method embedding")
    if isinstance(query, list):
        raise ValueError(f"--explain takes one query, got {len(query)}: explain them one at a time")
    why = model.explain(query, label=args.label, field=args.field, top_k=BED_REGIONS, assembly=options.get("assembly"))
    from .._explain import write_bed

    path = write_bed(why, args.explain, overwrite=args.overwrite, option="--overwrite")
    labels = _rounded(why.labels)
    regions = _rounded(why.regions.groupby("label", sort=False).head(args.n))
    sets = _rounded(why.sets.groupby("label", sort=False).head(args.n))
    written = int((why.regions["contribution"] > 0).sum())
    print(f"bedspace search: wrote {written} regions to {path}", file=sys.stderr)
    if args.format == "json":
        tables = {"labels": labels, "regions": regions, "sets": sets}
        document = {"query": why.query, "bed": str(path)}
        document |= {k: t.astype(object).where(t.notna(), None).to_dict(orient="records") for k, t in tables.items()}
        print(json.dumps(document, indent=1, default=str))
    elif args.format == "tsv":
        for name, table in (("labels", labels), ("regions", regions), ("sets", sets)):
            print(f"# {name}")
            print(table.to_csv(sep="\t", index=False))
    else:
        with pd.option_context("display.width", 200, "display.max_colwidth", 60):
            for row, entry in zip(why.labels.itertuples(), labels.itertuples(), strict=True):
                probability = f", probability {entry.probability}" if "probability" in labels.columns else ""
                print(
                    f"{why.query}: {row.label} (score {entry.score}{probability}) = baseline {entry.baseline} + "
                    f"{entry.from_regions} from its {row.n_regions:,} regions ({row.n_positive:,} positive)"
                    + (", left out of the classifier" if row.left_out else "")
                    + (f", overlaps lifted ×{entry.lift}" if row.lift != 1 else "")
                )
                mine = regions[regions["label"] == row.label].drop(columns=["field", "label"])
                print(f"\ntop regions for {row.label}:\n{mine.to_string(index=False)}")
                theirs = sets[sets["label"] == row.label].drop(columns=["field", "label"])
                print(f"\nreference sets weighing most for {row.label}:\n{theirs.to_string(index=False)}\n")


def _rounded(table: pd.DataFrame) -> pd.DataFrame:
    """Numbers to 4 significant digits (a region's contribution is often below 0.0001)."""
    return table.assign(**{c: table[c].map(lambda x: float(f"{x:.4g}")) for c in _NUMBERS if c in table.columns})
