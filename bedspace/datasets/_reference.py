"""Ready references: a collection tokenized, trained on and calibrated, saved as a model folder, in one call.

A reference is the model :func:`bedspace.tl.train` makes of a labelled collection with the default annotator,
calibrated; ``bedspace search -t r2l -d REF/ -q my_peaks/`` then annotates BED files with it. The command line
(``bedspace reference NAME -o REF/``, :mod:`bedspace.cli._reference`) and the Python functions
(:func:`encode_hg19_reference`) build it here, the same way.

Python keeps one build per bedspace version and options in the cache folder,
``cache_dir() / "encode_hg19_reference" / "<version>-annotator-seed<seed>"`` (``-dim<dim>-epochs<epochs>-``
for StarSpace's objective): the folder's name
is its key, so a build is never taken for another's, and the model folder is written atomically (a folder there
is a whole build). A build of another bedspace version is removed when a new one is made.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._atomic import NotReplaceableError
from .._logging import info
from .._outputs import check_replace_folder
from .._params import DEFAULTS, whole_number
from .._version import __version__
from ._collection import RegionSetCollection, cache_dir
from ._encode import encode_hg19

if TYPE_CHECKING:
    from .._model import BEDSpaceModel


@dataclass(frozen=True)
class Recipe:
    """How a reference is made: its collection, universe and label fields."""

    name: str  #: as the command line spells it
    collection: Callable[[str | os.PathLike | None], RegionSetCollection]  #: path of a local copy -> the collection
    universe: str  #: which of the collection's universes
    labels: tuple[str, ...]  #: the label fields trained on and annotated
    assembly: str  #: the genome build of its sets: queries of another build are lifted onto it (``assembly=``)
    cache_name: str  #: the folder of its builds in the cache
    description: str


#: The references bedspace can build, by name. The label fields are those the README and the benchmarks use.
REFERENCES: dict[str, Recipe] = {
    "encode-hg19": Recipe(
        name="encode-hg19",
        collection=encode_hg19,
        universe="consensus",
        labels=("organ", "cell_class", "assay"),
        assembly="hg19",
        cache_name="encode_hg19_reference",
        description="the 172 labelled hg19 region sets of bs.datasets.encode_hg19 (ENCODE DNase-seq, GM12878 TF "
        "ChIP-seq, blood ATAC-seq) on their consensus universe",
    ),
}


def recipe(name: str) -> Recipe:
    """The recipe of the reference ``name``; an unknown name is a :class:`ValueError` listing the names there are."""
    if name not in REFERENCES:
        raise ValueError(f"unknown reference {name!r}; choose one of: {', '.join(sorted(REFERENCES))}")
    return REFERENCES[name]


def check_options(*, dim: int | None, epochs: int | None, n_jobs: int | None, random_state: int) -> None:
    """Refuse a bad option before any download or tokenizing (naming it)."""
    for value, name in ((dim, "dim"), (epochs, "epochs")):
        if value is not None:
            whole_number(value, name)
    if n_jobs is not None:
        whole_number(n_jobs, "n_jobs")
    whole_number(random_state, "random_state", minimum=0, expected="a whole number >= 0")


def build_reference(
    name: str,
    *,
    path: str | os.PathLike | None = None,
    dim: int | None = None,
    epochs: int | None = None,
    n_jobs: int | None = None,
    random_state: int = 0,
    log: Callable[[str], None] = info,
) -> BEDSpaceModel:
    """Tokenize the reference's collection on its universe, train on its label fields, calibrate the annotator.

    Parameters
    ----------
    name
        A key of :data:`REFERENCES`.
    path
        A local copy of the collection (as its loader takes it); default ``$BEDSPACE_DATA_DIR``, else downloaded.
    dim, epochs
        ``None`` (default): the default space of :func:`bedspace.tl.train` (the annotator's label scores). Either
        given: StarSpace's objective with that dimension and that many epochs (100 and 50 for the one not given).
    n_jobs
        Threads for tokenizing and training (default: all cores).
    random_state
        Seed of the training and of the annotator's fit.
    log
        Where the steps are told (default: scanpy's log, at info level).

    Returns
    -------
    The trained model, with the collection's sets, tokens and calibrated annotator (in memory).
    """
    import bedspace as bs

    recipe_ = recipe(name)
    check_options(dim=dim, epochs=epochs, n_jobs=n_jobs, random_state=random_state)
    log(f"building the {name} reference: {recipe_.description}")
    started = time.perf_counter()
    data = recipe_.collection(path)
    adata = bs.pp.tokenize(
        data.beds,
        data.universes[recipe_.universe],
        metadata=data.metadata,
        chrom_sizes=data.chrom_sizes,
        assembly=recipe_.assembly,
        n_jobs=n_jobs,
    )
    log(
        f"    tokenized {adata.n_obs} sets onto the {recipe_.universe} universe ({adata.n_vars:,} regions) in "
        f"{_elapsed(started)}"
    )
    started = time.perf_counter()
    bs.tl.train(adata, labels=list(recipe_.labels), dim=dim, epochs=epochs, n_threads=n_jobs, random_state=random_state)
    calibrated = "and calibrated the default annotator " if adata.uns["bedspace"].get("annotator") else ""
    params = adata.uns["bedspace"]["params"]
    space = (
        f"the annotator's space, {params['dim']} dimensions"
        if params["space"] == "annotator"
        else f"StarSpace's objective, dim {params['dim']}, {params['epochs']} epochs"
    )
    log(f"    trained on {', '.join(recipe_.labels)} ({space}, seed {random_state}) {calibrated}in {_elapsed(started)}")
    return bs.BEDSpaceModel.from_anndata(adata, copy=False)


def write_reference(
    name: str,
    output: str | os.PathLike,
    *,
    path: str | os.PathLike | None = None,
    dim: int | None = None,
    epochs: int | None = None,
    n_jobs: int | None = None,
    random_state: int = 0,
    overwrite: bool = False,
    option: str = "overwrite=True",
    log: Callable[[str], None] = info,
) -> Path:
    """Build the reference ``name`` and save it as the model folder ``output``, atomically.

    An existing ``output`` is refused before any work unless ``overwrite`` and it is a bedspace model folder
    (:meth:`bedspace.BEDSpaceModel.save`'s rules, checked again when the folder is written); ``option`` is how
    the caller says ``overwrite``, for the message. The other options are :func:`build_reference`'s.

    Returns
    -------
    ``output``, as a path.
    """
    from .._folder import is_model_folder
    from .._outputs import naming_full_disk

    recipe(name)
    check_options(dim=dim, epochs=epochs, n_jobs=n_jobs, random_state=random_state)
    output = Path(output)
    check_replace_folder(output, overwrite=overwrite, own=is_model_folder, option=option)
    started = time.perf_counter()
    model = build_reference(name, path=path, dim=dim, epochs=epochs, n_jobs=n_jobs, random_state=random_state, log=log)
    with naming_full_disk(output):
        model.save(output, overwrite=overwrite)
    log(f"    saved the model folder {output}; built in {_elapsed(started)}")
    return output


def cached_reference(
    name: str,
    *,
    path: str | os.PathLike | None = None,
    dim: int | None = None,
    epochs: int | None = None,
    n_jobs: int | None = None,
    random_state: int = 0,
) -> BEDSpaceModel:
    """The reference ``name`` with these options: loaded from the cache, or built once into it (see the module)."""
    from .._folder import is_model_folder
    from .._model import BEDSpaceModel
    from .._warnings import warn

    recipe_ = recipe(name)
    check_options(dim=dim, epochs=epochs, n_jobs=n_jobs, random_state=random_state)
    folder = cache_folder(name, dim=dim, epochs=epochs, random_state=random_state)
    overwrite = False
    if is_model_folder(folder):
        try:
            return BEDSpaceModel.load(folder)
        except (OSError, ValueError) as err:  # damaged (a file changed, a disk error): built again
            warn(f"the cached {name} reference {folder} cannot be read ({err}); building it again")
            overwrite = True
    elif os.path.lexists(folder):
        raise NotReplaceableError(
            f"{folder} is in the way of the {name} reference and is not a bedspace model folder; remove it"
        )
    started = time.perf_counter()
    model = build_reference(name, path=path, dim=dim, epochs=epochs, n_jobs=n_jobs, random_state=random_state)
    try:
        model.save(folder, overwrite=overwrite)
        info(f"    saved the {name} reference to the cache, {folder}; built in {_elapsed(started)}")
    except NotReplaceableError:
        raise
    except FileExistsError:  # another process built it meanwhile: the same options, the same reference
        info(f"    another process saved the {name} reference to {folder} first; using it")
    _remove_other_versions(folder.parent, recipe_)
    return BEDSpaceModel.load(folder)


def cache_folder(name: str, *, dim: int | None, epochs: int | None, random_state: int) -> Path:
    """Where the build of the reference ``name`` with these options is kept (its name is its key)."""
    if dim is None and epochs is None:
        options = "annotator"
    else:
        options = f"dim{dim or DEFAULTS.dim}-epochs{epochs or DEFAULTS.epochs}"
    return cache_dir() / recipe(name).cache_name / f"{__version__}-{options}-seed{random_state}"


def _remove_other_versions(root: Path, recipe_: Recipe) -> None:
    """Remove builds of other bedspace versions: this version never reads them (a model in use keeps its files)."""
    from .._folder import is_model_folder

    for folder in root.iterdir():
        if not folder.name.startswith(f"{__version__}-") and folder.is_dir() and is_model_folder(folder):
            shutil.rmtree(folder, ignore_errors=True)
            info(f"    removed {folder}, a {recipe_.name} reference of another bedspace version")


def _elapsed(started: float) -> str:
    seconds = time.perf_counter() - started
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def encode_hg19_reference(
    path: str | os.PathLike | None = None,
    *,
    dim: int | None = None,
    epochs: int | None = None,
    n_jobs: int | None = None,
    random_state: int = 0,
) -> BEDSpaceModel:
    """A ready reference: the 172 labelled hg19 region sets trained on and calibrated, to annotate BED files with.

    The collection of :func:`encode_hg19`, tokenized on its consensus universe, trained on the label fields
    ``organ``, ``cell_class`` and ``assay`` with :func:`bedspace.tl.train`'s defaults: the default annotator,
    calibrated, and its space (the annotator's label scores as vectors, so that r2r and l2r answer from one vector
    per set). The first call builds it (about a minute on 2 cores) into the
    cache folder (``$BEDSPACE_CACHE_DIR`` or the user cache), ``encode_hg19_reference/`` in it; later calls with
    the same options and bedspace version load it (a fraction of a second). Other options, or another bedspace
    version, build it again; a build of another version is then removed. ``bedspace reference encode-hg19 -o
    ref/`` builds the same model into a folder of your choice.

    The default space is fitted in closed form: the same answers whatever ``n_jobs``. StarSpace's objective
    (``dim`` or ``epochs`` given) is bit-for-bit reproducible with ``n_jobs=1``; with more threads the built-in
    engine trains lock-free and its vectors differ a little from run to run (the annotator's r2l does not depend
    on them).

    Parameters
    ----------
    path
        A local copy of the collection, as :func:`encode_hg19` takes it: a folder holding ``hg19_bedsets/`` or
        that folder itself. Default ``$BEDSPACE_DATA_DIR``; when neither is given the collection is downloaded
        once (≈150 MB). The cached reference does not depend on it.
    dim, epochs
        ``None`` (default): the default space. Either given: StarSpace's objective with that dimension (default
        100) and that many epochs (default 50) instead.
    n_jobs
        Threads for tokenizing and training (default: all cores).
    random_state
        Seed of the training and of the annotator's fit (default 0).

    Returns
    -------
    The loaded :class:`~bedspace.BEDSpaceModel` (a model folder in the cache, memory-mapped), with the 172 sets,
    their metadata and the calibrated annotator: ``model.search("my_peaks.bed.gz", search_type="r2l")``.

    Raises
    ------
    ValueError
        An option out of range (named). The download's errors are :func:`encode_hg19`'s.

    Examples
    --------
    >>> ref = bs.datasets.encode_hg19_reference()  # doctest: +SKIP
    >>> ref.search("my_peaks/", search_type="r2l")  # doctest: +SKIP
    """
    return cached_reference("encode-hg19", path=path, dim=dim, epochs=epochs, n_jobs=n_jobs, random_state=random_state)
