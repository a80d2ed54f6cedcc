"""Peaks of another genome build: hg19 held-out sets lifted to hg38, asked of the hg19 collection.

    BEDSPACE_DATA_DIR=... python benchmarks/liftover.py            # 3 organ-stratified splits
    BEDSPACE_DATA_DIR=... python benchmarks/liftover.py --splits 5

The real hg19 collection (172 sets, ``$BEDSPACE_DATA_DIR/hg19_bedsets``) is tokenized on its consensus universe
with ``assembly="hg19"``. Every set is lifted to hg38 once with ``bs.pp.liftover`` (the regions dropped are
counted). For each split (``bs.pp.split(stratify="organ", random_state=s)``) the training part is trained with
small settings (dim 16, 2 epochs: r2l's default annotator compares region tokens and does not depend on the
embedding), and each held-out set is annotated (r2l, top 1 per field) three ways:

* ``original``: its hg19 file;
* ``lifted + assembly``: its hg38 copy, asked with ``assembly="hg38"`` (lifted back onto hg19 first);
* ``lifted, no assembly``: its hg38 copy asked as if it were hg19.

Printed: hit@1 per field for each way (mean over the splits, and the worst split's difference between the
lifted copies asked with ``assembly`` and the originals), the share of queries that got the build warning ("look
like hg38 coordinates") and the share annotated out of domain, and the regions lifting dropped.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/tokenize.py would shadow the standard library's `tokenize` for scripts in this folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import bedspace as bs  # noqa: E402

FIELDS = ["organ", "cell_class", "assay"]
WAYS = ["original", "lifted + assembly", "lifted, no assembly"]
BUILD_WARNING = re.compile(r"^(\d+) query\(s\) look like hg38 coordinates")


def annotate(train, paths: list[Path], truth: pd.DataFrame, **options) -> dict:
    """r2l top 1 of every query: hit@1 per field, the share warned to be hg38, the share out of domain."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = bs.tl.search(train, [str(p) for p in paths], search_type="r2l", top_k=1, **options)
    warned = sum(int(m.group(1)) for w in caught if (m := BUILD_WARNING.match(str(w.message))))
    by_name = truth.set_index(truth.index.astype(str))
    hits = {}
    for field in FIELDS:
        top = table[(table["field"] == field) & (table["rank"] == 1)].set_index("query")["value"].astype(str)
        expected = by_name.loc[top.index, field].astype(str)
        hits[field] = float((top == expected).mean())
    outside = table.groupby("query")["in_domain"].first()
    return {"hits": hits, "warned": warned / len(paths), "out_of_domain": float((~outside).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--splits", type=int, default=3)
    args = parser.parse_args()
    data = bs.datasets.encode_hg19()
    started = time.perf_counter()
    adata = bs.pp.tokenize(data.beds, data.universe, metadata=data.metadata, assembly="hg19")
    print(f"tokenized {adata.n_obs} hg19 sets ({time.perf_counter() - started:.0f} s)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        hg38 = Path(tmp) / "hg38"
        started = time.perf_counter()
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            lifted = bs.pp.liftover(data.beds, source="hg19", target="hg38", out=hg38)
        seconds = time.perf_counter() - started
        summaries = pd.DataFrame([frame.attrs["liftover"] for frame in lifted.values()], index=list(lifted))
        dropped = summaries["n_dropped"] / summaries["n_regions"]
        runs = []
        for seed in range(args.splits):
            train, test = bs.pp.split(adata, stratify="organ", random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                bs.tl.train(train, labels=FIELDS, dim=16, epochs=2, random_state=seed)
            names = test.obs_names.tolist()
            originals = [Path(data.beds) / n for n in names]
            copies = [hg38 / n for n in names]
            run = {
                "original": annotate(train, originals, test.obs),
                "lifted + assembly": annotate(train, copies, test.obs, assembly="hg38"),
                "lifted, no assembly": annotate(train, copies, test.obs),
            }
            runs.append(run)
            print(
                f"split {seed}: {len(names)} held-out sets; hit@1 organ "
                + " / ".join(f"{run[w]['hits']['organ']:.3f}" for w in WAYS),
                flush=True,
            )
    rows = []
    for way in WAYS:
        row = {"queries": way}
        for field in FIELDS:
            row[f"hit@1 {field}"] = np.mean([r[way]["hits"][field] for r in runs])
        row["build warning"] = np.mean([r[way]["warned"] for r in runs])
        row["out of domain"] = np.mean([r[way]["out_of_domain"] for r in runs])
        rows.append(row)
    table = pd.DataFrame(rows).set_index("queries")
    worst = {
        field: max(abs(r["lifted + assembly"]["hits"][field] - r["original"]["hits"][field]) for r in runs)
        for field in FIELDS
    }
    n_test = sum(1 for _ in runs)
    print()
    print(f"hg19 held-out sets, {n_test} organ-stratified splits (25% held out), r2l top 1 (mean over the splits):")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    print()
    print(
        "largest |hit@1(lifted + assembly) - hit@1(original)| over the splits: "
        + ", ".join(f"{field} {value:.3f}" for field, value in worst.items())
    )
    print(
        f"lifting the {len(summaries)} sets hg19 -> hg38: {summaries['n_dropped'].sum():,} of "
        f"{summaries['n_regions'].sum():,} regions dropped ({summaries['n_dropped'].sum() / summaries['n_regions'].sum():.3%}; "
        f"per set median {dropped.median():.3%}, max {dropped.max():.3%}: "
        + ", ".join(f"{c[2:]} {summaries[c].sum():,}" for c in ("n_unmapped", "n_ambiguous", "n_split", "n_stretched"))
        + f"); {seconds:.0f} s"
    )
    print(f"(BEDSPACE_DATA_DIR={'set' if os.environ.get('BEDSPACE_DATA_DIR') else 'unset'})")


if __name__ == "__main__":
    main()
