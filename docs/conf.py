"""Sphinx configuration of the bedspace documentation."""

from importlib.metadata import version as _version

project = "bedspace"
author = "bedspace developers"
copyright = "2026, bedspace developers"
release = _version("bedspace")

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx_autodoc_typehints",
]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "tutorials/README.md"]
autosummary_generate = True
autodoc_member_order = "bysource"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = True
typehints_defaults = "comma"
always_use_bars_union = True
# The tutorials are stored with their outputs (written by scripts/run_tutorials.py) and rendered as stored: the
# build executes nothing and needs no data. tests/test_tutorials.py executes them again and fails when the stored
# outputs are not what the current code shows. A stored output on stderr — another package's warning, say — is a
# warning of the build, which -W turns into an error: the tutorials print only bedspace's own words.
nb_execution_mode = "off"
nb_output_stderr = "warn"
myst_enable_extensions = ["colon_fence", "deflist"]
nitpicky = False
html_theme = "sphinx_book_theme"
html_title = "bedspace"
