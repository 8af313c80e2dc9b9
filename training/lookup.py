"""How fast the LM learns one look-up, by answer wording: the experiment behind the model card's diagnosis.

    .venv/bin/python -m training.lookup --answer sentence --words --steps 500
    .venv/bin/python -m training.lookup --answer sentence --steps 500

Trains a fresh LM + projector (the ViT loaded from the shipped mmproj, frozen) on one question only, "What
colour is the S?" about training pictures with 2-3 shapes, at a constant learning rate, and prints the share
of 200 held-out questions answered exactly (teacher forcing, as train.py's learning curve) every --every
steps. The answer wordings put the colour at different distances from a token that says which shape:
"sentence" is the world's "The circle is red." (with --words, colour predicted at "is", the shape one back), "mid"
is "The circle red." (predicted at "circle"), "short" is "Circle red." (predicted at "Circle", a token that
only ever starts these answers). The tokenizer is train.py's, which keeps "circle is" as one piece, so the
world's own sentence has the colour predicted at a token that names the shape; --words takes the tokenizer
without those phrase pieces (word by word, as the first shipped model had).
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

WORDINGS = {
    "sentence": lambda o: f"The {o.shape} is {o.colour}.",
    "mid": lambda o: f"The {o.shape} {o.colour}.",
    "short": lambda o: f"{o.shape.capitalize()} {o.colour}.",
}


def items(tok: Tok, vit: ViT, scs: list[world.Scene], answer) -> list[dict]:
    """One sample per uniquely-named shape in each 2-3-shape scene, with the frozen encoder's features."""
    scs = [s for s in scs if len(s.objects) > 1]
    out = []
    for s, feats in zip(scs, image_tokens(vit, scs)):
        for o in s.objects:
            if sum(p.shape == o.shape for p in s.objects) == 1:
                ids, labels = tok.sample([(f"What colour is the {o.shape}?", answer(o))], True)
                out.append({"ids": ids, "labels": labels, "feats": feats, "category": "colour"})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--answer", choices=sorted(WORDINGS), default="sentence")
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
    vocab = vocabulary(phrases=not args.words)
    model = TinyLlava(Config(n_vocab=len(vocab)))
    # llama.cpp tokenizes with the GGUF's vocabulary: write an LM file that has the chosen one
    lm_path = write_lm(Path(tempfile.mkdtemp()) / f"{NAME}.gguf", model, vocab, NAME)
    tok = Tok(lm_path, mm_path, world.png(held_out_scenes(1)[0]))
    train = items(tok, vit, scenes(0, 3000, held_out=False), WORDINGS[args.answer])
    test = items(tok, vit, held_out_scenes(200, seed=777), WORDINGS[args.answer])
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
