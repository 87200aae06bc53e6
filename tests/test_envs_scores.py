"""Normalized scores against D4RL's reference table (the values of d4rl/infos.py)."""

import numpy as np
import pytest

from erdiff.config import ConfigError
from erdiff.envs import normalized_score, reference_scores
from erdiff.envs.scores import D4RL_REF_SCORES
from erdiff.presets import PRESETS


@pytest.mark.parametrize("task, ref_min, ref_max", [
    ("hopper-medium-v2", -20.272305, 3234.3),
    ("halfcheetah-medium-replay-v2", -280.178953, 12135.0),
    ("walker2d-medium-expert-v2", 1.629008, 4592.3),
    ("antmaze-large-diverse-v0", 0.0, 1.0),
    ("antmaze-umaze-v2", 0.0, 1.0),
    ("pen-cloned-v1", 96.262799, 3076.8331017826877),
    ("kitchen-mixed-v0", 0.0, 4.0),
    ("maze2d-medium-v1", 13.13, 277.39),
])
def test_references_and_endpoints_match_the_d4rl_table(task, ref_min, ref_max):
    assert reference_scores(task) == (ref_min, ref_max)
    assert normalized_score(task, ref_min) == pytest.approx(0.0, abs=1e-12)
    assert normalized_score(task, ref_max) == pytest.approx(100.0)


def test_known_values():
    # hopper: 100 * (1617.0 + 20.272305) / (3234.3 + 20.272305)
    assert normalized_score("hopper-medium-v2", 1617.0) == pytest.approx(50.30683, abs=1e-4)
    # kitchen: a return of 2 completed tasks out of 4
    assert normalized_score("kitchen-partial-v0", 2.0) == 50.0
    # an AntMaze success rate of 0.73
    assert normalized_score("antmaze-medium-play-v0", 0.73) == pytest.approx(73.0)


def test_scalar_gives_float_and_array_gives_array():
    single = normalized_score("walker2d-medium-v2", 1000.0)
    batch = normalized_score("walker2d-medium-v2", np.array([1000.0, 2000.0]))
    assert isinstance(single, float)
    assert isinstance(batch, np.ndarray) and batch.shape == (2,)
    assert batch[0] == single
    assert normalized_score("walker2d-medium-v2", [1000.0, 2000.0]).tolist() == batch.tolist()


def test_every_task_has_references_and_versions_share_them():
    for task in PRESETS:
        ref_min, ref_max = reference_scores(task)
        assert ref_max > ref_min
    assert D4RL_REF_SCORES["hopper-medium-v0"] == D4RL_REF_SCORES["hopper-expert-v2"]


def test_unknown_task_is_a_clear_error():
    with pytest.raises(ConfigError, match="no reference scores for task 'hopper-v9'"):
        normalized_score("hopper-v9", 1.0)
