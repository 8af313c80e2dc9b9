"""Every chat format Iris offers renders and answers through the real engine (the tiny LLaVA-1.5 pair)."""

from __future__ import annotations

import pytest

from app.chat import Conversation, GenParams, Turn
from app.engine import CHAT_HANDLERS, LlamaCppEngine
from app.images import prepare_image
from replies import ids_of, said

IDS = GenParams(temperature=0.0, max_tokens=4, seed=7, ignore_eos=True)


@pytest.mark.parametrize("fmt", sorted(CHAT_HANDLERS))
def test_chat_format_renders_and_answers(tiny_pair, images, fmt):
    eng = LlamaCppEngine()
    eng.load(*tiny_pair, chat_format=fmt)
    try:
        conv = Conversation(system="Be brief.", turns=[Turn("user", "what colour?", [prepare_image(images["red"])])])
        text, imgs = eng.render(conv)
        assert len(imgs) == 1 and text.count("<__media__>") == 1, text
        assert "what colour?" in text and "Be brief." in text
        last = said(eng.stream_reply(conv, IDS))
        st = last.stats
        assert len(st.token_ids) == IDS.max_tokens and st.image_tokens == 16
        conv.turns += [Turn("assistant", "red."), Turn("user", "and now?")]
        last = said(eng.stream_reply(conv, IDS))
        assert last.stats.prompt_tokens_evaluated < last.stats.prompt_tokens  # the follow-up reuses the cache
    finally:
        eng.close()
