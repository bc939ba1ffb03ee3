"""Write every notebook in notebooks/ from its source module in tools/notebooks/.

The notebooks are committed without outputs; this script keeps their source readable in
review. `python tools/make_notebooks.py [NN ...]` rewrites them all (or those numbers) (a test checks they are in sync).
"""

import importlib
import pkgutil
import sys
from pathlib import Path

import nbformat

TOOLS = Path(__file__).resolve().parent
NOTEBOOKS = TOOLS.parent / "notebooks"


def sources(only=()) -> dict:
    """{file name: notebook} for every tools/notebooks/nbNN_*.py module (or those named in `only`)."""
    sys.path.insert(0, str(TOOLS))
    import notebooks as package

    found = {}
    for module in sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("nb")):
        if only and not any(module.startswith(f"nb{prefix}") for prefix in only):
            continue
        source = importlib.import_module(f"notebooks.{module}")
        found[f"{source.NAME}.ipynb"] = source.NOTEBOOK
    return found


if __name__ == "__main__":
    NOTEBOOKS.mkdir(exist_ok=True)
    # `python tools/make_notebooks.py 04 05` rewrites only those numbers.
    for name, nb in sources(sys.argv[1:]).items():
        nbformat.write(nb, NOTEBOOKS / name)
        print("wrote", NOTEBOOKS.name + "/" + name)
