"""Your own tables: the CSV module, labels as they come, columns by name, Standardize, one-hot, impute, Parquet,
stratified splits, and the CLI on scikit-learn's wine and breast-cancer data written as CSV files."""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from sgdlab import tables
from sgdlab.checkpoint import load_model, save_model
from sgdlab.config import TrainConfig
from sgdlab.data import load_arrays
from sgdlab.data import labelled
from sgdlab.data.frame import Columns, DataWarning, read_table
from sgdlab.errors import DataError
from sgdlab.layers import Standardize
from sgdlab.model import MLP
from sgdlab.run import train_run


def sgdlab(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sgdlab", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def write_sklearn_csv(path, loader, names=None):
    data = loader()
    header = ",".join([*data.feature_names, "target"])
    labels = names or data.target_names
    rows = [",".join([*(repr(float(v)) for v in x), str(labels[t])]) for x, t in zip(data.data, data.target)]
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return data


@pytest.fixture(scope="module")
def wine_csv(tmp_path_factory):
    from sklearn.datasets import load_wine

    path = tmp_path_factory.mktemp("wine") / "wine.csv"
    write_sklearn_csv(path, load_wine)
    return path


# ---------------------------------------------------------------- the label rule and the CSV module

@pytest.mark.parametrize("labels,classes", [
    (["cat", "dog", "cat", "eel"], ["cat", "dog", "eel"]),
    ([True, False, True, True], [False, True]),
    ([-1, 1, 1, -1], [-1, 1]),
    ([3, 1, 10, 3], [1, 3, 10]),
    ([0.0, 2.0, 1.0, 2.0], [0, 1, 2]),
])
def test_labels_as_they_come_are_classes_kept_in_order(labels, classes):
    t, found = tables.encode_labels(np.array(labels))
    assert found.tolist() == classes
    assert [found[k] for k in t] == [type(found[0].item())(v) for v in labels]


def test_fractional_numbers_are_regression_targets_and_unknown_labels_are_refused():
    t, classes = tables.encode_labels(np.array([0.5, 1.0, 2.25]))
    assert classes is None and t.shape == (3, 1)
    with pytest.raises(DataError, match=r"label 'owl' is not one of the model's classes \['cat', 'dog'\]"):
        tables.encode_labels(np.array(["cat", "owl"]), classes=np.array(["cat", "dog"]))


def test_records_and_rows_round_trip(tmp_path):
    rows = [{"a": 1, "b": None, "c": "x"}, {"a": 2.5, "b": 3, "c": ""}]
    (tmp_path / "r.csv").write_text(tables.format_rows(["a", "b", "c"], rows))
    back = tables.read_records(tmp_path / "r.csv", cell=tables.number_or_text)
    assert back == [{"a": 1.0, "b": None, "c": "x"}, {"a": 2.5, "b": 3.0, "c": None}]
    with open(tmp_path / "r.csv", "a") as f:
        f.write("3,4")                                                  # a line still being written
    assert len(tables.read_records(tmp_path / "r.csv", complete_lines=True)) == 2


def test_fit_arrays_with_string_labels_keeps_the_classes():
    from sgdlab.optimizers import Momentum
    from sgdlab.training import fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 2)) + np.repeat([[0, 0], [4, 0], [0, 4]], 30, axis=0)
    names = np.repeat(["red", "green", "blue"], 30)
    train = labelled(x.astype(np.float32), names)
    model = MLP([2, 8, 3], seed=0)
    fit(model, train, Momentum(lr=0.1), batch_size=10, epochs=20, progress=False)
    assert model.classes.tolist() == ["blue", "green", "red"]
    assert np.mean(model.predict(x) == names) > 0.9 and model.accuracy(x, names) > 0.9
    paired = MLP([2, 8, 3], seed=0)
    fit(paired, (x.astype(np.float32), names), Momentum(lr=0.1), batch_size=10, epochs=20, progress=False)
    np.testing.assert_array_equal(paired.predict(x), model.predict(x))         # a pair (x, t) the same way


# ---------------------------------------------------------------- Standardize

def test_standardize_matches_numpy_and_leaves_constant_columns_finite():
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.normal(4000, 300, 500), rng.normal(0.001, 0.0002, 500), np.full(500, 7.0)])
    layer = Standardize(3).adapt(x, chunk=64)
    np.testing.assert_allclose(layer.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(layer.std[:2], x.std(axis=0)[:2], rtol=1e-9)
    assert layer.std[2] == 1.0
    y = layer.forward(x)
    assert np.all(np.isfinite(y)) and np.allclose(y[:, 2], 0)
    np.testing.assert_allclose(y[:, :2].mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(y[:, :2].std(axis=0), 1, rtol=1e-9)


def test_standardize_is_state_not_a_parameter():
    model = MLP([3, 4, 2], standardize=True, seed=0)
    assert isinstance(model.layers[0], Standardize) and model.layers[0].size == 0
    assert model.params.size == MLP([3, 4, 2], seed=0).params.size
    assert set(model.state_buffers()) == {"layers.0.mean", "layers.0.std"}


# ---------------------------------------------------------------- columns: one-hot, impute, by name

def test_one_hot_categories_unseen_become_zeros_with_a_warning(tmp_path):
    (tmp_path / "a.csv").write_text("size,colour,y\n1,red,a\n2,blue,b\n3,red,a\n4,blue,b\n")
    (tmp_path / "b.csv").write_text("colour,size\npurple,5\nred,6\n")
    columns = Columns.fit(read_table(tmp_path / "a.csv"), ["size", "colour"])
    assert columns.output_names == ["size", "colour=blue", "colour=red"]
    with pytest.warns(DataWarning, match=r"column 'colour' has 1 value\(s\) not seen in training \('purple'\)"):
        x = columns.encode(read_table(tmp_path / "b.csv"))                     # columns picked by name
    np.testing.assert_array_equal(x, [[5, 0, 0], [6, 0, 1]])


def test_missing_values_refused_by_row_and_column_unless_imputed(tmp_path):
    (tmp_path / "m.csv").write_text("a,b,y\n1,10,0\n3,NA,1\n,14,0\n5,16,1\n")
    with pytest.raises(DataError, match=r"row 2, column 'b' has a missing value: .*--impute mean"):
        load_arrays(tmp_path / "m.csv", label_column="y", val_fraction=0)
    train = load_arrays(tmp_path / "m.csv", label_column="y", val_fraction=0, impute="mean").train
    assert train.columns.means == {"a": 3.0, "b": 40 / 3}
    np.testing.assert_allclose(train.x[:, 1], [10, 40 / 3, 14, 16])


def test_features_and_drop_choose_columns(tmp_path):
    (tmp_path / "d.csv").write_text("id,a,b,c,y\n" + "".join(f"{i},{i},{2 * i},{3 * i},{i % 2}\n" for i in range(10)))
    assert load_arrays(tmp_path / "d.csv", label_column="y", val_fraction=0, drop=["id"]).train.columns.names == \
        ["a", "b", "c"]
    picked = load_arrays(tmp_path / "d.csv", label_column="y", val_fraction=0, features=["c", "a"]).train
    np.testing.assert_array_equal(picked.x[3], [9, 3])
    with pytest.raises(DataError, match=r"has no column 'zz' \(named by --drop\)"):
        load_arrays(tmp_path / "d.csv", label_column="y", drop=["zz"])


def test_parquet_reads_like_csv(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": [1.0, 2.0, None, 4.0], "kind": ["x", "y", "x", "y"], "y": ["n", "p", "n", "p"]}),
                   tmp_path / "d.parquet")
    train = load_arrays(tmp_path / "d.parquet", label_column="y", val_fraction=0, impute="mean").train
    assert train.classes.tolist() == ["n", "p"] and train.columns.output_names == ["a", "kind=x", "kind=y"]
    np.testing.assert_allclose(train.x[2], [7 / 3, 1, 0])


def test_file_splits_are_stratified(tmp_path):
    t = np.array(["rare"] * 20 + ["common"] * 180)
    np.savez(tmp_path / "s.npz", x=np.arange(200.0)[:, None], t=t)
    s = load_arrays(tmp_path / "s.npz", val_fraction=0.1, test_fraction=0.1, seed=3)
    rare = list(s.train.classes).index("rare")
    assert [int(np.sum(d.t == rare)) for d in (s.train, s.val, s.test)] == [16, 2, 2]


# ---------------------------------------------------------------- the model keeps classes, names and scaling

def _stop_midway(monkeypatch, at_iteration):
    from sgdlab import run

    original = run.LiveMetrics.on_evaluation

    def stop(self, trainer, row):
        original(self, trainer, row)
        if trainer.iteration >= at_iteration:
            trainer.stop("interrupted", "stopped by the test")

    monkeypatch.setattr(run.LiveMetrics, "on_evaluation", stop)


def test_standardize_and_string_classes_survive_save_load_resume_predict(wine_csv, tmp_path, monkeypatch):
    config = TrainConfig(dataset=str(wine_csv), label_column="target", standardize=True, layers=(16,), epochs=6,
                         batch_size=20, seed=2)
    train_run(config, tmp_path / "whole", quiet=True)
    whole = load_model(tmp_path / "whole" / "model.safetensors")
    assert whole.classes.tolist() == ["class_0", "class_1", "class_2"] and whole.feature_names[-1] == "proline"
    assert isinstance(whole.layers[0], Standardize) and whole.layers[0].std.max() > 100
    with monkeypatch.context() as m:
        _stop_midway(m, 10)
        assert train_run(config, tmp_path / "cut", quiet=True)["status"] == "interrupted"
    train_run(None, tmp_path / "cut", quiet=True, resume=True)
    resumed = load_model(tmp_path / "cut" / "model.safetensors")
    np.testing.assert_array_equal(resumed.params, whole.params)
    np.testing.assert_array_equal(resumed.layers[0].mean, whole.layers[0].mean)
    save_model(resumed, tmp_path / "again.safetensors")
    again = load_model(tmp_path / "again.safetensors")
    x = np.loadtxt(wine_csv, delimiter=",", skiprows=1, usecols=range(13))
    for model in (resumed, again):
        np.testing.assert_array_equal(model.predict_proba(x), whole.predict_proba(x))
        np.testing.assert_array_equal(model.predict(x), whole.predict(x))
    shown = [sgdlab("predict", "--model", folder / "model.safetensors", wine_csv).stdout
             for folder in (tmp_path / "whole", tmp_path / "cut")]
    assert shown[0] == shown[1] and shown[0].split() == whole.predict(x).tolist()


# ---------------------------------------------------------------- what it must show, end to end

def test_wine_with_class_names_standardized_reaches_090_and_predict_prints_names(wine_csv, tmp_path):
    result = sgdlab("train", "--dataset", wine_csv, "--label-column", "target", "--standardize", "--quiet",
                    "--out", tmp_path / "std")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "std" / "summary.json").read_text())
    assert summary["test_accuracy"] >= 0.9
    report = summary["classification_report"]
    assert set(report["classes"]) == {"class_0", "class_1", "class_2"} and report["macro avg"]["support"] == 18
    assert [report["classes"][c]["support"] for c in ("class_0", "class_1", "class_2")] == [6, 7, 5]  # 59:71:48
    assert (tmp_path / "std" / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shown = sgdlab("predict", "--model", tmp_path / "std" / "model.safetensors", wine_csv)
    predicted = shown.stdout.split()
    truth = [line.rsplit(",", 1)[1] for line in wine_csv.read_text().split()[1:]]
    assert set(predicted) <= {"class_0", "class_1", "class_2"} and np.mean(np.array(predicted) == truth) > 0.9
    proba = sgdlab("predict", "--model", tmp_path / "std" / "model.safetensors", wine_csv, "--proba")
    assert proba.stdout.splitlines()[0] == "class_0,class_1,class_2"
    raw = sgdlab("train", "--dataset", wine_csv, "--label-column", "target", "--epochs", "1", "--out",
                 tmp_path / "raw")
    hints = [line for line in raw.stderr.splitlines() if line.startswith("hint: feature scales differ")]
    assert len(hints) == 1 and "--standardize" in hints[0], raw.stderr


def test_breast_cancer_standardized_reaches_093(tmp_path):
    from sklearn.datasets import load_breast_cancer

    write_sklearn_csv(tmp_path / "cancer.csv", load_breast_cancer)
    result = sgdlab("train", "--dataset", tmp_path / "cancer.csv", "--label-column", "target", "--standardize",
                    "--quiet", "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["test_accuracy"] >= 0.93
    evaluated = sgdlab("evaluate", "--model", tmp_path / "run" / "model.safetensors", "--dataset",
                       tmp_path / "cancer.csv")                  # label column and splits: the run's own
    assert evaluated.returncode == 0, evaluated.stderr
    assert "malignant" in evaluated.stdout and "weighted avg" in evaluated.stdout


def drop_columns(lines, names):
    keep = [i for i, h in enumerate(lines[0].split(",")) if h not in names]
    return "".join(",".join(line.split(",")[i] for i in keep) + "\n" for line in lines)


def _assert_refused(result, folder, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    if folder is not None:
        assert not os.path.exists(folder)


def test_refusals_are_one_line_exit_2_nothing_written(wine_csv, tmp_path):
    lines = wine_csv.read_text().splitlines()
    (tmp_path / "missing.csv").write_text("\n".join([lines[0], lines[1], lines[2].replace("2.14", ""),
                                                     *lines[3:]]) + "\n")
    (tmp_path / "one.csv").write_text("\n".join(lines[:60]) + "\n")                # class_0 only
    _assert_refused(sgdlab("train", "--dataset", tmp_path / "missing.csv", "--label-column", "target", "--out",
                           tmp_path / "r1"), tmp_path / "r1", "row 2, column 'ash' has a missing value")
    _assert_refused(sgdlab("train", "--dataset", tmp_path / "one.csv", "--label-column", "target", "--out",
                           tmp_path / "r2"), tmp_path / "r2", "holds one class only ('class_0')")
    _assert_refused(sgdlab("train", "--dataset", wine_csv, "--label-column", "target", "--features", "alcohol,zinc",
                           "--out", tmp_path / "r3"), tmp_path / "r3", "no column 'zinc'")
    model_path = tmp_path / "m.safetensors"
    model = MLP([13, 4, 3], seed=0)
    model.inputs = Columns(lines[0].split(",")[:-1]).describe()
    save_model(model, model_path)
    (tmp_path / "renamed.csv").write_text("\n".join([lines[0].replace("hue", "Hue"), *lines[1:]]) + "\n")
    (tmp_path / "features_only.csv").write_text(drop_columns(lines, {"target", "magnesium"}))
    out = tmp_path / "p.txt"
    _assert_refused(sgdlab("predict", "--model", model_path, tmp_path / "renamed.csv", "--out", out), out,
                    "has no column 'hue' (the model was trained on it)")
    _assert_refused(sgdlab("predict", "--model", model_path, tmp_path / "features_only.csv", "--out", out), out,
                    "has no column 'magnesium'")
    _assert_refused(sgdlab("predict", "--model", model_path, tmp_path / "missing.csv", "--out", out), out,
                    "row 2, column 'ash' has a missing value")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = sgdlab("predict", "--model", model_path, wine_csv)                 # the label column is ignored
    assert ok.returncode == 0 and len(ok.stdout.split()) == 178


def test_regression_table_reports_mae_rmse_r2(tmp_path, capsys):
    from sgdlab.cli import main

    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 3))
    y = x @ [1.5, -2.0, 0.5] + 0.1 * rng.normal(size=300)
    (tmp_path / "r.csv").write_text("a,b,c,y\n" + "".join(f"{a},{b},{c},{t}\n" for (a, b, c), t in zip(x, y)))
    config = TrainConfig(dataset=str(tmp_path / "r.csv"), label_column="y", loss="mse", layers=(16,), epochs=30,
                         lr=0.01, batch_size=20)
    summary = train_run(config, tmp_path / "run", quiet=True, pictures=False)
    report = summary["regression_report"]
    assert summary["report_split"] == "test" and report["support"] == 30 and report["r2"] > 0.9
    assert main(["evaluate", "--model", str(tmp_path / "run" / "model.safetensors"), "--dataset",
                 str(tmp_path / "r.csv")]) == 0
    assert f"MAE {report['mae']:.6g}  RMSE {report['rmse']:.6g}" in capsys.readouterr().out


def test_convert_keeps_text_classes_from_csv_and_parquet(wine_csv, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.csv
    import pyarrow.parquet as pq

    from sgdlab.data import convert, open_store

    pq.write_table(pyarrow.csv.read_csv(wine_csv), tmp_path / "wine.parquet")
    for source in (wine_csv, tmp_path / "wine.parquet"):
        meta = convert(source, tmp_path / source.suffix[1:], label_column="target", progress=False)
        assert meta["class_names"] == ["class_0", "class_1", "class_2"] and meta["n"] == 178
        train = open_store(tmp_path / source.suffix[1:]).train
        assert train.classes.tolist() == meta["class_names"] and train.x.shape[1] == 13


def test_scale_hint_only_where_magnitudes_differ_over_100x():
    from sgdlab.data import Dataset, load_dataset
    from sgdlab.run import scale_hint

    assert scale_hint(load_dataset("digits").train) is None                     # rare pixels are not a scale
    x = np.column_stack([np.linspace(0, 1, 50), np.linspace(0, 150, 50), np.full(50, 1e6)])  # constant: ignored
    assert scale_hint(Dataset(x, np.arange(50) % 2)) == "hint: feature scales differ by 150x (largest |x| per " \
        "column from 1 to 150): pass --standardize to scale them inside the model"
    assert scale_hint(Dataset(x[:, :2] / [1, 2], np.arange(50) % 2)) is None


def test_sweep_takes_column_lists_as_one_value():
    from sgdlab.sweep.space import parse_values

    assert parse_values("features", "a,b") == "a,b"
    assert parse_values("drop", "id/id,name").values == ("id", "id,name")       # alternatives: '/'


def test_standardize_exports_to_onnx_with_the_same_outputs(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from sgdlab.onnx_export import export_onnx

    rng = np.random.default_rng(5)
    x = (rng.normal(size=(64, 3)) * [3000, 1, 0.001] + [5000, 0, 0.01]).astype(np.float32)
    model = MLP([3, 8, 2], standardize=True, seed=0)
    model.layers[0].adapt(x)
    export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": x})))
    np.testing.assert_allclose(outputs["probabilities"], model.predict_proba(x), rtol=0, atol=1e-5)
