"""The synthetic world the demo model learns: scenes of 1-3 shapes, their pictures, captions and questions.

Pure Python + Pillow (no torch), so tests can draw held-out scenes and ask about them.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "diamond", "cross")
COLOURS = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220),
    "yellow": (240, 210, 30), "purple": (140, 60, 180), "orange": (245, 140, 30),
}
BACKGROUNDS = ((225, 225, 225), (245, 238, 215), (205, 222, 240), (70, 70, 80), (215, 235, 215), (30, 30, 35))
# The five places are the centres of a 3x3 grid, and every shape fits inside its own cell (largest radius
# x 1.05 + jitter < 1/6), so shapes never overlap: an occluded shape has no one right name.
POSITIONS = {"left": (1 / 6, 0.5), "right": (5 / 6, 0.5), "top": (0.5, 1 / 6), "bottom": (0.5, 5 / 6),
             "centre": (0.5, 0.5)}
JITTER = 0.01
PHRASE = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom",
          "centre": "in the centre"}
SIZES = {"small": 0.09, "large": 0.145}  # radius as a fraction of the picture's side
NUMBERS = {1: "one", 2: "two", 3: "three"}
CATEGORIES = ("colour", "shape", "position", "count", "reasoning", "description")


@dataclass(frozen=True)
class Obj:
    shape: str
    colour: str
    size: str
    position: str

    def name(self) -> str:
        return f"{self.size} {self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    objects: tuple[Obj, ...]
    background: tuple[int, int, int]
    side: int
    seed: int


@dataclass(frozen=True)
class QA:
    category: str
    question: str
    answer: str


def random_scene(rng: random.Random) -> Scene:
    n = rng.choice((1, 1, 2, 2, 3))
    positions = rng.sample(list(POSITIONS), n)
    objs = tuple(Obj(rng.choice(SHAPES), rng.choice(list(COLOURS)), rng.choice(list(SIZES)), p) for p in positions)
    return Scene(objs, rng.choice(BACKGROUNDS), rng.choice((64, 72, 80, 96)), rng.randrange(1 << 30))


def draw(scene: Scene) -> Image.Image:
    """The scene's picture: flat background with a little noise, the shapes at their places."""
    rng = random.Random(scene.seed)
    s = scene.side
    im = Image.new("RGB", (s, s), scene.background)
    px = im.load()
    for _ in range(s * s // 12):  # speckle, so backgrounds are not perfectly flat
        x, y = rng.randrange(s), rng.randrange(s)
        c = scene.background
        d = rng.randint(-12, 12)
        px[x, y] = tuple(max(0, min(255, v + d)) for v in c)
    d = ImageDraw.Draw(im)
    for o in scene.objects:
        fx, fy = POSITIONS[o.position]
        cx = (fx + rng.uniform(-JITTER, JITTER)) * s
        cy = (fy + rng.uniform(-JITTER, JITTER)) * s
        r = SIZES[o.size] * s * rng.uniform(0.95, 1.05)
        col = COLOURS[o.colour]
        if o.shape == "circle":
            d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=col)
        elif o.shape == "square":
            q = r * 0.85
            d.rectangle((cx - q, cy - q, cx + q, cy + q), fill=col)
        elif o.shape == "triangle":
            d.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=col)
        elif o.shape == "diamond":
            d.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=col)
        else:  # cross
            w = r * 0.38
            d.rectangle((cx - r, cy - w, cx + r, cy + w), fill=col)
            d.rectangle((cx - w, cy - r, cx + w, cy + r), fill=col)
    return im


def png(scene: Scene) -> bytes:
    buf = io.BytesIO()
    draw(scene).save(buf, "PNG")
    return buf.getvalue()


def _order(scene: Scene) -> list[Obj]:
    rank = list(POSITIONS)
    return sorted(scene.objects, key=lambda o: rank.index(o.position))


def description(scene: Scene) -> str:
    """The canonical detailed description, place by place (also the stage-1 caption).

    Each object comes after its place ("On the left is a small red circle, at the top is ..."), so the token
    that predicts an object names the place it is looked up at; listed object first, the second and third
    objects were copies of the first more often than not.
    """
    parts = [f"{PHRASE[o.position]} is a {o.name()}" for o in _order(scene)]
    body = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return body[0].upper() + body[1:] + "."


def caption(scene: Scene) -> str:
    return description(scene)


def _unique(scene: Scene, attr: str, value: str) -> bool:
    return sum(getattr(o, attr) == value for o in scene.objects) == 1


def questions(scene: Scene, rng: random.Random) -> list[QA]:
    """Every kind of question this scene supports, with its one right answer."""
    out: list[QA] = []
    objs = list(scene.objects)
    for o in objs:
        if _unique(scene, "shape", o.shape):
            out.append(QA("colour", f"What colour is the {o.shape}?", f"The {o.shape} is {o.colour}."))
            out.append(QA("position", f"Where is the {o.shape}?", f"The {o.shape} is {PHRASE[o.position]}."))
            out.append(QA("size", f"Is the {o.shape} big or small?",
                          f"The {o.shape} is {'big' if o.size == 'large' else 'small'}."))
        if _unique(scene, "colour", o.colour):
            art = "an" if o.shape[0] in "aeiou" else "a"
            out.append(QA("shape", f"What shape is the {o.colour} object?", f"The {o.colour} object is {art} {o.shape}."))
    for pos in POSITIONS:
        here = [o for o in objs if o.position == pos]
        said = f"{PHRASE[pos].capitalize()} is " + (f"a {here[0].name()}." if here else "nothing.")
        # "Is there anything ...?" about occupied places too (one time in two), so "nothing" is not always right
        if here and rng.random() < 0.5:
            out.append(QA("shape", f"What is {PHRASE[pos]}?", said))
        else:
            out.append(QA("position", f"Is there anything {PHRASE[pos]}?", said))
    n = len(objs)
    out.append(QA("count", "How many shapes are there?",
                  f"There {'is' if n == 1 else 'are'} {NUMBERS[n]} shape{'s' if n != 1 else ''}."))
    colour = rng.choice(list(COLOURS))
    k = sum(o.colour == colour for o in objs)
    # The colour is named first, in the token that predicts the number (see phrases())
    out.append(QA("count", f"How many {colour} shapes are there?",
                  f"{colour.capitalize()} shapes: {NUMBERS.get(k, 'none')}."))
    # Half the time a shape that is there, half the time one that is not: drawn from all five, "No." was
    # right two times in three and a model could score by never looking.
    present = sorted({o.shape for o in objs})
    has = rng.random() < 0.5
    shape = rng.choice(present if has else [s for s in SHAPES if s not in present])
    out.append(QA("reasoning", f"Is there a {shape}?", f"The {shape} is {'there' if has else 'not there'}."))
    xs = {o: POSITIONS[o.position][0] for o in objs}
    for a in objs:
        for b in objs:
            if a is not b and _unique(scene, "shape", a.shape) and _unique(scene, "shape", b.shape) \
                    and abs(xs[a] - xs[b]) > 0.2:
                # Where each is first, each found in a token that names it; the verdict comes in the token
                # that names the second place, and that place with the first (the other place named) decides.
                out.append(QA("reasoning", f"Is the {a.shape} left of the {b.shape}?",
                              f"The {a.shape} is {PHRASE[a.position]} and the {b.shape} is {PHRASE[b.position]}, "
                              f"so {'yes' if xs[a] < xs[b] else 'no'}."))
    out.append(QA("description", "Describe the image.", description(scene)))
    return out


def phrases() -> list[str]:
    """Word groups the demo model's tokenizer keeps as one piece each (see training/lookup.py for why).

    Every answer then names what it looks up in the token that predicts it: "The circle is red." is cut into
    "The circle is", "red", ".", so "red" is predicted at a token that says which shape; "On the left is"
    predicts "a small red circle" or "nothing", "Red shapes:" the number, "The circle is" "there" or "not".
    """
    out = [f"The {s} is" for s in SHAPES] + [f"the {s} is" for s in SHAPES] + [f"{s} is" for s in SHAPES]
    out += list(PHRASE.values()) + [f"{p}, so" for p in PHRASE.values()]
    out += [f"{c} object is a" for c in COLOURS] + [f"{c.capitalize()} shapes:" for c in COLOURS]
    out += [f"{p} is" for p in PHRASE.values()] + [f"{p.capitalize()} is" for p in PHRASE.values()]
    out += [f"a {z} {c} {s}" for z in SIZES for c in COLOURS for s in SHAPES]
    return out


def vocabulary_text() -> str:
    """Every sentence form the world produces, for building the tokenizer's vocabulary."""
    rng = random.Random(1)
    texts = []
    for _ in range(3000):
        sc = random_scene(rng)
        texts.append(caption(sc))
        texts += [q.question + " " + q.answer for q in questions(sc, rng)]
    return "\n".join(texts)
