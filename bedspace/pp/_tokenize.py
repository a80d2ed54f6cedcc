"""``bs.pp.tokenize``: a collection of region sets as an AnnData of sets × universe regions."""

from __future__ import annotations

import os
from concurrent.futures import Executor

import anndata as ad
import pandas as pd

from .. import _logging as logg
from .._builds import build_name, lift_sets
from .._keys import TOKENIZE
from .._metadata import match_metadata, read_metadata
from .._ondisk import DATA_DTYPE, check_target, executor_of, tokenize_to_h5ad
from .._sources import RegionSets, resolve_sets
from .._universe import ChromSizes, Universe, UniverseLike

QC_COLUMNS = ("n_regions", "n_tokens", "frac_regions_in_universe")


def tokenize(
    sets: RegionSets,
    universe: UniverseLike,
    *,
    metadata: str | os.PathLike | pd.DataFrame | None = None,
    chrom_sizes: ChromSizes | None = None,
    n_jobs: int | Executor | None = None,
    out: str | os.PathLike | None = None,
    chunk_size: int = 512,
    overwrite: bool = False,
    assembly: str | None = None,
) -> ad.AnnData:
    """Map every region set onto a universe of regions: the collection as sets × regions.

    A universe region is a token of a set when at least one interval of the set overlaps it by at least 1 bp
    (half-open coordinates) — exactly what ``bedtools intersect -u -a universe -b set`` returns.

    Parameters
    ----------
    sets
        A folder of BED files (``.bed``, ``.narrowPeak``, ``.broadPeak``, optionally gzipped; other files are
        ignored), a list of BED paths, a single BED path, or a dict name → DataFrame/PyRanges/path.
    universe
        The reference regions: a BED path, a DataFrame/PyRanges, or an AnnData whose ``.var`` is a universe
        (e.g. a tokenized collection — use this to tokenize new query sets onto the same regions).
        Its regions may overlap each other.
    metadata
        A CSV (or ``.tsv``) path or a DataFrame with a ``file_name`` column equal to the set names (BED file
        names without folder, or the dict keys) and one column per annotation. Every set needs a row and every
        row a set. Cells are read as the text written (``1``, ``01`` and ``1.0`` stay three labels; a column
        becomes numbers only when no text is lost); an empty cell is missing, and so is ``NA``, ``None``,
        ``null`` or ``nan``, with a warning naming the file, column and sets.
    chrom_sizes
        Optional chromosome sizes (``*.chrom.sizes`` path or mapping) recorded with the universe.
    n_jobs
        Parallelism over files: ``None`` uses every available core, an int sets the number of threads, and any
        :class:`concurrent.futures.Executor` is used as given (e.g. ``client.get_executor()`` of a
        ``dask.distributed`` Client to spread a large collection over a cluster). A ``dask.distributed``
        :class:`~distributed.Client` itself is accepted too (its executor is used). With ``out``, an executor runs
        one task per chunk (at most twice as many in flight as it has workers); without, one task per file.
    out
        Tokenize out of core: write the collection to this ``.h5ad`` file, ``chunk_size`` sets at a time, and
        return it opened backed (``anndata.read_h5ad(out, backed="r")``). Memory is bounded by the chunks being
        tokenized, not by the number of sets. The file holds what :func:`anndata.AnnData.write_h5ad` writes for
        the in-memory result (same ``obs``, ``var``, ``uns``), except that ``X`` is stored as ``uint8`` (0/1) with
        ``int64`` ``indptr``; ``anndata.read_h5ad(out)`` reads it into memory. Progress is kept in the folder
        ``out + ".partial"``: a run that was interrupted (even killed) resumes from the chunks already done
        when it is started again with the same sets, universe and ``chunk_size``. ``out`` is written in one
        rename when complete, never left half-written; on a full disk the error names it, and the chunks done are
        kept for the same call to resume from. A second run writing the same ``out`` while one is running stops at
        once, naming the process that is writing it.

        To run on a cluster, connect a client to its scheduler and pass it (the BED files must be readable by
        the workers at the same paths; chunks come back to this process, which writes ``out``)::

            from dask.distributed import Client
            client = Client("tcp://scheduler-host:8786")  # or Client(LocalCluster(...)) on one machine
            bs.pp.tokenize(folder, universe, out="collection.h5ad", n_jobs=client)
    chunk_size
        Sets per chunk with ``out`` (a positive integer).
    overwrite
        With ``out``: replace an existing ``out``, which must be an ``.h5ad`` file bedspace wrote (any other file is
        never replaced). Without it an existing ``out`` is an error, raised before any set is tokenized.
    assembly
        The genome build of the sets' coordinates (``"hg19"``, ``"hg38"``; ``"GRCh37"``, ``"GRCh38"`` are the same
        builds; another name is recorded as given). Recorded per set in ``.obs["assembly"]`` and as the
        collection's build in ``.uns["bedspace"]["universe"]["assembly"]``, where searches read it
        (:func:`bedspace.tl.search`'s ``assembly``). A metadata column ``assembly`` gives each set's build instead
        (it must agree with this option). A universe whose build is recorded (a tokenized collection given as
        ``universe``) keeps its build: sets of another build are lifted onto it first
        (:func:`bedspace.pp.liftover`'s rule; not with ``out``), and ``.obs["liftover_dropped"]`` counts the
        intervals each lost; a universe from a BED file or frame is taken to be on the sets' build. ``None``: the
        build is unknown (nothing is recorded or lifted), unless the universe or the metadata says it.

    Returns
    -------
    AnnData with one row per set (in the order given; a folder is read in name order) and one column per
    universe region (in universe order):

    ``X``
        :class:`scipy.sparse.csr_matrix` (float32) of 0/1, sorted indices (``uint8`` on disk with ``out``).
    ``obs``
        The metadata rows (text columns categorical) plus QC columns ``n_regions`` (intervals in the file),
        ``n_tokens`` (universe regions overlapped) and ``frac_regions_in_universe`` (fraction of the set's
        intervals that overlap at least one universe region; NaN for an empty set).
    ``var``
        ``chrom`` (categorical), ``start``, ``end`` (int64), ``n_sets`` (sets overlapping the region);
        ``var_names`` like ``chr1:100-200``.
        With a known build (``assembly``, or a metadata column of that name): ``assembly``, each set's build as
        given; when they were lifted onto the universe's build, ``liftover_dropped``, the intervals each lost
        (``adata.obs["assembly"]``, ``adata.obs["liftover_dropped"]``).
    ``uns['bedspace']``
        ``{'universe': {'name', 'n_regions', 'non_overlapping', 'chrom_sizes' (when known), 'assembly' (the
        genome build, when known)}, 'tokenize': {'params': {...}}, 'version'}``.

    Raises
    ------
    FileNotFoundError
        A BED file, the universe or the metadata file does not exist.
    ValueError
        A malformed BED line (file and line named), or metadata that does not match the sets (the names missing
        on either side are listed); ``chunk_size`` not a positive integer, or ``out`` one of the inputs. Sets of
        different genome builds (the metadata's ``assembly`` column), or a column that disagrees with
        ``assembly``: the sets and builds are named. Sets to be lifted with ``out``, or between builds bedspace
        has no chain file for.
    IsADirectoryError
        ``out`` is a folder.
    FileExistsError
        ``out`` exists and ``overwrite`` is false, or it is not an ``.h5ad`` file bedspace wrote.
    TimeoutError
        Another process is writing ``out`` (its process id is named).
    OSError
        No space left on the device (or a quota or file size limit) writing ``out``; the error names it.

    Warns
    -----
    BEDSpaceWarning
        Sets with no intervals, sets none of whose chromosomes are in the universe (``chr1`` vs ``1``), and sets
        naming chromosomes that the universe spells otherwise (``Chr2L`` for ``chr2L``, ``1`` beside ``chr1`` in
        one file), whose intervals there get no tokens: each is named, with the universe's spelling.
        Metadata cells read as missing (``NA``, ``None``, ``null``, ``nan``): the file, column and sets are named.

    Examples
    --------
    >>> import bedspace as bs
    >>> data = bs.datasets.insulators()
    >>> adata = bs.pp.tokenize(data.beds, data.universe, metadata=data.metadata)
    >>> adata.shape[0]
    8
    """
    named = resolve_sets(sets)
    n_jobs = executor_of(n_jobs)
    if out is not None:
        inputs = [src for _, src in named if isinstance(src, os.PathLike)]
        inputs += [p for p in (universe, metadata, chrom_sizes) if isinstance(p, str | os.PathLike)]
        out = check_target(out, chunk_size, inputs, overwrite=overwrite)
    uni = Universe.load(universe, chrom_sizes=chrom_sizes)
    obs = None
    if metadata is not None:
        obs = match_metadata(read_metadata(metadata), [name for name, _ in named])
    params = {
        "sets": str(sets) if isinstance(sets, str | os.PathLike) else f"{len(named)} sets",
        "metadata": str(metadata) if isinstance(metadata, str | os.PathLike) else metadata is not None,
    }
    build, obs = _sets_build(named, obs, assembly)
    if build is not None:
        params["assembly"] = build
        if uni.assembly is None:  # a universe of regions: on the sets' build
            uni = uni.with_assembly(build)
        elif build != uni.assembly:
            if out is not None:
                raise ValueError(
                    f"assembly={build!r}: the universe is {uni.assembly}, so the sets would be lifted, which "
                    "tokenize(out=...) does not do; lift them into a folder first (bs.pp.liftover(sets, "
                    f"source={build!r}, target={uni.assembly!r}, out=folder)) and tokenize that"
                )
            named, summaries = lift_sets(named, source=build, target=uni.assembly)
            obs["liftover_dropped"] = [s.n_dropped for s in summaries]
            params["lifted"] = f"{build} -> {uni.assembly}"
    if out is not None:
        tokenize_to_h5ad(
            uni, named, out, obs=obs, params=params, chunk_size=chunk_size, n_jobs=n_jobs, overwrite=overwrite
        )
        adata = ad.read_h5ad(out, backed="r")
        n_tokens, where = int(adata.obs["n_tokens"].sum()), f"{out}, {DATA_DTYPE.__name__} X, backed"
    else:
        adata = uni.tokenize(named, n_jobs=n_jobs).to_anndata(uni, obs=obs, params=params)
        n_tokens, where = int(adata.X.nnz), "in memory"
    logg.info(
        f"tokenized {adata.n_obs} region sets onto {adata.n_vars} universe regions ({n_tokens} tokens, "
        f"{'sorted' if uni.index.non_overlapping else 'overlapping'} universe; {where})"
    )
    if build is not None:
        logg.added("assembly", f"each set's genome build ({build}; the universe's: {uni.assembly})", "obs")
    logg.added("X", "sets × universe regions, 0/1", "X")
    logg.added(TOKENIZE, "universe and tokenization parameters", "uns")
    return adata


def _sets_build(named, obs: pd.DataFrame | None, assembly) -> tuple[str | None, pd.DataFrame | None]:
    """The one genome build of the sets (``assembly``, or the metadata's ``assembly`` column), and ``obs`` with it.

    Sets of different builds are refused, naming them, and so is a column that disagrees with ``assembly``.
    """
    given = build_name(assembly)
    names = [name for name, _ in named]
    column = None
    if obs is not None and "assembly" in obs.columns:
        column = [
            None if pd.isna(v) else build_name(str(v), option="metadata column 'assembly'") for v in obs["assembly"]
        ]
    if column is None and given is None:
        return None, obs
    builds = column if column is not None else [given] * len(names)
    if given is not None:
        other = [(n, b) for n, b in zip(names, builds, strict=True) if b is not None and b != given]
        if other:
            raise ValueError(
                f"assembly={given!r}, but the metadata's 'assembly' column gives {len(other)} set(s) another build: "
                + ", ".join(f"{n!r} ({b})" for n, b in other[:10])
                + "; correct the column, or lift those sets with bs.pp.liftover first"
            )
        builds = [given] * len(names)
    known = sorted({b for b in builds if b is not None})
    if len(known) > 1:
        by_build = {b: [n for n, x in zip(names, builds, strict=True) if x == b] for b in known}
        listed = "; ".join(
            f"{b}: {', '.join(map(repr, sets[:5]))}" + (f" and {len(sets) - 5} more" if len(sets) > 5 else "")
            for b, sets in by_build.items()
        )
        raise ValueError(
            f"the region sets are of different genome builds ({listed}): tokenizing them together would compare "
            f"coordinates of different builds. Lift them onto one first (bs.pp.liftover(sets, source={known[1]!r}, "
            f"target={known[0]!r})), or tokenize each build on its own with assembly="
        )
    build = known[0] if known else None
    obs = pd.DataFrame(index=pd.Index(names)) if obs is None else obs.copy()
    obs["assembly"] = pd.Categorical([build] * len(names)) if build is not None else obs.get("assembly")
    return build, obs
