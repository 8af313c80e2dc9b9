"""How much the frozen encoder's image tokens say about each shape: probes on an exported mmproj.

    .venv/bin/python -m training.probe assets/demo/iris-demo-shapes-mmproj.gguf

Loads the ViT from the GGUF, takes the image token of each of the world's five places (3x3 grid), and trains
a linear and a small MLP probe (shared across places, like the projector) to name the shape there, and the
same two probes to name which place an occupied token is; then an attention read-out that must find a named
shape among all image tokens and name its colour; prints held-out accuracy. High probe accuracy with low
chat accuracy means the LM side is what to improve.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import gguf
import numpy as np
import torch
import torch.nn.functional as F

from training import world
from training.heldout import scenes
from training.export import mmproj_tensors
from training.model import Config, TinyLlava, ViT, preprocess

# patch index of each place in the 3x3 grid; image token j is patch j+1 (llama.cpp drops row 0, see model.py)
CELL = {"top": 1, "left": 3, "centre": 4, "right": 5, "bottom": 7}


def load_vit(path: str) -> ViT:
    """The exported encoder back in PyTorch (f16 matrices widened to f32)."""
    r = gguf.GGUFReader(path)
    t = {x.name: torch.tensor(np.array(x.data, dtype=np.float32)) for x in r.tensors}
    kv = {f.name: f.contents() for f in r.fields.values() if f.name.startswith("clip.vision.")}
    c = Config(n_vocab=10, image_size=int(kv["clip.vision.image_size"]), patch=int(kv["clip.vision.patch_size"]))
    model = TinyLlava(c)
    with torch.no_grad():
        for name, p, _ in mmproj_tensors(model):
            p.copy_(t[name].reshape(p.shape))
    return model.vit.eval()


def image_tokens(vit: ViT, scs: list[world.Scene]) -> torch.Tensor:
    """The features the projector gets for each scene: (scenes, image tokens, width)."""
    with torch.no_grad():
        px = torch.stack([preprocess(world.draw(s), vit.c.image_size) for s in scs])
        return torch.cat([vit.patch_features(px[i:i + 256]) for i in range(0, len(px), 256)])


def fit(modules: tuple[torch.nn.Module, ...], loss_of: Callable[[torch.Tensor], torch.Tensor], n: int,
        batch: int, steps: int) -> None:
    """Train modules with AdamW on random batches of row indices 0..n-1."""
    opt = torch.optim.AdamW([p for m in modules for p in m.parameters()], 3e-3)
    for _ in range(steps):
        loss = loss_of(torch.randint(0, n, (batch,)))
        opt.zero_grad()
        loss.backward()
        opt.step()


def cell_tokens(vit: ViT, scs: list[world.Scene]) -> tuple[torch.Tensor, torch.Tensor]:
    """(image tokens of the five places, shape index there or len(SHAPES) for empty)."""
    feats = image_tokens(vit, scs)[:, [CELL[p] - 1 for p in world.POSITIONS]]
    labels = [[len(world.SHAPES)] * 5 for _ in scs]
    for row, s in zip(labels, scs):
        for o in s.objects:
            row[list(world.POSITIONS).index(o.position)] = world.SHAPES.index(o.shape)
    return feats.reshape(-1, feats.shape[-1]), torch.tensor(labels).reshape(-1)


def probe(vit: ViT, hidden: int | None, target: str = "shape") -> float:
    """Held-out accuracy naming the shape at occupied places, or (target "place") which place a token is.

    The place probe asks whether one occupied image token says where it is: nothing else in the LM's input
    does (RoPE gives only distances), yet "Where is the circle?" and every description need it.
    """
    torch.manual_seed(0)

    def rows(scs: list[world.Scene]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = cell_tokens(vit, scs)
        if target == "place":
            occupied = y < len(world.SHAPES)
            return x[occupied], (torch.arange(len(y)) % len(world.POSITIONS))[occupied]
        return x, y

    x, y = rows(scenes(0, 4000, held_out=False))
    xt, yt = rows(scenes(4242, 600, held_out=True))
    d, k = x.shape[-1], len(world.POSITIONS) if target == "place" else len(world.SHAPES) + 1
    head = torch.nn.Linear(d, k) if hidden is None else \
        torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, k))
    fit((head,), lambda i: F.cross_entropy(head(x[i]), y[i]), len(x), 512, 2000)
    with torch.no_grad():
        m = yt < len(world.SHAPES) if target == "shape" else torch.ones_like(yt, dtype=torch.bool)
        return (head(xt).argmax(1)[m] == yt[m]).float().mean().item()


def binding(vit: ViT, steps: int = 1000) -> float:
    """Held-out accuracy naming the colour of a named shape in 2-3-shape scenes, by one attention read-out.

    What the LM must do for "What colour is the circle?": find the image token holding the circle among
    all image tokens and read its colour. The read-out is the projector's MLP, RMSNorm, and one attention
    head whose query is the shape's embedding.
    """
    torch.manual_seed(0)

    def data(seed: int, n: int, held: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scs = [s for s in scenes(seed, n, held) if len(s.objects) > 1]
        rows = [(fi, world.SHAPES.index(o.shape), list(world.COLOURS).index(o.colour))
                for s, fi in zip(scs, image_tokens(vit, scs)) for o in s.objects
                if sum(p.shape == o.shape for p in s.objects) == 1]
        feats, shapes, colours = zip(*rows)
        return torch.stack(feats), torch.tensor(shapes), torch.tensor(colours)

    x, q, y = data(0, 6000, False)
    xt, qt, yt = data(4242, 1000, True)
    d, e = x.shape[-1], 128
    mlp = torch.nn.Sequential(torch.nn.Linear(d, e), torch.nn.GELU(), torch.nn.Linear(e, e))
    query, key, value = torch.nn.Embedding(len(world.SHAPES), e), torch.nn.Linear(e, e), torch.nn.Linear(e, e)
    out = torch.nn.Linear(e, len(world.COLOURS))

    def read(f: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        h = mlp(f)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-5)
        att = torch.softmax((key(h) @ query(shape)[:, :, None]).squeeze(-1) / e ** 0.5, -1)
        return out((att[..., None] * value(h)).sum(1))

    fit((mlp, query, key, value, out), lambda i: F.cross_entropy(read(x[i], q[i]), y[i]), len(x), 128, steps)
    with torch.no_grad():
        return (read(xt, qt).argmax(1) == yt).float().mean().item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mmproj")
    vit = load_vit(ap.parse_args().mmproj)
    print(f"shape from one image token, held-out scenes: linear probe {probe(vit, None):.1%}, "
          f"MLP probe {probe(vit, 128):.1%}")
    print(f"place of an occupied image token, held-out scenes: linear probe {probe(vit, None, 'place'):.1%}, "
          f"MLP probe {probe(vit, 128, 'place'):.1%}")
    print(f"colour of the named shape among all image tokens (2-3 shapes, held out), one attention read-out: "
          f"{binding(vit):.1%}")


if __name__ == "__main__":
    main()
