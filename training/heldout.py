"""Held-out scenes: layouts the demo model never saw in training (no torch needed)."""

from __future__ import annotations

import hashlib
import random

from training import world


def is_held_out(scene: world.Scene) -> bool:
    """One scene layout in ten is never used for training (tests ask about these)."""
    key = "|".join(sorted(f"{o.shape},{o.colour},{o.size},{o.position}" for o in scene.objects))
    return int(hashlib.md5(key.encode()).hexdigest(), 16) % 10 == 0


def scenes(seed: int, n: int, held_out: bool) -> list[world.Scene]:
    """n scenes from seed, all held out or all for training."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        s = world.random_scene(rng)
        if is_held_out(s) == held_out:
            out.append(s)
    return out


def held_out_scenes(n: int, seed: int = 4242) -> list[world.Scene]:
    return scenes(seed, n, held_out=True)
