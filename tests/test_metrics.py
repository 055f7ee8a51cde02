"""Per-class metrics equal scikit-learn's; regression errors too."""

import numpy as np
import pytest

from sgdlab.data import make_blobs
from sgdlab.metrics import classification_report, confusion_matrix, format_report, model_report, regression_report
from sgdlab.model import MLP

sklearn_metrics = pytest.importorskip("sklearn.metrics")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_class_precision_recall_f1_equal_sklearn_to_1e_12(seed):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 5, 400)
    y = np.where(rng.random(400) < 0.6, t, rng.integers(0, 5, 400))
    y[y == 4] = 3                                                   # class 4 never predicted: zero division
    names = ["ant", "bee", "cat", "dog", "eel"]
    ours = classification_report(t, y, names)
    theirs = sklearn_metrics.classification_report(t, y, labels=range(5), target_names=names, output_dict=True,
                                                   zero_division=0)
    for name in names + ["macro avg", "weighted avg"]:
        row = ours["classes"][name] if name in names else ours[name]
        for key, their_key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert row[key] == pytest.approx(theirs[name][their_key], abs=1e-12), (name, key)
        assert row["support"] == theirs[name]["support"]
    assert ours["accuracy"] == pytest.approx(theirs["accuracy"], abs=1e-12)
    np.testing.assert_array_equal(ours["confusion_matrix"], sklearn_metrics.confusion_matrix(t, y, labels=range(5)))
    assert ours["classes"]["eel"]["precision"] == 0.0


def test_regression_report_equals_sklearn():
    rng = np.random.default_rng(3)
    t = rng.normal(size=(50, 2))
    y = t + rng.normal(scale=0.3, size=(50, 2))
    report = regression_report(y, t)
    assert report["mae"] == pytest.approx(sklearn_metrics.mean_absolute_error(t, y), abs=1e-12)
    assert report["rmse"] == pytest.approx(np.sqrt(sklearn_metrics.mean_squared_error(t, y)), abs=1e-12)
    assert report["r2"] == pytest.approx(sklearn_metrics.r2_score(t, y), abs=1e-12)


def test_model_report_uses_the_models_classes_and_formats_a_table():
    data = make_blobs(90, n_classes=3, seed=0)
    model = MLP([2, 3], seed=0)
    model.classes = np.array(["a", "b", "c"])
    report = model_report(model, data)
    np.testing.assert_array_equal(report["confusion_matrix"],
                                  confusion_matrix(data.t, model.forward(data.x).argmax(axis=1), 3))
    text = format_report(report)
    assert text.splitlines()[0].split() == ["precision", "recall", "f1-score", "support"]
    assert "weighted avg" in text and text.splitlines()[-1].split()[0] == "c"
