"""ONNX export: the file passes onnx.checker, onnxruntime gives sgdlab's numbers, and it stands alone."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import sgdlab as sl  # noqa: E402
from sgdlab.data import Dataset  # noqa: E402
from sgdlab.errors import ExportError  # noqa: E402
from sgdlab.layers import ACTIVATIONS, BatchNorm, Dense, Dropout, Layer, Sigmoid, Tanh  # noqa: E402
from sgdlab.onnx_export import OPSET, export_onnx  # noqa: E402


def session(path):
    return ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])


def run_onnx(path, x):
    """{output name: array} for float32 input ``x``."""
    sess = session(path)
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": x.astype(np.float32)})))


def check_parity(model, path, x):
    """The exported file gives predict_proba (classifiers) / predict (regressors) within 1e-5, same argmax."""
    export_onnx(model, path)
    onnx.checker.check_model(onnx.load(os.fspath(path)), full_check=True)
    loaded = onnx.load(os.fspath(path))
    assert loaded.opset_import[0].version == OPSET
    assert loaded.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert loaded.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    for rows in (x[:1], x):  # a batch of 1 and the whole set through the same file
        out = run_onnx(path, rows)
        if model.is_classifier:
            assert list(out) == ["logits", "probabilities"]
            proba, labels = model.predict_proba(rows), model.predict(rows)
            assert out["probabilities"].shape == proba.shape == (len(rows), model.n_out)
            np.testing.assert_allclose(out["probabilities"], proba, rtol=0, atol=1e-5)
            np.testing.assert_array_equal(out["probabilities"].argmax(axis=1), labels)
            np.testing.assert_array_equal(out["logits"].argmax(axis=1), labels)
        else:
            assert list(out) == ["predictions"]
            np.testing.assert_allclose(out["predictions"], model.predict(rows), rtol=0, atol=1e-5)
    return out


def scrambled_batch_norm_state(model, seed=1):
    """Running averages far from the initial 0/1, so an export that ignored them would be caught."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if hasattr(layer, "running_var"):
            layer.running_mean[...] = rng.normal(0, 0.5, layer.n)
            layer.running_var[...] = rng.uniform(0.3, 3, layer.n)
            layer.gamma[...] = rng.uniform(0.5, 1.5, layer.n)
            layer.beta[...] = rng.normal(0, 0.3, layer.n)


@pytest.fixture(scope="module")
def mnist():
    data = sl.datasets.load_mnist(progress=False)
    x_test, t_test = next(data.test.chunks(len(data.test)))
    return data, x_test, t_test


@pytest.mark.slow
def test_mnist_784_100_10_classifier_matches_onnxruntime_on_all_10000_test_images(mnist, tmp_path):
    data, x_test, _ = mnist
    model = sl.MLP([784, 100, 10], seed=0)
    sl.fit(model, data.train, sl.optimizers.Momentum(lr=0.1), batch_size=100, epochs=1, progress=False,
           train_metrics="running")
    out = check_parity(model, tmp_path / "mlp.onnx", x_test)
    assert out["probabilities"].shape == (10_000, 10)
    assert model.accuracy(x_test, mnist[2]) > 0.9  # a trained network, not an initial one


@pytest.mark.slow
def test_mnist_batch_norm_dropout_classifier_matches_onnxruntime(mnist, tmp_path):
    data, x_test, t_test = mnist
    model = sl.MLP([784, 256, 10], batch_norm=True, dropout=0.5, seed=0)
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "BatchNorm", "ReLU", "Dropout", "Dense"]
    sl.fit(model, data.train, sl.optimizers.Momentum(lr=0.1), batch_size=100, iterations=300, progress=False,
           train_metrics="running")
    assert np.ptp(model.layers[1].running_var) > 0  # trained averages, not the initial ones
    check_parity(model, tmp_path / "bn.onnx", x_test)
    ops = [node.op_type for node in onnx.load(os.fspath(tmp_path / "bn.onnx")).graph.node]
    assert ops == ["Gemm", "BatchNormalization", "Relu", "Gemm", "Softmax"]  # Dropout left out
    assert model.accuracy(x_test, t_test) > 0.85


@pytest.mark.slow
def test_mnist_regressor_matches_onnxruntime(mnist, tmp_path):
    data, x_test, t_test = mnist
    x_train, t_train = next(data.train.chunks(10_000))
    targets = t_train.astype(np.float32)[:, None] / 9  # the digit's value, as a number
    model = sl.MLP([784, 64, 32, 1], activation="tanh", loss="mse", seed=0)
    sl.fit(model, Dataset(x_train, targets), sl.optimizers.Adam(lr=1e-3), batch_size=100, epochs=1, progress=False,
           train_metrics="running")
    check_parity(model, tmp_path / "regressor.onnx", x_test)
    error = np.abs(model.predict(x_test)[:, 0] - t_test / 9).mean()
    assert error < 0.2  # it learnt something


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_registered_activation_exports_with_batch_norm(activation, tmp_path):
    model = sl.MLP([6, 8, 5, 3], activation=activation, batch_norm=True, dropout=0.2, seed=3)
    scrambled_batch_norm_state(model)
    x = np.random.default_rng(0).normal(size=(257, 6))
    check_parity(model, tmp_path / f"{activation}.onnx", x)


def test_regressor_with_several_outputs_and_float64_model(tmp_path):
    model = sl.MLP([5, 7, 2], activation="sigmoid", loss="mse", seed=1, dtype=np.float64)
    x = np.random.default_rng(2).normal(size=(33, 5))
    check_parity(model, tmp_path / "reg.onnx", x)


def test_multi_label_classifier_exports_sigmoid_probabilities(tmp_path):
    model = sl.MLP([4, 6, 3], loss="sigmoid_cross_entropy", seed=0)
    x = np.random.default_rng(1).normal(size=(50, 4)).astype(np.float32)
    export_onnx(model, tmp_path / "multi.onnx")
    out = run_onnx(tmp_path / "multi.onnx", x)
    np.testing.assert_allclose(out["probabilities"], model.predict_proba(x), rtol=0, atol=1e-6)
    assert not np.allclose(out["probabilities"].sum(axis=1), 1)  # independent sigmoids, not a softmax


def test_mse_classifier_exports_its_scores_as_logits_only(tmp_path):
    model = sl.MLP([4, 6, 3], loss="mse", task="classification", seed=0)
    export_onnx(model, tmp_path / "mse.onnx")
    x = np.random.default_rng(1).normal(size=(9, 4)).astype(np.float32)
    out = run_onnx(tmp_path / "mse.onnx", x)
    assert list(out) == ["logits"]
    np.testing.assert_allclose(out["logits"], model.forward(x), rtol=0, atol=1e-6)


def small_conv_net(seed=0):
    """Conv (stride 2, padding 1) -> ReLU -> MaxPool 2 -> Conv 3x3 -> Tanh -> AvgPool (3, stride 2, overlapping)
    -> Flatten -> Dense -> BatchNorm -> Sigmoid -> Dropout -> Dense, on 2x13x11 images."""
    layers = [sl.Conv2D(2, 4, 3, stride=2, padding=1), sl.ReLU(), sl.MaxPool2D(2), sl.Conv2D(4, 5, (2, 1)), Tanh(),
              sl.AvgPool2D(2, stride=1), sl.Flatten(), Dense(5 * 1 * 2, 6), BatchNorm(6), Sigmoid(), Dropout(0.3),
              Dense(6, 3)]
    model = sl.Sequential(layers, input_shape=(2, 13, 11), seed=seed)
    scrambled_batch_norm_state(model)
    return model


def test_conv_pool_flatten_export_takes_images_and_matches(tmp_path):
    model = small_conv_net()
    x = np.random.default_rng(0).normal(size=(64, 2, 13, 11)).astype(np.float32)
    check_parity(model, tmp_path / "conv.onnx", x)
    graph = onnx.load(os.fspath(tmp_path / "conv.onnx")).graph
    assert [d.dim_value or d.dim_param for d in graph.input[0].type.tensor_type.shape.dim] == ["batch", 2, 13, 11]
    assert [n.op_type for n in graph.node] == ["Conv", "Relu", "MaxPool", "Conv", "Tanh", "AveragePool", "Flatten",
                                               "Gemm", "BatchNormalization", "Sigmoid", "Gemm", "Softmax"]


@pytest.mark.slow
def test_mnist_conv_net_matches_onnxruntime(mnist, tmp_path):
    data, x_test, t_test = mnist
    model = sl.Sequential([sl.Conv2D(1, 4, 5, padding=2), sl.ReLU(), sl.MaxPool2D(2), sl.Flatten(),
                           Dense(4 * 14 * 14, 10)], input_shape=(1, 28, 28), seed=0)
    sl.fit(model, data.train, sl.optimizers.Momentum(lr=0.05), batch_size=100, iterations=60, progress=False,
           train_metrics="running")
    check_parity(model, tmp_path / "conv.onnx", x_test.reshape(-1, 1, 28, 28))
    assert model.accuracy(x_test, t_test) > 0.8


class Square(Layer):
    """y = x² (a layer the exporter has never heard of)."""

    def forward(self, x, train=False):
        return x * x


def test_unsupported_layer_is_refused_naming_it_and_nothing_is_written(tmp_path):
    model = sl.Sequential([Dense(3, 4), Square(), Dense(4, 2)])
    target = tmp_path / "model.onnx"
    with pytest.raises(ExportError, match=r"layer 1 \(Square\) cannot be exported to ONNX: supported layers are "):
        export_onnx(model, target)
    assert os.listdir(tmp_path) == []


def test_export_replaces_an_existing_file_whole(tmp_path):
    target = tmp_path / "model.onnx"
    export_onnx(sl.MLP([3, 4, 2], seed=0), target)
    export_onnx(sl.MLP([3, 5, 2], seed=1), target)
    assert os.listdir(tmp_path) == ["model.onnx"]
    assert run_onnx(target, np.ones((2, 3), np.float32))["logits"].shape == (2, 2)


STANDALONE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
try:
    import sgdlab
except ImportError:
    pass
else:
    sys.exit("sgdlab is importable: this check proves nothing")
import numpy as np, onnxruntime
sess = onnxruntime.InferenceSession(sys.argv[2], providers=["CPUExecutionProvider"])
x = np.linspace(-1, 1, 3 * 5, dtype=np.float32).reshape(3, 5)
print(json.dumps(sess.run(["probabilities"], {"input": x})[0].tolist()))
"""


def test_exported_file_runs_in_a_python_without_sgdlab(tmp_path):
    """A child Python with only numpy and onnxruntime on its path (-I -S: no site-packages, no cwd)."""
    model = sl.MLP([5, 8, 3], batch_norm=True, dropout=0.3, seed=2)
    scrambled_batch_norm_state(model)
    export_onnx(model, tmp_path / "model.onnx")
    only = tmp_path / "only"
    only.mkdir()
    import numpy

    for package in (numpy, ort):
        folder = os.path.dirname(package.__file__)
        os.symlink(folder, only / os.path.basename(folder))
        libs = folder + ".libs"  # wheels' bundled shared libraries (numpy.libs)
        if os.path.isdir(libs):
            os.symlink(libs, only / os.path.basename(libs))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-I", "-S", "-c", STANDALONE, str(only), str(tmp_path / "model.onnx")],
                          cwd=elsewhere, capture_output=True, text=True, env={"PATH": os.environ.get("PATH", "")})
    assert done.returncode == 0, done.stderr
    x = np.linspace(-1, 1, 3 * 5, dtype=np.float32).reshape(3, 5)
    np.testing.assert_allclose(json.loads(done.stdout), model.predict_proba(x), rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- sgdlab export


def sgdlab(*args, cwd=None, code=None):
    """The real command in a subprocess (``code``: Python to run first, then ``sgdlab.cli.main``)."""
    prefix = ["-c", f"{code}\nimport sys\nfrom sgdlab.cli import main\nsys.exit(main(sys.argv[1:]))"] if code \
        else ["-m", "sgdlab"]
    return subprocess.run([sys.executable, *prefix, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_cli_export_writes_a_file_that_onnxruntime_runs(tmp_path):
    model = sl.MLP([4, 6, 3], batch_norm=True, seed=0)
    scrambled_batch_norm_state(model)
    sl.save_model(model, tmp_path / "model.safetensors")
    result = sgdlab("export", tmp_path / "model.safetensors", "--onnx", tmp_path / "model.onnx")
    assert result.returncode == 0, result.stderr
    assert "opset 17" in result.stdout and "logits, probabilities" in result.stdout
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(tmp_path / "model.onnx", x)["probabilities"], model.predict_proba(x),
                               rtol=0, atol=1e-6)
    again = sgdlab("export", tmp_path, "--onnx", tmp_path / "model.onnx")  # a run folder; the file exists
    assert_one_line_error(again, "already exists", "--overwrite")
    assert sgdlab("export", tmp_path, "--onnx", tmp_path / "model.onnx", "--overwrite").returncode == 0


def test_cli_export_of_an_unsupported_layer_exits_2_and_writes_nothing(tmp_path):
    """A model file whose layer loads (a registered plug-in layer) but has no ONNX form."""
    code = (
        "import numpy as np, sgdlab as sl\n"
        "from sgdlab.layers import Layer, Dense\n"
        "from sgdlab.model import LAYER_TYPES\n"
        "class Square(Layer):\n"
        "    def forward(self, x, train=False):\n"
        "        return x * x\n"
        "LAYER_TYPES['Square'] = Square\n"
        "import sys, os\n"
        "if not os.path.exists('model.safetensors'):\n"
        "    sl.save_model(sl.Sequential([Dense(3, 4), Square(), Dense(4, 2)]), 'model.safetensors')\n")
    result = sgdlab("export", "model.safetensors", "--onnx", "out.onnx", cwd=tmp_path, code=code)
    assert_one_line_error(result, "layer 1 (Square) cannot be exported to ONNX")
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors"]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "missing"])
def test_cli_export_of_a_damaged_model_file_exits_2_and_writes_nothing(tmp_path, damage):
    path = tmp_path / "model.safetensors"
    sl.save_model(sl.MLP([4, 6, 3], seed=0), path)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) - 40])
    elif damage == "garbage":
        path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all" + data[30:])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()
    result = sgdlab("export", path, "--onnx", tmp_path / "out.onnx")
    assert_one_line_error(result, "model.safetensors")
    assert not (tmp_path / "out.onnx").exists()
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_cli_export_without_the_onnx_package_says_how_to_install_it(tmp_path):
    sl.save_model(sl.MLP([4, 6, 3], seed=0), tmp_path / "model.safetensors")
    result = sgdlab("export", "model.safetensors", "--onnx", "out.onnx", cwd=tmp_path,
                    code="import sys\nsys.modules['onnx'] = None  # as if not installed")
    assert_one_line_error(result, "pip install 'sgdlab[onnx]'")
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors"]
