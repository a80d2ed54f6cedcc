"""Sphinx configuration of the bedspace documentation."""

import os
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
# The tutorials are executed when the docs are built (on the real data, as in the test run), so the rendered
# pages always show what the current code does. Progress bars are turned off there, and anything else a tutorial
# prints to stderr — another package's warning, say — is a warning of the build, which -W turns into an error:
# the tutorials print only bedspace's own words.
os.environ["TQDM_DISABLE"] = "1"
nb_execution_mode = "force"
nb_execution_timeout = 900
nb_execution_raise_on_error = True
nb_output_stderr = "warn"
myst_enable_extensions = ["colon_fence", "deflist"]
nitpicky = False
html_theme = "sphinx_book_theme"
html_title = "bedspace"
