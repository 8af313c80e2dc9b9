"""Train Iris's demo model with LLaVA's recipe on the synthetic shapes world, and export it as GGUF.

    .venv/bin/pip install -e '.[train,test]'        # torch 2.13.0 (CPU) and gguf; never a runtime dependency
    .venv/bin/python -m training.train --out assets/demo

Steps (seeded, reproducible): CLIP-style contrastive pre-training of the ViT against a small text tower,
then frozen; LM pre-training on the world's text (with questions answered from a written description of
the scene); stage 1 trains only the projector on image-caption pairs; stage 2 trains LM + projector on
instruction data (conversation, detailed description, simple reasoning; extra look-up questions for
pictures with 2-3 shapes). Token ids come from llama.cpp's own tokenizer on the exported vocabulary, so
training and inference see exactly the same sequences. Writes the two GGUF files, reference logits, and
training figures (train-report.json) and the model card (training/card.py) into --out.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
import json
import os
import random
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from training import world
from training.heldout import held_out_scenes, scenes
from training.card import render as render_card
from training.export import build_vocab, write_lm, write_mmproj
from training.model import Config, TextEncoder, TinyLlava, count_params, preprocess

NAME = "iris-demo-shapes"
CAPTION_PROMPTS = ("Give a brief caption.", "What is in this picture?", "Caption this image.")


class Tok:
    """llama.cpp's tokenization of chat conversations, through Iris's engine on the exported vocabulary."""

    def __init__(self, lm: Path, mm: Path, dummy_png: bytes):
        from app.engine import LlamaCppEngine
        from app.images import prepare_image

        self.eng = LlamaCppEngine()
        self.eng.load(lm, mm, chat_format="llava-1-5", n_ctx=2048)
        self.img = prepare_image(dummy_png, name="x.png")

    def sample(self, pairs: list[tuple[str, str]], with_image: bool) -> tuple[list[int], list[int]]:
        """(ids with -1 for image slots, labels with -100 outside the answers) for a conversation."""
        from app.chat import Conversation, Turn

        turns = []
        spans = []
        for i, (q, a) in enumerate(pairs):
            turns.append(Turn("user", q, [self.img] if (with_image and i == 0) else []))
            start = len(self._ids(Conversation(turns=list(turns))))
            turns.append(Turn("assistant", a))
            full = self._ids(Conversation(turns=list(turns)), strip_prompt=True)
            spans.append((start, len(full)))
        ids = full
        labels = [-100] * len(ids)
        for s, e in spans:
            for j in range(s, e):
                labels[j] = ids[j]
        return ids, labels

    def prompt(self, question: str, with_image: bool = True) -> list[int]:
        from app.chat import Conversation, Turn

        return self._ids(Conversation(turns=[Turn("user", question, [self.img] if with_image else [])]))

    def _ids(self, conv, strip_prompt: bool = False) -> list[int]:
        text, _ = self.eng.render(conv)
        if strip_prompt:
            assert text.endswith("ASSISTANT:")
            text = text[: -len("ASSISTANT:")]
        units = self.eng.prompt_units(conv, text)
        out: list[int] = []
        for u in units:
            out.extend([-1] * u[1] if isinstance(u, tuple) else [u])
        return out


def batches(data: list, bs: int, rng: random.Random):
    while True:
        idx = list(range(len(data)))
        rng.shuffle(idx)
        for i in range(0, len(idx) - bs + 1, bs):
            yield [data[j] for j in idx[i:i + bs]]


def pad(seqs: list[list[int]], value: int) -> torch.Tensor:
    n = max(len(s) for s in seqs)
    return torch.tensor([s + [value] * (n - len(s)) for s in seqs])


def lm_loss(model: TinyLlava, batch: list[dict], prefix: int, with_image: bool) -> torch.Tensor:
    """Next-token loss on the answers; the shared prompt prefix is computed once and broadcast."""
    ids = pad([b["ids"] for b in batch], 0)
    labels = pad([b["labels"] for b in batch], -100)
    pre = model.lm.embed(ids[:1, :prefix])
    _, past = model.lm(pre)
    # The ViT is frozen by then: its patch features were computed once, only the projector runs here.
    feats = torch.stack([b["feats"] for b in batch]) if with_image else None
    if feats is not None:
        # The last image token is CLIP's class token (see model.py): a summary of the whole picture that says
        # which colours and shapes are present but not which goes with which. Trained on it, the LM answered
        # from it (swapping it for another picture's changed 74 % of answers) and guessed bindings. Each
        # sample gets another picture's class token, so the LM learns to read the patches.
        feats = torch.cat([feats[:, :-1], feats.roll(1, 0)[:, -1:]], 1)
    x = model.embed(ids[:, prefix:], None, feats)
    logits, _ = model.lm(x, start=prefix, past=past)
    tgt = labels[:, prefix + 1:]
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100)


def pixels_of(batch: list[dict]) -> torch.Tensor:
    return torch.stack([b["pixels"] for b in batch])


@torch.no_grad()
def greedy(model: TinyLlava, ids: list[int], pixels: torch.Tensor | None, vocab: list[str], max_new: int = 32) -> str:
    seq = list(ids)
    out = []
    for _ in range(max_new):
        x = model.embed(torch.tensor([seq]), pixels[None] if pixels is not None else None)
        logits, _ = model.lm(x)
        t = int(logits[0, -1].argmax())
        if t == 2:
            break
        out.append(t)
        seq.append(t)
    return detok(out, vocab)


def detok(ids: list[int], vocab: list[str]) -> str:
    text = ""
    for t in ids:
        p = vocab[t]
        if p.startswith("<0x") and len(p) == 6:
            text += chr(int(p[3:5], 16))
        else:
            text += p.replace("\u2581", " ")
    return text.strip()


@torch.no_grad()
def exact_answers(model: TinyLlava, items: list[dict]) -> dict:
    """Share of greedy answers that are exactly right, per category, computed by teacher forcing.

    Greedy decoding reproduces the reference answer iff every reference token (and the closing </s>) is the
    argmax given the ones before it, so one batched forward pass per 128 questions gives the same figure as
    generating: 1,528 questions take seconds instead of minutes, often enough to draw a learning curve.
    """
    model.eval()
    per: dict[str, list[int]] = {}
    for i in range(0, len(items), 128):
        chunk = items[i:i + 128]
        ids, labels = pad([b["ids"] for b in chunk], 0), pad([b["labels"] for b in chunk], -100)
        logits, _ = model.lm(model.embed(ids, None, torch.stack([b["feats"] for b in chunk])))
        tgt = labels[:, 1:]
        right = ((logits[:, :-1].argmax(-1) == tgt) | (tgt == -100)).all(1)
        for b, r in zip(chunk, right.tolist()):
            per.setdefault(b["category"], []).append(int(r))
    model.train()
    return shares(per)


def evaluate(model: TinyLlava, tok: Tok, vocab: list[str], items: list[dict]) -> dict:
    model.eval()
    per: dict[str, list[int]] = {}
    for it in items:
        got = greedy(model, it["prompt"], it["pixels"], vocab)
        per.setdefault(it["category"], []).append(int(got == it["answer"]))
    model.train()
    return shares(per)


def shares(per: dict[str, list[int]]) -> dict:
    """Share right per category (1/0 per question) and overall."""
    res = {k: sum(v) / len(v) for k, v in per.items()}
    res["overall"] = sum(sum(v) for v in per.values()) / sum(len(v) for v in per.values())
    return res


def shared_prefix(seqs: list[list[int]]) -> int:
    """How many leading token ids (before any image slot) every sequence shares: computed once per batch."""
    n = 0
    while all(len(s) > n and s[n] == seqs[0][n] and s[n] >= 0 for s in seqs):
        n += 1
    return n


def vocabulary(phrases: bool = True, extra: list[str] = ()) -> list[str]:
    """The exported tokenizer's pieces: every word the world, the Vicuna prompt, the caption prompts (and
    extra texts) use, and (phrases) the world's word groups kept whole (world.phrases)."""
    from app.prompts import VICUNA_SYSTEM

    return build_vocab([world.vocabulary_text(), VICUNA_SYSTEM, "USER ASSISTANT Give a brief caption "
                        "What is in this picture Caption this image"] + list(CAPTION_PROMPTS) + list(extra),
                       world.phrases() if phrases else [])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("assets/demo"))
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every step count (0.05 for a smoke run)")
    args = ap.parse_args()
    t_all = time.perf_counter()
    torch.manual_seed(0)
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    torch.set_num_threads(len(cores))
    rng = random.Random(0)
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"steps": {}, "minutes": {}, "accuracy": {}}

    vocab = vocabulary()
    cfg = Config(n_vocab=len(vocab))
    model = TinyLlava(cfg)
    tmp = Path(tempfile.mkdtemp(prefix="iris-train-"))
    lm_path, mm_path = tmp / f"{NAME}.gguf", tmp / f"{NAME}-mmproj.gguf"
    write_lm(lm_path, model, vocab, NAME)
    write_mmproj(mm_path, model, NAME)
    train_scenes = scenes(0, int(6000 * max(args.scale, 0.05)), held_out=False)
    tok = Tok(lm_path, mm_path, world.png(train_scenes[0]))

    def px(scene: world.Scene) -> torch.Tensor:
        return preprocess(world.draw(scene), cfg.image_size)

    t0 = time.perf_counter()
    caps, inst, text_only = [], [], []
    for sc in train_scenes:
        p = px(sc)
        ids, labels = tok.sample([(rng.choice(CAPTION_PROMPTS), world.caption(sc))], True)
        caps.append({"ids": ids, "labels": labels, "pixels": p, "caption": world.caption(sc)})
        qas = world.questions(sc, rng)
        rng.shuffle(qas)
        for k in range(2):  # two conversations per scene, 2-4 turns each
            chosen = qas[k * 4: k * 4 + rng.randint(2, 4)] or qas[:2]
            ids, labels = tok.sample([(q.question, q.answer) for q in chosen], True)
            inst.append({"ids": ids, "labels": labels, "pixels": p})
        # Which colour goes with which shape is the hard part, and one answer token in a whole conversation
        # needed it: scenes with 2-3 shapes get two more conversations of only such questions (79 % -> 86 %
        # held out through llama.cpp), and every scene one of counts, "Is there ...?", "Where is ...?" and
        # left-of questions.
        binding = [q for q in qas if q.category in ("colour", "shape", "size") or q.question.startswith("Where")]
        for k in range(2 if len(sc.objects) > 1 and len(binding) >= 2 else 0):
            chosen = rng.sample(binding, min(len(binding), rng.randint(2, 4)))
            ids, labels = tok.sample([(q.question, q.answer) for q in chosen], True)
            inst.append({"ids": ids, "labels": labels, "pixels": p})
        hard = [q for q in qas if q.category in ("count", "reasoning") or q.question.startswith(("Where", "Is there"))]
        chosen = rng.sample(hard, min(len(hard), rng.randint(2, 4)))
        ids, labels = tok.sample([(q.question, q.answer) for q in chosen], True)
        inst.append({"ids": ids, "labels": labels, "pixels": p})
        q = rng.choice(qas)
        ids, labels = tok.sample([(q.question, q.answer)], False)
        text_only.append({"ids": ids, "labels": labels})
        ids, labels = tok.sample([(rng.choice(CAPTION_PROMPTS), world.caption(sc))], False)
        text_only.append({"ids": ids, "labels": labels})
        # In-context question answering, the scene's description where the image will go: the LM learns to
        # find the object asked about and copy what is said of it, as a real chat LM already can before
        # LLaVA's stage 1 (stage-1 accuracy 33 % -> 52 %).
        pairs = [(q.question, q.answer) for q in qas[:rng.randint(2, 4)]]
        pairs[0] = (world.description(sc) + "\n" + pairs[0][0], pairs[0][1])
        ids, labels = tok.sample(pairs, False)
        text_only.append({"ids": ids, "labels": labels})
    everything = [d["ids"] for d in caps + inst + text_only]
    prefix = shared_prefix(everything)
    report["data"] = {"scenes": len(train_scenes), "captions": len(caps), "instructions": len(inst),
                      "text": len(text_only), "shared_prefix_tokens": prefix,
                      "tokenize_s": round(time.perf_counter() - t0, 1)}
    print("data", report["data"], flush=True)

    # The learning curve's sample: every question about 100 held-out scenes (about 1,500), the sample the
    # model card's comparisons between training runs use.
    qrng = random.Random(5)
    curve_items = []
    for sc in held_out_scenes(100, seed=777):
        p = px(sc)
        for q in world.questions(sc, qrng):
            ids, labels = tok.sample([(q.question, q.answer)], True)
            curve_items.append({"ids": ids, "labels": labels, "pixels": p, "category": q.category})
    report["curve"] = {}

    def curve(label: str) -> None:
        report["curve"][label] = exact_answers(model, curve_items)
        print("held-out exact answers", label, report["curve"][label], flush=True)

    held = scenes(12345, 30, held_out=True)
    hrng = random.Random(7)
    eval_items = []
    for sc in held:
        p = px(sc)
        for q in hrng.sample(world.questions(sc, hrng), 4):
            eval_items.append({"prompt": tok.prompt(q.question), "pixels": p, "answer": q.answer,
                               "category": q.category, "scene": sc, "question": q.question})

    def run(name: str, params: list, steps: int, lr: float, loss_fn, data: list, bs: int, every: int = 0) -> None:
        steps = max(1, int(steps * args.scale))
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
        it = batches(data, bs, rng)
        t = time.perf_counter()
        for step in range(steps):
            loss = loss_fn(next(it))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            if step % 50 == 0 or step == steps - 1:
                print(f"{name} {step}/{steps} loss {loss.item():.3f} {time.perf_counter() - t:.0f}s", flush=True)
            if every and (step + 1) % every == 0 and step < steps - 1:
                t0 = time.perf_counter()
                curve(f"{name} {step + 1}")
                t += time.perf_counter() - t0  # the stage's minutes leave out its learning-curve checks
        report["steps"][name] = steps
        report["minutes"][name] = round((time.perf_counter() - t) / 60, 2)

    # 1. CLIP: the ViT against a small text tower on captions, then frozen.
    words = sorted({w for d in caps for w in d["caption"].lower().replace(".", "").replace(",", "").split()})
    wid = {w: i + 1 for i, w in enumerate(words)}
    text_enc = TextEncoder(len(words) + 1)
    proj_v = torch.nn.Linear(cfg.v_width, 96, bias=False)
    scale = torch.nn.Parameter(torch.tensor(2.6))

    def clip_loss(b: list[dict]) -> torch.Tensor:
        img = F.normalize(proj_v(model.vit.pooled(pixels_of(b))), dim=-1)
        seqs = [[wid[w] for w in d["caption"].lower().replace(".", "").replace(",", "").split()] for d in b]
        ids = pad(seqs, 0)
        txt = F.normalize(text_enc(ids, ids > 0), dim=-1)
        logits = img @ txt.t() * scale.exp().clamp(max=100)
        target = torch.arange(len(b))
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2

    vit_params = list(model.vit.parameters()) + list(text_enc.parameters()) + list(proj_v.parameters()) + [scale]
    run("clip", vit_params, 2000, 2e-3, clip_loss, caps, 128)
    for p in model.vit.parameters():
        p.requires_grad_(False)
    model.vit.eval()
    with torch.no_grad():
        for group in (caps, inst, curve_items):
            for i in range(0, len(group), 256):
                chunk = group[i:i + 256]
                f = model.vit.patch_features(pixels_of(chunk))
                for d, fi in zip(chunk, f):
                    d["feats"] = fi

    # 2. LM pre-training on the world's text (no images).
    run("lm", list(model.lm.parameters()), 400, 3e-3, lambda b: lm_loss(model, b, prefix, False), text_only, 64)

    model.eval()
    right = [greedy(model, tok.prompt(world.description(it["scene"]) + "\n" + it["question"], False), None, vocab)
             == it["answer"] for it in eval_items]
    model.train()
    report["accuracy"]["lm_in_context"] = sum(right) / len(right)
    print("in-context answers after LM pre-training", report["accuracy"]["lm_in_context"], flush=True)

    # 3. Stage 1: only the projector, on image-caption pairs.
    for p in model.lm.parameters():
        p.requires_grad_(False)
    run("stage1", list(model.proj.parameters()), 300, 3e-3,
        lambda b: lm_loss(model, b, prefix, True), caps, 64)
    report["accuracy"]["stage1"] = evaluate(model, tok, vocab, eval_items)
    curve("stage1")
    print("stage1 accuracy", report["accuracy"]["stage1"], flush=True)

    # 4. Stage 2: LM + projector on instruction data.
    for p in model.lm.parameters():
        p.requires_grad_(True)
    run("stage2", list(model.lm.parameters()) + list(model.proj.parameters()), 3600, 2e-3,
        lambda b: lm_loss(model, b, prefix, True), inst, 64, every=1200)
    report["accuracy"]["stage2"] = evaluate(model, tok, vocab, eval_items)
    curve("stage2")
    print("stage2 accuracy", report["accuracy"]["stage2"], flush=True)

    # Export: f16 matrices, as the GGUF holds them; references are computed from the rounded weights.
    tok.eng.close()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2 and not name.endswith(("embed.weight", ".pos")):
                p.copy_(p.half().float())
    lm_out, mm_out = args.out / f"{NAME}.gguf", args.out / f"{NAME}-mmproj.gguf"
    write_lm(lm_out, model, vocab, NAME)
    write_mmproj(mm_out, model, NAME)
    tok = Tok(lm_out, mm_out, world.png(train_scenes[0]))
    refs = []
    model.eval()
    for i, sc in enumerate(scenes(999, 3, held_out=True)):
        sc = world.Scene(sc.objects, sc.background, cfg.image_size, sc.seed)  # the encoder's own size: no resize
        q = ("What colour is the {}?".format(sc.objects[0].shape), "Describe the image.", "How many shapes are there?")[i]
        ids = tok.prompt(q)
        with torch.no_grad():
            x = model.embed(torch.tensor([ids]), preprocess(world.draw(sc), cfg.image_size)[None])
            logits, _ = model.lm(x)
        refs.append({"scene": {"objects": [vars(o) for o in sc.objects], "background": sc.background,
                               "side": sc.side, "seed": sc.seed},
                     "question": q, "logits": [round(float(v), 5) for v in logits[0, -1]]})
    tok.eng.close()
    (args.out / "reference-logits.json").write_text(json.dumps(refs))
    report["params"] = {"vit": count_params(model.vit), "projector": count_params(model.proj),
                        "lm": count_params(model.lm), "text_tower (not exported)": count_params(text_enc)}
    report["files"] = {p.name: p.stat().st_size for p in (lm_out, mm_out)}
    report["config"] = asdict(cfg)
    report["eval_questions"] = len(eval_items)
    report["minutes"]["total"] = round((time.perf_counter() - t_all) / 60, 2)
    (args.out / "train-report.json").write_text(json.dumps(report, indent=1))
    (args.out / "MODEL_CARD.md").write_text(render_card(report, None))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
