"""The synthetic digits of the million-pair scaling run obey MNIST's rules, are new, and restore like MNIST."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from amphisbaena.train.augment import distorted, obeys_mnist_rules, renormalised


def test_every_mnist_digit_obeys_the_rules_and_broken_ones_do_not(test_digits: np.ndarray) -> None:
    assert obeys_mnist_rules(test_digits).mean() > 0.999  # 3 of the 10,000 touch the frame's edge
    shifted = np.roll(test_digits[:50], 2, axis=2)
    assert not obeys_mnist_rules(shifted).any()
    wide = test_digits[:50].copy()
    wide[:, 0, 0] = wide[:, 27, 27] = 255  # ink in two corners: sides of 28
    assert not obeys_mnist_rules(wide).any()


def test_renormalising_restores_the_rules(test_digits: np.ndarray) -> None:
    shifted = torch.from_numpy(np.roll(test_digits[:300], 2, axis=2)).float()
    again = renormalised(shifted).numpy().astype(np.uint8)
    assert obeys_mnist_rules(again).mean() > 0.97


def test_distorted_digits_are_new_and_keep_the_rules(test_digits: np.ndarray) -> None:
    generator = torch.Generator().manual_seed(0)
    made = distorted(torch.from_numpy(test_digits[:500]).float(), generator).numpy().astype(np.uint8)
    good = obeys_mnist_rules(made)
    assert good.mean() > 0.85
    assert not any(np.array_equal(a, b) for a, b in zip(made[good], test_digits[:500][good]))
    again = distorted(torch.from_numpy(test_digits[:500]).float(), torch.Generator().manual_seed(0)).numpy().astype(np.uint8)
    np.testing.assert_array_equal(again, made)  # one seed, one set


@pytest.mark.slow
def test_synthetic_pairs_restore_about_as_well_as_mnist(test_digits: np.ndarray) -> None:
    import amphisbaena as amph

    generator = torch.Generator().manual_seed(1)
    made = distorted(torch.from_numpy(test_digits[:3000]).float(), generator).numpy().astype(np.uint8)
    made = made[obeys_mnist_rules(made)][:2000]
    halves = amph.cut(made, seed=0)
    restored = amph.load().restore(halves.left, halves.right)
    assert restored.accuracy(halves.key) > 0.85
