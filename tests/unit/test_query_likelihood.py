"""The query-likelihood study's features (bench/query_likelihood.py): read from token
log-probabilities with and without a passage."""

from __future__ import annotations

import pytest

from bench.query_likelihood import auc, lm_features

# a question of five tokens: the third and fifth are surprising without a passage
WITHOUT = [-3.0, -1.0, -9.0, -2.0, -8.0]


def test_a_passage_that_explains_every_rare_word_scores_above_one_that_explains_one() -> None:
    both = lm_features(WITHOUT, [[-3.0, -1.0, -1.0, -2.0, -1.5]])
    one = lm_features(WITHOUT, [[-3.0, -1.0, -1.0, -2.0, -7.5]])
    assert both["lm_explained"] == 1.0
    assert one["lm_explained"] == 0.5
    assert one["lm_worst"] == -7.5 and one["lm_worst_gain"] == pytest.approx(0.5)
    assert both["lm_pmi"] > one["lm_pmi"] > 0


def test_each_token_counts_its_best_passage_and_the_means_their_best_passage() -> None:
    first = [-3.0, -1.0, -1.0, -2.0, -8.0]  # explains the third token
    second = [-3.0, -1.0, -9.0, -2.0, -1.0]  # explains the fifth
    f = lm_features(WITHOUT, [first, second])
    assert f["lm_explained"] == 1.0  # each rare token has a passage that explains it
    assert f["lm_pmi"] == pytest.approx(8.0 / 5)  # each passage alone gains 8 nats over 5 tokens
    assert f["lm_cond"] == pytest.approx(-15.0 / 5)


def test_without_passages_nothing_is_explained() -> None:
    f = lm_features(WITHOUT, [])
    assert f["lm_pmi"] == 0.0 and f["lm_explained"] == 0.0 and f["lm_worst_gain"] == 0.0


def test_auc_counts_ties_as_half_and_needs_both_classes() -> None:
    assert auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auc([0.1], [0.9]) == 0.0
    assert auc([0.5], [0.5]) == 0.5
    assert auc([0.5], []) is None
