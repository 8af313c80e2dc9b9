"""Deep header checks: every key, tensor type and tensor shape that llama.cpp or clip.cpp would trust.

llama.cpp's loader refuses many bad files with an exception, but clip.cpp reads keys with
gguf_get_val_* (which aborts the process on a key of another type), the vocabulary is read without
length checks, and the compute kernels trust tensor types and shapes. Everything here runs on the
header that app.ggufinfo parsed, in Python, before llama.cpp opens the file.
"""

from __future__ import annotations

import math
from typing import Any

from app.errors import BadModelFile, printable

# GGUF value types (as in app.ggufinfo).
T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
U32, I32, F32, BOOL, STR = (T_U32,), (T_I32,), (T_F32,), (T_BOOL,), (T_STR,)
ARR_I32, ARR_F32, ARR_STR = ("arr", T_I32), ("arr", T_F32), ("arr", T_STR)

# Every key clip.cpp reads (llama.cpp 0.3.36's tools/mtmd/clip.cpp: get_u32, get_i32, get_f32, get_bool,
# get_string, get_arr_int, get_arr_f32); the scalar readers abort on another type.
CLIP_KEYS: dict[str, Any] = {
    "general.name": STR, "general.description": STR,
    "clip.projector_type": STR, "clip.vision.projector_type": STR, "clip.audio.projector_type": STR,
    "clip.has_vision_encoder": BOOL, "clip.has_audio_encoder": BOOL, "clip.has_gen_audio_encoder": BOOL,
    "clip.use_gelu": BOOL, "clip.use_silu": BOOL, "clip.minicpmv_version": I32, "clip.minicpmv_query_num": U32,
    "clip.vision.image_size": U32, "clip.vision.patch_size": U32, "clip.vision.image_min_pixels": U32,
    "clip.vision.image_max_pixels": U32, "clip.vision.preproc_image_size": U32,
    "clip.vision.preproc_min_tiles": U32, "clip.vision.preproc_max_tiles": U32,
    "clip.vision.projector.scale_factor": U32, "clip.vision.projector.query_side": U32,
    "clip.vision.projector.window_side": U32, "clip.vision.spatial_merge_size": U32,
    "clip.vision.n_wa_pattern": U32, "clip.vision.window_size": U32, "clip.vision.expert_used_count": U32,
    "clip.vision.sam.block_count": U32, "clip.vision.sam.embedding_length": U32, "clip.vision.sam.head_count": U32,
    "clip.vision.swiglu_clamp": F32, "clip.vision.mm_patch_merge_type": STR,
    "clip.vision.image_mean": ARR_F32, "clip.vision.image_std": ARR_F32,
    "clip.vision.image_grid_pinpoints": ARR_I32, "clip.vision.projector.spatial_offsets": ARR_I32,
    "clip.vision.wa_layer_indexes": ARR_I32, "clip.vision.wa_pattern_mode": ARR_I32,
}
for _m in ("vision", "audio", "gen.audio"):
    CLIP_KEYS.update({
        f"clip.{_m}.embedding_length": U32, f"clip.{_m}.feed_forward_length": U32, f"clip.{_m}.block_count": U32,
        f"clip.{_m}.projection_dim": U32, f"clip.{_m}.attention.head_count": U32,
        f"clip.{_m}.attention.head_count_kv": U32, f"clip.{_m}.attention.head_dim": U32,
        f"clip.{_m}.attention.layer_norm_epsilon": F32, f"clip.{_m}.feature_layer": ARR_I32,
    })

# Keys of a language model, by the part after '<arch>.'; scalars or per-layer arrays where llama.cpp allows.
_U32_OR_ARR = (T_U32, T_ARR)
LM_KEYS: dict[str, Any] = {
    "context_length": U32, "embedding_length": U32, "block_count": U32, "feed_forward_length": _U32_OR_ARR,
    "attention.head_count": _U32_OR_ARR, "attention.head_count_kv": _U32_OR_ARR,
    "attention.key_length": U32, "attention.value_length": U32, "attention.layer_norm_epsilon": F32,
    "attention.layer_norm_rms_epsilon": F32, "attention.sliding_window": U32, "rope.dimension_count": U32,
    "rope.freq_base": F32, "rope.scaling.factor": F32, "rope.dimension_sections": ARR_I32,
    "expert_count": U32, "expert_used_count": U32, "vocab_size": U32, "final_logit_softcapping": F32,
    "attn_logit_softcapping": F32,
}
TOKENIZER_KEYS: dict[str, Any] = {
    "general.architecture": STR, "general.name": STR, "general.file_type": U32,
    "tokenizer.ggml.model": STR, "tokenizer.ggml.pre": STR, "tokenizer.ggml.tokens": ARR_STR,
    "tokenizer.ggml.scores": ARR_F32, "tokenizer.ggml.token_type": ARR_I32, "tokenizer.ggml.merges": ARR_STR,
    "tokenizer.ggml.add_bos_token": BOOL, "tokenizer.ggml.add_eos_token": BOOL,
    "tokenizer.ggml.add_space_prefix": BOOL, "tokenizer.chat_template": STR,
}
TOKEN_ID_KEYS = ("bos", "eos", "unknown", "seperator", "padding", "eot", "eom", "cls", "mask")
for _t in TOKEN_ID_KEYS:
    TOKENIZER_KEYS[f"tokenizer.ggml.{_t}_token_id"] = U32

# ggml types a weight may have: floats and the quantized block formats (not the integer types).
_WEIGHT_TYPES = {0, 1, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 29, 30, 34, 35, 39}
_VECTOR_TYPES = {0}  # 1-D tensors (norms, biases): f32 only; ggml cannot add or multiply f32 by f16 there
_TYPE_NAMES = {24: "i8", 25: "i16", 26: "i32", 27: "i64", 28: "f64"}


def _bad(info: Any, what: str) -> BadModelFile:
    return BadModelFile(f"{info.path.name} is damaged: {what}. Download the file again from the model's repository.")


def check_key_types(info: Any, table: dict[str, Any]) -> None:
    """Every present key of the table has the type the reader expects; floats are finite."""
    for key, want in table.items():
        entry = info.meta.get(key)
        if entry is None:
            continue
        vtype, value = entry
        if isinstance(want, tuple) and want and want[0] == "arr":
            if vtype != T_ARR or info.array_types.get(key) != want[1]:
                raise _bad(info, f"key {key} has the wrong type (llama.cpp needs an array of "
                                 f"{'integers' if want[1] == T_I32 else 'floats' if want[1] == T_F32 else 'strings'})")
            if want[1] == T_F32 and isinstance(value, list) and not all(math.isfinite(v) for v in value):
                raise _bad(info, f"key {key} holds a value that is not a finite number")
            continue
        if vtype not in want:
            raise _bad(info, f"key {key} has the wrong type")
        if vtype == T_F32 and not math.isfinite(value):
            raise _bad(info, f"key {key} is not a finite number ({value})")


def check_tensor_types(info: Any) -> None:
    """No tensor has an integer or unknown type (the kernels have no code for them and crash)."""
    for t in info.tensors.values():
        allowed = _VECTOR_TYPES if len(t.shape) == 1 else _WEIGHT_TYPES
        if t.ggml_type not in allowed:
            kind = _TYPE_NAMES.get(t.ggml_type, f"type {t.ggml_type}")
            raise _bad(info, f"tensor {printable(t.name)} has {kind} data, which llama.cpp cannot compute with")
        if any(d <= 0 for d in t.shape):
            raise _bad(info, f"tensor {printable(t.name)} has an empty dimension {list(t.shape)}")
    # A bias adds to its layer's output: as long as the weight's last dimension (ggml_add aborts otherwise).
    for name, t in info.tensors.items():
        if not name.endswith(".bias"):
            continue
        w = info.tensors.get(name[: -len(".bias")] + ".weight")
        if w is not None and (len(t.shape) != 1 and any(d != 1 for d in t.shape[1:]) or t.shape[0] != w.shape[-1]
                              and not (len(w.shape) == 1 and t.shape[0] == w.shape[0])):
            raise _bad(info, f"tensor {printable(name)} has shape {list(t.shape)} for a weight of shape "
                             f"{list(w.shape)}")


def _shape(info: Any, name: str, want: tuple[int, ...], alt: tuple[int, ...] | None = None) -> None:
    t = info.tensors.get(name)
    if t is None:
        return
    got = tuple(t.shape) + (1,) * (len(want) - len(t.shape))
    if got[: len(want)] != want and (alt is None or got[: len(alt)] != alt) or any(d != 1 for d in got[len(want):]):
        raise _bad(info, f"tensor {printable(name)} has shape {list(t.shape)} but the hyperparameters "
                         f"say {list(want)}")


def _positive(info: Any, key: str, value: Any) -> int:
    if not isinstance(value, int) or value <= 0:
        raise _bad(info, f"{key} is {printable(value)}; it must be a positive number")
    return value


def check_lm_deep(info: Any, arch: str) -> None:
    """Keys, vocabulary, tensor types and shapes of a language model."""
    check_key_types(info, {f"{arch}.{k}": v for k, v in LM_KEYS.items()})
    check_key_types(info, TOKENIZER_KEYS)
    g = info.get
    E = _positive(info, f"{arch}.embedding_length", g(f"{arch}.embedding_length"))
    L = _positive(info, f"{arch}.block_count", g(f"{arch}.block_count"))
    if L > 4096 or E > 1 << 17:
        raise _bad(info, f"its size ({L} layers of width {E}) is implausible")
    ctx = g(f"{arch}.context_length")
    if not isinstance(ctx, int) or ctx < 64:
        raise _bad(info, f"{arch}.context_length is {printable(ctx)}; a usable model has at least 64")
    for key in (f"{arch}.attention.layer_norm_rms_epsilon", f"{arch}.attention.layer_norm_epsilon"):
        eps = g(key)
        if eps is not None and not 0 < eps < 1:
            raise _bad(info, f"{key} is {eps}; a layer-norm epsilon is a small positive number")
    H, Hkv = g(f"{arch}.attention.head_count"), g(f"{arch}.attention.head_count_kv")
    F = g(f"{arch}.feed_forward_length")
    Hkv = H if Hkv is None else Hkv
    n_expert = g(f"{arch}.expert_count") or 0
    if n_expert and "blk.0.ffn_gate_exps.weight" not in info.tensors and "blk.0.ffn_up_exps.weight" not in info.tensors:
        raise _bad(info, f"{arch}.expert_count is {n_expert} but the model has no expert tensors")
    if g(f"{arch}.attention.sliding_window") == 0:
        raise _bad(info, f"{arch}.attention.sliding_window is 0")
    # Vocabulary: read by index without checks; a duplicate or a short score list crashes llama.cpp.
    tokens = info.tokens
    if tokens is not None:
        n_vocab = len(tokens)
        if n_vocab == 0:
            raise _bad(info, "its vocabulary is empty")
        if len(set(tokens)) != n_vocab:
            seen: set[str] = set()
            dup = next(t for t in tokens if t in seen or seen.add(t))  # type: ignore[func-returns-value]
            raise _bad(info, f"its vocabulary lists the token {printable(dup, 40)!r} twice")
        for key in ("tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
            val = g(key)
            n = val[2] if isinstance(val, tuple) else len(val) if isinstance(val, list) else None
            if n is not None and n != n_vocab:
                raise _bad(info, f"{key} has {n} entries for {n_vocab} tokens")
        for t in TOKEN_ID_KEYS:
            tid = g(f"tokenizer.ggml.{t}_token_id")
            if isinstance(tid, int) and tid >= n_vocab and tid != 0xFFFFFFFF:
                raise _bad(info, f"tokenizer.ggml.{t}_token_id is {tid}, past the {n_vocab} tokens")
        _shape(info, "token_embd.weight", (E, n_vocab))
        _shape(info, "output.weight", (E, n_vocab))
    check_tensor_types(info)
    if not isinstance(H, int) or not isinstance(Hkv, int):
        return  # per-layer head counts: llama.cpp checks the shapes itself
    _positive(info, f"{arch}.attention.head_count", H)
    _positive(info, f"{arch}.attention.head_count_kv", Hkv)
    if H % Hkv:
        raise _bad(info, f"{Hkv} key/value heads do not divide {H} attention heads")
    hd_k = g(f"{arch}.attention.key_length") or (E // H if E % H == 0 else 0)
    hd_v = g(f"{arch}.attention.value_length") or hd_k
    if not hd_k or hd_k % 2:
        raise _bad(info, f"{H} attention heads do not split its width {E} into even-sized heads")
    rot = g(f"{arch}.rope.dimension_count")
    if rot is not None and (rot <= 0 or rot > hd_k or rot % 2):
        raise _bad(info, f"{arch}.rope.dimension_count is {rot}; it must be even and at most the head size {hd_k}")
    sections = g(f"{arch}.rope.dimension_sections")
    if isinstance(sections, list) and (any(x < 0 for x in sections) or sum(sections) > hd_k // 2):
        raise _bad(info, f"{arch}.rope.dimension_sections {sections} do not fit a head of {hd_k}")
    q, k, v = H * hd_k, Hkv * hd_k, Hkv * hd_v
    for i in range(L):
        b = f"blk.{i}."
        for n in ("attn_norm.weight", "ffn_norm.weight", "post_attention_norm.weight", "post_ffw_norm.weight",
                  "attn_norm.bias"):
            _shape(info, b + n, (E,))
        _shape(info, b + "attn_q.weight", (E, q))
        _shape(info, b + "attn_k.weight", (E, k))
        _shape(info, b + "attn_v.weight", (E, v))
        _shape(info, b + "attn_qkv.weight", (E, q + k + v))
        _shape(info, b + "attn_output.weight", (H * hd_v, E))
        _shape(info, b + "attn_q_norm.weight", (hd_k,))
        _shape(info, b + "attn_k_norm.weight", (hd_k,))
        if isinstance(F, int) and not n_expert:
            _shape(info, b + "ffn_gate.weight", (E, F))
            _shape(info, b + "ffn_up.weight", (E, F))
            _shape(info, b + "ffn_down.weight", (F, E))
    _shape(info, "output_norm.weight", (E,))


# Projectors whose encoder has no learned position table, or a table indexed otherwise than by patch.
_ROPE_OR_BUCKETS = {"qwen2vl_merger", "qwen2.5vl_merger", "qwen3vl_merger", "pixtral", "resampler"}


# The projector types clip.cpp knows (PROJECTOR_TYPE_NAMES in llama.cpp 0.3.36's tools/mtmd/clip-impl.h).
KNOWN_PROJECTORS = {
    "adapter", "cogvlm", "deepseek4v", "deepseekocr", "deepseekocr2", "dots3note_a", "dots3note_v", "dots_ocr",
    "exaone4_5", "gemma3", "gemma3na", "gemma3nv", "gemma4a", "gemma4ua", "gemma4uv", "gemma4v", "glm4v", "glm5v",
    "glma", "granite4_vision", "granite_speech", "hunyuanvl", "idefics3", "internvl", "janus_pro", "kimik25",
    "kimivl", "ldp", "ldpv2", "lfm2", "lfm2a", "lightonocr", "ling3vl", "llama4", "meralion", "mimo_audio",
    "mimovl", "minicpmv4_6", "minimax_m3", "mlp", "mlp_norm", "muse-glimmer", "musicflamingo", "nemotron_v2_vl",
    "paddleocr", "parakeet", "phi4", "pixtral", "pockettts_gen", "pockettts_spkenc", "qwen2.5o",
    "qwen2.5vl_merger", "qwen2a", "qwen2vl_merger", "qwen3a", "qwen3tts_gen", "qwen3tts_spkenc",
    "qwen3vl_merger", "resampler", "step3vl", "ultravox", "voxtral", "yasa2", "youtuvl",
}


def check_mmproj_deep(info: Any, ptype: str) -> None:
    """Keys, tensor types and the encoder's tensor shapes of a vision projector."""
    check_key_types(info, CLIP_KEYS)
    if ptype not in KNOWN_PROJECTORS:
        raise BadModelFile(f"{info.path.name} has the projector type '{printable(ptype, 40)}', which this "
                           "llama.cpp does not know. Use a GGUF of a model in Iris's catalog, or a newer Iris.")
    g = info.get
    D = _positive(info, "clip.vision.embedding_length", g("clip.vision.embedding_length"))
    Fv = _positive(info, "clip.vision.feed_forward_length", g("clip.vision.feed_forward_length"))
    L = _positive(info, "clip.vision.block_count", g("clip.vision.block_count"))
    H = _positive(info, "clip.vision.attention.head_count", g("clip.vision.attention.head_count"))
    size = _positive(info, "clip.vision.image_size", g("clip.vision.image_size"))
    P = _positive(info, "clip.vision.patch_size", g("clip.vision.patch_size"))
    if size < P or size > 8192 or P > 1024 or L > 1024:
        raise _bad(info, f"clip.vision.image_size {size} and patch_size {P} do not describe an image encoder")
    eps = g("clip.vision.attention.layer_norm_epsilon")
    if not 0 < eps < 1:
        raise _bad(info, f"clip.vision.attention.layer_norm_epsilon is {eps}; it must be a small positive number")
    for key in ("clip.vision.image_mean", "clip.vision.image_std"):
        vals = g(key)
        if isinstance(vals, list) and key.endswith("std") and any(v <= 0 for v in vals[:3]):
            raise _bad(info, f"{key} holds {vals[:3]}; a standard deviation is positive")
    pins = g("clip.vision.image_grid_pinpoints")
    if isinstance(pins, list) and (len(pins) % 2 or any(p <= 0 or p > 16384 for p in pins)):
        raise _bad(info, "clip.vision.image_grid_pinpoints is not a list of positive width, height pairs")
    merge = g("clip.vision.projector.scale_factor")
    if merge is not None and (merge <= 0 or (size // P) % merge):
        raise _bad(info, f"clip.vision.projector.scale_factor {merge} does not divide the {size // P} patches per side")
    version = g("clip.minicpmv_version")
    if version is not None and version not in (0, 2, 3, 4, 5, 6, 100045):
        raise _bad(info, f"clip.minicpmv_version is {version}, which clip.cpp does not know")
    check_tensor_types(info)
    Hkv = g("clip.vision.attention.head_count_kv") or H
    hd = g("clip.vision.attention.head_dim") or (D // H if D % H == 0 else 0)
    if not hd or H % Hkv:
        raise _bad(info, f"{H} vision heads do not split its width {D}")
    qwen = ptype in ("qwen2vl_merger", "qwen2.5vl_merger")
    _shape(info, "v.patch_embd.weight", (P, P, 3, D))
    _shape(info, "v.patch_embd.weight.1", (P, P, 3, D))
    _shape(info, "v.patch_embd.bias", (D,))
    _shape(info, "v.class_embd", (D,))
    pos = info.tensors.get("v.position_embd.weight")
    if pos is not None and ptype not in _ROPE_OR_BUCKETS:
        # The graph adds the table to the patches row for row: exactly one row per patch (+ class token).
        need = (size // P) ** 2 + (1 if "v.class_embd" in info.tensors else 0)
        if len(pos.shape) < 2 or pos.shape[0] != D or pos.shape[1] != need:
            raise _bad(info, f"v.position_embd.weight has shape {list(pos.shape)} but {size} px images in "
                             f"{P} px patches need [{D}, {need}]")
    for n in ("v.pre_ln.weight", "v.pre_ln.bias", "v.post_ln.weight", "v.post_ln.bias"):
        _shape(info, n, (D,))
    kv = Hkv * hd
    for i in range(L):
        b = f"v.blk.{i}."
        _shape(info, b + "attn_q.weight", (D, H * hd))
        _shape(info, b + "attn_k.weight", (D, kv))
        _shape(info, b + "attn_v.weight", (D, kv))
        _shape(info, b + "attn_out.weight", (H * hd, D))
        for n in ("attn_q.bias", "attn_out.bias", "ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias"):
            _shape(info, b + n, (D,))
        for n in ("attn_k.bias", "attn_v.bias"):
            _shape(info, b + n, (kv,))
        # Old converters swapped fc1 and fc2; clip.cpp swaps them back, so either order is fine.
        _shape(info, b + "ffn_up.weight", (D, Fv), (Fv, D))
        _shape(info, b + "ffn_down.weight", (Fv, D), (D, Fv))
        _shape(info, b + "ffn_gate.weight", (D, Fv), (Fv, D))
    if qwen:
        # The Qwen encoder uses its second patch kernel and attention biases unconditionally (NULL pointers).
        missing = [n for n in ["v.patch_embd.weight.1"] + [f"v.blk.{i}.attn_{p}.bias" for i in range(L)
                                                            for p in ("q", "k", "v")] if n not in info.tensors]
        if missing:
            raise BadModelFile(f"{info.path.name} is not a complete vision projector: it lacks {missing[0]}. "
                               "Download the file again from the model's repository.")
        _shape(info, "mm.0.weight", (4 * D, 4 * D))
        t = info.tensors.get("mm.2.weight")
        if t is not None and t.shape[0] != 4 * D:
            raise _bad(info, f"mm.2.weight takes {t.shape[0]}-wide input but the merger gives {4 * D}")
        if t is not None and g("clip.vision.projection_dim") != t.shape[1]:
            # Window attention reorders the output rows in projection_dim-wide steps.
            raise _bad(info, f"clip.vision.projection_dim is {g('clip.vision.projection_dim')} but the merger "
                             f"gives {t.shape[1]}-wide vectors")
    elif ptype == "gemma3":
        _shape(info, "mm.soft_emb_norm.weight", (D,))
        t = info.tensors.get("mm.input_projection.weight")
        if t is not None and (len(t.shape) != 2 or t.shape[1] != D):
            raise _bad(info, f"mm.input_projection.weight has shape {list(t.shape)} for a {D}-wide encoder")
    elif ptype == "idefics3":
        s = merge or 1
        t = info.tensors.get("mm.model.fc.weight")
        if t is not None and t.shape[0] != D * s * s:
            raise _bad(info, f"mm.model.fc.weight takes {t.shape[0]}-wide input but the pixel shuffle gives "
                             f"{D * s * s}")
    elif ptype == "resampler":
        t = info.tensors.get("resampler.kv.weight")
        if t is not None and t.shape[0] != D:
            raise _bad(info, f"resampler.kv.weight takes {t.shape[0]}-wide input but the encoder gives {D}")
        proj = info.tensors.get("resampler.proj.weight")
        if proj is not None:
            E = proj.shape[0]
            if E % 128:
                raise _bad(info, "the resampler's width is not a multiple of its 128-wide heads")
            _shape(info, "resampler.proj.weight", (E, E))
            queries = g("clip.minicpmv_query_num") or (96 if (version or 2) == 2 else 64)  # clip.cpp's defaults
            _shape(info, "resampler.query", (E, queries))
            _shape(info, "resampler.kv.weight", (D, E))
            for p in ("q", "k", "v", "out"):
                _shape(info, f"resampler.attn.{p}.weight", (E, E))


__all__ = ["check_lm_deep", "check_mmproj_deep", "check_key_types", "check_tensor_types", "CLIP_KEYS", "LM_KEYS",
           "TOKENIZER_KEYS"]
