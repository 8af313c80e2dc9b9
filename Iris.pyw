"""Windows, no console window: double-click to start Iris once it is installed (use Iris.bat the first time)."""

import runpy
from pathlib import Path

runpy.run_path(str(Path(__file__).resolve().parent / "launcher.py"), run_name="__main__")
