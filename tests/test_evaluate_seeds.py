"""`emote eval` over several sampling seeds: the spread it keeps and the table it prints
(training/evaluate.py)."""

from __future__ import annotations

import math

from training.evaluate import markdown_table, seed_spread


def test_seed_spread_is_the_lowest_and_highest_per_number() -> None:
    per_seed = [
        {"corr": 0.5, "lag": -10.0, "seed": 0, "clip": "a"},
        {"corr": -0.2, "lag": float("nan"), "seed": 1, "clip": "a"},
        {"corr": 0.1, "lag": 20.0, "seed": 2, "clip": "a"},
    ]
    spread = seed_spread(per_seed)
    assert spread == {"corr": [-0.2, 0.5], "lag": [-10.0, 20.0]}  # no seed, no clip
    assert seed_spread([]) == {}
    lone = seed_spread([{"x": float("nan")}])["x"]
    assert all(math.isnan(v) for v in lone)


def test_table_shows_the_spread_only_where_seeds_differ() -> None:
    results = {
        "learned": {
            "songs": {"envelope_corr": 0.05, "mouth_range": 0.1},
            "spread": {"songs": {"envelope_corr": [-0.19, 0.51], "mouth_range": [0.1, 0.1]}},
        },
        "dsp": {"songs": {"envelope_corr": 0.54}},
        "_meta": {"wall_seconds": 1.0},
    }
    table = markdown_table(results)
    lines = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()}
    assert lines["singing: corr with voice-band envelope"].endswith("| 0.05 (-0.19..0.51) | 0.54 |")
    assert lines["singing: mouth range p95-p5 (face heights)"].endswith("| 0.1 | – |")
