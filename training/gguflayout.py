"""The GGUF keys of a LLaVA-1.5 pair (llama LM + clip/mlp mmproj), shared by the demo-model exporter and the
test-model writer (tests/modelwriter.py). Needs only the gguf package, not torch."""

from __future__ import annotations

import gguf

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def lm_header(wr: gguf.GGUFWriter, *, name: str, n_ctx: int, n_embd: int, n_layer: int, n_ff: int, n_head: int,
              n_head_kv: int, file_type: int, tokens: list[str], scores: list[float], types: list[int],
              chat_template: str | None = None, eps: float = 1e-5, rope_base: float = 10000.0) -> None:
    """Hyperparameters and SentencePiece-style tokenizer of a llama-architecture LM (BOS 1, EOS 2, UNK 0)."""
    wr.add_name(name)
    wr.add_context_length(n_ctx)
    wr.add_embedding_length(n_embd)
    wr.add_block_count(n_layer)
    wr.add_feed_forward_length(n_ff)
    wr.add_head_count(n_head)
    wr.add_head_count_kv(n_head_kv)
    wr.add_rope_dimension_count(n_embd // n_head)
    wr.add_layer_norm_rms_eps(eps)
    wr.add_rope_freq_base(rope_base)
    wr.add_file_type(file_type)
    tokenizer_header(wr, tokens, scores, types, chat_template=chat_template)


def tokenizer_header(wr: gguf.GGUFWriter, tokens: list[str], scores: list[float], types: list[int], *,
                     add_bos: bool = True, chat_template: str | None = None) -> None:
    """A SentencePiece-style tokenizer: UNK 0, BOS 1, EOS 2, BOS added by the tokenizer when add_bos."""
    wr.add_tokenizer_model("llama")
    wr.add_token_list(tokens)
    wr.add_token_scores(scores)
    wr.add_token_types(types)
    wr.add_bos_token_id(1)
    wr.add_eos_token_id(2)
    wr.add_unk_token_id(0)
    wr.add_add_bos_token(add_bos)
    wr.add_add_eos_token(False)
    if chat_template:
        wr.add_chat_template(chat_template)


def mmproj_header(wr: gguf.GGUFWriter, *, name: str, image_size: int, patch: int, width: int, ff: int,
                  proj_dim: int, heads: int, layers: int, eps: float = 1e-5) -> None:
    """The clip keys of a ViT encoder with LLaVA-1.5's 2-layer MLP projector (quick-GELU, CLIP mean/std)."""
    wr.add_name(name)
    wr.add_bool("clip.has_vision_encoder", True)
    wr.add_bool("clip.has_text_encoder", False)
    wr.add_bool("clip.has_llava_projector", True)
    wr.add_string("clip.projector_type", "mlp")
    wr.add_bool("clip.use_gelu", False)
    wr.add_uint32("clip.vision.image_size", image_size)
    wr.add_uint32("clip.vision.patch_size", patch)
    wr.add_uint32("clip.vision.embedding_length", width)
    wr.add_uint32("clip.vision.feed_forward_length", ff)
    wr.add_uint32("clip.vision.projection_dim", proj_dim)
    wr.add_uint32("clip.vision.attention.head_count", heads)
    wr.add_float32("clip.vision.attention.layer_norm_epsilon", eps)
    wr.add_uint32("clip.vision.block_count", layers)
    wr.add_array("clip.vision.image_mean", list(CLIP_MEAN))
    wr.add_array("clip.vision.image_std", list(CLIP_STD))


def finish(wr: gguf.GGUFWriter) -> None:
    """Write header, keys and tensors, and close."""
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()
