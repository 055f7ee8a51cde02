"""model.summary(): Keras's layout and parameter counts, for any layers."""

import numpy as np

import sgdlab as sl
from sgdlab.summary import ModelSummary


def test_mlp_784_100_10_counts_match_keras_written_out_by_hand(capsys):
    model = sl.MLP([784, 100, 10])
    summary = ModelSummary(model)
    assert [(name, shape, count) for name, shape, count in summary.rows] == [
        ("dense (Dense)", (100,), 784 * 100 + 100),
        ("re_lu (ReLU)", (100,), 0),
        ("dense_1 (Dense)", (10,), 100 * 10 + 10),
    ]
    assert summary.total == summary.trainable == 79_510 and summary.non_trainable == 0
    model.summary()
    text = capsys.readouterr().out
    assert "Total params: 79,510" in text and "Trainable params: 79,510" in text
    assert "Non-trainable params: 0" in text
    assert "dense (Dense)" in text and "(None, 100)" in text and "78,500" in text and "1,010" in text


def test_batch_norm_running_averages_are_non_trainable_as_in_keras():
    model = sl.MLP([20, 16, 8, 3], batch_norm=True, dropout=0.25)
    summary = ModelSummary(model)
    counts = {name.split(" ")[0]: count for name, _, count in summary.rows}
    assert counts["batch_norm"] == 4 * 16 and counts["batch_norm_1"] == 4 * 8  # gamma, beta + mean, var
    assert counts["dropout"] == counts["dropout_1"] == 0
    assert summary.trainable == model.params.size == (20 * 16 + 16) + 2 * 16 + (16 * 8 + 8) + 2 * 8 + (8 * 3 + 3)
    assert summary.non_trainable == 2 * 16 + 2 * 8
    assert [shape for _, shape, _ in summary.rows] == [(16,), (16,), (16,), (16,), (8,), (8,), (8,), (8,), (3,)]


def test_summary_leaves_the_model_unchanged():
    model = sl.MLP([6, 5, 2], batch_norm=True, dropout=0.5)
    params = model.params.copy()
    buffers = {k: v.copy() for k, v in model.state_buffers().items()}
    rngs = [layer.rng.bit_generator.state for layer in model.layers if hasattr(layer, "rng")]
    ModelSummary(model)
    np.testing.assert_array_equal(model.params, params)
    for name, value in model.state_buffers().items():
        np.testing.assert_array_equal(value, buffers[name])
    assert rngs == [layer.rng.bit_generator.state for layer in model.layers if hasattr(layer, "rng")]


def test_model_renders_as_an_html_summary_table():
    page = sl.MLP([784, 100, 10])._repr_html_()
    assert page.startswith("<table") and page.count("<tr>") == 1 + 3
    assert "Total params: 79,510" in page and "dense_1 (Dense)" in page
