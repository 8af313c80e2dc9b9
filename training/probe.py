"""How much the frozen encoder's image tokens say about each shape: probes on an exported mmproj.

    .venv/bin/python -m training.probe assets/demo/iris-demo-shapes-mmproj.gguf

Loads the ViT from the GGUF, takes the image token of each of the world's five places (3x3 grid), and trains
a linear and a small MLP probe (shared across places, like the projector) to name the shape there; prints
held-out accuracy. High probe accuracy with low chat accuracy means the LM side is what to improve.
"""

from __future__ import annotations

import argparse

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


def cell_tokens(vit: ViT, scs: list[world.Scene]) -> tuple[torch.Tensor, torch.Tensor]:
    """(image tokens of the five places, shape index there or len(SHAPES) for empty)."""
    idx = [CELL[p] - 1 for p in world.POSITIONS]
    with torch.no_grad():
        px = torch.stack([preprocess(world.draw(s), vit.c.image_size) for s in scs])
        feats = torch.cat([vit.patch_features(px[i:i + 256]) for i in range(0, len(px), 256)])[:, idx]
    labels = [[len(world.SHAPES)] * 5 for _ in scs]
    for row, s in zip(labels, scs):
        for o in s.objects:
            row[list(world.POSITIONS).index(o.position)] = world.SHAPES.index(o.shape)
    return feats.reshape(-1, feats.shape[-1]), torch.tensor(labels).reshape(-1)


def probe(vit: ViT, hidden: int | None) -> float:
    """Held-out accuracy naming the shape at occupied places."""
    torch.manual_seed(0)
    x, y = cell_tokens(vit, scenes(0, 4000, held_out=False))
    xt, yt = cell_tokens(vit, scenes(4242, 600, held_out=True))
    d, k = x.shape[-1], len(world.SHAPES) + 1
    head = torch.nn.Linear(d, k) if hidden is None else \
        torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, k))
    opt = torch.optim.AdamW(head.parameters(), 3e-3)
    for _ in range(2000):
        i = torch.randint(0, len(x), (512,))
        loss = F.cross_entropy(head(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        m = yt < len(world.SHAPES)
        return (head(xt).argmax(1)[m] == yt[m]).float().mean().item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mmproj")
    vit = load_vit(ap.parse_args().mmproj)
    print(f"shape from one image token, held-out scenes: linear probe {probe(vit, None):.1%}, "
          f"MLP probe {probe(vit, 128):.1%}")


if __name__ == "__main__":
    main()
