"""Write the demo model's MODEL_CARD.md from its training report (and, if given, the llama.cpp measurement).

    .venv/bin/python -m training.card assets/demo --measured test-artifacts/demo-accuracy.json

test-artifacts/demo-accuracy.json is written by tests/test_demo_model.py from the shipped GGUF files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EARLIER = """**The model before this one** (87.6 % of 210 questions through llama.cpp) made every look-up that one
token of the answer can make — the colour, size or place of a named shape, the shape of the object of a
named colour, what is at a named place — almost always: on 1,528 questions about 100 held-out scenes (every question the world
asks of each; teacher forcing, which gives exactly the greedy result) colour 100 %, shape 98.8 %, size
95.7 %, position 92.5 %, 87.7 % overall. What it got wrong needed two things at once or an order:
"Is there a …?" about a shape that is there half the time and "Is the … left of the …?" (reasoning
60.4 %), "How many red shapes are there?" (count 82.5 %), and descriptions, which list the shapes in a
fixed order of places (57.0 %).

How that model got there: the tokenizer. The model before it (the same recipe, its text cut word by word) scored
84.3 % on the test above and 81.9 % of the 1,528 questions; retrained on today's fair "Is there a …?", 78.7 %
(run A below). The LM could not learn to find one shape among two or three: `python -m training.lookup`
(below) showed that it learns a look-up quickly only when the token at which the answer is predicted itself
names what is looked up, and "The circle is red." predicts "red" at "is". So the tokenizer keeps the
world's word groups whole (`world.phrases()`): "circle is", each place ("on the left"), "red object is a",
"On the left is a", and each "small red circle"; and the world now answers "The red object is a circle."
and "On the left is a small red circle." where it said "It is a circle." and "A small red circle.". Each
answer then names what it looks up in the token that predicts it ("▁The", "▁circle▁is", "▁red", "."), and
the same training run reaches 87.7 % of the 1,528 questions against run A's 78.7 % (62 % after 600
stage-2 steps, 83 % after 1,200). Not adopted on top of it: the count answers as one piece ("There are two") and
a question that ends in a shape or in "red shapes are there?" handed over in one piece with the
assistant's turn ("▁circle?▁ASSISTANT:"), so "Is there a circle?" and "How many red shapes are there?"
would be answered at a token that names what is asked: 85.7 % (reasoning 53.7 %, count 83.5 %, no better;
colour 96.4 % and shape 92.2 %, worse).

What follows is the previous model's story, which led there. It could not reliably find one shape among two
or three in the picture: it answered almost every question about one-shape pictures, and otherwise often
named the colour or place of another shape that was there. It was not overfitting: it scored the same on
training scenes (79.3 % of 948 questions against 81.8 % of 937 held out). It was the LM learning the
look-up: the frozen encoder's image tokens hold what is needed to name the shape in them (MLP probe 100 %,
linear 98.8 %, on held-out scenes) and a single attention read-out trained on all image tokens finds a
named shape and names its colour 99.9 % of the time (`python -m training.probe`).

What the image tokens hold only weakly is where they are: a probe on one occupied token names its place
63 % of the time (linear; MLP 87 %), and RoPE gives the LM only distances. But giving them that did not
help: position embeddings initialised at std 0.1 instead of 0.02 made the place probe 98 % (MLP; linear 94 %) and the finished
model scored 81.0 % on the 1,528 questions, against the previous model's 81.9 % (position
questions 412 against 414 of 465); at std 0.5 place swamped the tokens (78 % of their variance, shape 2 %)
and far fewer questions came out right (PyTorch check 65 % against 81 %). So the limit is the LM's look-up.

Why the look-up was the limit: the LM learnt it slowly. Scored by teacher forcing (`exact_answers` in
train.py: greedy decoding gives the reference answer exactly when every reference token is the argmax, so
a check of 1,500 questions takes seconds), an LM taken after stage 1 and trained on nothing but "What
colour is the S?" about 2–3-shape pictures (3,112 questions) answers about 55 % of 200 held-out ones after 300
steps (it names a colour that is in the picture), 80 % after 950 and 93.5 % after 2,600 and 2,950 (learning
rate held at 2e-3); the one-head read-out above learns the same from the same features to 98 % in 100
steps. A freshly initialised LM is no faster (57 % after 250), nor is one asked about a written description
instead of a picture (54 % after 300): what is slow is the LM forming a look-up at all, not the image
tokens. None of these was faster over 250–400 steps: RoPE base 10⁶, 2 or 8 heads instead of 4, text
embeddings at std 1 instead of 0.02, residual branches initialised 10× smaller, the projector's output
scaled 5× or 0.2×, q and k initialised 3× larger or trained at 5× the learning rate, a 2.5× learning rate,
2 layers instead of 4 (62 % after 550). Only answering "Circle red." instead of "The circle is red." was
(74 % after 250), a sign that forming the query (the shape named two tokens back) is part of it. In a
finished model (the fair-world retrain below) no attention head, at the token before the colour, puts its
largest weight on the named shape's image token more than 44 % of the time; they spread over the occupied
tokens. A whole stage 2 spends only part of its 1,800 steps on look-ups and ends part-way.

What makes it fast (`python -m training.lookup`: a fresh LM + projector on the previous model's encoder, only "What
colour is the S?" about 2–3-shape pictures, 3,112 questions, 200 held out, learning rate held at 2e-3,
batch 64, one core): the token at which the colour is predicted must itself name the shape. With the
world's "The circle is red." cut word by word (`--words`) the colour is predicted at "is", and the LM stays at 53.5–55.5 % (names a colour
that is there) from step 100 to step 500. Answering "Circle red." (`--answer short`): 81.0 % after 100
steps, 93.5 % after 200, 99.0 % after 500. The same sentence "The circle is red." with one tokenizer piece
per "▁circle▁is" (llama.cpp's own tokenizer then cuts the answer into "▁The", "▁circle▁is", "▁red", "."):
82.5 % after 100, 95.0 % after 200, 97.0 % after 300, 99.0 % after 500; with all of train.py's word groups
(`--answer sentence`, a larger vocabulary and so another random start) 54.0 % after 100, 76.5 % after 200,
92.5 % after 300 and 400. So the
slow part is carrying the shape from the token before into the query; a one-step look-up is as quick as the
probe's read-out. Not the way round it (from the LM after stage 1, 700–1,000 steps): batches of 16 (55 %
after 1,600 steps), pictures of 4–5 shapes only or 2–5 shapes (55 %, stuck: harder pictures do not force a
sharp look-up), LM feed-forward weights frozen so it cannot decode bindings from a blend of tokens (60 %),
a copying task first so that previous-token heads exist (the trained LMs had none: on sequences of random words no head in any layer
puts more than 7 % on the previous token; 55 % after), and "Circle red."-style answers to a second wording
of the question mixed in (55 %).

Retrained on the fair world (half "Is there a …?" about a shape that is there) with length-bucketed
batches: 79.3 % of the 1,528 questions through llama.cpp (teacher forcing said 78.7 %), "Is there a …?"
still 43 wrong; 600 more stage-2 steps at a constant 1e-3 learning rate: 78.3 %; the std-0.2 encoder
(place probe 100 % linear): 76.7 %; five look-up conversations per 2–3-shape scene instead of two:
75.8 % (these two by teacher forcing); an LM of width 192 with 6 heads: 60 % against 68 % after 600 stage-2 steps, at twice the time per
step (stopped); 2,000 steps of single look-up questions (colour, shape, place) before stage 2: 76.7 %
(by teacher forcing; those steps alone left colour at 93/139, no better than a whole stage 2).

Tried on the previous model and not adopted (each a full run, compared on the 1,528 questions): stage 2 with 2,600 steps instead
of 1,800, paid for by batching samples of about one length (LM pre-training 6.2 → 3.2 minutes, 23 minutes
in all): 81.6 % against 81.9 % (colour 131/139 against 110/139, description 54/100 against 66/100). The
answer's content words (colours, shapes, sizes, places, numbers, yes/no) weighted 3× in the loss: 75.9 %
against 80.9 % on 937 questions about 60 of those scenes. LM pre-training on "written pictures" (each image
slot holding the sum of the word embeddings of what is in that cell — perfect image tokens), first 300 steps
of look-up conversations alone, then everything: stage 1 more useful (66 % against 59 %) but the finished
model no better (80.4 % against 80.7 %, on an earlier balanced draw of the same 1,528 questions); even on
written pictures the LM answered only 74–78 % of questions about two-shape pictures. In a toy (same LM
shape, random init, only "What colour is the S? … The S is" on written pictures) the look-up is learnt
suddenly and fragilely: with one seed, completely within 200 steps under an 800-step learning-rate schedule
and not at all (49 %) after 400 steps under a 400-step one. Earlier, each without a gain: a 4× longer
stage 1, a 3× higher stage-2 learning rate, a projector initialised to text-embedding scale, a 5× projector
learning rate, a longer LM pre-training, stage 2 as 3000 batches of 32.

What raised the previous model from 79 % to 86 % (on an earlier "Is there a …?" that named a shape from all
five, so "No." was right two times in three): two more stage-2 conversations of only look-up questions for
every scene with 2–3 shapes. Kept with it, without a measurable gain on their own: LM pre-training that
includes answering about a written description of the scene, and stages 1–2 shown another picture's class
token, so the LM cannot answer from CLIP's whole-picture summary."""

THIS_ROUND = """Figures below are for the 1,528 questions about 100 held-out scenes (every question the world asks of each,
scored by teacher forcing, which gives exactly the greedy result) unless they say otherwise.

**What the model before this one got wrong.** Asked every question about 60 held-out scenes through
llama.cpp, it answered "Is there a circle?" right 38 times in 60, "Is the circle left of the square?" 24 in
48 (chance), "How many red shapes are there?" 41 in 60 (mostly "none" where there was one), "Where is the
circle?" 72 in 90, and described pictures of 2–3 shapes right 10 times in 34: listed object first ("There is a
small blue square at the bottom and a large orange circle in the centre."), the second and third objects were
mostly copies of the first, because each was predicted at ", a", a token that does not say which place comes
next. Each is a question whose answer was predicted at a token that does not name what to look for.

**What changed** (`training/world.py`, `training/train.py`):
- "Is there a circle?" is answered "The circle is there." or "The circle is not there." ("▁The▁circle▁is" is
  one piece) instead of "Yes." or "No.". A fresh LM and projector on this question alone (the look-up
  experiment, `python -m training.lookup --answer exist-yesno` against `--answer exist`): on
  this model's encoder, "Yes."/"No." 46 % after 200 steps, 64–68.5 % from 400 to 1,200; the new answer 87 %
  after 200, 93 % after 400, 96–98 % from 600 to 1,200.
- "How many red shapes are there?" is answered "Red shapes: two." ("▁Red▁shapes:" one piece): 88.5 %
  after 100 steps and 97–97.5 % from 200 to 400 (`--answer count`), against 71.5–72.5 % from 100 to 400 for
  "There are two red shapes." (`--answer count-sentence`).
- Descriptions (and the stage-1 captions) go place first: "On the left is a small red circle, at the top is a
  large blue square and in the centre is …", each object predicted at the piece that names its place
  ("▁On▁the▁left▁is", then "▁a▁small▁red▁circle").
- "Is the circle left of the square?" is answered after saying where each is: "The circle is in the centre
  and the square is on the right, so yes." The verdict is predicted at "▁on▁the▁right,▁so", which names the
  second place; the first is the other place in the answer.
- "Is there anything on the left?" is asked of occupied places too (half of them), and answered "On the left
  is a small red circle." or "On the left is nothing."; it used to be asked only of empty places, where "No."
  was always right.
- Stage 2 gets one more conversation per scene of counts, "Is there …?", "Where is …?" and left-of
  questions; size questions join the look-up conversations; it runs {stage2_steps:,} steps instead of 1,800,
  paid for by 400 steps of LM pre-training instead of 800.

{this_model} With 3,000 stage-2 steps after 800 of LM pre-training (the run before this one, same code otherwise): 93.1 % (colour 86.3 %, reasoning 75.0 %) and 94.8 % through llama.cpp. Without the size questions in the look-up conversations and with 2,400 stage-2
steps (run Y, trained on one core beside another run), 93.0 % (size 63.3 %, colour 95.7 %, reasoning
89.0 %) and 94.3 % through llama.cpp, with 7 of its 12 wrong answers "The … is small." for a big shape.
Between runs that differ this little, categories move by 10–20 points: one run's figures are not precise
to a few points.

**Tried in this round, not adopted: where the image tokens are.** A probe on one occupied image token names
its place 25 % of the time after 1,000 CLIP steps with position embeddings initialised at CLIP's std 0.02,
57.5 % at std 0.1 and 99.5 % at std 0.2 (linear probes; the shape probe stays at 100 % with an MLP). With
the std-0.2 encoder the LM answered "Where is the circle?" 61 times in 62 and the left-of questions 32 in 36
(through llama.cpp, every question about 40 held-out scenes) — but it learnt colours and sizes far more
slowly: 70.2 % of the 1,528 questions at the end of the same 2,400-step stage 2, and 89.1 % at std 0.1,
against run Y's 93.0 % at std 0.02. The encoder's tokens still held size and colour (MLP probes 100 %); the
LM was slower to read them."""

def this_model(report: dict, measured: dict | None) -> str:
    """The learning curve of the run that made these files, and its figure through llama.cpp."""
    cv = report["curve"]
    steps = [k for k in cv if k.startswith("stage2 ")]
    cats = ", ".join(f"{k} {cv['stage2'][k]:.1%}" for k in CATEGORIES[:-1] if k in cv["stage2"])
    out = (f"This model: {cv['stage1']['overall']:.1%} after stage 1, then "
           + ", ".join(f"{cv[k]['overall']:.1%} after {int(k.split()[1]):,} stage-2 steps" for k in steps)
           + f", **{cv['stage2']['overall']:.1%}** at the end ({cats}), against 87.7% for the model before it (on the"
           " same scenes; some questions are harder now, such as \"Is there anything …?\" about occupied places)")
    if measured:
        out += f"; through llama.cpp {measured['overall']:.1%} of the {measured['asked']} test questions, against 87.6%"
    return out.replace("%", " %") + "."


CATEGORIES = ("colour", "shape", "size", "position", "count", "reasoning", "description", "overall")


def render(report: dict, measured: dict | None) -> str:
    """The model card's Markdown."""
    acc = report["accuracy"]
    p, c, m, f, d = report["params"], report["config"], report["minutes"], report["files"], report["data"]
    tokens = (c["image_size"] // c["patch"]) ** 2
    rows = "\n".join(f"| {k} | " + " | ".join(f"{acc[s].get(k, 0):.0%}" for s in ("stage1", "stage2")) + " |"
                     for k in CATEGORIES)
    n_eval = report.get("eval_questions", 120)
    files = "\n".join(f"| `{k}` | {v:,} |" for k, v in f.items())
    if measured:
        per = ", ".join(f"{k} {v['right']}/{v['asked']} ({v['right'] / v['asked']:.0%})"
                        for k, v in measured["categories"].items())
        through = (f"Measured through llama.cpp with the shipped files (`tests/test_demo_model.py`, "
                   f"{measured['asked']} questions about {measured['scenes']} held-out scenes): "
                   f"**{measured['overall']:.1%} overall** — {per}. The next-token logits from llama.cpp match "
                   f"PyTorch's within {measured['logit_diff']:.4f} (max absolute difference over the whole "
                   f"vocabulary, {measured['logit_inputs']} inputs).")
        if "by_shapes" in measured:
            through += " By number of shapes in the picture: " + ", ".join(
                f"{k} — {v['right']}/{v['asked']} ({v['right'] / v['asked']:.0%})"
                for k, v in measured["by_shapes"].items()) + "."
        if measured["overall"] < 0.95:
            worst = min(measured["categories"].items(), key=lambda kv: kv[1]["right"] / kv[1]["asked"])
            right = round(measured["overall"] * measured["asked"])
            through += (f"\n\n**Not yet the 95 % the project asked for**: {right} of {measured['asked']} right, where "
                        f"95 % needs {-(-95 * measured['asked'] // 100)}. The weakest category is {worst[0]} "
                        f"({worst[1]['right']}/{worst[1]['asked']}).")
        through += ("\n\n## How it got here\n\n"
                    + THIS_ROUND.format(this_model=this_model(report, measured), stage2_steps=report["steps"]["stage2"])
                    + "\n\n" + EARLIER)
    else:
        through = "Run `tests/test_demo_model.py` for the accuracy through llama.cpp with the shipped files."
    return f"""# Iris demo model: iris-demo-shapes

A tiny LLaVA-1.5-style vision-language model that Iris trains itself, so that chat works offline
before any download and so the whole pipeline (image → CLIP encoder → projector → LM) is tested on a
model that really sees. **It knows only the synthetic world it was trained on**: 1–3 flat shapes
(circle, square, triangle, diamond, cross) in six colours (red, green, blue, yellow, purple, orange), two
sizes, five positions (left, right, top, bottom, centre), on plain backgrounds. Show it a photo and it
will still answer in those terms — it cannot describe anything else.

## Files
| file | bytes |
|---|---|
{files}
| `reference-logits.json` | next-token logits from PyTorch for 3 fixed image+question inputs |
| `train-report.json` | steps, minutes, parameter counts and accuracies of the run that made these files |

Layout as real LLaVA-1.5 files: the LM is `llama` architecture with its own SentencePiece-style vocabulary
({c['n_vocab']} pieces: control, 256 byte tokens, characters, every prefix of every word of the world, and
the world's word groups kept whole, such as "▁The▁circle▁is", "▁On▁the▁left▁is" and "▁a▁small▁red▁circle") and no
chat template (Iris uses LLaVA-1.5's own Vicuna prompt); the mmproj is `clip` with projector `mlp`, the same
keys and tensor names as LLaVA-1.5's mmproj. Matrices are f16, norms and embeddings f32.

## Architecture
- Vision: CLIP-style ViT — {c['image_size']} px input, {c['patch']} px patches ({tokens} image tokens), width
  {c['v_width']}, {c['v_layers']} pre-LayerNorm blocks, {c['v_heads']} heads, quick-GELU MLP of {c['v_ff']};
  features from the penultimate block. {p['vit']:,} parameters.
- Projector: linear {c['v_width']}→{c['n_embd']}, GELU, linear {c['n_embd']}→{c['n_embd']}. {p['projector']:,} parameters.
- Language model: llama architecture — width {c['n_embd']}, {c['n_layer']} layers, {c['n_head']} heads, SwiGLU
  {c['n_ff']}, RMSNorm, RoPE, untied output. {p['lm']:,} parameters.

## Training (training/train.py; seeded; torch 2.13.0 on 2 CPU cores)
| step | what trains | steps | minutes |
|---|---|---|---|
| CLIP pre-training | ViT + a small text tower ({p['text_tower (not exported)']:,} params, not exported), contrastive on captions, then frozen | {report['steps']['clip']} | {m['clip']} |
| LM pre-training | LM on the world's text in the chat format: questions, answers, captions, and questions answered from a written description of the scene | {report['steps']['lm']} | {m['lm']} |
| Stage 1 | projector only, image–caption pairs; ViT and LM frozen | {report['steps']['stage1']} | {m['stage1']} |
| Stage 2 | LM + projector on instructions (conversation, detailed description, simple reasoning) | {report['steps']['stage2']} | {m['stage2']} |
| all, including data and evaluation | | | {m['total']} |

Data: {d['scenes']} training scenes → {d['captions']} captions, {d['instructions']} instruction conversations
(2–4 turns), {d['text']} text-only samples. One scene layout in ten is held out (never trained on) and used for
evaluation. Token ids come from llama.cpp's own tokenizer on the exported vocabulary (through Iris's engine),
so training and inference see identical sequences.

## Accuracy on held-out scenes (greedy, exact answer; PyTorch during training, {n_eval} questions)
| category | after stage 1 | after stage 2 |
|---|---|---|
{rows}

{through}

## Limits
- Only the synthetic world above. Real photos get answers about shapes and colours that are not there.
- Answers are short templates ("The circle is red.", "Red shapes: two.", "The circle is not there.").
- English only; unknown words are spelled out in characters and confuse it.

## Three things learned making it
- The world's five places are the centres of a 3×3 grid and every shape fits inside its cell, and the encoder
  cuts the picture into that same 3×3 grid of {c['patch']}-px patches: each shape is one image token. The first
  version drew shapes that could overlap, on 16-px patches of a 64-px picture, where each shape straddled 2–4
  patches; it named shapes barely better than chance (54 %) and reached 73 % overall through llama.cpp.
- llama.cpp's llava graph (`tools/mtmd/models/llava.cpp` in the vendored copy) appends the class token *after*
  the patch embeddings, adds position embeddings in that order, and hands the projector rows 1…N (patches
  1…N−1 and the class token) — not HF CLIP's order. This model is trained in llama.cpp's order
  (`training/model.py`), which brought the logit difference from 0.59 to a few thousandths.
- A tiny LM learns to find something in the picture quickly only when the token at which it predicts the
  answer names what it is looking for. Cut word by word, "The circle is red." asks it to carry "circle" from
  the token before into the search, and over 500 steps it never did (55 %, any colour that is there); with
  "circle is" as one token the same sentence is learnt in 200–300 steps (`python -m training.lookup`). The
  same held for "Is there a circle?", "How many red shapes are there?" and descriptions, once their answers
  were worded so that the token before each answer word names what it depends on.
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path, help="the folder with train-report.json (assets/demo)")
    ap.add_argument("--measured", type=Path, help="test-artifacts/demo-accuracy.json from tests/test_demo_model.py")
    args = ap.parse_args()
    report = json.loads((args.dir / "train-report.json").read_text())
    measured = json.loads(args.measured.read_text()) if args.measured else None
    (args.dir / "MODEL_CARD.md").write_text(render(report, measured))


if __name__ == "__main__":
    main()
