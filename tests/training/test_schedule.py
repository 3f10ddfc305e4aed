"""LR decay on plateau and early stopping, step by step against torch and openunmix."""

import numpy as np
import pytest
import torch
from openunmix.utils import EarlyStopping as ReferenceEarlyStopping

from training.schedule import EarlyStopping, ReduceLROnPlateau


def losses(seed, n=120):
    """A validation curve that falls, stalls, wobbles and jumps: every branch of both rules."""
    rng = np.random.default_rng(seed)
    curve = np.concatenate([np.linspace(1.0, 0.5, 20), np.full(15, 0.5), 0.5 + 0.02 * rng.standard_normal(40),
                            np.linspace(0.5, 0.3, 10), 0.3 * (1 + 1e-5 * rng.standard_normal(35))])
    return curve[:n]


@pytest.mark.parametrize("seed,factor,patience,cooldown", [(0, 0.3, 5, 2), (1, 0.5, 3, 0), (2, 0.1, 8, 4)])
def test_reduce_lr_on_plateau_matches_torch(seed, factor, patience, cooldown):
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=1e-3)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=factor, patience=patience,
                                                           cooldown=cooldown)
    ours, lr, decays = ReduceLROnPlateau(factor, patience, cooldown), 1e-3, 0
    for loss in losses(seed):
        reference.step(float(loss))
        new = ours.step(float(loss), lr)
        decays += new < lr
        lr = new
        assert lr == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12)
        assert ours.num_bad_epochs == reference.num_bad_epochs
    assert decays >= 2  # the curve really exercises the rule


@pytest.mark.parametrize("seed,patience", [(0, 5), (1, 10), (2, 25)])
def test_early_stopping_matches_openunmix(seed, patience):
    reference, ours = ReferenceEarlyStopping(patience=patience), EarlyStopping(patience)
    stops = []
    for loss in losses(seed):
        expected = reference.step(torch.tensor(float(loss)))
        assert ours.step(float(loss)) == expected
        stops.append(expected)
    assert any(stops) and not all(stops)


def test_state_round_trips():
    plateau = ReduceLROnPlateau(0.3, 2, 1)
    for loss in (1.0, 0.9, 0.95, 0.96):
        plateau.step(loss, 1e-3)
    copy = ReduceLROnPlateau(**plateau.state())
    assert copy == plateau and copy.step(0.97, 1e-3) == plateau.step(0.97, 1e-3)

