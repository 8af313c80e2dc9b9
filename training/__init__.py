"""Training code for Iris's demo model (needs the `train` extra: torch). Only world.py and heldout.py run without torch."""
