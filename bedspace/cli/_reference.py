"""``bedspace reference NAME -o REF/``: a ready reference model folder, to annotate BED files with ``search``."""

from __future__ import annotations

import argparse
import sys

#: The references ``bedspace reference`` builds: the keys of ``bedspace.datasets._reference.REFERENCES``, spelled
#: here so that building the parser imports nothing of the datasets (pandas, numba: seconds for every command).
NAMES = ("encode-hg19",)


def reference(args: argparse.Namespace) -> None:
    """Build the reference ``args.name`` (download, tokenize, train, calibrate) and save it to ``args.output``."""
    from ..datasets._reference import write_reference

    def say(message: str) -> None:
        print(message.strip(), file=sys.stderr)

    output = write_reference(
        args.name,
        args.output,
        path=args.data,
        dim=args.dim,
        epochs=args.epochs,
        n_jobs=args.jobs,
        random_state=args.seed,
        overwrite=args.overwrite,
        option="--overwrite",
        log=say,
    )
    say(f"annotate your BED files with: bedspace search -t r2l -d {output} -q my_peaks/")
