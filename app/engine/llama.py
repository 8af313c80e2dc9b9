"""The llama.cpp engine: load one LM + mmproj pair, evaluate conversations through libmtmd, stream replies.

It evaluates the prompt itself rather than through llama-cpp-python's chat handlers' __call__: those
clear the KV cache on every call, cannot report image-encode time, and cannot be stopped during
prefill. The handler objects are still used for what they are good at: creating the mtmd context and
(for the generic MTMD handler) reading the GGUF's own template.

What is in the KV cache is tracked as a list of units (text token ids, or one ImageUnit per image
chunk keyed by the image's SHA-256), so a follow-up turn only evaluates what changed.
"""


from __future__ import annotations

import ctypes
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.chat import Conversation, GenParams, Reply, ReplyStats
from app.engine.caches import EMBED_CACHE_BYTES, SESSION_CACHE_BYTES, EmbeddingCache, KVCache
from app.engine.logsink import _SINK, _LogSink, route_logs
from app.engine.mtmd import ImageUnit, MtmdPrompt, Unit, cells
from app.engine.sampling import end_tokens, sample
from app.errors import (
    ContextTooLong,
    ModelLoadFailed,
    NoModelLoaded,
    TooManyImages,
    UnsupportedImage,
    printable,
)
from app.ggufinfo import LMSummary, MMProjSummary, PairInfo, check_pair
from app.images import plain_image
from app.llamalib import extra_buffers_allowed, model_params_guard, system_info
from app.machine import auto_gpu_layers, free_gpu_memory, physical_cores
from app.prompts import CHAT_HANDLERS, MAX_IMAGES, RENDERERS, compile_template, render_template

logger = logging.getLogger(__name__)

_IMAGE_URL = "iris-image://{}"


def select_chat_format(lm: LMSummary, mm: MMProjSummary) -> str:
    """Pick the chat format from the files' own metadata (projector type, LM architecture, template)."""
    ptype, arch, name = mm.projector_type, lm.architecture, lm.name.lower()
    if ptype == "resampler":
        return "minicpm-v-2.6"
    if ptype in ("qwen2.5vl_merger", "qwen25vl"):
        return "qwen2.5-vl"
    if ptype in ("mlp", "mlp_norm", "ldp", "ldpv2"):
        if arch == "phi2":
            return "moondream"
        if arch == "qwen2":
            return "nanollava"
        if arch == "llama" and "llama-3" in name.replace(" ", "-"):
            return "llama-3-vision-alpha"
        if arch == "llama":
            if mm.has_pinpoints:
                return "llava-1-6-mistral" if "mistral" in name else "llava-1-6"
            return "llava-1-5"
    if lm.chat_template:
        return "mtmd"
    raise ModelLoadFailed(
        f"Iris does not know how to talk to this model: its projector type is '{printable(ptype)}', its "
        f"architecture '{printable(arch)}', and the LM carries no chat template. Choose a chat format "
        f"explicitly (one of: {', '.join(CHAT_HANDLERS)})."
    )


@dataclass
class LoadedModel:
    """What is resident now and where it runs."""

    lm_path: Path
    mmproj_path: Path
    chat_format: str
    n_ctx: int
    n_gpu_layers: int
    n_threads: int
    device_lm: str
    device_mmproj: str
    max_images: int
    image_tokens: int
    pair: PairInfo
    backend: str = "cpu"          # what this llama-cpp-python was built for: cpu, cuda, metal
    extra_buffers: bool = True    # False: loaded with the AMX guard's plain kernels
    weight_buffers: tuple[str, ...] = ()  # where llama.cpp put the weights: CPU_Mapped, CPU_REPACK, AMX, CUDA0 ...
    mmap: bool = True             # False: the LM was read into llama.cpp's buffers (map_weights)
    load_s: float = 0.0  # from the call into llama.cpp to the image cost measured: what the user waits for


def extra_buffers() -> bool:
    """Load with ggml's extra buffer types (weight repacking)? Off where the AMX kernels would run.

    IRIS_EXTRA_BUFFERS=0/1 forces the choice (benchmarks of both paths).
    """
    forced = os.environ.get("IRIS_EXTRA_BUFFERS", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return extra_buffers_allowed()


def map_weights(extra: bool, ngl: int, n_layer: int) -> bool:
    """Load the LM with mmap? Not when layers run on the CPU with repacking on (IRIS_MMAP=0/1 forces it).

    llama.cpp copies repacked weights out of the mapped file into its own buffers but keeps the
    mapping, so the file stays resident beside the copy: 2x the weights in RSS. Without mmap it
    reads each tensor once into the buffer it runs from. Fully offloaded models keep mmap (llama.cpp
    unmaps what it uploaded, and Metal runs from the mapping without a copy).
    """
    forced = os.environ.get("IRIS_MMAP", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    all_on_gpu = ngl < 0 or ngl >= n_layer
    return not (extra and not all_on_gpu)


def flash_attention() -> bool:
    """Load with flash attention (for the LM, and then for the vision encoder too)? IRIS_FLASH_ATTN=1 turns it
    on (benchmarks of both paths); off by default, as llama-cpp-python has it."""
    return os.environ.get("IRIS_FLASH_ATTN", "").strip() == "1"


class LlamaCppEngine:
    """One resident LLaVA-style model, streaming replies; safe to stop from another thread."""

    def __init__(self) -> None:
        # A plain Lock, not an RLock: Gradio resumes a streaming generator on different worker
        # threads, and an RLock may only be released by the thread that took it.
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ending: _Either = _Either(self._stop)
        self._llama: Any = None
        self._handler: Any = None
        self._mctx: Any = None
        self.kv = KVCache(SESSION_CACHE_BYTES)
        self.model: LoadedModel | None = None
        self.reuse_kv = True
        # Bounded caches: image embeddings (skip the encoder for an image seen before) and the KV state
        # of conversations switched away from. Sizes can be changed before or after load.
        self.embeddings = EmbeddingCache(EMBED_CACHE_BYTES)
        self.sessions = self.kv.snapshots
        self._mmproj_fp = ""
        self._eog: list[int] = []
        self._sink = _SINK
        # The last prompt count_tokens split, kept open for the prefill of the same turn: each turn
        # is tokenized (and its images decoded and preprocessed) once, not once to fit and once to run.
        self._counted: tuple[tuple[str, tuple[str, ...]], MtmdPrompt] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def _import(self) -> Any:
        # ggml's abort handler otherwise starts gdb for a backtrace and waits (a minute per abort).
        os.environ.setdefault("GGML_NO_BACKTRACE", "1")
        import llama_cpp
        import llama_cpp.llama_chat_format  # noqa: F401

        self._route_logs()
        return llama_cpp

    def _route_logs(self) -> None:
        """Send llama.cpp's and libmtmd's chatter to our log; loading a model resets mtmd's."""
        route_logs()

    @staticmethod
    def backend() -> str:
        """Which accelerator this build of llama-cpp-python offers: cuda, metal, other-gpu or cpu."""
        import llama_cpp

        if not llama_cpp.llama_supports_gpu_offload():
            return "cpu"
        info = system_info().upper()
        if "CUDA" in info:
            return "cuda"
        if "METAL" in info or sys.platform == "darwin":
            return "metal"
        return "other-gpu"

    def load(self, lm_path: str | Path, mmproj_path: str | Path, *, chat_format: str | None = None,
             n_ctx: int | None = None, n_gpu_layers: int | None = None,
             n_threads: int | None = None, max_images: int | None = None) -> LoadedModel:
        """Check the pair, close whatever is loaded, load this one; raise AppError on any problem."""
        pair = check_pair(lm_path, mmproj_path)
        fmt = chat_format or select_chat_format(pair.lm, pair.mmproj)
        if fmt not in CHAT_HANDLERS:
            raise ModelLoadFailed(f"Unknown chat format '{fmt}'. Use one of: {', '.join(CHAT_HANDLERS)}.")
        if fmt == "mtmd" and not pair.lm.chat_template:
            raise ModelLoadFailed(
                f"{pair.lm_info.path.name} carries no chat template, which the generic 'mtmd' format "
                "needs. Pick the model's dedicated chat format or a GGUF that includes its template."
            )
        with self._lock:
            self._unload_locked()
            llama_cpp = self._import()
            from llama_cpp import llama_chat_format as lcf

            backend = self.backend()
            size = pair.lm_info.file_size + pair.mmproj_info.file_size
            ngl = n_gpu_layers if n_gpu_layers is not None else auto_gpu_layers(
                backend != "cpu", backend, size, pair.lm.n_layer,
                free_gpu_memory() if backend == "cuda" else None)
            threads = n_threads or physical_cores()
            # Past its training length a model's answers fall apart, so a larger request is capped.
            ctx = min(n_ctx or 4096, pair.lm.n_ctx_train or 4096)
            self._sink.lines.clear()
            extra = extra_buffers()
            mmap = map_weights(extra, ngl, pair.lm.n_layer)
            t0 = time.perf_counter()
            try:
                with model_params_guard(extra):
                    llama = llama_cpp.Llama(
                        model_path=str(lm_path), n_ctx=ctx, n_batch=min(ctx, 512), n_ubatch=min(ctx, 512),
                        n_gpu_layers=ngl, n_threads=threads, n_threads_batch=threads,
                        use_mmap=mmap, verbose=False, logits_all=False, flash_attn=flash_attention(),
                    )
            except (ValueError, RuntimeError) as exc:
                raise ModelLoadFailed(
                    f"llama.cpp could not load {Path(lm_path).name} ({exc}). The file may be from a "
                    "newer llama.cpp than this Iris uses, or damaged; try another quantization or "
                    "download it again."
                ) from None
            try:
                cls = getattr(lcf, CHAT_HANDLERS[fmt])
                if fmt == "mtmd":
                    handler = cls(clip_model_path=str(mmproj_path), verbose=False,
                                  use_gpu=backend != "cpu")
                else:
                    handler = cls(clip_model_path=str(mmproj_path), verbose=False)
                handler._init_mtmd_context(llama)
                self._route_logs()
            except (ValueError, RuntimeError) as exc:
                llama.close()
                raise ModelLoadFailed(
                    f"llama.cpp could not load the vision projector {Path(mmproj_path).name} with "
                    f"{Path(lm_path).name} ({exc}). Pick the mmproj from the same repository as the LM."
                ) from None
            self._llama, self._handler, self._mctx = llama, handler, handler.mtmd_ctx
            self.kv.forget()  # snapshots belong to the model that made them
            st = Path(mmproj_path).stat()
            # Embeddings depend only on the projector file: the same file keeps its cache across loads.
            self._mmproj_fp = f"{Path(mmproj_path).resolve()}:{st.st_size}:{st.st_mtime_ns}"
            self._eog = end_tokens(llama)  # a 32k-vocabulary pass: once per load, not once per reply
            dev_lm, dev_mm = self._devices(backend, ngl, pair.lm.n_layer)
            lines = list(self._sink.lines)
            self.model = LoadedModel(
                lm_path=Path(lm_path), mmproj_path=Path(mmproj_path), chat_format=fmt, n_ctx=ctx,
                n_gpu_layers=ngl, n_threads=threads, device_lm=dev_lm, device_mmproj=dev_mm,
                max_images=max_images or MAX_IMAGES[fmt],
                image_tokens=0, pair=pair,
                backend=backend, extra_buffers=extra, mmap=mmap,
                weight_buffers=tuple(dict.fromkeys(m.group(1) for m in map(_LogSink.BUFFER_RE.search, lines)
                                                   if m)),
            )
            # What an image costs, measured by llama.cpp's own preprocessing (tiles, slices, merges and
            # wrappers differ per family): a picture of the encoder's native size.
            side = pair.mmproj.image_size
            self.model.image_tokens = self._image_cost_locked(plain_image(side, side))
            self.model.load_s = time.perf_counter() - t0
            logger.info("loaded %s + %s as %s in %.2f s (LM on %s, mmproj on %s; %s backend, extra buffer "
                        "types %s, weights in %s, mmap %s)", Path(lm_path).name, Path(mmproj_path).name, fmt,
                        self.model.load_s, dev_lm, dev_mm, backend, "on" if extra else "off (AMX guard)",
                        ", ".join(self.model.weight_buffers) or "?", "on" if mmap else "off")
            return self.model

    def _devices(self, backend: str, ngl: int, n_layer: int) -> tuple[str, str]:
        lines = self._sink.lines
        if backend == "cpu":
            return "CPU", "CPU"
        gpu_name = None
        clip_dev = None
        for line in lines:
            m = _LogSink.DEVICE_RE.search(line)
            if not m:
                continue
            gpu_name = gpu_name or m.group(2) or m.group(3) or m.group(5) or m.group(6)
            clip_dev = m.group(4) or clip_dev
        gpu = f"{backend.upper()} ({gpu_name.strip()})" if gpu_name else backend.upper()
        layers = n_layer if ngl < 0 else min(ngl, n_layer)
        lm = f"{gpu}, {layers}/{n_layer} layers" if layers < n_layer else f"{gpu}, all {n_layer} layers"
        if layers == 0:
            lm = "CPU"
        mm = clip_dev or gpu
        if clip_dev and clip_dev.upper().startswith("CPU"):
            mm = "CPU"
        return lm, mm

    def unload(self) -> None:
        """Free the resident model, if any."""
        self._stop.set()  # a reply in progress ends within a token and frees the lock
        with self._lock:
            self._unload_locked()

    def _unload_locked(self) -> None:
        self._drop_counted()
        if self._llama is not None:
            try:
                self._llama.close()  # also frees the mtmd context through its exit stack
            finally:
                self._llama = self._handler = self._mctx = None
                self.model = None
                self.kv.forget()

    close = unload

    def stop(self) -> None:
        """Ask the reply in progress to end; returns at once."""
        self._stop.set()

    # -- prompts -----------------------------------------------------------------------------

    def render(self, conv: Conversation) -> tuple[str, list[Any]]:
        """The prompt text with media markers, and the images in the order they appear."""
        if self.model is None:
            raise NoModelLoaded("No model is loaded. Pick a model first.")
        from llama_cpp import mtmd_cpp

        marker = mtmd_cpp.mtmd_default_marker().decode()
        images = [img for t in conv.turns for img in t.images]
        fmt = self.model.chat_format
        if fmt in RENDERERS:
            return RENDERERS[fmt](conv, marker), images
        llama, h = self._llama, self._handler
        if fmt == "mtmd":
            try:
                # BOS comes from mtmd's tokenizer (add_special), so a template's {{ bos_token }} stays empty.
                text = render_template(h._get_chat_template(llama), conv, marker,
                                       eos=h._decode_token_piece(llama.detokenize([llama.token_eos()])))
            except ValueError as exc:
                raise ModelLoadFailed(f"{self.model.lm_path.name}: {exc}. Choose the model's dedicated chat "
                                      "format instead of 'mtmd'.") from None
            return text, images
        # The remaining handler formats (Llama-3-vision-alpha) render with llama-cpp-python's template.
        messages = _openai_messages(conv)
        if not conv.system and h.DEFAULT_SYSTEM_MESSAGE:
            messages = [{"role": "system", "content": h.DEFAULT_SYSTEM_MESSAGE}] + messages
        if "system" not in h.CHAT_FORMAT:
            messages = _fold_system(messages)
        # Jinja reserves `self` (the template's own blocks): render(self=...) is a TypeError, so
        # the handler's templates that read self.DEFAULT_SYSTEM_MESSAGE get it as `handler`.
        source = re.sub(r"\bself\.", "handler.", h.CHAT_FORMAT)
        tmpl = compile_template(source)
        text = tmpl.render(messages=messages, add_generation_prompt=True, handler=h,
                           eos_token=llama.detokenize([llama.token_eos()]).decode(errors="ignore"))
        for i in range(len(images)):
            text = text.replace(_IMAGE_URL.format(i), marker)
        return text, images

    # -- chat --------------------------------------------------------------------------------

    def stream_reply(self, conv: Conversation, params: GenParams | None = None,
                     session: str | None = None) -> Reply:
        """The assistant's reply to conv: iterate it for text deltas; its stats are final when it ends.

        session names the conversation (e.g. its id): when it changes, the KV cache of the previous one
        is kept aside (within sessions.max_bytes) and the named one's is restored if it was kept.

        Raises (on the first iteration):
            NoModelLoaded, TooManyImages, ContextTooLong, UnsupportedImage: the request cannot run;
            the engine stays usable.
        """
        stats = ReplyStats()
        cancel = threading.Event()
        return Reply(self._stream(conv, params or GenParams(), session, stats, cancel), stats, cancel=cancel)

    def _stream(self, conv: Conversation, params: GenParams, session: str | None,
                stats: ReplyStats, cancel: threading.Event) -> Iterator[str]:
        with self._lock:
            if self.model is None:
                raise NoModelLoaded("No model is loaded. Pick a model first.")
            self._stop.clear()
            # This reply ends on stop() (every reply) or on its own Reply.cancel() (this one only).
            self._ending = _Either(self._stop, cancel)
            self._check_images(conv)
            stats.device_lm, stats.device_mmproj = self.model.device_lm, self.model.device_mmproj
            stats.context_size = self.model.n_ctx
            t_start = time.perf_counter()
            if session is not None and session != self.kv.conversation:
                self.kv.switch(self._llama, session)
            prompt = self._prefill(conv, stats)
            if prompt is None:  # stopped during prefill
                stats.finish_reason = "stopped"
                return
            yield from self._generate(prompt, params, stats, t_start)

    def prompt_units(self, conv: Conversation, text: str | None = None) -> list[Unit]:
        """The prompt as llama.cpp will see it: token ids, and an ImageUnit (id, n_tokens, n_pos) per image chunk.

        text, when given, replaces the rendered prompt (it must hold one media marker per image).
        """
        with self._lock:
            if self.model is None:
                raise NoModelLoaded("No model is loaded. Pick a model first.")
            rendered, images = self.render(conv)
            with MtmdPrompt(self._mctx, rendered if text is None else text, images) as prompt:
                return prompt.units

    def image_cost(self, image: Any) -> int:
        """Context cells one image takes with the loaded model (all its tiles or slices), without encoding it."""
        with self._lock:
            if self.model is None:
                raise NoModelLoaded("No model is loaded. Pick a model first.")
            return self._image_cost_locked(image)

    def _image_cost_locked(self, image: Any) -> int:
        from llama_cpp import mtmd_cpp as M

        with MtmdPrompt(self._mctx, M.mtmd_default_marker().decode(), [image]) as prompt:
            return sum(u.n_tokens for u in prompt.units if isinstance(u, ImageUnit))

    def count_tokens(self, conv: Conversation) -> int:
        """Context cells the conversation's prompt takes (text tokens + image tokens); nothing is evaluated.

        The split prompt is kept for the next reply: when its prompt is the same, it is not tokenized again.
        """
        with self._lock:
            if self.model is None:
                raise NoModelLoaded("No model is loaded. Pick a model first.")
            text, images = self.render(conv)
            key = (text, tuple(i.sha256 for i in images))
            if self._counted is None or self._counted[0] != key:
                self._drop_counted()
                self._counted = (key, MtmdPrompt(self._mctx, text, images))
            return cells(self._counted[1].units)

    def _split(self, text: str, images: list[Any]) -> MtmdPrompt:
        """The prompt split by mtmd: the one count_tokens kept for this text and these images, or a new one."""
        counted, self._counted = self._counted, None
        if counted is not None:
            if counted[0] == (text, tuple(i.sha256 for i in images)):
                return counted[1]
            counted[1].close()
        return MtmdPrompt(self._mctx, text, images)

    def _drop_counted(self) -> None:
        if self._counted is not None:
            self._counted[1].close()
            self._counted = None

    def next_token_logits(self, conv: Conversation) -> list[float]:
        """The LM's logits for the token after the prompt (for parity checks against a reference)."""
        with self._lock:
            if self.model is None:
                raise NoModelLoaded("No model is loaded. Pick a model first.")
            import llama_cpp as L

            stats = ReplyStats()
            self._prefill(conv, stats)
            llama = self._llama
            # llama-cpp-python keeps no scores unless logits_all; read the context's last output row.
            ptr = L.llama_get_logits_ith(llama._ctx.ctx, -1)
            return [float(ptr[i]) for i in range(llama.n_vocab())]

    def _check_images(self, conv: Conversation) -> None:
        assert self.model is not None
        for turn in conv.turns:
            # A video's frames (labelled with their times) are limited by the context, not by max_images.
            if turn.role == "user" and not turn.labels and len(turn.images) > self.model.max_images:
                raise TooManyImages(
                    f"This model accepts at most {self.model.max_images} image"
                    f"{'s' if self.model.max_images != 1 else ''} per message; this message has "
                    f"{len(turn.images)}. Send them in separate messages."
                )

    def _prefill(self, conv: Conversation, stats: ReplyStats) -> list[int] | None:
        """Evaluate what the KV cache lacks; return the prompt token list for sampling."""
        llama, kv = self._llama, self.kv
        text, images = self.render(conv)
        with self._split(text, images) as prompt:
            new, chunk_at = prompt.units, prompt.chunk_at
            n_cells = cells(new)
            stats.prompt_tokens = n_cells
            stats.image_tokens = sum(u.n_tokens for u in new if isinstance(u, ImageUnit))
            if n_cells + 8 > llama.n_ctx():
                raise ContextTooLong(
                    f"This conversation needs {n_cells} tokens ({stats.image_tokens} of them for images) "
                    f"but the model's context holds {llama.n_ctx()}. Start a new conversation, remove "
                    "images, or raise the context size in Settings."
                )
            i = kv.keep_prefix(llama, new, self.reuse_kv)
            try:
                while i < len(new):
                    if self._ending.is_set():
                        return None
                    unit = new[i]
                    if isinstance(unit, ImageUnit):
                        self._eval_image(chunk_at[i], unit, stats)
                        kv.units.append(unit)
                        i += 1
                        continue
                    j = i
                    while j < len(new) and not isinstance(new[j], ImageUnit) and j - i < llama.n_batch:
                        j += 1
                    try:
                        llama.eval(new[i:j])
                    except RuntimeError as exc:  # llama_decode failed: a broken vocabulary or batch
                        name = self.model.lm_path.name if self.model else "the model"
                        raise ModelLoadFailed(
                            f"llama.cpp could not evaluate this prompt with {name} ({exc}). "
                            "The model file may be damaged; download it again."
                        ) from None
                    stats.prompt_tokens_evaluated += j - i
                    kv.units.extend(new[i:j])
                    i = j
            except BaseException:
                kv.roll_back(llama)
                raise
            return llama.input_ids[: llama.n_tokens].tolist()

    def _eval_image(self, chunk: Any, unit: ImageUnit, stats: ReplyStats) -> None:
        import llama_cpp as L
        import numpy as np
        from llama_cpp import mtmd_cpp as M

        llama = self._llama
        key = (unit.id, self._mmproj_fp)
        cached = self.embeddings.get(key) if self.reuse_kv else None
        if cached is not None:
            stats.images_cached += 1
            embd = cached.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        else:
            t0 = time.perf_counter()
            rc = M.mtmd_encode_chunk(self._mctx, chunk)
            if rc != 0:
                raise UnsupportedImage(f"The vision encoder failed on an image (code {rc}).")
            stats.image_encode_s += time.perf_counter() - t0
            stats.images_encoded += 1
            embd = M.mtmd_get_output_embd(self._mctx)
            n = M.mtmd_input_chunk_get_n_tokens(chunk) * L.llama_model_n_embd_inp(llama._model.model)
            # Kept as float32: the same numbers as a fresh encode, so answers do not change.
            arr = np.ctypeslib.as_array(embd, shape=(n,)).copy()
            self.embeddings.put(key, arr)
            embd = arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        p0 = llama.n_tokens
        out = L.llama_pos(p0)
        rc = M.mtmd_helper_decode_image_chunk(self._mctx, llama._ctx.ctx, chunk, embd, p0, 0,
                                              llama.n_batch, ctypes.byref(out),
                                              M.mtmd_helper_post_decode_callback(), None)
        if rc != 0:
            raise ContextTooLong(f"The image tokens could not be evaluated (code {rc}).")
        # Image slots hold no real token ids; a fixed value keeps input_ids deterministic.
        llama.input_ids[p0:out.value] = 0
        llama.n_tokens = out.value
        stats.prompt_tokens_evaluated += unit.n_tokens

    def _generate(self, prompt: list[int], params: GenParams, stats: ReplyStats,
                  t_start: float) -> Iterator[str]:
        llama = self._llama
        base = self.kv.pos()
        try:
            yield from sample(llama, prompt, params, stats, t_start, self._ending,
                              [] if params.ignore_eos else self._stop_strings() + list(params.stop), self._eog)
        finally:
            # What generation evaluated is in the cache too; record it so the next turn reuses it.
            self.kv.units.extend(llama.input_ids[base:llama.n_tokens].tolist())

    def _stop_strings(self) -> list[str]:
        assert self.model is not None
        fmt = self.model.chat_format
        if fmt in ("llava-1-5", "llava-1-6"):
            return ["</s>", "USER:"]
        if fmt == "llava-1-6-mistral":
            return ["</s>", "[INST]"]
        if fmt == "moondream":
            return ["<|endoftext|>", "\n\nQuestion:"]
        return []


class _Either:
    """Set when any of its events is set (the engine's stop, a reply's own cancel)."""

    def __init__(self, *events: threading.Event):
        self._events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self._events)


def _fold_system(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For templates with no system role (Moondream, Llama-3-Vision-Alpha): the system text leads the first question."""
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    for m in rest:
        if system and m["role"] == "user":
            m["content"] = [dict(p) for p in m["content"]]
            text = next(p for p in m["content"] if p["type"] == "text")
            text["text"] = f"{system}\n\n{text['text']}"
            break
    return rest


def _openai_messages(conv: Conversation) -> list[dict[str, Any]]:
    """OpenAI-style messages; images become placeholder URLs replaced by media markers later."""
    msgs: list[dict[str, Any]] = []
    if conv.system:
        msgs.append({"role": "system", "content": conv.system})
    n = 0
    for turn in conv.turns:
        if turn.role == "user":
            parts: list[dict[str, Any]] = []
            for label, _ in turn.labelled():
                if label:
                    parts.append({"type": "text", "text": label})
                parts.append({"type": "image_url", "image_url": {"url": _IMAGE_URL.format(n)}})
                n += 1
            parts.append({"type": "text", "text": turn.text})
            msgs.append({"role": "user", "content": parts})
        else:
            msgs.append({"role": "assistant", "content": turn.text})
    return msgs


__all__ = ["LlamaCppEngine", "LoadedModel", "select_chat_format", "extra_buffers"]
