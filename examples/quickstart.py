"""Restore the MNIST test set from its shuffled halves with the shipped model, using only the public API.

    python examples/quickstart.py [grid.png]

Prints the accuracy and the five least confident matches, and writes a grid of the first restored
digits with the wrong ones framed in red.
"""

import sys

import numpy as np

import amphisbaena as amph

grid_path = sys.argv[1] if len(sys.argv) > 1 else "quickstart-grid.png"

model = amph.load()  # the shipped MNIST model; its sessions are created once, here
halves = amph.test_halves(seed=0)  # the built-in 10,000 test digits, cut and shuffled
restored = model.restore(halves.left, halves.right)

accuracy = restored.accuracy(halves.key)
print(f"restored {len(halves.left)} digits with {restored.backend}: accuracy {accuracy:.4f}")

print("the five least confident matches (regret: how much the total score would lose without the match):")
for left in np.argsort(restored.confidence, kind="stable")[:5]:
    right = restored.right_for_left[left]
    verdict = "right" if right == halves.key[left] else "wrong"
    print(f"  left {left} -> right {right}: regret {restored.confidence[left]:.4f} ({verdict})")

restored.grid(grid_path, key=halves.key)
print(f"wrote {grid_path}")
