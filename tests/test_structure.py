"""The shape of the package: conventions of public functions, and imports that run in one direction only."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import anndata as ad
import pytest

import bedspace as bs

PACKAGE = Path(bs.__file__).parent
PUBLIC = [
    (name, module)
    for module in (bs.pp, bs.tl, bs.pl)
    for name in module.__all__
    if inspect.isfunction(getattr(module, name))
]

# -- public functions ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "module"), PUBLIC, ids=[f"{m.__name__}.{n}" for n, m in PUBLIC])
def test_public_functions_take_keyword_options_and_document_them(name, module):
    function = getattr(module, name)
    parameters = list(inspect.signature(function).parameters.values())
    positional = [p for p in parameters if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert len(positional) <= 2, f"{name}: options after the data must be keyword-only: {positional}"
    assert all(p.kind is not inspect.Parameter.VAR_POSITIONAL for p in parameters)
    doc = inspect.getdoc(function)
    assert doc and "Returns\n-------" in doc, f"{name}: numpy docstring with a Returns section"
    documented = doc.split("Parameters\n----------", 1)[-1].split("Returns\n-------", 1)[0]
    for parameter in parameters:
        assert re.search(rf"(^|, ){parameter.name}(,|$)", documented, re.M), f"{name}: {parameter.name} undocumented"
    for other in ("shared/", "../"):
        assert other not in doc, f"{name}'s docstring names a file outside the package"


def _written(before: ad.AnnData, after: ad.AnnData) -> set[tuple[str, str]]:
    new = set()
    for attr in ("obs", "obsm", "varm", "obsp", "uns"):
        old_keys = set(getattr(before, attr).keys())
        new |= {(attr, key) for key in getattr(after, attr).keys() if key not in old_keys}
    return new


def _documented(function, **names) -> set[tuple[str, str]]:
    """Every ``adata.<attr>[<expression>]`` of the Returns section, its expression evaluated with ``names``."""
    returns = inspect.getdoc(function).split("Returns\n-------", 1)[1]
    found = set()
    for attr, expression in re.findall(r"adata\.(obs|obsm|varm|obsp|uns)\[([^\]]+)\]", returns):
        found.add((attr, eval(expression, {}, names)))  # noqa: S307  (our own docstrings)
    return found


@pytest.fixture(scope="module")
def collection():
    data = bs.datasets.insulators()
    adata = bs.pp.tokenize(data.beds, data.universe, metadata=data.metadata)
    trained = bs.tl.train(adata, labels=["target"], dim=8, epochs=2, key_added="kk", n_threads=1, copy=True)
    return adata, trained


def test_writers_copy_and_document_every_key_they_write(collection, tmp_path):
    adata, trained = collection
    runs = {
        bs.tl.train: (adata, {"labels": "target", "dim": 4, "epochs": 1, "key_added": "kk"}),
        bs.tl.distances: (trained, {"key": "kk", "n_neighbors": 3}),
        bs.tl.embed: (adata[:3].copy(), {"key": "kk"}),
        bs.tl.layout: (trained, {"key": "kk", "basis": "pca"}),
    }
    for function, (target, options) in runs.items():
        parameters = inspect.signature(function).parameters
        assert "copy" in parameters and "key_added" in parameters, function.__name__
        arguments = (target, trained) if function is bs.tl.embed else (target,)
        result = function(*arguments, copy=True, **options)
        assert isinstance(result, ad.AnnData) and result is not target
        written = _written(target, result)
        assert written, function.__name__
        documented = _documented(function, key_added="kk", key="kk", k="kk", basis="pca")
        assert written <= documented, f"{function.__name__} writes {written - documented} without saying so"
        result.write_h5ad(tmp_path / f"{function.__name__}.h5ad")  # everything written survives .h5ad
        back = ad.read_h5ad(tmp_path / f"{function.__name__}.h5ad")
        assert _written(target, back) == written
        before = {attr: set(getattr(target, attr).keys()) for attr in ("obs", "obsm", "varm", "obsp", "uns")}
        assert function(*arguments, copy=True, **options) is not None
        assert {attr: set(getattr(target, attr).keys()) for attr in before} == before  # copy=True leaves it alone


# -- imports run one way: base, engine and formats, core, then the front -------------------------------------------
LAYERS = {
    "base": [
        "_atomic", "_cache", "_logging", "_metrics", "_parallel", "_params", "_plain", "_similarity", "_version",
        "_warnings", "_quiet", "_index", "_neighbors", "_lazy", "_download",
    ],
    "engine": ["_engine", "_formats", "_overlap"],
    "annotate": ["annotate"],
    "core": [
        "_keys", "_labels", "_metadata", "_model", "_space", "_reference", "_search", "_queries", "_folder", "_anndata", "_legacy", "_sources",
        "_training", "_universe", "_ondisk", "_outputs", "_explain", "_builds",
    ],
    "front": ["pp", "tl", "pl", "io", "datasets", "cli", "__init__", "__main__"],
}  # fmt: skip
RANK = {name: rank for rank, names in enumerate(LAYERS.values()) for name in names}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(["bedspace", *parts])


def _imports(path: Path) -> set[str]:
    """The bedspace modules ``path`` imports, at the top or inside functions."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("bedspace"):
                if node.module:  # `from . import x` imports the submodule x, not the package's __init__
                    found.add(target)
                found |= {f"{target}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("bedspace")}
    return found


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_has_a_layer():
    modules = {_top(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert modules <= set(RANK), f"place these modules in a layer: {modules - set(RANK)}"


def test_imports_never_run_back_up():
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        here = _top(_module_name(path))
        for target in _imports(path):
            there = _top(target)
            if there in RANK and RANK[there] > RANK[here]:
                wrong.append(f"{_module_name(path)} ({here}) imports {target} ({there})")
    assert not wrong, "\n".join(wrong)


def test_the_annotator_knows_arrays_only():
    """bedspace.annotate: arrays in, arrays out — no AnnData, no model, no tools, nothing of the core above it."""
    for path in (PACKAGE / "annotate").rglob("*.py"):
        source = path.read_text()
        assert not re.search(r"^\s*(import anndata|from anndata)", source, re.M), f"{path.name} imports anndata"
        for target in _imports(path):
            assert RANK.get(_top(target), 0) <= RANK["annotate"], f"{path.name} imports {target}"


def test_plots_never_compute():
    for path in (PACKAGE / "pl").rglob("*.py"):
        for target in _imports(path):
            assert _top(target) not in ("tl", "pp", "_model"), f"{path.name} imports {target}"


def test_no_import_cycles():
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {
        name: {t for t in _imports(path) if t in modules and t != name and not name.startswith(t + ".")}
        for name, path in modules.items()
    }
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for target in graph[node]:
            if state.get(target) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(target) :] + [target]))
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


def test_the_package_names_no_file_outside_the_repository():
    for path in [*PACKAGE.rglob("*.py"), *(PACKAGE.parent / "docs").glob("*.md")]:
        text = path.read_text(encoding="utf-8")
        assert "shared/" not in text and "/work/" not in text, f"{path} names a file outside the repository"
