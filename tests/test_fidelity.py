"""Fidelity proxies by output kind: each one on synthetic outputs where it and raw cosine disagree."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.evaluate.fidelity import attention_mask, choose_proxy, fidelity, output_kind
from edgeopt.evaluate.judge import evaluate

RNG = np.random.default_rng(0)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _judge(ref, cand, inputs=None):
    return evaluate([ref], [cand], labels=None, synthetic=True, inputs=inputs)


def test_sequence_scores_are_judged_per_position_not_by_cosine() -> None:
    logits = RNG.normal(size=(8, 40, 97)).astype(np.float32) * 4
    top = logits.argmax(-1)
    ref = _softmax(logits)
    # The candidate keeps every position's top class but flattens the distributions (int8-like drift):
    cand = _softmax(logits * 0.35)
    cand_top = cand.argmax(-1)
    assert (cand_top == top).all()
    m = _judge(ref, cand)
    assert m.metric == "fidelity:position_top1" and m.drop == 0.0
    assert "distribution per position" in m.proxy
    assert fidelity([ref], [cand])["cosine"] < 0.95  # cosine alone would refuse at a 0.5-point budget
    # ...and one flipped top class in 320 positions is seen:
    worse = ref.copy()
    worse[0, 0] = worse[0, 0][::-1]
    assert _judge(ref, worse).drop == pytest.approx(100 / 320)


def test_probability_map_is_judged_by_thresholded_iou() -> None:
    ref = np.zeros((4, 1, 32, 32), np.float32)
    ref[:, :, 8:16, 8:24] = 0.9
    cand = ref * 0.6 + 0.04  # text regions still above 0.5: the boxes a DB post-process draws are unchanged
    m = _judge(ref, cand)
    assert m.metric == "fidelity:map_iou" and m.drop == 0.0 and m.fidelity["pixel_agreement"] == 100.0
    shrunk = ref.copy()
    shrunk[:, :, 8:16, 16:24] = 0.45  # half of every region lost: cosine stays high, IoU halves
    m2 = _judge(ref, shrunk)
    assert m2.drop == pytest.approx(50.0) and fidelity([ref], [shrunk])["cosine"] > 0.9


def test_segmentation_scores_are_judged_per_pixel() -> None:
    ref = RNG.normal(size=(2, 5, 16, 16)).astype(np.float32)
    m = _judge(ref, ref + 0.01)
    assert m.metric == "fidelity:pixel_top1" and m.drop < 2.0


def test_embeddings_are_mask_pooled_so_padding_does_not_count() -> None:
    n, t, d = 6, 12, 32
    ref = RNG.normal(size=(n, t, d)).astype(np.float32)
    mask = np.zeros((n, t), np.int64)
    mask[:, :4] = 1
    cand = ref.copy()
    cand[:, 4:] = RNG.normal(size=(n, t - 4, d))  # garbage where the attention mask removes positions
    m = _judge(ref, cand, {"input_ids": RNG.integers(0, 100, (n, t)), "attention_mask": mask})
    assert m.metric == "fidelity:embedding_cosine" and m.drop == pytest.approx(0.0, abs=1e-6)
    assert "mask-pooled" in m.proxy and m.fidelity["similarity_rank_corr"] == pytest.approx(1.0)
    assert fidelity([ref], [cand])["cosine"] < 0.6  # the raw last_hidden_state comparison
    unmasked = _judge(ref, cand)  # without the mask every position counts
    assert unmasked.drop > 10


def test_classifier_logits_stay_top1_and_sentence_embeddings_use_cosine() -> None:
    logits = RNG.normal(size=(20, 10)).astype(np.float32)
    assert choose_proxy([logits]).name == "top1_agreement"
    emb = RNG.normal(size=(20, 384)).astype(np.float32)
    assert choose_proxy([emb]).name == "embedding_cosine"
    assert output_kind(np.arange(5)) == "classifier" and output_kind(RNG.normal(size=(3, 1))) == "other"


def test_explicit_metric_overrides_the_proxy() -> None:
    ref = _softmax(RNG.normal(size=(4, 10, 7)))
    m = evaluate([ref], [ref], labels=None, metric="fidelity:cosine", synthetic=True)
    assert m.metric == "fidelity:cosine" and m.drop == pytest.approx(0.0)


def test_attention_mask_needs_zero_one_integers_of_the_output_length() -> None:
    good = np.array([[1, 1, 0], [1, 0, 0]])
    assert attention_mask({"m": good}, 2, 3) is not None
    assert attention_mask({"m": good * 2}, 2, 3) is None
    assert attention_mask({"m": good.astype(np.float32)}, 2, 3) is None
    assert attention_mask({"m": good}, 2, 4) is None
    assert attention_mask({"m": np.vstack([good, good])}, 2, 3) is not None  # a final partial batch dropped


def test_integer_pass_through_outputs_are_not_what_is_judged() -> None:
    n, t, d = 5, 8, 16
    ids = RNG.integers(0, 1000, (n, t))
    mask = np.ones((n, t), np.int64)
    mask[:, 5:] = 0
    emb = RNG.normal(size=(n, t, d)).astype(np.float32)
    proxy = choose_proxy([ids, emb, mask], {"input_ids": ids, "attention_mask": mask})
    assert proxy.output == 1 and proxy.name == "embedding_cosine" and proxy.why.startswith("output 1")
    noisy = emb.copy()
    noisy[:, 5:] += 10  # only padded positions differ
    m = evaluate([ids, emb, mask], [ids, noisy, mask], labels=None, synthetic=True,
                 inputs={"input_ids": ids, "attention_mask": mask})
    assert m.metric == "fidelity:embedding_cosine" and m.drop == pytest.approx(0.0, abs=1e-6)


def test_fidelity_and_checks_run_block_by_block_with_the_same_figures(monkeypatch) -> None:
    """Large evaluation outputs (100 dense 384x384 maps: 15M values) are compared a block of samples at a time:
    the figures match a single-block computation and the temporaries stay near one block."""
    import tracemalloc

    import edgeopt.evaluate.outputs as blocks
    from edgeopt.evaluate.judge import check_outputs

    rng = np.random.default_rng(0)
    ref = [rng.random((40, 1, 96, 96), dtype=np.float32), rng.random((40, 7), dtype=np.float32)]
    cand = [r + rng.normal(0, 0.01, r.shape).astype(np.float32) for r in ref]
    monkeypatch.setattr(blocks, "BLOCK_VALUES", 1 << 40)  # one block
    whole = fidelity(ref, cand)
    monkeypatch.setattr(blocks, "BLOCK_VALUES", 3 * 9223)  # blocks of 3 samples, the last one short
    tracemalloc.start()
    try:
        blocks = fidelity(ref, cand)
        assert check_outputs(ref, cand) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert whole.keys() == blocks.keys()
    for key in whole:
        assert blocks[key] == pytest.approx(whole[key], rel=1e-12, abs=0), key
    assert peak < 8 * 3 * 9223 * 8, peak  # a few float64 blocks, not the 1.5 MB float32 outputs as float64 (3 MB)
    collapsed = [np.repeat(c[:1], 40, axis=0) for c in cand]
    assert "collapsed" in check_outputs(ref, collapsed)
