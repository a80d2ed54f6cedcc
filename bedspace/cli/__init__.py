"""The ``bedspace`` command line: ``preprocess``, ``train``, ``distances``, ``search``, ``reference`` and ``demo``."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from .._version import __version__
from . import _demo, _pipeline, _reference

USER_ERRORS = (OSError, ValueError, KeyError, TypeError)


def _whole_number(minimum: int):
    """An argparse type: a whole number >= ``minimum`` (``--threads 0`` is refused, not recorded)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = "int"
    return parse


def _number(text: str) -> float:
    """An argparse type: a finite number (``--lr inf`` and ``nan`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


positive = _whole_number(1)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (and the exit code 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _command(commands, name: str, *, help: str, description: str, examples: list[str]) -> argparse.ArgumentParser:
    return commands.add_parser(
        name,
        help=help,
        description=description,
        epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _starspace_instead(p: argparse.ArgumentParser) -> None:
    """``--dim`` and ``--epochs`` of a command that trains: either given, StarSpace's objective instead of the default space."""
    p.add_argument(
        "--dim", type=positive, default=None,
        help="train StarSpace's objective with this dimension instead of the default space (StarSpace's default: 100)",
    )  # fmt: skip
    p.add_argument(
        "--epochs", type=positive, default=None,
        help="train StarSpace's objective for this many epochs instead of the default space (StarSpace's default: 50)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of ``bedspace``."""
    parser = _Parser(prog="bedspace", description="Joint embeddings of genomic region sets and their metadata.")
    parser.add_argument("--version", action="version", version=f"bedspace {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    p = _command(
        commands, "preprocess", help="tokenize BED files onto a universe and write the training file",
        description="Tokenize a folder of BED files onto a universe and write one StarSpace training line per file "
        "(its regions as chr_start_end tokens, then its labels). A companion .bedspace.h5ad beside the output "
        "keeps the universe, metadata and labels for the next steps.",
        examples=['bedspace preprocess --input beds/ --metadata labels.csv --universe universe.bed '
                  '--labels "cell_type,tissue" --output preprocessed.txt'],
    )  # fmt: skip
    p.add_argument("-i", "--input", required=True, help="folder of BED files (plain or gzipped)")
    p.add_argument("-m", "--metadata", required=True, help="CSV with a file_name column and label columns")
    p.add_argument("-u", "--universe", required=True, help="universe BED file (the vocabulary of regions)")
    p.add_argument("-l", "--labels", required=True, help='comma-separated label columns, e.g. "cell_type,tissue"')
    p.add_argument("-o", "--output", required=True, help="training file to write")
    p.add_argument("-j", "--jobs", type=positive, default=None, help="parallel threads (default: all cores)")
    p.add_argument(
        "--overwrite", action="store_true",
        help="replace the training file and companion of an earlier preprocess (never any other file)",
    )  # fmt: skip
    p.set_defaults(func=_pipeline.preprocess)

    p = _command(
        commands, "train", help="train the joint embedding (built-in engine, or StarSpace)",
        description="Train the joint embedding of a preprocessed collection. By default the space of the default "
        "annotator's label scores (fitted in closed form: seconds). With StarSpace's options (--dim, --epochs, "
        "--lr, ...) or --space starspace, StarSpace's objective: without --path-to-starspace the built-in engine "
        "trains it (nothing to install); with it, the real StarSpace binary. An existing output folder is never "
        "continued: it is refused unless --overwrite.",
        examples=["bedspace train --input preprocessed.txt --output model/",
                  "bedspace train --input preprocessed.txt --output model/ --dim 100 --epochs 50 --lr 0.05",
                  "bedspace train --path-to-starspace /path/to/starspace --input preprocessed.txt --output model/"],
    )  # fmt: skip
    p.add_argument("-i", "--input", required=True, help="training file written by preprocess")
    p.add_argument("-o", "--output", required=True, help="model folder to write")
    p.add_argument("-s", "--path-to-starspace", default=None, help="the StarSpace binary or its folder")
    p.add_argument(
        "--space", choices=["annotator", "starspace"], default=None,
        help="the space to learn: the default annotator's label scores (annotator), or StarSpace's objective "
        "(starspace: trained by the built-in engine, or by StarSpace with --path-to-starspace). Default: starspace "
        "when --path-to-starspace or any of StarSpace's options below is given, annotator otherwise",
    )  # fmt: skip
    p.add_argument("--dim", type=positive, default=None, help="embedding dimension (StarSpace's; default: 100)")
    p.add_argument("--epochs", type=positive, default=None, help="passes over the data (StarSpace's; default: 50)")
    p.add_argument("--lr", type=_number, default=None, help="initial learning rate (StarSpace's; default: 0.05)")
    p.add_argument(
        "--neg-search-limit", type=positive, default=None, help="negatives sampled per batch (StarSpace's; default: 5)"
    )
    p.add_argument("--loss", choices=["hinge", "softmax"], default=None, help="loss (StarSpace's; default: hinge)")
    p.add_argument(
        "--dropout", type=_number, default=None, help="share of regions left out per visit (StarSpace's; default: 0)"
    )
    p.add_argument("--threads", type=positive, default=None, help="training threads (default: all cores)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the built-in engine (default: 0)")
    p.add_argument(
        "--no-calibrate", dest="calibrate", action="store_false",
        help="fit the default annotator without calibration: scores, no probabilities (search --min-probability "
        "and the shared-label term of r2r need them). A label field in which no two sets share a value cannot be "
        "calibrated: train then warns, naming it, and trains without calibration",
    )  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace an existing model folder")
    p.set_defaults(func=_pipeline.train)

    p = _command(
        commands, "distances", help="set–label and set–set similarities, with the model, in one file",
        description="Compute the similarities of the region sets named in --metadata to every label and to each "
        "other, and write them with the model and universe to --output: an .h5ad file (never a pickle, "
        "whatever its name), the input of search.",
        examples=["bedspace distances --input model/ --metadata labels.csv --universe universe.bed --output distances.pkl"],
    )  # fmt: skip
    p.add_argument("-i", "--input", required=True, help="model folder written by train")
    p.add_argument("-m", "--metadata", required=True, help="CSV with a file_name column: the sets to include")
    p.add_argument("-u", "--universe", required=True, help="the universe BED file the model was trained on")
    p.add_argument("-o", "--output", required=True, help="file to write (.h5ad format)")
    p.add_argument("--beds", default=None, help="folder of BED files for sets the model has not seen")
    p.add_argument(
        "--n-neighbors", type=_whole_number(2), default=None, help="neighbours per set (default: all pairs ≤ 2000 sets)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an earlier output of distances (never any other file)"
    )
    p.set_defaults(func=_pipeline.distances)

    p = _command(
        commands, "search", help="region set → labels, label → region sets, region set → region sets",
        description="Search the joint space. r2l: annotate a BED file; l2r: find sets for a label; r2r: find sets "
        "like a BED file. The BED file need not have been seen in training. r2l and r2r answer several BED files, "
        "folders of them or quoted patterns at once, in one table whose query column names each row's file.",
        examples=["bedspace search -t r2l -d distances.pkl -q query_regions.bed -n 10",
                  "bedspace search -t r2l -d model/ -q a.bed.gz b.bed.gz peaks/ --format tsv",
                  "bedspace search -t r2l -d model/ -q 'peaks/*.bed.gz' -n 3",
                  'bedspace search -t l2r -d distances.pkl -q "T_cell" -n 10',
                  "bedspace search -t r2r -d distances.pkl -q query_regions.bed -n 10 --format tsv",
                  "bedspace search -t r2r -d distances.pkl -q query_regions.bed --columns lab,treatment",
                  "bedspace search -t l2r -d distances.pkl -q T_cell --columns all --format tsv",
                  "bedspace search -t r2l -d ref/ -q peaks_hg38.bed.gz --assembly hg38",
                  'bedspace search -t r2l -d ref/ -q my_peaks.bed.gz --explain why_liver.bed --label "organ=liver"'],
    )  # fmt: skip
    p.add_argument("-t", "--type", required=True, choices=["r2l", "l2r", "r2r"], help="kind of search")
    p.add_argument(
        "-d", "--distances", required=True, help="file written by distances, or a model folder written by train"
    )
    p.add_argument(
        "-q", "--query", required=True, nargs="+", metavar="QUERY",
        help="r2l, r2r: BED files, folders of them, or quoted patterns such as 'peaks/*.bed.gz' (expanded by "
        "bedspace, sorted); with several queries each row's query column names its file. l2r: one label, such as "
        "T_cell",
    )  # fmt: skip
    p.add_argument("-n", type=positive, default=10, help="number of results (default: 10)")
    p.add_argument("-f", "--field", default=None, help="only labels of this field (r2l)")
    p.add_argument(
        "--method", choices=["regions", "embedding"], default=None,
        help="regions: r2l, l2r by a classifier of the query's overlap with the labelled sets (calibrated "
        "probabilities), r2r by cosine plus the probability that a set shares the query's labels; embedding: "
        "cosines of the vectors alone. Default: regions for r2l; embedding for l2r and r2r on a model of the "
        "default space, regions on one of StarSpace's objective",
    )  # fmt: skip
    p.add_argument(
        "--min-probability", type=_number, default=0.0,
        help="r2l: leave out labels less probable than this, in [0, 1] (default: 0)",
    )  # fmt: skip
    p.add_argument(
        "--columns", default=None, metavar="COLUMNS",
        help="l2r, r2r: metadata columns of the sets to show after their label columns, comma-separated (e.g. "
        "lab,treatment), or 'all' for every column (default: the label columns only)",
    )  # fmt: skip
    p.add_argument(
        "--assembly", default=None, metavar="BUILD",
        help="r2l, r2r: the genome build of the query files (hg19, hg38; GRCh37, GRCh38); when it is not the "
        "reference's, they are lifted onto it first (default: the reference's)",
    )  # fmt: skip
    p.add_argument(
        "--explain", default=None, metavar="OUT.bed",
        help="r2l, one query: why it got its label. Prints the label's score split over the query's regions and "
        "the reference sets (the top -n of each) and writes its 100 top regions (a positive contribution) to this "
        "BED file, scored 0-1000 by contribution. The label: --label, else the query's top label of each field "
        "(of -f FIELD alone)",
    )  # fmt: skip
    p.add_argument(
        "--label", default=None, metavar="LABEL", help='with --explain: the label to explain, e.g. "organ=liver"'
    )
    p.add_argument(
        "--overwrite", action="store_true",
        help="with --explain: replace the BED file of an earlier explanation (never any other file)",
    )  # fmt: skip
    p.add_argument("--format", choices=["table", "tsv", "json"], default="table", help="output format")
    p.set_defaults(func=_pipeline.search)

    p = _command(
        commands, "demo", help="run the whole method on real data bundled with bedspace (offline, seconds)",
        description="The whole method with the built-in engine on real data, offline: the 171 hg19 ENCODE and "
        "blood region sets bundled with bedspace (their peaks on chr21 and chr22) are tokenized; a quarter of each "
        "organ is held out; the rest train the joint embedding and the default annotator; the held-out sets are "
        "annotated, found by label and matched, beside overlap and enrichment; a figure. The same output every "
        "run. Or on your own folder (--data).",
        examples=["bedspace demo",
                  "bedspace demo --data beds/ --metadata labels.csv --universe universe.bed --labels cell_type,assay"],
    )  # fmt: skip
    p.add_argument("--data", help="folder of BED files (default: the bundled hg19 chr21–22 sets)")
    p.add_argument("--metadata", help="CSV with a file_name column (with --data)")
    p.add_argument("--universe", help="universe BED file (with --data)")
    p.add_argument(
        "--labels", default="cell_type",
        help="comma-separated label columns, the first split by (with --data; default: cell_type)",
    )  # fmt: skip
    _starspace_instead(p)
    p.add_argument(
        "--figure",
        default="bedspace_demo.png",
        help="where to write the figure (default: bedspace_demo.png); replaces an earlier demo's figure, never any "
        "other file",
    )
    p.add_argument(
        "-j", "--jobs", type=positive, default=None,
        help="threads (default: all cores to tokenize, one to train: training on several threads is faster but "
        "its numbers vary slightly from run to run)",
    )  # fmt: skip
    p.set_defaults(func=_demo.demo)

    p = _command(
        commands, "reference", help="build a ready reference model folder (encode-hg19) to annotate BED files with",
        description="Build a ready reference: download the collection once (or read a local copy from --data or "
        "$BEDSPACE_DATA_DIR), tokenize it, fit the default annotator (calibrated) and its space on its label "
        "fields, then save a model folder. encode-hg19: the 172 labelled hg19 region sets on their "
        "consensus universe, labels organ, cell_class and assay. search -t r2l -d on the folder annotates BED files.",
        examples=["bedspace reference encode-hg19 -o ref/",
                  "bedspace search -t r2l -d ref/ -q my_peaks/",
                  "bedspace reference encode-hg19 -o ref/ --data hg19_copy/ -j 1 --seed 0 --overwrite"],
    )  # fmt: skip
    p.add_argument(
        "name", choices=_reference.NAMES, metavar="NAME", help=f"the reference: {', '.join(_reference.NAMES)}"
    )
    p.add_argument("-o", "--output", required=True, help="model folder to write")
    p.add_argument(
        "--data", default=None, metavar="PATH",
        help="a local copy of the collection (default: $BEDSPACE_DATA_DIR, else downloaded once into the cache)",
    )  # fmt: skip
    _starspace_instead(p)
    p.add_argument(
        "-j", "--jobs", type=positive, default=None, help="threads (default: all cores; 1: reproducible embedding)"
    )
    p.add_argument(
        "--seed", type=_whole_number(0), default=0, help="random seed of training and calibration (default: 0)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing model folder (never any other folder)")
    p.set_defaults(func=_reference.reference)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; a user mistake prints one line to stderr and returns 1."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            _show_only_bedspace_warnings(args.command, debug=args.debug)
            args.func(args)
    except KeyboardInterrupt:
        print(f"bedspace {args.command}: interrupted; nothing half-written was left behind", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        from .._engine.starspace import StarSpaceError

        if isinstance(err, (*USER_ERRORS, StarSpaceError)):
            message = err.args[0] if isinstance(err, KeyError) and err.args else err
            print(f"bedspace {args.command}: error: {_one_line(message)}", file=sys.stderr)
        else:  # a bug of bedspace's: say so in one line, and how to see it whole
            print(
                f"bedspace {args.command}: internal error ({type(err).__name__}: {_one_line(err)}); run again with "
                "--debug for the traceback and report it",
                file=sys.stderr,
            )
        return 1
    return 0


def _one_line(message) -> str:
    return " ".join(str(message).split())


def _show_only_bedspace_warnings(command: str, *, debug: bool) -> None:
    """Bedspace's own warnings as one line each on stderr; other packages' deprecation chatter is not shown."""
    from .._warnings import BEDSpaceWarning

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"bedspace {command}: warning: {_one_line(message)}", file=sys.stderr)

    if debug:
        warnings.simplefilter("default")
        return
    warnings.simplefilter("ignore")
    warnings.simplefilter("default", BEDSpaceWarning)
    warnings.showwarning = show


if __name__ == "__main__":
    sys.exit(main())
