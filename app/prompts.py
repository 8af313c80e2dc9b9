"""The prompt each model family was trained on, rendered from a Conversation with media markers.

llama-cpp-python's handlers carry templates that drift from the models' own (its Jinja settings eat
the newlines of ChatML, its LLaVA-1.6 template has no roles at all), so Iris renders the formats of
the families in its catalog itself, following each model's reference conversation code or the chat
template its GGUF carries. mtmd puts the family's image wrapping (<|vision_start|>, <image>…</image>,
<start_of_image>, tiles) around each marker itself, so the prompt holds only the marker.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from app.chat import Conversation

# Chat formats Iris knows, and the llama-cpp-python handler class behind each.
CHAT_HANDLERS = {
    "llava-1-5": "Llava15ChatHandler",
    "llava-1-6": "Llava16ChatHandler",
    "llava-1-6-mistral": "Llava16ChatHandler",
    "moondream": "MoondreamChatHandler",
    "nanollava": "NanoLlavaChatHandler",
    "llama-3-vision-alpha": "Llama3VisionAlphaChatHandler",
    "minicpm-v-2.6": "MiniCPMv26ChatHandler",
    "qwen2.5-vl": "Qwen25VLChatHandler",
    "mtmd": "MTMDChatHandler",
}
# Images one message may carry, per chat format (the catalog can say otherwise per model).
MAX_IMAGES = {
    "llava-1-5": 4, "llava-1-6": 4, "llava-1-6-mistral": 4, "moondream": 1, "nanollava": 1,
    "llama-3-vision-alpha": 1,
    "minicpm-v-2.6": 4, "qwen2.5-vl": 8, "mtmd": 8,
}

VICUNA_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
QWEN_SYSTEM = "You are a helpful assistant."


def vicuna(conv: Conversation, marker: str) -> str:
    """LLaVA's conv_vicuna_v1 (LLaVA-1.5, LLaVA-1.6 Vicuna, BakLLaVA): 'SYSTEM USER: <image>\\nQ ASSISTANT: A</s>'."""
    out = (conv.system or VICUNA_SYSTEM) + " "
    for turn in conv.turns:
        if turn.role == "user":
            out += "USER: " + turn.media(marker, "\n") + turn.text + " "
        else:
            out += f"ASSISTANT: {turn.text}</s>"
    return out + "ASSISTANT:"


def mistral_instruct(conv: Conversation, marker: str) -> str:
    """LLaVA's conv_mistral_instruct (LLaVA-1.6 Mistral): '[INST] <image>\\nQ [/INST] A</s>'; BOS from the tokenizer."""
    out = ""
    first = True
    for turn in conv.turns:
        if turn.role == "user":
            msg = turn.media(marker, "\n") + turn.text
            if first and conv.system:
                msg = f"<<SYS>>\n{conv.system}\n<</SYS>>\n\n{msg}"
            out += f"[INST] {msg} [/INST]"
            first = False
        else:
            out += f" {turn.text}</s>"
    return out


def moondream(conv: Conversation, marker: str) -> str:
    """Moondream2's prompt: the image, then 'Question: Q\\n\\nAnswer: A\\n\\n' per turn; a system text leads."""
    out = ""
    first = True
    for turn in conv.turns:
        if turn.role == "user":
            out += turn.media(marker, "\n\n")
            text = f"{conv.system}\n\n{turn.text}" if first and conv.system else turn.text
            out += f"Question: {text}\n\nAnswer:"
            first = False
        else:
            out += f" {turn.text}\n\n"
    return out


def chatml(conv: Conversation, marker: str, *, image_sep: str, default_system: str | None = QWEN_SYSTEM) -> str:
    """ChatML (Qwen, nanoLLaVA, MiniCPM-V): '<|im_start|>role\\ntext<|im_end|>\\n', images before the text."""
    out = ""
    system = conv.system or default_system
    if system:
        out += f"<|im_start|>system\n{system}<|im_end|>\n"
    for turn in conv.turns:
        body = turn.media(marker, image_sep) + turn.text if turn.role == "user" else turn.text
        out += f"<|im_start|>{turn.role}\n{body}<|im_end|>\n"
    return out + "<|im_start|>assistant\n"


# The families' renderers, by chat format. 'mtmd' (the GGUF's own template) is rendered by render_template.
RENDERERS = {
    "llava-1-5": vicuna,
    "llava-1-6": vicuna,
    "llava-1-6-mistral": mistral_instruct,
    "moondream": moondream,
    # nanoLLaVA: '<image>\nQ' as the user content of Qwen1.5's template (default system prompt included).
    "nanollava": lambda conv, marker: chatml(conv, marker, image_sep="\n"),
    # MiniCPM-V 2.6: '(<image>./</image>)\nQ'; mtmd writes the <image>…</image> and slices itself.
    "minicpm-v-2.6": lambda conv, marker: chatml(conv, marker, image_sep="\n"),
    # Qwen2.5-VL: '<|vision_start|><|image_pad|><|vision_end|>Q'; mtmd writes the vision tokens itself.
    "qwen2.5-vl": lambda conv, marker: chatml(conv, marker, image_sep=""),
}


def messages(conv: Conversation, marker: str, *, parts: bool) -> list[dict[str, Any]]:
    """OpenAI-style messages with each image as a text part holding the marker (as mtmd's handler does).

    parts=False gives text-only messages plain string content; True gives every message a content list,
    for templates that read content[0]['type'] (SmolVLM).
    """
    out: list[dict[str, Any]] = []
    if conv.system:
        out.append({"role": "system", "content": [{"type": "text", "text": conv.system}] if parts else conv.system})
    for turn in conv.turns:
        if turn.images or parts:
            content = [{"type": "text", "text": f"{label} {marker}" if label else marker}
                       for label, _ in turn.labelled()]
            out.append({"role": turn.role, "content": content + [{"type": "text", "text": turn.text}]})
        else:
            out.append({"role": turn.role, "content": turn.text})
    return out


@functools.lru_cache(maxsize=16)
def compile_template(source: str) -> Any:
    """A chat template compiled once (sandboxed Jinja, as llama.cpp's tojson and loop controls); ValueError if not."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = lambda v, **kw: json.dumps(v, ensure_ascii=False, **kw)
    try:
        return env.from_string(source)
    except jinja2.TemplateError as exc:
        raise ValueError(f"the model's chat template does not parse ({exc})") from None


def _raise_exception(message: str) -> None:
    raise ValueError(message)


def render_template(template: str, conv: Conversation, marker: str, *, bos: str = "", eos: str = "") -> str:
    """Render a GGUF's chat template (Jinja, sandboxed); raise ValueError if it fails or drops the conversation."""
    import jinja2

    tmpl = compile_template(template)
    texts = [conv.system] + [t.text for t in conv.turns]
    last = ""
    # Plain strings first (what most templates expect); content lists where a template drops them.
    for parts in (False, True):
        try:
            text = tmpl.render(messages=messages(conv, marker, parts=parts), add_generation_prompt=True,
                               bos_token=bos, eos_token=eos, raise_exception=_raise_exception)
        except (jinja2.TemplateError, TypeError, ValueError, KeyError, IndexError) as exc:
            last = str(exc)
            continue
        n_images = sum(len(t.images) for t in conv.turns)
        if all(x.strip() in text for x in texts if x and x.strip()) and text.count(marker) == n_images:
            return text
        last = "it left out part of the conversation"
    raise ValueError(f"the model's chat template cannot render this conversation ({last})")


__all__ = ["CHAT_HANDLERS", "MAX_IMAGES", "RENDERERS", "compile_template", "render_template", "messages", "vicuna",
           "mistral_instruct", "moondream", "chatml", "VICUNA_SYSTEM", "QWEN_SYSTEM"]
