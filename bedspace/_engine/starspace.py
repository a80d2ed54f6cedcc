"""Running the real StarSpace binary (facebookresearch/StarSpace) on a training file."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import deque
from collections.abc import Callable
from pathlib import Path

from .._params import TrainParams

ENV_VAR = "BEDSPACE_STARSPACE"
_EPOCH_LINE = re.compile(r"Epoch\s+(\d+)\s+Train error\s*:\s*([0-9.eE+-]+|nan|inf)")


class StarSpaceError(RuntimeError):
    """The StarSpace binary failed."""


def find_binary(starspace: str | os.PathLike | None) -> Path:
    """The StarSpace executable: ``starspace`` (a file or the folder holding it), else ``$BEDSPACE_STARSPACE``."""
    given = starspace if starspace is not None else os.environ.get(ENV_VAR)
    how = (
        "Build StarSpace (facebookresearch/StarSpace on GitHub: `make` in its folder) and give its path "
        f"(starspace= in Python, --path-to-starspace on the command line, or ${ENV_VAR}), or use the built-in "
        "engine, which needs nothing installed (backend='native'; on the command line, leave out --path-to-starspace)."
    )
    if not given:
        raise FileNotFoundError(f"no StarSpace binary given (starspace= or ${ENV_VAR}). {how}")
    path = Path(given).expanduser()
    if path.is_dir():
        path = path / "starspace"
    if not path.is_file():
        found = shutil.which(str(given))
        if found is None:
            raise FileNotFoundError(f"StarSpace binary not found: {path}. {how}")
        path = Path(found)
    if not os.access(path, os.X_OK):
        raise PermissionError(f"StarSpace binary is not executable: {path}")
    return path.resolve()  # StarSpace runs in a temporary folder: a relative path would point nowhere there


def train_arguments(train_file: Path, model: Path, params: TrainParams, n_threads: int) -> list[str]:
    """Every flag explicit, so StarSpace's defaults and an old model never decide anything (no -initModel)."""
    return [
        "train",
        "-trainFile", str(train_file),
        "-model", str(model),
        "-trainMode", "0",
        "-fileFormat", "fastText",
        "-label", "__label__",
        "-dim", str(params.dim),
        "-epoch", str(params.epochs),
        "-lr", repr(float(params.lr)),
        "-negSearchLimit", str(params.neg_search_limit),
        "-maxNegSamples", str(params.max_neg_samples),
        "-margin", repr(float(params.margin)),
        "-batchSize", str(params.batch_size),
        "-loss", params.loss,
        "-similarity", "cosine",
        "-adagrad", "1",
        "-shareEmb", "1",
        "-norm", repr(float(params.max_norm)),
        "-initRandSd", repr(float(params.init_std)),
        "-minCount", "1",
        "-minCountLabel", "1",
        "-ngrams", "1",
        "-useWeight", "0",
        "-normalizeText", "0",
        "-saveEveryEpoch", "0",
        "-trainWord", "0",
        "-dropoutLHS", repr(float(params.dropout)),
        "-dropoutRHS", "0.0",
        "-thread", str(n_threads),
        "-verbose", "1",
    ]  # fmt: skip


def run_training(
    binary: Path,
    train_file: Path,
    workdir: Path,
    params: TrainParams,
    *,
    n_threads: int,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[Path, list[float]]:
    """Train in ``workdir``; returns the ``.tsv`` model and the loss StarSpace printed per epoch."""
    model = workdir / "model"
    command = [str(binary), *train_arguments(train_file, model, params, n_threads)]
    tail: deque[str] = deque(maxlen=25)
    losses: list[float] = []
    with subprocess.Popen(
        command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as process:
        assert process.stdout is not None
        for chunk in _lines(process.stdout):
            tail.append(chunk)
            match = _EPOCH_LINE.search(chunk)
            if match:
                losses.append(float(match.group(2)))
                if progress is not None:
                    progress(int(match.group(1)), losses[-1])
        code = process.wait()
    tsv = model.with_name("model.tsv")
    if code != 0 or not tsv.exists():
        output = "\n".join(tail)
        raise StarSpaceError(
            f"StarSpace failed (exit code {code}) running:\n  {' '.join(command)}\nlast output:\n{output}"
        )
    return tsv, losses


def _lines(stream):
    """Lines of StarSpace's output, splitting its carriage-return progress updates too."""
    buffer = ""
    while chunk := stream.read(4096):
        buffer += chunk
        *complete, buffer = re.split(r"[\r\n]", buffer)
        yield from (line for line in complete if line.strip())
    if buffer.strip():
        yield buffer
