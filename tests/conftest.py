"""Shared fixtures: a private IRIS_HOME, test models written by tests/modelwriter.py, test images."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from hubserver import REPO, HubServer, HubState, write_catalog  # noqa: E402
from modelwriter import Shape, write_pair  # noqa: E402

# Nothing in the tests may reach the real Hub: anything not pointed at tests/hubserver.py meets a closed port.
# Set before huggingface_hub is imported (it reads these once).
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ.pop("HF_HUB_OFFLINE", None)
os.environ.pop("HF_TOKEN", None)


@pytest.fixture(autouse=True)
def iris_home(tmp_path, monkeypatch):
    """Every test gets its own IRIS_HOME so nothing touches the real user dirs."""
    home = tmp_path / "iris-home"
    monkeypatch.setenv("IRIS_HOME", str(home))
    monkeypatch.setenv("IRIS_RAISE_ERRORS", "1")
    return home


@pytest.fixture(scope="session")
def tiny_pair(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny random-weight LLaVA-1.5 pair (16 tokens per image)."""
    return write_pair(tmp_path_factory.mktemp("models") / "tiny-llava", Shape(), "tiny-llava")


@pytest.fixture(scope="session")
def models_dir(tiny_pair) -> Path:
    """A models folder holding the tiny pair in its own sub-folder."""
    return tiny_pair[0].parent.parent


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> dict[str, Path]:
    """Test images: two same-sized solid colours, and assorted formats."""
    d = tmp_path_factory.mktemp("images")
    out = {}
    for name, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        p = d / f"{name}.png"
        Image.new("RGB", (64, 48), colour).save(p)
        out[name] = p
    return out


@pytest.fixture(scope="session")
def engine(tiny_pair):
    """One real llama.cpp engine with the tiny pair loaded, shared by the engine tests."""
    from app.engine import LlamaCppEngine

    eng = LlamaCppEngine()
    eng.load(*tiny_pair)
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def hub_pair(tmp_path_factory) -> tuple[Path, Path]:
    """A ~14 MB LM and its mmproj: big enough to drop, throttle and kill mid-file."""
    shape = Shape(n_embd=256, n_head=4, n_head_kv=4, n_ff=512, n_vocab=4096)
    return write_pair(tmp_path_factory.mktemp("hubfiles"), shape, "test-llava")


@pytest.fixture
def hub(hub_pair, monkeypatch, tmp_path):
    """A running Hub look-alike serving the pair; HF_ENDPOINT and IRIS_CATALOG point at it."""
    state = HubState()
    lm, mm = (state.add(REPO, p) for p in hub_pair)
    with HubServer(state) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("IRIS_CATALOG", str(write_catalog(tmp_path / "catalog.json", REPO, lm, mm)))
        server.lm, server.mm = lm, mm
        yield server


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say loudly when the browser tests were skipped, and how to get them to run."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "browser" in getattr(r, "keywords", {})]
    if skipped:
        terminalreporter.write_line("")
        terminalreporter.write_line(
            f"!!! {len(skipped)} BROWSER TESTS WERE SKIPPED: Chromium is not installed. On Debian/Ubuntu: "
            "sudo apt-get install chromium chromium-driver (then run the tests again) !!!",
            red=True, bold=True)


@pytest.fixture
def services(models_dir):
    """Services on the real engine with the tiny pair loaded, greedy 8-token replies, history in IRIS_HOME."""
    from app.chat import GenParams
    from app.services import build_services

    s = build_services(models_dir, with_history=True)
    s.params = GenParams(temperature=0.0, max_tokens=8, seed=1)
    s.load("tiny-llava")
    yield s
    s.close()
    s.history.close()
