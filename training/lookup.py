"""How fast the LM learns one look-up, by answer wording: the experiment behind the model card's diagnosis.

    .venv/bin/python -m training.lookup --answer sentence --words --steps 500
    .venv/bin/python -m training.lookup --answer sentence --steps 500
    .venv/bin/python -m training.lookup --answer exist-yesno --steps 1200 --every 200

Trains a fresh LM + projector (the ViT loaded from the shipped mmproj, frozen) on one kind of question only,
at a constant learning rate, and prints the share of 200 held-out scenes' questions answered exactly
(teacher forcing, as train.py's learning curve) every --every steps. "What colour is the S?" about pictures
with 2-3 shapes: the answer wordings put the colour at different distances from a token that says which
shape: "sentence" is the world's "The circle is red." (with --words, colour predicted at "is", the shape one
back), "mid" is "The circle red." (predicted at "circle"), "short" is "Circle red." (predicted at "Circle", a
token that only ever starts these answers). The tokenizer is train.py's, which keeps "The circle is" as one
piece, so the world's own sentence has the colour predicted at a token that names the shape; --words takes
the tokenizer without those phrase pieces (word by word, as the first shipped model had). "Is there a S?" and
"How many C shapes are there?" about pictures with 1-3 shapes: "exist" and "count" answer "The circle is not
there." and "Red shapes: none." (the verdict predicted at a token that names what is asked), "exist-yesno"
and "count-sentence" "No." and "There are no red shapes.".
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import torch

from training import world
from training.heldout import held_out_scenes, scenes
from training.export import write_lm
from training.model import Config, TinyLlava, ViT
from training.probe import image_tokens, load_vit
from training.train import NAME, Tok, batches, exact_answers, lm_loss, shared_prefix, vocabulary


def _colour(answer):
    def ask(s: world.Scene, rng: random.Random) -> list[tuple[str, str]]:
        return [(f"What colour is the {o.shape}?", answer(o)) for o in s.objects
                if sum(p.shape == o.shape for p in s.objects) == 1]
    return ask


def _exist(keyed: bool):
    def ask(s: world.Scene, rng: random.Random) -> list[tuple[str, str]]:
        # half the time a shape that is there, as the world asks it
        present = sorted({o.shape for o in s.objects})
        has = rng.random() < 0.5
        shape = rng.choice(present if has else [x for x in world.SHAPES if x not in present])
        answer = f"The {shape} is {'there' if has else 'not there'}." if keyed else ("Yes." if has else "No.")
        return [(f"Is there a {shape}?", answer)]
    return ask


def _count(keyed: bool):
    def ask(s: world.Scene, rng: random.Random) -> list[tuple[str, str]]:
        c = rng.choice(list(world.COLOURS))
        k = sum(o.colour == c for o in s.objects)
        if keyed:
            return [(f"How many {c} shapes are there?", f"{c.capitalize()} shapes: {world.NUMBERS.get(k, 'none')}.")]
        return [(f"How many {c} shapes are there?",
                 f"There {'is' if k == 1 else 'are'} {world.NUMBERS.get(k, 'no')} {c} shape{'s' if k != 1 else ''}.")]
    return ask


# (questions and answers for a scene, pictures with 2-3 shapes only)
WORDINGS = {
    "sentence": (_colour(lambda o: f"The {o.shape} is {o.colour}."), True),
    "mid": (_colour(lambda o: f"The {o.shape} {o.colour}."), True),
    "short": (_colour(lambda o: f"{o.shape.capitalize()} {o.colour}."), True),
    "exist": (_exist(True), False),  # "The circle is there." / "The circle is not there."
    "exist-yesno": (_exist(False), False),  # "Yes." / "No."
    "count": (_count(True), False),  # "Red shapes: two."
    "count-sentence": (_count(False), False),  # "There are two red shapes."
}


def items(tok: Tok, vit: ViT, scs: list[world.Scene], wording: str, rng: random.Random) -> list[dict]:
    """The wording's questions about each scene, with the frozen encoder's features."""
    ask, multi = WORDINGS[wording]
    scs = [s for s in scs if len(s.objects) > 1] if multi else scs
    out = []
    for s, feats in zip(scs, image_tokens(vit, scs)):
        for q, a in ask(s, rng):
            ids, labels = tok.sample([(q, a)], True)
            out.append({"ids": ids, "labels": labels, "feats": feats, "category": wording})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--answer", choices=sorted(WORDINGS), default="sentence",
                    help='"What colour is the S?": sentence, mid, short; "Is there a S?": exist, exist-yesno; '
                         '"How many C shapes are there?": count, count-sentence (see the module docstring)')
    ap.add_argument("--models", type=Path, default=Path("assets/demo"), help="folder with the shipped mmproj")
    ap.add_argument("--steps", type=int, default=700)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--words", action="store_true", help='a tokenizer without phrase pieces ("circle", "is")')
    args = ap.parse_args()
    torch.manual_seed(0)
    rng = random.Random(0)
    mm_path = args.models / f"{NAME}-mmproj.gguf"
    vit = load_vit(str(mm_path))
    texts = [q + " " + a for s in scenes(0, 300, held_out=False) for q, a in WORDINGS[args.answer][0](s, rng)]
    vocab = vocabulary(phrases=not args.words, extra=texts)
    model = TinyLlava(Config(n_vocab=len(vocab)))
    # llama.cpp tokenizes with the GGUF's vocabulary: write an LM file that has the chosen one
    lm_path = write_lm(Path(tempfile.mkdtemp()) / f"{NAME}.gguf", model, vocab, NAME)
    tok = Tok(lm_path, mm_path, world.png(held_out_scenes(1)[0]))
    train = items(tok, vit, scenes(0, 3000, held_out=False), args.answer, rng)
    test = items(tok, vit, held_out_scenes(200, seed=777), args.answer, rng)
    tok.eng.close()
    answer = [t for t, lab in zip(train[0]["ids"], train[0]["labels"]) if lab != -100]
    print("answer tokens:", [vocab[t] for t in answer])
    prefix = shared_prefix([d["ids"] for d in train + test])
    params = list(model.lm.parameters()) + list(model.proj.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    it = batches(train, 64, rng)
    print(f"{len(train)} training and {len(test)} held-out questions, answers worded {args.answer!r}")
    t0 = time.perf_counter()
    for step in range(args.steps + 1):
        if step % args.every == 0:
            print(f"step {step}: {exact_answers(model, test)['overall']:.1%} held out exact "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
        if step == args.steps:
            break
        loss = lm_loss(model, next(it), prefix, True)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()


if __name__ == "__main__":
    main()
