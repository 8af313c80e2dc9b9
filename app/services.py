"""What the UI and the CLI share: the engine, the model store, history, settings, downloads, and the glue."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from app.catalog import ModelSpec, load_catalog
from app.chat import Conversation, GenParams, Reply, Turn, fit_conversation
from app.download_jobs import DownloadManager
from app.errors import AppError, NoModelLoaded, ReplyInProgress, TooManyImages, UnsupportedVideo, printable
from app.images import PreparedImage, prepare_image, thumbnail_uri
from app.settings import Settings, save_settings
from app.store import ModelPair, ModelStore
from app.video import SampledVideo, is_video, stamp

if TYPE_CHECKING:
    from app.history import History, StoredConversation

logger = logging.getLogger(__name__)

REMOTE_SEP = " @ "  # "model @ http://server:port": a model on an added server
NO_MODEL = "No model is loaded. Pick one above and press Load, or download one on the Models tab."
IMAGE_MEMORY = 64 * 2**20  # bytes of recently asked-about images kept for the engine
ASK_GRACE_S = 15.0  # a saved question counts as being answered this long before its reply starts streaming
BUSY = ("Iris is still answering in this chat. Wait for the answer (or press Stop), then send again; "
        "your message stays in the box.")


class Engine(Protocol):
    """What Iris needs from an inference engine (LlamaCppEngine; a fake in UI tests)."""

    model: Any  # what is loaded (n_ctx, max_images, image_tokens, devices), or None

    def load(self, lm_path: str | Path, mmproj_path: str | Path, **kwargs: object) -> object: ...
    def stream_reply(self, conv: Conversation, params: GenParams | None = None,
                     session: str | None = None) -> Reply: ...
    def count_tokens(self, conv: Conversation) -> int: ...
    def image_cost(self, image: PreparedImage) -> int: ...
    def stop(self) -> None: ...
    def unload(self) -> None: ...


@dataclass
class Usage:
    """How full the context is after the last reply: the gauge under the chat."""

    used: int
    size: int
    images: int

    @property
    def fraction(self) -> float:
        return self.used / self.size if self.size else 0.0


@dataclass
class AttachmentCost:
    """Image tokens of a message before it is sent, and where the context will stand after it."""

    per_image: list[int]
    used: int      # context cells after the last reply (0 for a new chat)
    size: int      # the loaded model's context
    max_images: int
    video: str = ""  # a video's name: per_image are then its frames' costs
    times: list[float] = field(default_factory=list)  # the frames' times in the video
    sample_s: float = 0.0  # how long sampling the frames took
    thumbs: list[str] = field(default_factory=list)  # the frames, small, as data: URIs (a preview before sending)

    @property
    def total(self) -> int:
        return sum(self.per_image)

    @property
    def after(self) -> int:
        return self.used + self.total


@dataclass
class Services:
    """The app's services, built once by the CLI and handed to the UI."""

    engine: Engine
    store: ModelStore
    params: GenParams = field(default_factory=GenParams)
    loaded: ModelPair | None = None
    load_options: dict = field(default_factory=dict)
    downloads: DownloadManager = field(default_factory=DownloadManager)
    history: History | None = None  # None for the one-shot CLI
    settings: Settings = field(default_factory=Settings)
    # Image tokens by image hash, for the model they were measured with (held, so a new load starts afresh).
    _costs: dict[str, int] = field(default_factory=dict, repr=False)
    _costs_model: object = field(default=None, repr=False)
    _images: dict[str, PreparedImage] = field(default_factory=dict, repr=False)  # recent images, oldest first
    _attached: dict[tuple[str, int, int], PreparedImage] = field(default_factory=dict, repr=False)
    _sampled: dict[tuple, SampledVideo] = field(default_factory=dict, repr=False)  # the video being attached
    _thumbs: dict[str, str] = field(default_factory=dict, repr=False)  # frames' previews by content hash
    # OpenAI-compatible servers by their root URL; engine is one of them while one of their models is picked.
    remotes: dict[str, Any] = field(default_factory=dict)
    local: Any = None  # the engine for installed models (LlamaCppEngine, the worker, or a fake)
    _running: dict[Reply, str] = field(default_factory=dict, repr=False)  # replies streaming for the UI, by cid
    _asked: dict[str, float] = field(default_factory=dict, repr=False)  # cid -> when its unanswered question was saved
    _loaded_options: dict = field(default_factory=dict, repr=False)  # what the resident model was loaded with
    loading: int = 0  # loads in progress (a page that sees the model change meanwhile waits for its own)

    def __post_init__(self) -> None:
        if self.local is None:
            self.local = self.engine

    # -- models ----------------------------------------------------------------------------------------

    def load(self, name: str) -> ModelPair:
        """Load the installed pair called name, or pick a server's model ('model @ url'); a no-op when current."""
        model, sep, root = name.rpartition(REMOTE_SEP)
        if sep and root in self.remotes:
            return self._pick_remote(model, root)
        pair = self.store.find(name)
        self.engine = self.local
        options = dict(self.load_options)
        spec = self._spec(pair.catalog_id)
        if spec is not None:
            # The catalog knows what the model was trained to take per message; the chat format's default does not.
            options.setdefault("max_images", spec.images_per_message)
        if self.loaded == pair and self._loaded_options == options:
            return pair  # resident with these settings; a new context size or GPU layers loads it again
        self.loading += 1
        try:
            self.engine.load(pair.lm, pair.mmproj, chat_format=pair.chat_format, **options)
            self.loaded, self._loaded_options = pair, options
        except AppError:
            if self.engine.model is None:  # the previous model went too (a crashed or cancelled load)
                self.loaded = None
            raise
        finally:
            self.loading -= 1
        if self.history is not None:
            self.update_settings(last_model=pair.name)
        return pair

    def cancel_load(self) -> bool:
        """Stop a load in progress, where the engine can (the model process); False if nothing was stopped."""
        cancel = getattr(self.local, "cancel_load", None)
        return bool(cancel()) if cancel is not None else False

    def _pick_remote(self, model: str, root: str) -> ModelPair:
        engine = self.remotes[root]
        engine.select(model)
        self.engine = engine
        self.loaded = ModelPair(name=f"{model}{REMOTE_SEP}{root}", lm=Path(), mmproj=Path(), size=0,
                                label=f"on {root}")
        return self.loaded

    def add_server(self, url: str, api_key: str = "", *, save: bool = True) -> list[str]:
        """Connect to an OpenAI-compatible server (Iris, llama-server, vLLM, Ollama, LM Studio); its model names."""
        from app.remote import RemoteEngine

        url = url.strip()
        if not url.startswith(("http://", "https://")):
            raise AppError("Give the server's address with http:// or https://, e.g. http://gpu-box:8000/v1.")
        engine = RemoteEngine(url, api_key or None)
        names = [f"{m.name}{REMOTE_SEP}{engine.root}" for m in engine.models()]  # says plainly why it cannot
        old = self.remotes.get(engine.root)
        if old is not None and old is not self.engine:
            old.close()
        self.remotes[engine.root] = engine
        if save and self.history is not None:
            kept = tuple(s for s in self.settings.servers if s[0] != engine.root) + ((engine.root, api_key),)
            self.update_settings(servers=kept)
        return names

    def remote_models(self) -> list[str]:
        """Every model the added servers offer, as 'model @ url' (a server that does not answer is left out)."""
        names = []
        for root, engine in self.remotes.items():
            try:
                names += [f"{m.name}{REMOTE_SEP}{root}" for m in engine.models()]
            except AppError as exc:
                logger.warning("server %s: %s", root, exc)
        return names

    def load_files(self, lm: Path, mmproj: Path, chat_format: str | None = None) -> ModelPair:
        """Load a pair given as two paths (.gguf files only: the endpoint is not a way to probe the disk)."""
        for p in (lm, mmproj):
            if p.suffix.lower() != ".gguf" or not p.is_file():
                # One answer for "missing", "a folder" and "not a model": nothing about other files leaks.
                raise AppError(f"{printable(p.name, 60)} is not a .gguf file Iris can read. Give the full path of "
                               "the LM .gguf and of its mmproj .gguf.")
        self.engine = self.local
        self.loading += 1
        try:
            self.engine.load(lm, mmproj, chat_format=chat_format, **self.load_options)
            self.loaded = ModelPair(name=lm.stem, lm=lm, mmproj=mmproj,
                                    size=lm.stat().st_size + mmproj.stat().st_size)
        finally:
            self.loading -= 1
        return self.loaded

    def _spec(self, catalog_id: str | None) -> ModelSpec | None:
        if not catalog_id or catalog_id == "demo":
            return None
        try:
            return next((s for s in self.catalog()[1] if s.id == catalog_id), None)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def attachment_cost(self, cid: str | None, images: Sequence[PreparedImage | str | Path]) -> AttachmentCost | None:
        """What the images (or the video's frames) about to be sent will cost the loaded model, and the context
        after sending."""
        model = self.engine.model
        if model is None or not images:
            return None
        clip = None
        images, videos = _split_videos(images)
        if videos:
            clip = self.video_frames(cid, videos, images)
            images = clip.frames
        per_image = [self._cost(img) for img in map(self._prepared, images)]
        if not any(per_image):
            return None  # a server that does not say what images cost
        usage = self.usage(cid) if cid and self.history is not None else None
        return AttachmentCost(per_image, usage.used if usage else 0, int(getattr(model, "n_ctx", 0)),
                              int(getattr(model, "max_images", 0)), clip.name if clip else "",
                              clip.times if clip else [], clip.sample_s if clip else 0.0,
                              [self._thumb(f) for f in clip.frames] if clip else [])

    def _cost(self, img: PreparedImage) -> int:
        """What one image costs the loaded model, asked once per image (the input box asks on every change)."""
        if self._costs_model is not self.engine.model:
            self._costs, self._costs_model = {}, self.engine.model
        if img.sha256 not in self._costs:
            self._costs[img.sha256] = int(self.engine.image_cost(img))
        return self._costs[img.sha256]

    def _thumb(self, img: PreparedImage) -> str:
        """A frame's small preview, made once per frame."""
        if img.sha256 not in self._thumbs:
            if len(self._thumbs) >= 256:
                self._thumbs.clear()
            self._thumbs[img.sha256] = thumbnail_uri(img)
        return self._thumbs[img.sha256]

    def video_frames(self, cid: str | None, videos: list[Path], images: Sequence[object]) -> SampledVideo:
        """A message's video as the frames the loaded model will see: sampled at the Settings' rate, then fewer
        if the context cannot hold them (evenly spread still). Refuses what cannot be sent, saying why."""
        from app.video import sample

        if len(videos) > 1 or images:
            raise UnsupportedVideo("A video goes in a message of its own: send one video, and any images in "
                                   "another message.")
        model = self.engine.model
        name = self.loaded.name if self.loaded else "This model"
        if int(getattr(model, "max_images", 8)) < 2:
            able = sorted(s.name for s in self.catalog()[1] if s.images_per_message > 1)
            raise UnsupportedVideo(f"{name} takes one image per message, so it cannot watch a video (its frames "
                                   f"go in as several images). Models that can: {', '.join(able)}.")
        path = videos[0]
        st = self.settings
        try:
            stat = path.stat()
            key = (str(path), stat.st_mtime_ns, stat.st_size, st.video_fps, st.video_max_frames)
        except OSError:
            key = None
        clip = self._sampled.get(key) if key else None
        if clip is None:
            clip = sample(path, fps=st.video_fps, max_frames=st.video_max_frames)
            if key:
                self._sampled = {key: clip}  # the one being attached: a video's frames are large
        if model is None or not hasattr(self.engine, "image_cost"):
            return clip
        each = self._cost(clip.frames[0])  # every frame has the same size
        if not each:
            return clip
        usage = self.usage(cid) if cid and self.history is not None else None
        room = int(getattr(model, "n_ctx", 0)) - (usage.used if usage else 0) - st.max_tokens - 64
        fit = min(len(clip.frames), room // each)
        if fit < 1:
            raise UnsupportedVideo(f"Not even one frame of {clip.name} fits in what is left of the context "
                                   f"({each:,} tokens a frame). Start a new chat, or raise the context size in "
                                   "Settings and load the model again.")
        if fit < len(clip.frames):
            keep = [round(i * (len(clip.frames) - 1) / max(fit - 1, 1)) for i in range(fit)] if fit > 1 else [0]
            clip = replace(clip, frames=[clip.frames[i] for i in keep], times=[clip.times[i] for i in keep])
        return clip

    def catalog(self) -> tuple[dict[str, str], list[ModelSpec]]:
        """The recommended picks and the catalog entries (read each time: it is small)."""
        return load_catalog()

    def remove(self, name: str) -> int:
        """Delete an installed model or an unfinished download; unload it first if it is in use."""
        if any(j.name == name and j.running for j in self.downloads.jobs()):
            raise AppError(f"{name} is downloading right now; cancel the download first.")
        pair = next((p for p in self.store.pairs() if p.name == name), None)
        if pair is not None and self.loaded == pair:
            self.engine.unload()  # Windows cannot delete a mapped file, and the memory should go too
            self.loaded = None
        return self.store.remove(name)

    def close(self) -> None:
        """Free the model (llama-cpp-python complains at exit otherwise) and close server connections."""
        getattr(self.local, "close", self.local.unload)()  # the model process, if any, stops too
        for engine in self.remotes.values():
            engine.close()
        self.engine = self.local
        self.loaded = None

    # -- settings --------------------------------------------------------------------------------------

    def update_settings(self, **changes: Any) -> Settings:
        """Change and save settings; sampling applies to the next reply, context and GPU to the next load."""
        self.settings = replace(self.settings, **changes).clamp()
        self.params = self.settings.params()
        self.load_options = self.settings.load_options()
        save_settings(self.settings)
        return self.settings

    # -- conversations ---------------------------------------------------------------------------------

    def _history(self):
        if self.history is None:
            raise AppError("History is not available in this mode.")
        return self.history

    def ask(self, cid: str | None, text: str, images: Sequence[PreparedImage | str | Path] = (), *,
            system: str = "") -> str:
        """Save the user's question and its images (files are prepared here); return the conversation's id.

        Every check a question needs runs here, before anything is written: there is a question, a model is
        loaded, the model takes this many images, each file is an image, and the model's own preprocessing
        can use it. cid None starts a conversation (with system), which is removed again if the question
        is refused, so a refused first question leaves no empty chat behind.
        """
        from app.history import StoredMessage

        h = self._history()
        text = text.strip()
        if not text and not images:
            raise AppError("Type a question or add an image first.")
        if cid is not None:
            self._check_idle(cid)
        if self.loaded is None:
            raise NoModelLoaded(NO_MODEL)
        images, videos = _split_videos(images)
        times: list[float] = []
        if videos:
            clip = self.video_frames(cid, videos, images)  # sampled, checked and fitted to the context
            prepared, times = list(clip.frames), list(clip.times)
        else:
            self.check_image_count(len(images))  # before reading the files: the limit is the news
            prepared = [self._prepared(i) for i in images]
        if self.engine.model is not None:
            # The loaded model's preprocessing sees each image before it is saved: an image it cannot
            # use is refused now, instead of failing every later reply in this chat.
            for img in prepared[:1] if videos else prepared:  # a video's frames all have one size
                self.engine.image_cost(img)
        new = cid is None
        if cid is None:
            cid = h.create(system=system)
        try:
            h.append(cid, StoredMessage("user", text, [h.save_image(i) for i in prepared], frames=times))
        except AppError:
            if new:
                h.delete(cid)
            raise
        for img in prepared:
            self._remember(img)
        self._asked[cid] = time.monotonic()
        return cid

    def answering(self, cid: str) -> bool:
        """Whether a reply in this conversation is streaming, or its question was just saved and waits for one."""
        asked = self._asked.get(cid)
        return cid in self._running.values() or (asked is not None and time.monotonic() - asked < ASK_GRACE_S)

    def _check_idle(self, cid: str) -> None:
        # A second question saved while the first is answered would take the first one's answer.
        if self.answering(cid):
            raise ReplyInProgress(BUSY)

    def _prepared(self, item: PreparedImage | str | Path) -> PreparedImage:
        """An attached file as a clean image; decoded once while it is attached (the input box asks often)."""
        if isinstance(item, PreparedImage):
            return item
        path = Path(item)
        try:
            st = path.stat()
            key = (str(path), st.st_mtime_ns, st.st_size)
        except OSError:
            return prepare_image(path, name=path.name)  # says what is wrong with it
        if key not in self._attached:
            if len(self._attached) >= 64:  # several tabs share it: keep it small
                self._attached.clear()
            self._attached[key] = prepare_image(path, name=path.name)
        return self._attached[key]

    def _remember(self, img: PreparedImage) -> None:
        # The engine gets the images it was just given from memory, not read back from the disk.
        self._images.pop(img.sha256, None)
        self._images[img.sha256] = img
        while sum(len(i.png) for i in self._images.values()) > IMAGE_MEMORY and len(self._images) > 1:
            self._images.pop(next(iter(self._images)))

    def check_image_count(self, n: int) -> None:
        """Refuse more images in one message than the loaded model takes."""
        limit = getattr(self.engine.model, "max_images", None)
        if limit is not None and n > limit:
            name = self.loaded.name if self.loaded else "This model"
            raise TooManyImages(f"{name} accepts at most {limit} image{'s' if limit != 1 else ''} per message; "
                                f"this one has {n}. Send them in separate messages.")

    def conversation(self, cid: str, stored: StoredConversation | None = None) -> Conversation:
        """A saved conversation (the branch on screen) as the engine takes it, images loaded from the store."""
        h = self._history()
        stored = stored or h.get(cid)
        turns = [Turn("user" if m.role == "user" else "assistant", m.text,
                      [self._images.get(s) or h.load_image(s) for s in m.images], frame_labels(m.frames))
                 for m in stored.messages]
        return Conversation(system=stored.system, turns=turns)

    def reply(self, cid: str) -> Reply:
        """Answer the conversation's last question: a Reply whose text is saved when it ends (a stopped one too)."""
        try:
            return self._reply(cid)
        except BaseException:
            self._asked.pop(cid, None)
            raise

    def _reply(self, cid: str) -> Reply:
        self._history()
        if self.loaded is None:
            raise NoModelLoaded(NO_MODEL)
        stored = self._history().get(cid)
        conv = self.conversation(cid, stored)
        if not conv.turns or conv.turns[-1].role != "user":
            raise AppError("There is no question to answer; type one first.")
        question = stored.messages[-1].id
        notice = ""
        size = getattr(self.engine.model, "n_ctx", 0)
        if size:
            reserve = min(self.params.max_tokens, size // 4)
            conv, dropped = fit_conversation(conv, self.engine.count_tokens, size - reserve)
            if dropped:
                notice = (f"This conversation no longer fits the model's context ({size} tokens), so the "
                          f"oldest {dropped} message{'s' if dropped != 1 else ''} were left out of this "
                          "reply. They are still saved here.")
        inner = self.engine.stream_reply(conv, self.params, session=cid)
        return inner.through(self._saving(cid, inner, question), notice)  # cancelling it ends the engine's reply

    def stop(self, cid: str | None = None) -> int:
        """End the replies asked for through these services (the UI's), not those of API clients: those of
        conversation cid (a page's own), or all of them; return how many were asked to end."""
        mine = [r for r, c in list(self._running.items()) if cid is None or c == cid]
        for reply in mine:
            reply.cancel()
        return len(mine)

    def _saving(self, cid: str, inner: Reply, question: int | None) -> Iterator[str]:
        from app.history import StoredMessage

        failed = False
        self._running[inner] = cid
        try:
            yield from inner
        except AppError:
            failed = True
            raise
        finally:
            self._running.pop(inner, None)
            self._asked.pop(cid, None)
            # Saved even when stopped or when the browser went away: only the unfinished tokens are lost.
            if not failed or inner.text:
                stats = {k: v for k, v in asdict(inner.stats).items() if k != "token_ids"}
                # Under the question it answers, whatever the page shows meanwhile.
                self._history().append(cid, StoredMessage("assistant", inner.text, stats=stats,
                                                          model=self.loaded.name if self.loaded else None),
                                       parent=question)

    def regenerate(self, cid: str) -> Reply:
        """A new version of the last reply; the old one stays as another version of it."""
        h = self._history()
        self._check_idle(cid)
        stored = h.get(cid)
        if len(stored.messages) > 1 and stored.messages[-1].role == "assistant":
            h.set_head(cid, stored.messages[-2].id)
        return self.reply(cid)

    def edit(self, cid: str, index: int, text: str) -> Reply:
        """A new version of question number index (same images) in place of it and what followed, answered
        again; the old version and its answers stay as another branch."""
        from app.history import StoredMessage

        h = self._history()
        self._check_idle(cid)
        stored = h.get(cid)
        if not 0 <= index < len(stored.messages) or stored.messages[index].role != "user":
            raise AppError("Only your own questions can be edited.")
        old = stored.messages[index]
        parent = stored.messages[index - 1].id if index else None
        h.append(cid, StoredMessage("user", text, list(old.images), frames=list(old.frames)), parent=parent)
        return self.reply(cid)

    def switch_version(self, cid: str, message_id: int, step: int) -> None:
        """Show the previous (step -1) or next (+1) version of a message and the newest branch under it."""
        self._check_idle(cid)
        self._history().switch_version(cid, message_id, step)

    def usage(self, cid: str, stored: StoredConversation | None = None) -> Usage | None:
        """Context use after the conversation's last reply, or None before any."""
        stored = stored or self._history().get(cid)
        images = sum(len(m.images) for m in stored.messages)
        for m in reversed(stored.messages):
            if m.role == "assistant" and m.stats:
                used = int(m.stats.get("prompt_tokens", 0)) + int(m.stats.get("completion_tokens", 0))
                return Usage(used, int(m.stats.get("context_size", 0)), images)
        return None


def frame_labels(times: Sequence[float]) -> list[str]:
    """What the prompt says before each frame of a video: its time, so the model can tell when things happen."""
    return [f"Frame at {stamp(t)}:" for t in times]


def _split_videos(items: Sequence[PreparedImage | str | Path]) -> tuple[list[PreparedImage | str | Path], list[Path]]:
    """A message's attachments as (images, video files), by file name."""
    images: list[PreparedImage | str | Path] = []
    videos: list[Path] = []
    for item in items:
        if isinstance(item, (str, Path)) and is_video(item):
            videos.append(Path(item))
        else:
            images.append(item)
    return images, videos


def build_services(models_dir: Path | None = None, engine: Engine | None = None,
                   with_history: bool = False, worker: bool = False) -> Services:
    """Services backed by the real llama.cpp engine unless one is given: in a child process when worker."""
    if engine is None and worker:
        from app.worker import WorkerEngine

        engine = WorkerEngine(start=False)
        engine.start_soon()
    if engine is None:
        from app.engine import LlamaCppEngine

        engine = LlamaCppEngine()  # type: ignore[assignment]  # its stream_reply/model match Engine
    assert engine is not None
    from app import config

    services = Services(engine=engine, store=ModelStore(models_dir, demo_dir=config.demo_dir()),
                        downloads=DownloadManager(models_dir))
    if with_history:
        from app.history import History
        from app.settings import load_settings

        services.history = History()
        services.settings = load_settings()
        services.params = services.settings.params()
        services.load_options = services.settings.load_options()
        from app.remote import RemoteEngine

        for url, api_key in services.settings.servers:  # asked for their models when the page lists them
            engine = RemoteEngine(url, api_key or None)
            services.remotes[engine.root] = engine
    return services
