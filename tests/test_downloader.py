"""The downloader against a Hub look-alike on 127.0.0.1 (tests/hubserver.py), through the real huggingface_hub."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.catalog import load_catalog
from app.downloader import Downloader, Progress
from app.errors import ChecksumMismatch, DownloadCancelled, DownloadError, NotEnoughSpace
from app.store import DOWNLOADS, MANIFEST, ModelStore, human_size
from hubserver import REPO, write_catalog

FAST = (0.05, 0.05, 0.1, 0.1)
ROOT = Path(__file__).resolve().parent.parent


def spec():
    return load_catalog()[1][0]


def downloader(tmp_path: Path, **kw) -> Downloader:
    return Downloader(tmp_path / "models", retry_delays=kw.pop("retry_delays", FAST), **kw)


def installed_bytes(folder: Path, name: str) -> bytes:
    return (folder / name).read_bytes()


def test_full_download_is_listed_with_its_entry(hub, tmp_path, hub_pair):
    seen: list[Progress] = []
    folder = downloader(tmp_path).install(spec(), progress=seen.append)
    assert installed_bytes(folder, "test-llava.gguf") == hub_pair[0].read_bytes()
    assert installed_bytes(folder, "test-llava-mmproj.gguf") == hub_pair[1].read_bytes()
    assert (folder / MANIFEST).is_file() and not (tmp_path / "models" / DOWNLOADS / folder.name).exists()
    [pair] = ModelStore(tmp_path / "models").pairs()
    assert (pair.name, pair.catalog_id, pair.chat_format) == ("test-llava-F32", "test-llava", "llava-1-5")
    assert seen[-1].state == "done" and seen[-1].done == seen[-1].total == hub.lm.size + hub.mm.size
    assert any(p.state == "downloading" for p in seen)
    # Each file crossed the wire once; a second install is a no-op.
    assert hub.state.sent("test-llava.gguf") == hub.lm.size
    assert downloader(tmp_path).install(spec()) == folder
    assert hub.state.sent("test-llava.gguf") == hub.lm.size


def test_resumes_after_the_server_drops_the_connection(hub, tmp_path):
    hub.state.drop_after["test-llava.gguf"] = [hub.lm.size // 3, hub.lm.size // 3]
    downloader(tmp_path).install(spec())
    gets = [h for h in hub.state.hits if h.server == "cdn" and h.path.endswith(hub.lm.sha256)]
    assert [h.range is not None for h in gets] == [False, True, True]
    assert hub.state.sent("test-llava.gguf") == hub.lm.size  # nothing fetched twice


def test_transient_5xx_is_retried(hub, tmp_path):
    hub.state.fail["test-llava.gguf"] = [503, 502]
    downloader(tmp_path).install(spec())
    assert hub.state.sent("test-llava.gguf") == hub.lm.size


def test_corrupted_bytes_are_detected_and_fetched_again(hub, tmp_path, hub_pair):
    hub.state.corrupt["test-llava.gguf"] = 1
    seen: list[Progress] = []
    folder = downloader(tmp_path).install(spec(), progress=seen.append)
    assert installed_bytes(folder, "test-llava.gguf") == hub_pair[0].read_bytes()
    assert hub.state.sent("test-llava.gguf") == 2 * hub.lm.size
    assert any("failed its SHA-256 check" in p.message for p in seen)


def test_persistent_corruption_installs_nothing(hub, tmp_path):
    hub.state.corrupt["test-llava.gguf"] = 2
    with pytest.raises(ChecksumMismatch, match="failed its SHA-256 check twice .* the bad file was removed"):
        downloader(tmp_path).install(spec())
    assert ModelStore(tmp_path / "models").pairs() == []
    assert not list((tmp_path / "models").rglob("test-llava.gguf*"))


def test_catalog_pin_that_differs_from_the_hub_is_refused_before_downloading(hub, tmp_path, monkeypatch):
    wrong = type(hub.lm)(hub.lm.path, hub.lm.size, "0" * 64)
    write_catalog(Path(os.environ["IRIS_CATALOG"]), REPO, wrong, hub.mm)
    with pytest.raises(ChecksumMismatch, match="repository has changed. Nothing was downloaded"):
        downloader(tmp_path).install(spec())
    assert hub.state.sent("test-llava.gguf") == 0


def test_not_enough_disk_space_gives_both_numbers(hub, tmp_path):
    d = downloader(tmp_path, free_space=lambda p: 50_000_000)
    with pytest.raises(NotEnoughSpace) as err:
        d.install(spec())
    needed = human_size(hub.lm.size + hub.mm.size)
    assert f"it needs {needed} more" in str(err.value) and "has 50.0 MB free" in str(err.value)
    assert hub.state.sent("test-llava.gguf") == 0


def test_gated_repository_needs_a_token(hub, tmp_path):
    hub.state.gated[REPO] = "hf_secret"
    with pytest.raises(DownloadError, match="is gated.*set HF_TOKEN"):
        downloader(tmp_path).install(spec())
    downloader(tmp_path, token="hf_secret").install(spec())
    cdn = [h for h in hub.state.hits if h.server == "cdn"]
    assert cdn and not any(h.auth for h in cdn)  # the token never leaves the Hub


def test_missing_file_is_named(hub, tmp_path):
    del hub.state.repos[REPO]["test-llava-mmproj.gguf"]
    with pytest.raises(DownloadError, match="test-llava-mmproj.gguf is not in iris-test/test-llava-GGUF"):
        downloader(tmp_path).install(spec())


def test_missing_repository_is_named(hub, tmp_path):
    hub.state.repos["someone/else"] = hub.state.repos.pop(REPO)
    with pytest.raises(DownloadError, match="iris-test/test-llava-GGUF was not found on the Hub"):
        downloader(tmp_path).install(spec())


def test_server_down_says_so(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(DownloadError, match=r"Could not reach http://127.0.0.1:9 .*internet connection"):
        downloader(tmp_path).install(spec())


def test_offline_mode_is_honoured(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE is set"):
        downloader(tmp_path).install(spec())
    assert hub.state.hits == []


def test_cancel_keeps_the_bytes_and_the_next_try_resumes(hub, tmp_path):
    hub.state.rate = 4_000_000
    cancel = threading.Event()

    def progress(p: Progress) -> None:
        if p.state == "downloading" and p.done > hub.lm.size // 3:
            cancel.set()

    d = downloader(tmp_path)
    with pytest.raises(DownloadCancelled, match="resumes from there"):
        d.install(spec(), progress=progress, cancel=cancel)
    store = ModelStore(tmp_path / "models")
    assert store.pairs() == []  # a half-finished download is never usable
    [partial] = store.partial_downloads()
    kept = (partial.path / "test-llava.gguf.part").stat().st_size
    assert 0 < kept < hub.lm.size
    hub.state.rate = None
    d.install(spec())
    last = [h for h in hub.state.hits if h.server == "cdn" and h.path.endswith(hub.lm.sha256)][-1]
    assert last.range == f"bytes={kept}-" and last.sent == hub.lm.size - kept
    assert store.partial_downloads() == []


def test_a_damaged_unsynced_tail_is_fetched_again_from_the_last_synced_byte(hub, tmp_path):
    """After an OS crash the bytes written since the last fsync may be garbage: the check catches it."""
    cancel = threading.Event()
    hub.state.rate = 4_000_000
    d = downloader(tmp_path)
    with pytest.raises(DownloadCancelled):
        d.install(spec(), progress=lambda p: p.done > hub.lm.size // 2 and cancel.set(), cancel=cancel)
    [partial] = ModelStore(tmp_path / "models").partial_downloads()
    part = partial.path / "test-llava.gguf.part"
    side = part.with_name(part.name + ".json")
    kept = part.stat().st_size
    synced = kept // 2
    with open(part, "r+b") as fh:  # what a power cut can leave: zeros past the last synced point
        fh.seek(synced)
        fh.write(bytes(kept - synced))
    side.write_text(side.read_text().replace(f'"synced": {kept}', f'"synced": {synced}'))
    hub.state.rate = None
    seen: list[Progress] = []
    folder = d.install(spec(), progress=seen.append)
    assert (folder / "test-llava.gguf").read_bytes() == hub.lm.path.read_bytes()
    ranges = [h.range for h in hub.state.hits if h.server == "cdn" and h.path.endswith(hub.lm.sha256)]
    assert ranges[-2:] == [f"bytes={kept}-", f"bytes={synced}-"]
    assert any("failed its SHA-256 check" in p.message for p in seen)


def test_two_requests_for_one_model_download_it_once(hub, tmp_path):
    hub.state.rate = 8_000_000
    results, errors, states = [], [], []

    def run() -> None:
        try:
            results.append(downloader(tmp_path).install(spec(), progress=lambda p: states.append(p.state)))
        except Exception as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == 2 and results[0] == results[1]
    assert "waiting" in states
    assert hub.state.sent("test-llava.gguf") == hub.lm.size
    assert hub.state.sent("test-llava-mmproj.gguf") == hub.mm.size


def test_remove_frees_the_install_and_unfinished_downloads(hub, tmp_path):
    folder = downloader(tmp_path).install(spec())
    store = ModelStore(tmp_path / "models")
    assert store.remove("test-llava") == hub.lm.size + hub.mm.size
    assert not folder.exists() and store.pairs() == []


def _cli(args: list[str], env: dict, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "app", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_kill_and_resume_through_the_cli(hub, tmp_path):
    """kill -9 mid-file, run the same command again: only the missing bytes cross the wire."""
    models = tmp_path / "models"
    env = {**os.environ, "IRIS_HOME": str(tmp_path / "home")}
    hub.state.rate = 3_000_000
    proc = _cli(["--models-dir", str(models), "download", "test-llava"], env)
    part = models / DOWNLOADS / "test-llava-F32" / "test-llava.gguf.part"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not part.exists() or part.stat().st_size < hub.lm.size // 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    on_disk = part.stat().st_size
    deadline = time.monotonic() + 10  # the server notices the hang-up at its next write
    while time.monotonic() < deadline and not hub.state.sent("test-llava.gguf"):
        time.sleep(0.05)
    first = hub.state.sent("test-llava.gguf")
    assert 0 < on_disk <= first < hub.lm.size
    hub.state.rate = None
    proc = _cli(["--models-dir", str(models), "download", "test-llava"], env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    second = hub.state.sent("test-llava.gguf") - first
    print(f"\nkill-and-resume: {on_disk:,} B on disk at kill -9 (server had sent {first:,} B); "
          f"after the restart {second:,} B fetched for a {hub.lm.size:,} B file")
    assert second == hub.lm.size - on_disk  # every byte on disk was kept
    assert "Installed test-llava-F32" in out
    assert "downloading" in err and "done" in err
    listing = subprocess.run([sys.executable, "-m", "app", "--models-dir", str(models), "models"],
                             cwd=ROOT, env=env, capture_output=True, text=True)
    assert "test-llava-F32" in listing.stdout and "Test LLaVA" in listing.stdout


def test_cli_failure_is_one_plain_line(hub, tmp_path):
    hub.state.gated[REPO] = "hf_secret"
    env = {**os.environ, "IRIS_HOME": str(tmp_path / "home")}
    out, err = _cli(["--models-dir", str(tmp_path / "m"), "download", "test-llava"], env).communicate(timeout=60)
    line = [x for x in err.splitlines() if x.startswith("iris: ")]
    assert line and "is gated" in line[0]


def test_the_ui_manager_joins_a_running_job_and_cancels_it(hub, tmp_path):
    from app.download_jobs import DownloadManager

    hub.state.rate = 2_000_000
    manager = DownloadManager(tmp_path / "models")
    job = manager.start(spec())
    assert manager.start(spec()) is job  # a second tab gets the same job, not a second download
    deadline = time.monotonic() + 20
    while job.progress.done == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert manager.cancel(job.name)
    manager.wait(job.name, 20)
    assert job.cancelled and job.folder is None and not job.running
    hub.state.rate = None
    again = manager.start(spec())
    manager.wait(again.name, 30)
    assert again.folder is not None and again.error is None


def test_the_ui_shows_download_errors_in_place(tmp_path):
    from app.download_jobs import DownloadManager
    from app.ui import downloads_html

    # HF_ENDPOINT points at a closed port.
    manager = DownloadManager(tmp_path / "models", lambda root: Downloader(root, retry_delays=FAST))
    job = manager.start(load_catalog()[1][0])
    manager.wait(job.name, 120)
    assert "Could not reach" in (job.error or "")
    html = downloads_html([job])
    assert "Could not reach" in html and 'class="line error"' in html


def test_a_full_disk_is_one_line_and_the_download_resumes_when_space_is_back(hub, tmp_path, hub_pair, monkeypatch):
    import builtins
    import errno

    import app.downloader as dl

    room = {"left": hub.lm.size // 2}

    class FullDisk:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            if len(data) > room["left"]:
                raise OSError(errno.ENOSPC, "No space left on device")
            room["left"] -= len(data)
            return self.fh.write(data)

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.fh.__exit__(*exc)

    def small_disk_open(path, mode="r", *a, **kw):
        fh = builtins.open(path, mode, *a, **kw)
        return FullDisk(fh) if "b" in mode and ("a" in mode or "w" in mode) and str(path).endswith(".part") else fh

    with monkeypatch.context() as m:
        m.setattr(dl, "open", small_disk_open, raising=False)
        with pytest.raises(NotEnoughSpace) as err:
            downloader(tmp_path).install(spec())
    msg = str(err.value)
    assert "is full" in msg and str(tmp_path / "models") in msg and "\n" not in msg
    folder = downloader(tmp_path).install(spec())  # space freed: resumes and verifies
    assert installed_bytes(folder, "test-llava.gguf") == hub_pair[0].read_bytes()
