"""KV-cache and embedding-cache reuse against a fresh evaluation, as token ids and first-token logits.

The pair speaks (greedy output is word pieces, never empty), so each comparison compares a real reply,
and each follow-up re-tokenizes a real assistant reply. One engine reuses everything it can; the other
evaluates every prompt from nothing (reuse_kv off: no KV prefix, no embedding cache). The last tests
break the cache on purpose and check that these comparisons notice.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from app.chat import Conversation, GenParams, Turn, fit_conversation
from app.engine import LlamaCppEngine
from app.errors import AppError
from app.images import prepare_image
from modelwriter import Shape, write_pair
from replies import said

GREEDY = GenParams(temperature=0.0, max_tokens=12, seed=7)
# Reuse changes how the prompt is split into batches, so float sums differ in their last bits: about
# 1e-7 here, against 7e-3 with one stale cell and 9e-3 for an edit ten turns back.
LOGIT_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def speaking_pair(tmp_path_factory):
    return write_pair(tmp_path_factory.mktemp("speaking"), Shape(speaks=True), "speaking-llava")


def _engines(pair, **load):
    reuser, cold = LlamaCppEngine(), LlamaCppEngine()
    reuser.load(*pair, **load)
    cold.load(*pair, **load)
    cold.reuse_kv = False
    return reuser, cold


@pytest.fixture(scope="module")
def engines(speaking_pair):
    reuser, cold = _engines(speaking_pair)
    yield reuser, cold
    reuser.close()
    cold.close()


@pytest.fixture
def pair_of(engines):
    reuser, cold = engines
    reuser.embeddings.clear()
    reuser.sessions.clear()
    return reuser, cold


def user(text, *paths):
    return Turn("user", text, [prepare_image(p) for p in paths])


def same_as_fresh(reuser, cold, conv, params=GREEDY, session=None, logits=True):
    """The reusing engine's reply to conv, checked against a fresh evaluation: ids, and first-token logits."""
    got = said(reuser.stream_reply(conv, params, session=session))
    want = said(cold.stream_reply(conv, params))
    assert want.strip() and want.stats.token_ids, "the fresh reply is empty: nothing would be compared"
    assert got.stats.token_ids == want.stats.token_ids, (got, want)
    assert got == want
    if logits:
        a = np.array(reuser.next_token_logits(conv))
        b = np.array(cold.next_token_logits(conv))
        assert np.abs(a - b).max() < LOGIT_TOLERANCE * max(1.0, np.abs(b).max())
    return got


def several_turns(reuser, cold, images):
    """Three turns (image, image, text), each reply carried into the next prompt as text."""
    conv = Conversation(turns=[user("first", images["red"])])
    for follow_up in (None, user("second", images["blue"]), Turn("user", "third")):
        if follow_up is not None:
            conv.turns.append(follow_up)
        got = same_as_fresh(reuser, cold, conv)
        if follow_up is not None:
            st = reuser.stream_reply(conv, GREEDY)  # the same prompt again: only its last token is new
            said(st)
            assert st.stats.prompt_tokens_evaluated == 1
        conv.turns.append(Turn("assistant", got))
    return conv


def test_several_turns_match_fresh_evaluation(pair_of, images):
    reuser, _ = pair_of
    conv = several_turns(*pair_of, images)
    reuser.embeddings.clear()
    conv.turns.append(Turn("user", "fourth"))
    last = same_as_fresh(*pair_of, conv)
    st = last.stats
    assert 0 < st.prompt_tokens_evaluated < st.prompt_tokens - st.image_tokens  # only the new tail


def test_regenerate_and_edit_before_an_image_match_fresh_evaluation(pair_of, images):
    reuser, cold = pair_of
    conv = Conversation(turns=[Turn("user", "hello"), Turn("assistant", "hi"), user("look", images["red"])])
    first = same_as_fresh(reuser, cold, conv)
    before = np.array(cold.next_token_logits(conv))
    again = said(reuser.stream_reply(conv, GREEDY))  # regenerate: the last prompt token is evaluated again
    assert again.stats.token_ids == first.stats.token_ids and again.stats.prompt_tokens_evaluated == 1
    conv.turns[0] = Turn("user", "hello again")  # an edit before the image
    edited = same_as_fresh(reuser, cold, conv)
    assert edited.stats.images_encoded == 0 and edited.stats.images_cached == 1  # from the embedding cache
    moved = np.abs(np.array(cold.next_token_logits(conv)) - before).max()
    assert moved > 10 * LOGIT_TOLERANCE * max(1.0, np.abs(before).max())  # the edit reached the logits


def test_the_embedding_cache_answers_like_an_encode(pair_of, images):
    reuser, cold = pair_of
    same_as_fresh(reuser, cold, Conversation(turns=[user("what colour?", images["blue"])]))
    # Another system prompt: the image is not in the KV prefix, so its embedding comes from the cache.
    other = same_as_fresh(reuser, cold, Conversation("Be brief.", [user("and the colour?", images["blue"])]))
    assert other.stats.images_cached == 1 and other.stats.images_encoded == 0
    red = same_as_fresh(reuser, cold, Conversation("Be brief.", [user("and the colour?", images["red"])]))
    assert red.stats.images_encoded == 1 and red.stats.token_ids != other.stats.token_ids


def test_stop_mid_reply_then_continue_matches_fresh(pair_of, images):
    reuser, cold = pair_of
    conv = Conversation(turns=[user("describe", images["blue"])])
    got = ""
    for delta in reuser.stream_reply(conv, replace(GREEDY, max_tokens=40)):
        got += delta
        if len(got) > 3:
            reuser.stop()
    assert got and len(got) < 40
    conv.turns += [Turn("assistant", got), Turn("user", "go on")]
    same_as_fresh(reuser, cold, conv)


def test_switching_conversations_restores_their_cache(pair_of, images):
    reuser, cold = pair_of
    a = Conversation(turns=[user("what is this?", images["red"])])
    b = Conversation(turns=[user("and this?", images["blue"])])
    a_reply = same_as_fresh(reuser, cold, a, session="a", logits=False)
    b_reply = same_as_fresh(reuser, cold, b, session="b", logits=False)
    assert reuser.sessions.bytes > 0  # a's cache was kept aside
    a.turns += [Turn("assistant", a_reply), Turn("user", "more?")]
    follow = same_as_fresh(reuser, cold, a, session="a", logits=False)
    st = follow.stats
    assert st.images_encoded == 0 and st.images_cached == 0  # nothing of a was evaluated again
    assert st.prompt_tokens_evaluated < st.prompt_tokens - st.image_tokens  # only the new tail
    b.turns += [Turn("assistant", b_reply), Turn("user", "more?")]
    same_as_fresh(reuser, cold, b, session="b")


def test_overflow_truncation_then_reuse_matches_fresh(speaking_pair, images):
    reuser, cold = _engines(speaking_pair, n_ctx=256)
    try:
        long = "the image is a red square and the colour is red " * 6
        conv = Conversation(turns=[user("look", images["red"])])
        for i in range(5):
            conv.turns += [Turn("assistant", long), Turn("user", f"question {i}")]
        fitted, dropped = fit_conversation(conv, reuser.count_tokens, 256 - 32)
        assert dropped > 0 and fitted.turns[0].images  # the newest image moved up with the kept turns
        reply = same_as_fresh(reuser, cold, fitted)
        fitted.turns += [Turn("assistant", reply), Turn("user", "and then?")]
        fitted, _ = fit_conversation(fitted, reuser.count_tokens, 256 - 32)
        same_as_fresh(reuser, cold, fitted)
    finally:
        reuser.close()
        cold.close()


# -- a wrong cache must make the comparisons above fail ----------------------------------------------------


def _skip_seq_rm(monkeypatch):
    import llama_cpp

    monkeypatch.setattr(llama_cpp, "llama_memory_seq_rm", lambda *a: True)


def _one_stale_token(monkeypatch):
    from app.engine.caches import KVCache

    real = KVCache.keep_prefix

    def one_stale_token(self, llama, new, reuse):
        shown = list(new)
        for i, (a, b) in enumerate(zip(shown, self.units, strict=False)):
            if a != b:
                if isinstance(a, int) and isinstance(b, int):
                    shown[i] = b  # the first token that differs is taken as shared: its old cell stays
                break
        return real(self, llama, shown, reuse)

    monkeypatch.setattr(KVCache, "keep_prefix", one_stale_token)


def _embedding_of_another_image(monkeypatch):
    from app.engine.caches import EmbeddingCache

    real = EmbeddingCache.get
    monkeypatch.setattr(EmbeddingCache, "get", lambda self, key: real(self, key) if real(self, key) is not None
                        else next(iter(self._items.values()), None))


@pytest.mark.parametrize("breakage", [_skip_seq_rm, _one_stale_token, _embedding_of_another_image])
def test_a_wrong_cache_fails_these_checks(pair_of, images, monkeypatch, breakage):
    reuser, cold = pair_of
    with monkeypatch.context() as m:
        breakage(m)
        with pytest.raises((AssertionError, AppError)):
            several_turns(reuser, cold, images)
            reuser.embeddings.clear()
            same_as_fresh(reuser, cold, Conversation(turns=[user("red?", images["red"])]))
            same_as_fresh(reuser, cold, Conversation(turns=[user("blue?", images["blue"])]))
    # The engine recovers once the cache is what it says.
    reuser.reuse_kv = False
    said(reuser.stream_reply(Conversation(turns=[Turn("user", "again")]), GREEDY))
    reuser.reuse_kv = True
