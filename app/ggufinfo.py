"""Reads a GGUF file's header in pure Python and checks an LM + mmproj pair before llama.cpp sees it.

Several malformed files crash llama.cpp's process (segfault or abort) instead of raising, so every
check that protects the app from such a file lives here, in Python.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from app.errors import BadModelFile, ModelMismatch, printable
from app.ggufchecks import check_lm_deep, check_mmproj_deep

GGUF_MAGIC = b"GGUF"

# Value types in the GGUF key/value section.
T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
_SCALAR = {
    T_U8: "<B", T_I8: "<b", T_U16: "<H", T_I16: "<h", T_U32: "<I", T_I32: "<i",
    T_F32: "<f", T_BOOL: "<?", T_U64: "<Q", T_I64: "<q", T_F64: "<d",
}
# Arrays longer than this keep only their length (tokenizer vocabularies are 32k-260k strings).
_KEEP_ARRAY = 64

# ggml tensor types: (elements per block, bytes per block).
_GGML_BLOCKS = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210),
    15: (256, 292), 16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18),
    21: (256, 110), 22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4),
    27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66), 39: (32, 17),
}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's name, shape in ggml order (fastest dimension first), type and data offset."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int

    def nbytes(self) -> int | None:
        """Size of the tensor's data, or None for a type this reader does not know."""
        block = _GGML_BLOCKS.get(self.ggml_type)
        if block is None:
            return None
        count = 1
        for dim in self.shape:
            count *= dim
        return count // block[0] * block[1]


@dataclass
class GGUFInfo:
    """A GGUF file's metadata (key -> (type, value)) and tensor table."""

    path: Path
    version: int
    meta: dict[str, tuple[int, Any]] = field(default_factory=dict)
    tensors: dict[str, TensorInfo] = field(default_factory=dict)
    data_start: int = 0
    file_size: int = 0
    array_types: dict[str, int] = field(default_factory=dict)  # key -> element type of an array value
    tokens: list[str] | None = None  # the whole vocabulary, when the file has one

    def get(self, key: str, default: Any = None) -> Any:
        """A key's value, or default when absent."""
        entry = self.meta.get(key)
        return default if entry is None else entry[1]

    @property
    def architecture(self) -> str:
        return str(self.get("general.architecture", ""))


class _Reader:
    def __init__(self, fh: BinaryIO, name: str, size: int):
        self.fh, self.name, self.size = fh, name, size
        self.last_itype = -1
        self.keep_all = False  # set while reading the vocabulary: every string is kept

    def read(self, n: int) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            raise BadModelFile(
                f"{self.name} is truncated: its header ends early. The download was probably "
                "interrupted; download the file again."
            )
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.unpack("<Q")
        if n > self.size:
            raise BadModelFile(f"{self.name} is damaged: a header string claims {n} bytes.")
        return self.read(n).decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALAR:
            return self.unpack(_SCALAR[vtype])
        if vtype == T_STR:
            return self.string()
        if vtype == T_ARR:
            itype = self.unpack("<I")
            self.last_itype = itype
            n = self.unpack("<Q")
            if n > self.size:
                raise BadModelFile(f"{self.name} is damaged: an array claims {n} items.")
            if itype == T_ARR:
                raise BadModelFile(f"{self.name} is damaged: it holds an array of arrays, which GGUF does not allow.")
            if itype in _SCALAR and n > _KEEP_ARRAY:
                # Skip big numeric arrays without decoding them.
                self.fh.seek(struct.calcsize(_SCALAR[itype]) * n, 1)
                return ("array", itype, n)
            items = [self.value(itype) for _ in range(n)]
            return items if n <= _KEEP_ARRAY or self.keep_all else ("array", itype, n)
        raise BadModelFile(f"{self.name} is damaged: unknown metadata type {vtype}.")


def read_gguf(path: str | Path) -> GGUFInfo:
    """Parse a GGUF header; raises BadModelFile with a plain reason when the file is not usable."""
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise BadModelFile(f"{path} does not exist or is not a file. Check the path.")
    size = path.stat().st_size
    if size == 0:
        raise BadModelFile(f"{name} is empty (0 bytes). Download it again.")
    with path.open("rb") as fh:
        if fh.read(4) != GGUF_MAGIC:
            raise BadModelFile(
                f"{name} is not a GGUF model file. Iris needs the .gguf files of a model "
                "(an LM and its mmproj), as published in GGUF repositories on the Hugging Face Hub."
            )
        r = _Reader(fh, name, size)
        version = r.unpack("<I")
        if version not in (2, 3):
            raise BadModelFile(f"{name} uses GGUF version {version}; Iris reads versions 2 and 3.")
        n_tensors = r.unpack("<Q")
        n_kv = r.unpack("<Q")
        if n_tensors > 1_000_000 or n_kv > 1_000_000:
            raise BadModelFile(f"{name} is damaged: its header counts are implausible.")
        info = GGUFInfo(path=path, version=version, file_size=size)
        for _ in range(n_kv):
            key = r.string()
            vtype = r.unpack("<I")
            r.keep_all = key == "tokenizer.ggml.tokens"
            value = r.value(vtype)
            r.keep_all = False
            if vtype == T_ARR:
                info.array_types[key] = r.last_itype
                if key == "tokenizer.ggml.tokens" and isinstance(value, list):
                    info.tokens = value
                    value = ("array", r.last_itype, len(value))
            info.meta[key] = (vtype, value)
        for _ in range(n_tensors):
            tname = r.string()
            ndim = r.unpack("<I")
            if ndim > 8:
                raise BadModelFile(f"{name} is damaged: tensor {printable(tname)} has {ndim} dimensions.")
            shape = tuple(r.unpack("<Q") for _ in range(ndim))
            ttype = r.unpack("<I")
            offset = r.unpack("<Q")
            info.tensors[tname] = TensorInfo(tname, shape, ttype, offset)
        align = info.get("general.alignment", 32)
        if info.meta.get("general.alignment", (T_U32,))[0] != T_U32 or not isinstance(align, int) \
                or align <= 0 or align & (align - 1) or align > 1 << 20:
            # gguf.cpp reads it as a u32 power of two and refuses anything else.
            raise BadModelFile(f"{name} is damaged: general.alignment is not a power of two. "
                               "Download the file again.")
        pos = fh.tell()
        info.data_start = (pos + align - 1) // align * align
    _check_complete(info)
    return info


def _check_complete(info: GGUFInfo) -> None:
    end = info.data_start
    for t in info.tensors.values():
        nbytes = t.nbytes()
        end = max(end, info.data_start + t.offset + (nbytes or 0))
    if end > info.file_size:
        raise BadModelFile(
            f"{info.path.name} is truncated: it has {info.file_size:,} bytes but its tensors need "
            f"{end:,}. The download was probably interrupted; download the file again."
        )


# --- what each side of a pair must hold ---------------------------------------------------------

def is_mmproj(info: GGUFInfo) -> bool:
    """True for a vision projector file (clip.* keys), False for a language model."""
    return info.architecture == "clip" or "clip.projector_type" in info.meta or (
        "clip.has_vision_encoder" in info.meta
    )


def _need_keys(info: GGUFInfo, keys: dict[str, tuple[int, ...]], what: str) -> None:
    missing = [k for k in keys if k not in info.meta]
    if missing:
        raise BadModelFile(
            f"{info.path.name} is not a complete {what}: it lacks {', '.join(missing)}. "
            "It may come from an old or broken converter; download the file again from the "
            "model's repository."
        )
    for key, types in keys.items():
        vtype = info.meta[key][0]
        if vtype not in types:
            # llama.cpp aborts the process on a key of the wrong type.
            raise BadModelFile(
                f"{info.path.name} is damaged: key {key} has the wrong type. "
                "Download the file again from the model's repository."
            )


def _need_tensors(info: GGUFInfo, names: list[str], what: str) -> None:
    missing = [n for n in names if n not in info.tensors]
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise BadModelFile(
            f"{info.path.name} is not a complete {what}: it lacks the tensors {shown}. "
            "Download the file again from the model's repository."
        )


_U32 = (T_U32,)
_F32 = (T_F32,)


@dataclass(frozen=True)
class LMSummary:
    """What Iris needs to know about a language model file."""

    architecture: str
    n_embd: int
    n_layer: int
    n_ctx_train: int
    chat_template: str | None
    name: str


@dataclass(frozen=True)
class MMProjSummary:
    """What Iris needs to know about a vision projector file."""

    projector_type: str
    out_width: int | None
    image_size: int
    patch_size: int
    has_pinpoints: bool
    name: str


def _check_template(info: GGUFInfo) -> None:
    """A chat template that does not parse would raise inside llama-cpp-python's constructor."""
    tmpl = info.get("tokenizer.chat_template")
    if not isinstance(tmpl, str):
        return
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:
        ImmutableSandboxedEnvironment(extensions=["jinja2.ext.loopcontrols"]).parse(tmpl)
    except (jinja2.TemplateError, RecursionError, ValueError) as exc:
        raise BadModelFile(
            f"{info.path.name} carries a chat template that does not parse ({printable(exc)}). Download the "
            "file again, or use a GGUF of this model from another repository."
        ) from None


def check_lm(info: GGUFInfo) -> LMSummary:
    """Validate a language-model file; raise BadModelFile with the reason."""
    if is_mmproj(info):
        raise BadModelFile(
            f"{info.path.name} is a vision projector (mmproj), not a language model. "
            "Pick the model's main .gguf file as the LM and this one as the mmproj."
        )
    arch = info.architecture
    if not arch:
        raise BadModelFile(f"{info.path.name} lacks general.architecture; it is not a usable model.")
    needed = {
        f"{arch}.context_length": _U32,
        f"{arch}.embedding_length": _U32,
        f"{arch}.block_count": _U32,
        f"{arch}.attention.head_count": _U32 + (T_ARR,),
        "tokenizer.ggml.model": (T_STR,),
        "tokenizer.ggml.tokens": (T_ARR,),
    }
    _need_keys(info, needed, "language model")
    if arch == "llama":
        _need_keys(info, {"llama.attention.layer_norm_rms_epsilon": _F32}, "language model")
    check_lm_deep(info, arch)
    _check_template(info)
    n_embd = int(info.get(f"{arch}.embedding_length"))
    n_layer = int(info.get(f"{arch}.block_count"))
    heads = info.get(f"{arch}.attention.head_count")
    if isinstance(heads, int) and arch == "llama":
        # llama.cpp loads such a file and then aborts in RoPE on the first token.
        head_dim = n_embd // heads if heads else 0
        if heads <= 0 or n_embd % heads or head_dim % 2:
            raise BadModelFile(
                f"{info.path.name} is malformed: {heads} attention heads do not split its width "
                f"{n_embd} into even-sized heads. Download the file again."
            )
    if arch == "llama":
        _need_tensors(info, ["token_embd.weight", "output_norm.weight"]
                      + [f"blk.{i}.attn_q.weight" for i in range(n_layer)], "language model")
    tmpl = info.get("tokenizer.chat_template")
    return LMSummary(
        architecture=arch,
        n_embd=n_embd,
        n_layer=n_layer,
        n_ctx_train=int(info.get(f"{arch}.context_length")),
        chat_template=tmpl if isinstance(tmpl, str) else None,
        name=str(info.get("general.name", info.path.stem)),
    )


# Projector types whose graphs read mm.0 and mm.2 (LLaVA-1.5/1.6 MLP and relatives).
_MLP_PROJECTORS = {"mlp", "mlp_norm"}
# Tensor and dimension (ggml ne order) that give the projector's output width, per projector type:
# clip_n_mmproj_embd in clip.cpp.
_OUT_TENSOR = {
    "mlp": ("mm.2.weight", 1), "mlp_norm": ("mm.2.weight", 1), "qwen2vl_merger": ("mm.2.weight", 1),
    "qwen2.5vl_merger": ("mm.2.weight", 1), "gemma3": ("mm.input_projection.weight", 0),
    "idefics3": ("mm.model.fc.weight", 1), "pixtral": ("mm.2.weight", 1),
    "internvl": ("mm.model.mlp.3.weight", 1), "resampler": ("resampler.proj.weight", 0),
}
# Projectors whose encoders place patches by rotary positions (M-RoPE), with no learned position table.
_ROPE_ENCODERS = {"qwen2vl_merger", "qwen2.5vl_merger", "qwen3vl_merger", "pixtral"}


def check_mmproj(info: GGUFInfo) -> MMProjSummary:
    """Validate a vision projector file; raise BadModelFile with the reason."""
    if not is_mmproj(info):
        raise BadModelFile(
            f"{info.path.name} is a language model, not a vision projector (mmproj). "
            "Pick the file whose name contains 'mmproj' from the same repository."
        )
    _need_keys(info, {"clip.has_vision_encoder": (T_BOOL,), "clip.projector_type": (T_STR,)},
               "vision projector (mmproj)")
    if not info.get("clip.has_vision_encoder"):
        raise BadModelFile(f"{info.path.name} has no vision encoder; Iris needs one to see images.")
    ptype = str(info.get("clip.projector_type"))
    _need_keys(info, {
        "clip.vision.image_size": _U32, "clip.vision.patch_size": _U32,
        "clip.vision.embedding_length": _U32, "clip.vision.feed_forward_length": _U32,
        "clip.vision.projection_dim": _U32, "clip.vision.attention.head_count": _U32,
        "clip.vision.attention.layer_norm_epsilon": _F32, "clip.vision.block_count": _U32,
    }, "vision projector (mmproj)")
    for key in ("clip.vision.image_mean", "clip.vision.image_std"):
        val = info.get(key)
        if not isinstance(val, list) or len(val) < 3:
            raise BadModelFile(f"{info.path.name} lacks {key}; it is not a complete vision projector.")
    check_mmproj_deep(info, ptype)
    width = int(info.get("clip.vision.embedding_length"))
    heads = int(info.get("clip.vision.attention.head_count"))
    blocks = int(info.get("clip.vision.block_count"))
    if heads <= 0 or width % heads:
        # clip.cpp aborts in ggml_reshape_3d on the first image.
        raise BadModelFile(
            f"{info.path.name} is malformed: {heads} vision heads do not divide its width {width}."
        )
    # Each of these missing makes clip.cpp segfault rather than fail.
    need = ["v.patch_embd.weight"] + ([] if ptype in _ROPE_ENCODERS else ["v.position_embd.weight"])
    for i in range(blocks):
        need += [f"v.blk.{i}.attn_q.weight", f"v.blk.{i}.attn_k.weight", f"v.blk.{i}.attn_v.weight",
                 f"v.blk.{i}.attn_out.weight", f"v.blk.{i}.ffn_up.weight", f"v.blk.{i}.ffn_down.weight"]
    if ptype in _MLP_PROJECTORS:
        need += ["mm.0.weight", "mm.0.bias", "mm.2.weight", "mm.2.bias"]
    _need_tensors(info, need, "vision projector (mmproj)")
    if ptype in _MLP_PROJECTORS:
        layers = info.get("clip.vision.feature_layer")
        n_feat = len(layers) if isinstance(layers, list) and layers else 1
        mm0_in = info.tensors["mm.0.weight"].shape[0]
        if mm0_in != width * n_feat:
            raise BadModelFile(
                f"{info.path.name} is malformed: its projector takes {mm0_in}-wide features but the "
                f"encoder gives {width * n_feat}. Download the file again."
            )
        mm2 = info.tensors["mm.2.weight"].shape
        if len(mm2) < 2 or info.tensors["mm.0.weight"].shape[-1] != mm2[0]:
            raise BadModelFile(f"{info.path.name} is malformed: its projector layers do not fit together.")
    out_name, out_dim = _OUT_TENSOR.get(ptype, ("", 1))
    out_t = info.tensors.get(out_name)
    out_width = out_t.shape[out_dim] if out_t is not None and len(out_t.shape) >= 2 else None
    return MMProjSummary(
        projector_type=ptype,
        out_width=out_width,
        image_size=int(info.get("clip.vision.image_size")),
        patch_size=int(info.get("clip.vision.patch_size")),
        has_pinpoints="clip.vision.image_grid_pinpoints" in info.meta,
        name=str(info.get("general.name", info.path.stem)),
    )


@dataclass(frozen=True)
class PairInfo:
    """A checked LM + mmproj pair."""

    lm: LMSummary
    mmproj: MMProjSummary
    lm_info: GGUFInfo
    mmproj_info: GGUFInfo


def check_pair(lm_path: str | Path, mmproj_path: str | Path) -> PairInfo:
    """Validate both files and that the projector feeds vectors as wide as the LM's embeddings."""
    lm_info = read_gguf(lm_path)
    mm_info = read_gguf(mmproj_path)
    if is_mmproj(lm_info) and not is_mmproj(mm_info):
        raise ModelMismatch(
            f"The two files are swapped: {lm_info.path.name} is the vision projector and "
            f"{mm_info.path.name} the language model. Pass them the other way round."
        )
    lm = check_lm(lm_info)
    mm = check_mmproj(mm_info)
    if mm.out_width is not None and mm.out_width != lm.n_embd:
        raise ModelMismatch(
            f"This projector ({mm_info.path.name}) expects a {mm.out_width}-wide model; the LM "
            f"({lm_info.path.name}) is {lm.n_embd}-wide. Pick the mmproj from the same repository "
            "as the LM."
        )
    return PairInfo(lm=lm, mmproj=mm, lm_info=lm_info, mmproj_info=mm_info)
