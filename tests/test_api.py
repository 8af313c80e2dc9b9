"""Iris's OpenAI-compatible API, driven by the real `openai` package against the real engine on the tiny pair."""

from __future__ import annotations

import base64
import http.client
import json

import openai
import pytest
from servekit import serving

from app.chat import GenParams
from app.images import prepare_image
from app.services import build_services


@pytest.fixture
def iris(models_dir, request):
    """Iris serving on a free port with the tiny pair loaded; yields (base_url, services, key)."""
    key = getattr(request, "param", None)
    services = build_services(models_dir, with_history=True)
    services.params = GenParams(temperature=0.0, max_tokens=12, seed=1)
    services.load("tiny-llava")
    with serving(services, 8100, key) as port:
        yield f"http://127.0.0.1:{port}/v1", services, key


def client(base: str, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=base, api_key=key or "none", max_retries=0, timeout=60)


def image_part(path) -> dict:
    data = base64.b64encode(prepare_image(path).png).decode()
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}


def ask(text: str, *images) -> list[dict]:
    return [{"role": "user", "content": [*map(image_part, images), {"type": "text", "text": text}]}]


def test_a_streamed_reply_with_an_image_matches_the_whole_one(iris, images):
    base, services, _ = iris
    c = client(base)
    listed = {m.id: m.model_extra for m in c.models.list().data}
    assert listed["tiny-llava"]["iris"]["loaded"] and "vision" in listed["tiny-llava"]["capabilities"]
    whole = c.chat.completions.create(model="tiny-llava", messages=ask("What colour?", images["red"]),
                                      max_tokens=12, temperature=0, seed=1)
    text = whole.choices[0].message.content
    assert text and whole.usage.prompt_tokens > 16 and whole.usage.completion_tokens > 0
    assert whole.model_extra["timings"]["images_encoded"] == 1
    services.engine.embeddings.clear()
    services.engine.reuse_kv = False  # the same prompt evaluated afresh
    chunks = list(c.chat.completions.create(model="tiny-llava", messages=ask("What colour?", images["red"]),
                                            max_tokens=12, temperature=0, seed=1, stream=True,
                                            stream_options={"include_usage": True}))
    streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert streamed == text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] in ("stop", "length")


def test_a_follow_up_evaluates_only_the_new_tail(iris, images):
    base, _, _ = iris
    c = client(base)
    messages = ask("What colour?", images["red"])
    first = c.chat.completions.create(model="tiny-llava", messages=messages, max_tokens=8, temperature=0,
                                      extra_body={"iris": {"session": "s1"}})
    messages += [{"role": "assistant", "content": first.choices[0].message.content},
                 {"role": "user", "content": "And the shape?"}]
    second = c.chat.completions.create(model="tiny-llava", messages=messages, max_tokens=8, temperature=0,
                                       extra_body={"iris": {"session": "s1"}})
    cached = second.usage.prompt_tokens_details.cached_tokens
    evaluated = second.model_extra["timings"]["prompt_n"]
    # Turn 1's whole prompt (system, image, question) comes from the cache; only the reply and question 2 are new.
    assert cached >= first.usage.prompt_tokens and cached + evaluated == second.usage.prompt_tokens
    assert second.model_extra["timings"]["images_encoded"] == 0


def test_stop_strings_end_the_reply_before_them(iris, images):
    base, _, _ = iris
    c = client(base)
    full = c.chat.completions.create(model="tiny-llava", messages=ask("What colour?", images["red"]),
                                     max_tokens=12, temperature=0).choices[0].message.content
    cut = full[len(full) // 2:][:2]
    assert cut.strip(), full
    short = c.chat.completions.create(model="tiny-llava", messages=ask("What colour?", images["red"]),
                                      max_tokens=12, temperature=0, stop=[cut]).choices[0]
    assert cut not in short.message.content and full.startswith(short.message.content)
    assert short.finish_reason == "stop"


def test_refusals_are_openai_errors_that_say_what_to_do(iris, images, tmp_path):
    base, services, _ = iris
    c = client(base)
    too_many = ask("all of them", *[images["red"]] * (services.engine.model.max_images + 1))
    with pytest.raises(openai.BadRequestError, match="at most") as e:
        c.chat.completions.create(model="tiny-llava", messages=too_many)
    assert e.value.code == "too_many_images"
    web = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                                        {"type": "text", "text": "what?"}]}]
    with pytest.raises(openai.BadRequestError, match="does not fetch images from the internet"):
        c.chat.completions.create(model="tiny-llava", messages=web)
    junk = [{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "data:image/png;base64," + base64.b64encode(b"not an image").decode()}}]}]
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="tiny-llava", messages=junk)
    assert e.value.code == "invalid_image"
    with pytest.raises(openai.NotFoundError, match="no model called"):
        c.chat.completions.create(model="gpt-5", messages=ask("hi"))
    with pytest.raises(openai.BadRequestError, match="last message must be the user"):
        c.chat.completions.create(model="tiny-llava", messages=[{"role": "assistant", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="context"):
        c.chat.completions.create(model="tiny-llava", messages=ask("red " * 3000))
    services.close()
    with pytest.raises(openai.APIStatusError, match="No model is loaded") as e:
        c.chat.completions.create(model="", messages=ask("hi"))
    assert e.value.status_code == 503


@pytest.mark.parametrize("iris", ["k3y-for-tests"], indirect=True)
def test_the_api_takes_the_servers_key(iris):
    base, _, key = iris
    with pytest.raises(openai.AuthenticationError):
        client(base, "wrong").models.list()
    assert "tiny-llava" in [m.id for m in client(base, key).models.list().data]


def test_a_foreign_page_cannot_call_the_api(iris):
    base, _, _ = iris
    host, port = base.split("//")[1].split("/")[0].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/v1/chat/completions", body=json.dumps({"messages": ask("hi")}),
                 headers={"Origin": "http://evil.example", "Content-Type": "application/json"})
    assert conn.getresponse().status == 403


def test_closing_the_stream_cancels_that_reply_only(iris, images):
    """Two clients: one closes its stream; its reply ends there (not at its 1,900 tokens), the other's runs on."""
    import threading

    base, services, _ = iris
    c = client(base)
    engine = services.engine
    replies = []
    real = engine.stream_reply

    def spy(*args, **kwargs):
        replies.append(real(*args, **kwargs))
        return replies[-1]

    engine.stream_reply = spy
    stream = c.chat.completions.create(model="tiny-llava", messages=ask("Tell me everything", images["red"]),
                                       max_tokens=1900, temperature=0, stream=True, extra_body={"ignore_eos": True})
    got = [next(stream) for _ in range(4)]
    other: dict = {}

    def second() -> None:  # waits for the engine, then runs to its own end
        r = c.chat.completions.create(model="tiny-llava", messages=ask("And you?"), max_tokens=20, temperature=0,
                                      extra_body={"ignore_eos": True})
        other["n"] = r.usage.completion_tokens

    t = threading.Thread(target=second)
    t.start()
    stream.close()
    t.join(timeout=120)
    assert other["n"] == 20  # the other client's reply was not stopped with it
    assert len(got) == 4 and len(replies) == 2
    first = replies[0].stats
    assert first.finish_reason == "stopped" and 4 <= first.completion_tokens < 1900


def test_stop_in_the_app_ends_the_apps_reply_only(iris, images):
    """An API client and the app at once: each gets its own tokens, and the app's Stop leaves the API's reply."""
    import threading

    base, services, _ = iris
    c = client(base)
    kwargs = dict(model="tiny-llava", messages=ask("Tell me everything", images["red"]), max_tokens=600,
                  temperature=0, seed=1, extra_body={"ignore_eos": True})
    alone = c.chat.completions.create(**kwargs).choices[0].message.content
    got: dict = {}

    def api() -> None:
        got["text"] = "".join(ch.choices[0].delta.content or "" for ch in
                              c.chat.completions.create(stream=True, **kwargs) if ch.choices)

    t = threading.Thread(target=api)
    t.start()
    services.params = GenParams(temperature=0.0, max_tokens=600, seed=1, ignore_eos=True)
    cid = services.ask(None, "And you?")
    mine = services.reply(cid)
    text = ""
    for delta in mine:
        text += delta
        if len(mine.stats.token_ids) >= 5:
            services.stop()  # the page's Stop
    t.join(timeout=120)
    assert alone and got["text"] == alone  # all 600 of its tokens, none of the app's among them
    assert mine.stats.finish_reason == "stopped" and len(mine.stats.token_ids) < 600
    assert services.history.get(cid).messages[-1].text == text
