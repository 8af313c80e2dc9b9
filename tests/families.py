"""Random-weight test pairs for every model family in Iris's catalog, in the layout llama.cpp 0.3.36 loads.

Each family keeps what makes it that family: the LM architecture and its tensors (llama, phi2, qwen2,
qwen2vl with M-RoPE sections, gemma3 with sliding-window layers and q/k norms), the projector type and
its tensors (CLIP + MLP, SigLIP + MLP, MiniCPM-V's resampler, Qwen2-VL's and Qwen2.5-VL's mergers,
Gemma 3's pooled projector, Idefics3's pixel shuffle), the special tokens its prompt and mtmd use, and
the chat template the real GGUFs carry (for families that ship one). Widths and depths are tiny; the
vocabulary is a SentencePiece one with the family's control tokens (the real BPE vocabularies are not
reproduced). Where and why a size differs from the real model is said at each family.

    python tests/modelwriter.py OUT_DIR --preset FAMILY     (FAMILY as in models/catalog.json)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np

from modelwriter import WORDS, _Weights, finish, tokenizer_header

SIGLIP_MEAN = [0.5, 0.5, 0.5]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

# The chat templates of the real GGUFs (tokenizer.chat_template, copied from each model's
# tokenizer_config.json by llama.cpp's converter). The handler families (LLaVA, Moondream, nanoLLaVA,
# MiniCPM-V, Qwen2.5-VL) are prompted by llama-cpp-python's own handler instead.
QWEN2_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
GEMMA3_TEMPLATE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"""
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

CHATML = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")


@dataclass(frozen=True)
class Family:
    """One catalog family's test pair: architecture, projector, tokens, template and sizes."""

    name: str
    lm_arch: str                 # llama, phi2, qwen2, qwen2vl, gemma3
    projector: str               # clip.projector_type
    encoder: str = "clip"        # clip (class token, quick-GELU) or siglip (patch bias, GELU, post-LN)
    bos: str = "<s>"
    eos: str = "</s>"
    add_bos: bool = True
    specials: tuple[str, ...] = ()
    normals: tuple[str, ...] = ()  # plain pieces mtmd looks up by text ("\n\n")
    chat_template: str | None = None
    # The LM's weights as the catalog ships them: Q4_K_M (llama.cpp's own quantizer, on widths that are
    # whole 256-value super-blocks so that it really writes Q4_K/Q6_K), F16 for Moondream and nanoLLaVA.
    quant: str = "q4_k_m"
    n_embd: int = 256
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 512
    n_layer: int = 2
    image_size: int = 32
    patch: int = 8
    v_width: int = 32
    v_heads: int = 4
    v_layers: int = 2
    extra_keys: dict = field(default_factory=dict)  # mmproj keys beyond the common ones
    pinpoints: tuple[int, ...] = ()
    multi_image: bool = True
    seed: int = 0


FAMILIES: dict[str, Family] = {f.name: f for f in (
    # LLaVA-1.5: Vicuna (llama) + CLIP ViT + 2-layer MLP; fixed (s/p)^2 tokens per image.
    Family("llava-1.5", "llama", "mlp", seed=3),  # seed 0's greedy replies are one repeated token
    # LLaVA-1.6 (NeXT): the same, plus grid pinpoints: a large image becomes an overview and tiles.
    Family("llava-1.6", "llama", "mlp", pinpoints=(32, 32, 32, 64, 64, 32, 64, 64),
           extra_keys={"clip.vision.mm_patch_merge_type": "spatial_unpad"}),
    # Moondream2: phi2 LM (fused qkv, biases, LayerNorm, partial RoPE) + SigLIP + MLP; one image.
    Family("moondream", "phi2", "mlp", encoder="siglip", bos="<|endoftext|>", eos="<|endoftext|>",
           add_bos=False, multi_image=False, quant="f16", n_head_kv=4),
    # nanoLLaVA: Qwen1.5-0.5B (qwen2 arch, qkv biases) + SigLIP + MLP, ChatML; one image.
    Family("nanollava", "qwen2", "mlp", encoder="siglip", bos="<|endoftext|>", eos="<|im_end|>",
           add_bos=False, specials=CHATML, multi_image=False, quant="f16", seed=1),
    # MiniCPM-V 2.6: Qwen2-7B + SigLIP + a resampler to 64 queries (d_head 128 fixed, so n_embd 128);
    # slices larger images, each slice wrapped in <slice></slice>.
    Family("minicpm-v", "qwen2", "resampler", encoder="siglip", bos="<|endoftext|>", eos="<|im_end|>",
           add_bos=False, specials=CHATML + ("<image>", "</image>", "<slice>", "</slice>"),
           image_size=28, patch=14, extra_keys={"clip.minicpmv_version": ("i32", 3)}),
    # Qwen2-VL: qwen2vl LM (M-RoPE sections) + ViT with a 2x2 merger; dynamic resolution.
    Family("qwen2-vl", "qwen2vl", "qwen2vl_merger", bos="<|endoftext|>", eos="<|im_end|>", add_bos=False,
           specials=CHATML + ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>"),
           chat_template=QWEN2_VL_TEMPLATE, patch=14, image_size=56, v_heads=2),
    # Qwen2.5-VL: the same LM, RMS-norm ViT with SwiGLU and window attention (n_wa_pattern).
    Family("qwen2.5-vl", "qwen2vl", "qwen2.5vl_merger", bos="<|endoftext|>", eos="<|im_end|>", add_bos=False,
           specials=CHATML + ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>"),
           chat_template=QWEN2_VL_TEMPLATE, patch=14, image_size=56, v_heads=2,
           extra_keys={"clip.vision.n_wa_pattern": ("u32", 2), "clip.vision.window_size": ("u32", 112),
                       "clip.use_silu": ("bool", True)}),
    # Gemma 3: gemma3 LM (q/k norms, post-norms, 5 sliding-window layers to 1 global) + SigLIP whose
    # patches are average-pooled 4x4; 896/14 -> 256 tokens in the real model, 64/8 -> 4 here.
    Family("gemma-3", "gemma3", "gemma3", encoder="siglip", bos="<bos>", eos="<eos>",
           specials=("<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>"),
           chat_template=GEMMA3_TEMPLATE, n_layer=6, image_size=64, patch=8),
    # SmolVLM2: llama LM + SigLIP + Idefics3 pixel shuffle (scale 4 in the 2.2B) and image splitting.
    Family("smolvlm", "llama", "idefics3", encoder="siglip", bos="<|im_start|>", eos="<end_of_utterance>",
           add_bos=False, specials=("<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>",
                                    "<global-img>", "<image>")
           + tuple(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)),
           normals=("\n\n",), chat_template=SMOLVLM_TEMPLATE, image_size=64, patch=8,
           extra_keys={"clip.vision.projector.scale_factor": ("u32", 4),
                       "clip.vision.preproc_image_size": ("u32", 128)}),
)}


def _vocab(f: Family, n_vocab: int = 512) -> tuple[list[str], list[float], list[int]]:
    T = gguf.TokenType
    tokens = ["<unk>", f.bos, f.eos] if f.bos != f.eos else ["<unk>", f.bos, "<|unused_eos|>"]
    types = [T.UNKNOWN, T.CONTROL, T.CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [T.BYTE] * 256
    for s in f.specials:
        if s not in tokens:
            tokens.append(s)
            types.append(T.CONTROL)
    scores = [0.0] * len(tokens)
    pieces = list(f.normals) + ["\u2581"] + [chr(c) for c in range(33, 127)]
    pieces += ["\u2581" + w for w in WORDS] + list(WORDS)
    for p in pieces:
        if len(tokens) >= n_vocab:
            break
        if p not in tokens:
            tokens.append(p)
            types.append(T.NORMAL)
            scores.append(-100.0 + 10.0 * len(p))
    while len(tokens) < n_vocab:
        tokens.append(f"<unused{len(tokens)}>")
        types.append(T.UNUSED)
        scores.append(-1000.0)
    return tokens, scores, [int(t) for t in types]


def write_family_lm(path: Path, f: Family) -> Path:
    """The family's LM, in its own architecture."""
    if f.quant == "q4_k_m":
        from app.llamalib import quantize
        from dataclasses import replace

        f16 = write_family_lm(path.with_name(path.stem + "-f16.gguf"), replace(f, quant="f16"))
        try:
            return quantize(f16, path, "q4_k_m")
        finally:
            f16.unlink()
    E, H, Hkv, F, L = f.n_embd, f.n_head, f.n_head_kv, f.n_ff, f.n_layer
    hd = E // H
    kv = Hkv * hd
    w = _Weights(f.seed, reuse=False)
    arch = f.lm_arch
    wr = gguf.GGUFWriter(str(path), arch)
    wr.add_name(f"iris-test-{f.name}")
    wr.add_context_length(4096)
    wr.add_embedding_length(E)
    wr.add_block_count(L)
    wr.add_feed_forward_length(F)
    wr.add_head_count(H)
    wr.add_head_count_kv(Hkv)
    wr.add_rope_freq_base(10000.0)
    wr.add_file_type({"q4_0": 2, "q8_0": 7, "f16": 1}.get(f.quant, 0))
    if arch == "phi2":
        wr.add_layer_norm_eps(1e-5)
        wr.add_rope_dimension_count(hd // 2)  # partial rotary, as phi-2's 32 of 80
    else:
        wr.add_layer_norm_rms_eps(1e-6)
        wr.add_rope_dimension_count(hd)
    if arch == "qwen2vl":
        # M-RoPE: temporal, height, width sections of the rotary half (Qwen2-VL-7B: 16, 24, 24, 0 of 64)
        t_sec = hd // 8
        hw = (hd // 2 - t_sec) // 2
        wr.add_array(f"{arch}.rope.dimension_sections", [t_sec, hw, hd // 2 - t_sec - hw, 0])
    if arch == "gemma3":
        wr.add_key_length(hd)
        wr.add_value_length(hd)
        wr.add_sliding_window(16)  # short, so the tests' prompts really slide past it
    tokens, scores, types = _vocab(f)
    tokenizer_header(wr, tokens, scores, types, add_bos=f.add_bos, chat_template=f.chat_template)

    def mat(name: str, n_in: int, n_out: int, scale: float = 0.02) -> None:
        w.add_matrix(wr, name, f.quant, n_in, n_out, scale)

    wr.add_tensor("token_embd.weight", w.dense((len(tokens), E), "f16" if f.quant != "f32" else "f32", 0.5))
    wr.add_tensor("output_norm.weight", w.ones(E))
    if arch == "phi2":
        wr.add_tensor("output_norm.bias", w.small(E))
    mat("output.weight", E, len(tokens))
    if arch == "phi2":
        wr.add_tensor("output.bias", w.small(len(tokens)))
    v_scale, o_scale = 1.0 / E ** 0.5, 2.0 / E ** 0.5
    for i in range(L):
        b = f"blk.{i}."
        wr.add_tensor(b + "attn_norm.weight", w.ones(E))
        if arch == "phi2":
            wr.add_tensor(b + "attn_norm.bias", w.small(E))
            mat(b + "attn_qkv.weight", E, E + 2 * kv)
            wr.add_tensor(b + "attn_qkv.bias", w.small(E + 2 * kv))
            mat(b + "attn_output.weight", E, E, o_scale)
            wr.add_tensor(b + "attn_output.bias", w.small(E))
            mat(b + "ffn_up.weight", E, F)
            wr.add_tensor(b + "ffn_up.bias", w.small(F))
            mat(b + "ffn_down.weight", F, E)
            wr.add_tensor(b + "ffn_down.bias", w.small(E))
            continue
        mat(b + "attn_q.weight", E, E)
        mat(b + "attn_k.weight", E, kv)
        mat(b + "attn_v.weight", E, kv, v_scale)
        if arch in ("qwen2", "qwen2vl"):
            wr.add_tensor(b + "attn_q.bias", w.small(E))
            wr.add_tensor(b + "attn_k.bias", w.small(kv))
            wr.add_tensor(b + "attn_v.bias", w.small(kv))
        mat(b + "attn_output.weight", E, E, o_scale)
        if arch == "gemma3":
            wr.add_tensor(b + "attn_q_norm.weight", w.ones(hd))
            wr.add_tensor(b + "attn_k_norm.weight", w.ones(hd))
            wr.add_tensor(b + "post_attention_norm.weight", w.ones(E))
            wr.add_tensor(b + "post_ffw_norm.weight", w.ones(E))
        wr.add_tensor(b + "ffn_norm.weight", w.ones(E))
        mat(b + "ffn_gate.weight", E, F)
        mat(b + "ffn_up.weight", E, F)
        mat(b + "ffn_down.weight", F, E)
    finish(wr)
    return path


def _put(wr: gguf.GGUFWriter, key: str, value) -> None:
    if isinstance(value, tuple):
        kind, v = value
        {"u32": wr.add_uint32, "i32": wr.add_int32, "bool": wr.add_bool}[kind](key, v)
    elif isinstance(value, str):
        wr.add_string(key, value)
    else:
        raise TypeError(key)


def write_family_mmproj(path: Path, f: Family) -> Path:
    """The family's vision encoder and projector."""
    w = _Weights(f.seed + 1, reuse=False)
    D, P, E = f.v_width, f.patch, f.n_embd
    Fv = 2 * D
    siglip = f.encoder == "siglip"
    proj = f.projector
    wr = gguf.GGUFWriter(str(path), "clip")
    wr.add_name(f"iris-test-{f.name}-mmproj")
    wr.add_bool("clip.has_vision_encoder", True)
    wr.add_string("clip.projector_type", proj)
    if siglip:
        wr.add_bool("clip.use_gelu", True)
    wr.add_uint32("clip.vision.image_size", f.image_size)
    wr.add_uint32("clip.vision.patch_size", P)
    wr.add_uint32("clip.vision.embedding_length", D)
    wr.add_uint32("clip.vision.feed_forward_length", Fv)
    wr.add_uint32("clip.vision.projection_dim", E)
    wr.add_uint32("clip.vision.attention.head_count", f.v_heads)
    wr.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    wr.add_uint32("clip.vision.block_count", f.v_layers)
    wr.add_array("clip.vision.image_mean", SIGLIP_MEAN if siglip else CLIP_MEAN)
    wr.add_array("clip.vision.image_std", SIGLIP_MEAN if siglip else CLIP_STD)
    if f.pinpoints:
        wr.add_array("clip.vision.image_grid_pinpoints", list(f.pinpoints))
    for k, v in f.extra_keys.items():
        _put(wr, k, v)

    def t(name, arr):
        wr.add_tensor(name, arr)

    n_side = f.image_size // P
    qwen = proj in ("qwen2vl_merger", "qwen2.5vl_merger")
    t("v.patch_embd.weight", w.dense((D, 3, P, P), "f16", 0.3))
    if qwen:
        t("v.patch_embd.weight.1", w.dense((D, 3, P, P), "f16", 0.3))
    elif proj == "resampler":
        t("v.patch_embd.bias", w.small(D))
        t("v.position_embd.weight", w.dense((70 * 70, D), "f32"))  # MiniCPM-V buckets positions 70x70
    elif siglip:
        t("v.patch_embd.bias", w.small(D))
        t("v.position_embd.weight", w.dense((n_side * n_side, D), "f32"))
    else:
        t("v.class_embd", w.small(D))
        t("v.position_embd.weight", w.dense((n_side * n_side + 1, D), "f32"))
        t("v.pre_ln.weight", w.ones(D))
        t("v.pre_ln.bias", w.small(D))
    rms = proj == "qwen2.5vl_merger"
    for i in range(f.v_layers):
        b = f"v.blk.{i}."
        for part in ("attn_q", "attn_k", "attn_v", "attn_out"):
            t(b + part + ".weight", w.dense((D, D), "f16"))
            t(b + part + ".bias", w.small(D))
        t(b + "ln1.weight", w.ones(D))
        t(b + "ln2.weight", w.ones(D))
        if not rms:
            t(b + "ln1.bias", w.small(D))
            t(b + "ln2.bias", w.small(D))
        t(b + "ffn_up.weight", w.dense((Fv, D), "f16"))
        t(b + "ffn_up.bias", w.small(Fv))
        if rms:  # Qwen2.5-VL's SwiGLU
            t(b + "ffn_gate.weight", w.dense((Fv, D), "f16"))
            t(b + "ffn_gate.bias", w.small(Fv))
        t(b + "ffn_down.weight", w.dense((D, Fv), "f16"))
        t(b + "ffn_down.bias", w.small(D))
    if siglip and proj != "resampler":
        t("v.post_ln.weight", w.ones(D))
        t("v.post_ln.bias", w.small(D))
    if qwen and rms:
        t("v.post_ln.weight", w.ones(D))
    elif qwen:
        t("v.post_ln.weight", w.ones(D))
        t("v.post_ln.bias", w.small(D))
    strong = 4.0 / E ** 0.5
    if proj == "mlp":
        t("mm.0.weight", w.dense((E, D), "f16", 1.0 / D ** 0.5))
        t("mm.0.bias", w.small(E))
        t("mm.2.weight", w.dense((E, E), "f16", strong))
        t("mm.2.bias", w.small(E))
    elif qwen:
        t("mm.0.weight", w.dense((4 * D, 4 * D), "f16", 1.0 / (4 * D) ** 0.5))
        t("mm.0.bias", w.small(4 * D))
        t("mm.2.weight", w.dense((E, 4 * D), "f16", strong))
        t("mm.2.bias", w.small(E))
    elif proj == "resampler":
        assert E % 128 == 0, "MiniCPM-V's resampler has 128-wide heads"
        t("resampler.pos_embed_k", w.dense((4900, E), "f32"))
        t("resampler.query", w.dense((64, E), "f32", 1.0))
        t("resampler.proj.weight", w.dense((E, E), "f32", strong))
        t("resampler.kv.weight", w.dense((E, D), "f16", 1.0 / D ** 0.5))
        for p in ("q", "k", "v", "out"):
            t(f"resampler.attn.{p}.weight", w.dense((E, E), "f16", 1.0 / E ** 0.5))
            t(f"resampler.attn.{p}.bias", w.small(E))
        for p in ("q", "kv", "post"):
            t(f"resampler.ln_{p}.weight", w.ones(E))
            t(f"resampler.ln_{p}.bias", w.small(E))
    elif proj == "gemma3":
        # ne [E, D] (transposed in the graph). Gemma scales token embeddings by sqrt(n_embd) but not image
        # embeddings, so the projector is made strong enough for images to weigh like words.
        t("mm.input_projection.weight", w.dense((D, E), "f32", 1.0))
        t("mm.soft_emb_norm.weight", w.ones(D))
    elif proj == "idefics3":
        s = int(f.extra_keys["clip.vision.projector.scale_factor"][1])
        t("mm.model.fc.weight", w.dense((E, D * s * s), "f16", strong / s))
    else:
        raise ValueError(proj)
    finish(wr)
    return path


def write_family_pair(out_dir: Path, family: str | Family, name: str | None = None) -> tuple[Path, Path]:
    """Write the family's LM and mmproj into out_dir; return their paths."""
    f = FAMILIES[family] if isinstance(family, str) else family
    out_dir.mkdir(parents=True, exist_ok=True)
    name = name or f"test-{f.name}"
    return (write_family_lm(out_dir / f"{name}.gguf", f),
            write_family_mmproj(out_dir / f"{name}-mmproj.gguf", f))


__all__ = ["Family", "FAMILIES", "write_family_pair", "np"]
