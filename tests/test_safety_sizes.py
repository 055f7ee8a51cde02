"""#22 "Memory without bound from tiny inputs" and "Wrong results": every size from a file is checked
before memory is allocated; loss/target pairing; dtype overflow; umask; byte-identical model files."""

import io
import json
import os
import resource
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from sgdlab.checkpoint import load_model, read_safetensors, save_model
from sgdlab.data import Dataset
from sgdlab.data.files import load_arrays
from sgdlab.errors import CheckpointError, DataError, SgdlabError
from sgdlab.model import MLP
from sgdlab.safetensors_io import safetensors_bytes

LIMIT = 1 << 30     # 1 GB of address space on top of what the interpreter already maps


def run_limited(code, extra_bytes=LIMIT):
    """Run ``code`` in a fresh interpreter whose address space may grow by at most ``extra_bytes``."""
    prelude = ("import resource, sys\n"
               "import numpy, sgdlab, sgdlab.data, sgdlab.checkpoint, sgdlab.sweep\n"
               "vm = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()\n"
               f"resource.setrlimit(resource.RLIMIT_AS, (vm + {extra_bytes}, vm + {extra_bytes}))\n")
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=120)


def npy_bytes(array, shape_text=None):
    buf = io.BytesIO()
    np.save(buf, array)
    data = buf.getvalue()
    if shape_text is None:
        return data
    header_len = int.from_bytes(data[8:10], "little")
    header = data[10:10 + header_len].decode("latin1")
    new = header.replace(repr(array.shape), shape_text)
    new = new.rstrip("\n").rstrip(" ")
    new += " " * (header_len - len(new) - 1) + "\n"
    assert len(new) == header_len, "the crafted shape must fit the header's padding"
    return data[:10] + new.encode("latin1") + data[10 + header_len:]


def test_a_huge_label_in_a_tiny_csv_asks_for_no_memory(tmp_path):
    """One label of 10^8 in 60 rows: labels are classes as they come (4 here), never max + 1 output units."""
    rows = "\n".join(f"{i % 3},{i}" for i in range(59)) + "\n100000000,1\n"
    (tmp_path / "d.csv").write_text("y,a\n" + rows)
    result = run_limited(f"from sgdlab.data.files import load_arrays\n"
                         f"s = load_arrays({str(tmp_path / 'd.csv')!r}, label_column='y')\n"
                         f"print(s.train.n_classes)\n")
    assert result.returncode == 0 and result.stdout.split() == ["4"], result.stderr


def test_int64_max_label_is_one_class_among_three(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((30, 2)), t=np.array([0, 1, np.iinfo(np.int64).max] * 10))
    assert load_arrays(tmp_path / "d.npz").train.n_classes == 3


def test_more_classes_than_allowed_are_refused_with_the_count(tmp_path):
    from sgdlab.data.checks import MAX_CLASSES

    n = MAX_CLASSES + 1
    np.savez(tmp_path / "d.npz", x=np.zeros((n, 1), np.float32), t=np.arange(n))
    with pytest.raises(DataError, match=f"ask for {n} classes, more than the {MAX_CLASSES}"):
        load_arrays(tmp_path / "d.npz")
    with pytest.raises(SgdlabError, match="n_classes"):
        Dataset(np.zeros((2, 1)), np.array([0, 1]), n_classes=10 ** 12)


def test_npz_member_header_claiming_a_huge_shape_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "d.npz", "w") as z:
        z.writestr("x.npy", npy_bytes(np.zeros((4, 3)), "(999999999999, 3)"))
        z.writestr("t.npy", npy_bytes(np.arange(4)))
    result = run_limited(f"from sgdlab.data.files import load_arrays\n"
                         f"try:\n    load_arrays({str(tmp_path / 'd.npz')!r})\n"
                         f"except ValueError as e:\n    print(e)\n")
    assert result.returncode == 0 and "(999999999999, 3)" in result.stdout and "96 bytes" in result.stdout, \
        result.stdout + result.stderr


def test_npy_header_claiming_a_huge_shape_is_refused(tmp_path):
    (tmp_path / "x.npy").write_bytes(npy_bytes(np.zeros((4, 3)), "(999999999999, 3)"))
    np.save(tmp_path / "t.npy", np.arange(4))
    with pytest.raises(DataError, match=r"header says shape \(999999999999, 3\)"):
        load_arrays(tmp_path)


def test_npz_with_float_train_and_integer_test_targets_is_refused(tmp_path):
    np.savez(tmp_path / "d.npz", x_train=np.zeros((4, 2)), t_train=np.ones((4, 2)), x_test=np.zeros((2, 2)),
             t_test=np.array([0, 1]))
    with pytest.raises(DataError, match="needs the same kind of targets"):
        load_arrays(tmp_path / "d.npz")


def _model_file(path, mutate):
    model = MLP([3, 4, 2], seed=0)
    save_model(model, path)
    tensors, meta = read_safetensors(path)
    mutate(tensors, meta)
    path.write_bytes(safetensors_bytes(tensors, meta))
    return path


def test_model_metadata_claiming_a_huge_layer_is_refused_before_building(tmp_path):
    def huge(tensors, meta):
        arch = json.loads(meta["architecture"])
        arch["layers"][0]["n_in"] = 10 ** 12
        meta["architecture"] = json.dumps(arch)

    path = _model_file(tmp_path / "m.safetensors", huge)
    assert path.stat().st_size < 2048
    result = run_limited(f"from sgdlab.checkpoint import load_model\n"
                         f"try:\n    load_model({str(path)!r})\n"
                         f"except ValueError as e:\n    print(e)\n")
    assert result.returncode == 0 and "n_in=1000000000000" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("mutate, message", [
    (lambda t, m: m.update(architecture=json.dumps({"layers": [{"type": "Dense", "n_in": float("inf"),
                                                                 "n_out": 2}]}).replace("Infinity", "1e999")),
     "must be finite|not allowed|architecture"),
    (lambda t, m: m.update(architecture="[" * 5000 + "]" * 5000), "nested|not valid JSON|architecture"),
    (lambda t, m: m.update(architecture=json.dumps({"layers": [{"type": "Dense", "n_in": {"a": [1]}, "n_out": 2}]})),
     "nested"),
    (lambda t, m: m.update(architecture="Infinity"), "not valid JSON"),
])
def test_crafted_model_descriptions_are_one_line_errors(tmp_path, mutate, message):
    path = _model_file(tmp_path / "m.safetensors", mutate)
    with pytest.raises(CheckpointError, match=message):
        load_model(path)


def test_bf16_and_infinite_sizes_in_a_safetensors_header_are_refused(tmp_path):
    good = MLP([3, 4, 2], seed=0)
    save_model(good, tmp_path / "m.safetensors")
    data = (tmp_path / "m.safetensors").read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    for variant in ("BF16", "Infinity"):
        h = json.loads(json.dumps(header))
        if variant == "BF16":
            h["layers.0.b"]["dtype"] = "BF16"
            text = json.dumps(h)
        else:
            text = json.dumps(h).replace('"shape": [4]', '"shape": [Infinity]', 1)
        text = text.encode() + b" " * (-len(text) % 8)
        (tmp_path / "bad.safetensors").write_bytes(len(text).to_bytes(8, "little") + text + data[8 + n:])
        with pytest.raises(CheckpointError, match="not a tensor sgdlab can read|not a readable"):
            load_model(tmp_path / "bad.safetensors")


def test_cross_entropy_with_float_targets_is_refused(tmp_path):
    from sgdlab import fit
    from sgdlab.optimizers import SGD

    rng = np.random.default_rng(0)
    x, t = rng.random((40, 3)), rng.standard_normal((40, 2))
    with pytest.raises(DataError, match="not probabilities.*use loss 'mse'"):
        fit(MLP([3, 4, 2]), Dataset(x, t), SGD(lr=0.1), batch_size=10, epochs=1)
    one_hot = np.eye(2)[np.arange(40) % 2]
    assert fit(MLP([3, 4, 2]), Dataset(x, one_hot), SGD(lr=0.1), batch_size=10, epochs=1).status == "completed"


def test_cli_cross_entropy_with_float_targets_exits_2(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((60, 3)), t=rng.standard_normal((60, 2)))
    result = subprocess.run([sys.executable, "-m", "sgdlab", "train", "--dataset", tmp_path / "d.npz", "--epochs",
                             "2", "--quiet", "--out", tmp_path / "run"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "not probabilities" in result.stderr and "Traceback" not in result.stderr


def test_inputs_beyond_float32_are_refused():
    from sgdlab import fit
    from sgdlab.optimizers import SGD

    x = np.ones((20, 3))
    x[7, 2] = 1e300
    with pytest.raises(DataError, match="1e\\+300 at sample 7.*float32"):
        fit(MLP([3, 4, 2]), Dataset(x, np.arange(20) % 2), SGD(lr=0.1), batch_size=10, epochs=1)


def test_predict_refuses_inputs_beyond_the_model_dtype(tmp_path):
    save_model(MLP([3, 4, 2], seed=0), tmp_path / "m.safetensors")
    x = np.ones((2, 3))
    x[1, 0] = 1e300
    np.save(tmp_path / "x.npy", x)
    result = subprocess.run([sys.executable, "-m", "sgdlab", "predict", "--model", tmp_path / "m.safetensors",
                             tmp_path / "x.npy"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "float32" in result.stderr and "nan" not in result.stdout, result


def test_files_follow_the_umask(tmp_path):
    code = (f"import os; os.umask(0o022)\nfrom sgdlab.checkpoint import save_model, write_json_atomic\n"
            f"from sgdlab.model import MLP\nsave_model(MLP([2, 2]), {str(tmp_path / 'm.safetensors')!r})\n"
            f"write_json_atomic({str(tmp_path / 's.json')!r}, {{}})\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    for name in ("m.safetensors", "s.json"):
        assert oct((tmp_path / name).stat().st_mode & 0o777) == oct(0o644), name


def test_model_files_of_identical_runs_are_byte_identical(tmp_path):
    code = (f"import sys\nfrom sgdlab.checkpoint import save_model\nfrom sgdlab.model import MLP\n"
            f"save_model(MLP([3, 5, 2], seed=1), sys.argv[1], metadata={{'config': {{'a': 1, 'b': [2], 'c': 'x'}},"
            f" 'status': 'completed', 'z': 1, 'y': 2}})\n")
    for name in "ab":   # separate processes: the hash seed that reordered the metadata differs
        subprocess.run([sys.executable, "-c", code, tmp_path / name], check=True, timeout=60,
                       env={**os.environ, "PYTHONHASHSEED": "random"})
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_sweep_trial_counts_are_bounded_before_allocation():
    from sgdlab.sweep import build_space

    for trials, grid in ((10 ** 12, True), (10 ** 8, False)):
        with pytest.raises(SgdlabError, match="trials"):
            fixed, space = build_space({"lr": "0.001:1:log", "batch_size": "10:100"}, trials=trials, grid=grid)
            space.points()


def test_rlimit_helper_catches_a_big_allocation():
    result = run_limited("import numpy\nnumpy.ones(2 * 1024 ** 3 // 8)\n")
    assert result.returncode != 0 and "MemoryError" in result.stderr
