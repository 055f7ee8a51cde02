"""Trustworthy runs: kill -9 and resume bit for bit, signals, a full disk, >= 30 bad inputs, fuzzed parsers and loaders.

``python tests/test_reliability.py`` prints the bad-input table (every case and the message it shows).
"""

import json
import os
import pickle
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sgdlab import MLP
from sgdlab.checkpoint import CHECKPOINT_NAME, load_checkpoint, load_model, save_checkpoint, save_model
from sgdlab.cli import build_parser, config_from_args, main, read_inputs
from sgdlab.config import TrainConfig
from sgdlab.data import Dataset, load_arrays, make_spirals
from sgdlab.errors import SgdlabError
from sgdlab.optimizers import SGD, Momentum
from sgdlab.run import train_run
from sgdlab.training import Trainer

# 6000 iterations take ~2.8 s here; the five signals of the kill test land ~0.8 s of training after a checkpoint,
# so a machine twice as fast as this one still receives every signal mid-run
RUN = ["--dataset", "spirals", "--layers", "32,32", "--iterations", "6000", "--batch-size", "16",
       "--checkpoint-every", "5", "--eval-every", "25", "--early-stopping", "200", "--optimizer", "momentum",
       "--seed", "5", "--quiet"]


def start(*args):
    return subprocess.Popen([sys.executable, "-m", "sgdlab", "train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint(proc, path, newer_than):
    """Block until ``path`` is rewritten after ``newer_than`` (so the process is inside its loop) or it exits."""
    while proc.poll() is None:
        if os.path.exists(path) and os.path.getmtime(path) > newer_than:
            return True
        time.sleep(0.02)
    return False


def checkpoint_iteration(folder):
    return load_checkpoint(folder / CHECKPOINT_NAME)[0]["iteration"]


def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path):
    """SIGINT once, SIGKILL three times, SIGTERM once, at seeded random moments; each time resume."""
    config = config_from_args(build_parser().parse_args(["train", *RUN]))
    train_run(config, tmp_path / "whole", quiet=True)
    reference = load_model(tmp_path / "whole" / "model.safetensors").params
    out, rng = tmp_path / "killed", random.Random(10)
    stops = [(signal.SIGINT, 130), (signal.SIGKILL, -9), (signal.SIGKILL, -9), (signal.SIGKILL, -9),
             (signal.SIGTERM, 143)]
    progress = []
    for k, (sig, code) in enumerate(stops):
        began = time.time()
        proc = start(*RUN, "--out", out) if k == 0 else start("--resume", out, "--quiet")
        assert wait_for_checkpoint(proc, out / CHECKPOINT_NAME, began), proc.communicate()
        time.sleep(rng.uniform(0.0, 0.3))  # patience 200 never ends the run early: every signal lands mid-loop
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == code, stderr
        if sig != signal.SIGKILL:
            assert f"checkpoint: {out / CHECKPOINT_NAME}" in stdout
            assert f"resume with: sgdlab train --resume {out}" in stdout
            assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"
        progress.append(checkpoint_iteration(out))
    assert progress == sorted(progress) and 0 < progress[0] and progress[-1] < 6000, progress
    done = start("--resume", out, "--quiet")
    stdout, stderr = done.communicate(timeout=300)
    assert done.returncode == 0, stderr
    assert np.array_equal(load_model(out / "model.safetensors").params, reference)
    assert json.loads((out / "summary.json").read_text())["iterations"] == \
        json.loads((tmp_path / "whole" / "summary.json").read_text())["iterations"]
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]


def _file_size_limit(limit):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_full_disk_fails_cleanly_keeps_the_checkpoint_and_resumes(tmp_path):
    args = ["--dataset", "spirals", "--layers", "16", "--batch-size", "20", "--checkpoint-every", "1", "--seed", "2"]
    small = config_from_args(build_parser().parse_args(["train", *args, "--iterations", "40"]))
    train_run(small, tmp_path / "small", quiet=True)
    limit = (tmp_path / "small" / CHECKPOINT_NAME).stat().st_size + 300  # grows ~8 bytes an iteration
    full = config_from_args(build_parser().parse_args(["train", *args, "--iterations", "250"]))
    train_run(full, tmp_path / "whole", quiet=True)
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "sgdlab", "train", *args, "--iterations", "250", "--quiet",
                             "--out", out], capture_output=True, text=True, preexec_fn=_file_size_limit(limit),
                            timeout=300)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert f"could not write {str(out / CHECKPOINT_NAME)!r} (File too large" in lines[0], lines[0]
    assert "nothing was replaced" in lines[0]
    assert sorted(os.listdir(out)) == ["checkpoint.safetensors", "config.json", "metrics.csv"]
    assert 40 <= checkpoint_iteration(out) < 250
    assert main(["train", "--resume", str(out), "--quiet"]) == 0          # space is back: resume finishes
    assert np.array_equal(load_model(out / "model.safetensors").params,
                          load_model(tmp_path / "whole" / "model.safetensors").params)


# --------------------------------------------------------------------------- bad inputs: each refused in one line


class Evil:
    """A pickle that would create a marker file when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def make_files(d):
    """The bad files the table uses, in folder ``d``."""
    rng = np.random.default_rng(0)
    x = rng.random((40, 2)).astype(np.float32)
    np.savez(d / "empty.npz", x=np.zeros((0, 2), np.float32), t=np.zeros(0, np.int64))
    inf_x = x.copy()
    inf_x[7, 0] = np.inf
    np.savez(d / "inf.npz", x=inf_x, t=np.arange(40) % 2)
    np.savez(d / "wide.npz", x=rng.random((40, 5)).astype(np.float32), t=np.arange(40) % 3)
    np.savez(d / "t3d.npz", x=x, t=np.zeros((40, 1, 1)))
    evil = pickle.dumps(Evil(d / "pwned"))
    (d / "evil.npz").write_bytes(evil)
    (d / "evil").mkdir()
    (d / "evil" / "x.npy").write_bytes(evil)
    np.save(d / "evil" / "t.npy", np.arange(40) % 2)
    np.save(d / "objects.npy", np.array([Evil(d / "pwned")], dtype=object), allow_pickle=True)
    np.save(d / "inputs_wide.npy", rng.random((3, 3)))
    np.save(d / "inputs_nan.npy", np.array([[0.1, np.nan]]))
    (d / "inputs.txt").write_text("1,2\n")
    (d / "inputs_bad.csv").write_text("a,b\n1,zz\n")
    model = MLP([2, 8, 3], seed=0)
    save_model(model, d / "model.safetensors")
    (d / "evil_model.safetensors").write_bytes(evil)
    (d / "a_file").write_text("x")
    (d / "nockpt").mkdir()
    (d / "nockpt" / "config.json").write_text('{"lr": -1}')
    trainer = Trainer(MLP([2, 8, 3], seed=0), make_spirals(60), Momentum(lr=0.1), batch_size=10, iterations=5)
    meta = {"config": TrainConfig(dataset="spirals", layers=(8,)).to_dict()}
    for name in ("truncated", "tampered", "v2", "modelfile", "pickled", "otherarch"):
        (d / name).mkdir()
        save_checkpoint(d / name / CHECKPOINT_NAME, trainer.state_dict(), metadata=meta)
    path = d / "truncated" / CHECKPOINT_NAME
    path.write_bytes(path.read_bytes()[:-100])
    path = d / "tampered" / CHECKPOINT_NAME
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    from safetensors.numpy import save_file

    from sgdlab.checkpoint import read_safetensors
    tensors, m = read_safetensors(d / "v2" / CHECKPOINT_NAME)
    save_file(tensors, d / "v2" / CHECKPOINT_NAME, metadata={**m, "format": "sgdlab.checkpoint/2"})
    save_model(model, d / "modelfile" / CHECKPOINT_NAME)
    (d / "pickled" / CHECKPOINT_NAME).write_bytes(evil)
    other = {"config": TrainConfig(dataset="spirals", layers=(16,)).to_dict()}
    save_checkpoint(d / "otherarch" / CHECKPOINT_NAME, trainer.state_dict(), metadata=other)
    return d


def _trainer_for(model, optimizer=None):
    return Trainer(model, make_spirals(60), optimizer or Momentum(lr=0.1), batch_size=10, iterations=5)


def _load_into(d, model, optimizer=None, data=None):
    state, _ = load_checkpoint(d / "otherarch" / CHECKPOINT_NAME)
    trainer = Trainer(model, data or make_spirals(60), optimizer or Momentum(lr=0.1), batch_size=10, iterations=5)
    trainer.load_state_dict(state)


# (name, CLI argv or Python callable taking the folder, fragment the one-line message must contain)
CASES = [
    ("resume: no such folder", ["train", "--resume", "{d}/nope"], "cannot resume '{d}/nope': no such run folder"),
    ("resume: no checkpoint, bad config.json", ["train", "--resume", "{d}/nockpt"],
     "its config.json is not usable (lr=-1 is not allowed"),
    ("resume with changed settings", ["train", "--resume", "{d}/v2", "--lr", "0.1"],
     "--resume continues {d}/v2 with its saved settings: drop --lr"),
    ("resume with --overwrite", ["train", "--resume", "{d}/v2", "--overwrite"], "drop --overwrite"),
    ("resume: truncated checkpoint", ["train", "--resume", "{d}/truncated"], "not a readable safetensors file"),
    ("resume: tampered checkpoint", ["train", "--resume", "{d}/tampered"], "fails its SHA-256 check"),
    ("resume: newer format", ["train", "--resume", "{d}/v2"], "has checkpoint format 'sgdlab.checkpoint/2'"),
    ("resume: a model file as checkpoint", ["train", "--resume", "{d}/modelfile"],
     "is not an sgdlab checkpoint (format 'sgdlab.model/1'"),
    ("resume: pickle as checkpoint", ["train", "--resume", "{d}/pickled"], "not a readable safetensors file"),
    ("resume: other architecture", ["train", "--resume", "{d}/otherarch"], "is for another architecture"),
    ("train: empty dataset", ["train", "--dataset", "{d}/empty.npz"], "need at least one sample"),
    ("train: inf in data", ["train", "--dataset", "{d}/inf.npz"], "x has 1 NaN/inf value(s), the first at sample 7"),
    ("train: 3-D targets", ["train", "--dataset", "{d}/t3d.npz"], "t has shape (40, 1, 1)"),
    ("train: pickle as .npz dataset", ["train", "--dataset", "{d}/evil.npz"], "contains pickled (object) data"),
    ("train: pickle as x.npy", ["train", "--dataset", "{d}/evil"], "evil"),
    ("train: run folder is a file", ["train", "--dataset", "spirals", "--out", "{d}/a_file"], "is a file"),
    ("train: --checkpoint-every 0", ["train", "--checkpoint-every", "0"], "checkpoint_every=0 is not allowed"),
    ("train: --momentum 1.5", ["train", "--momentum", "1.5"], "momentum=1.5 is not allowed: use a number >= 0 and < 1"),
    ("train: --epochs 0", ["train", "--epochs", "0"], "epochs=0 is not allowed: use a whole number >= 1"),
    ("train: --val-fraction 1", ["train", "--val-fraction", "1"], "val_fraction=1.0 is not allowed"),
    ("train: --dtype float16", ["train", "--dtype", "float16"], "dtype='float16' is unknown"),
    ("train: --iterations 2.5", ["train", "--iterations", "2.5"], "'2.5' is not a whole number"),
    ("predict: missing model", ["predict", "--model", "{d}/none.safetensors", "{d}/inputs_wide.npy"],
     "does not exist"),
    ("predict: pickle as model", ["predict", "--model", "{d}/evil_model.safetensors", "{d}/inputs_wide.npy"],
     "not a readable safetensors file"),
    ("predict: wrong width", ["predict", "--model", "{d}/model.safetensors", "{d}/inputs_wide.npy"],
     "has shape (3, 3): the model takes rows of 2 features"),
    ("predict: NaN input", ["predict", "--model", "{d}/model.safetensors", "{d}/inputs_nan.npy"], "NaN or inf"),
    ("predict: unknown suffix", ["predict", "--model", "{d}/model.safetensors", "{d}/inputs.txt"],
     "has suffix '.txt': use .npy, .npz or .csv"),
    ("predict: object array (pickle)", ["predict", "--model", "{d}/model.safetensors", "{d}/objects.npy"],
     "Object arrays cannot be loaded when allow_pickle=False"),
    ("predict: non-numeric CSV", ["predict", "--model", "{d}/model.safetensors", "{d}/inputs_bad.csv"],
     "is not a readable .csv file of numbers"),
    ("export: pickle as model", ["export", "{d}/evil_model.safetensors", "--onnx", "{d}/out.onnx"],
     "not a readable safetensors file"),
    ("export: missing model", ["export", "{d}/none.safetensors", "--onnx", "{d}/out.onnx"], "does not exist"),
    ("evaluate: data of another width", ["evaluate", "--model", "{d}/model.safetensors", "--dataset",
                                         "{d}/wide.npz"], "has 5 features per sample but the model's input layer has 2"),
    ("evaluate: pickle as model", ["evaluate", "--model", "{d}/evil_model.safetensors", "--dataset", "spirals"],
     "not a readable safetensors file"),
    ("API: TrainConfig(lr=nan)", lambda d: TrainConfig(lr=float("nan")), "lr=nan is not allowed"),
    ("API: unknown setting", lambda d: TrainConfig.from_dict({"learning_rate": 0.1}),
     "unknown setting 'learning_rate'"),
    ("API: mismatched lengths", lambda d: Dataset(np.zeros((3, 2), np.float32), np.array([0, 1])),
     "x has 3 samples but t has 2"),
    ("API: label outside the classes", lambda d: _trainer_for(MLP([2, 4, 2])), "has label 2 but the model has only 2"),
    ("API: impossible batch size", lambda d: Trainer(MLP([2, 3]), make_spirals(60, n_classes=3), SGD(lr=0.1),
                                                     batch_size=0), "batch_size=0"),
    ("API: load_model on a checkpoint", lambda d: load_model(d / "v2" / CHECKPOINT_NAME), "is not an sgdlab model"),
    ("API: load_model on a pickle", lambda d: load_model(d / "evil_model.safetensors"),
     "not a readable safetensors file"),
    ("API: load_arrays on a pickled x.npy", lambda d: load_arrays(d / "evil"), "evil"),
    ("API: checkpoint into another architecture", lambda d: _load_into(d, MLP([2, 16, 3])),
     "the checkpoint holds 51 parameters but this model has 99"),
    ("API: checkpoint into another optimizer", lambda d: _load_into(d, MLP([2, 8, 3]), SGD(lr=0.1)),
     "state is for optimizer 'momentum', not 'sgd'"),
    ("API: train_run resume with changed settings",
     lambda d: train_run(TrainConfig(dataset="spirals", layers=(16,), lr=0.3), d / "otherarch", resume=True),
     "cannot resume '{d}/otherarch' with changed settings (lr): a resumed run keeps the settings it started with"),
    ("API: checkpoint onto other data", lambda d: _load_into(d, MLP([2, 8, 3]), data=make_spirals(90)),
     "sampler is shuffle over 60 samples but this run's is shuffle over 90"),
]


def shown_message(case, d, capsys=None):
    """(exit code or exception type, the one line shown) for a case."""
    _, action, _ = case
    if callable(action):
        try:
            action(d)
        except SgdlabError as exc:
            return type(exc).__name__, str(exc)
        raise AssertionError(f"{case[0]}: no error raised")
    argv = [a.replace("{d}", str(d)) for a in action]
    if argv[0] == "train" and "--resume" not in argv and "--out" not in argv:
        argv += ["--out", str(d / "out"), "--dataset", "spirals"] if "--dataset" not in argv else ["--out", str(d / "out")]
    if capsys is None:
        result = subprocess.run([sys.executable, "-m", "sgdlab", *argv], capture_output=True, text=True)
        return result.returncode, result.stderr.strip()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err.strip()


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory):
    return make_files(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_in_one_line(case, bad_dir, capsys):
    before = {p: p.stat().st_mtime_ns for p in bad_dir.rglob("*") if p.is_file()}
    code, message = shown_message(case, bad_dir, capsys)
    expected = case[2].replace("{d}", str(bad_dir))
    assert expected in message, message
    assert "\n" not in message and "Traceback" not in message
    if not callable(case[1]):
        assert code == 2 and message.startswith("sgdlab") and ": error: " in message
    assert not (bad_dir / "pwned").exists()                                # no pickle ran
    assert not (bad_dir / "out").exists()                                  # no run folder made
    assert {p: p.stat().st_mtime_ns for p in before} == before            # nothing overwritten


# Commands whose bad input is tested elsewhere (the test file that covers them) or that read no user file.
COVERED_ELSEWHERE = {"data": "test_store.py", "sweep": "test_sweep.py", "board": "test_board.py",
                     "demo": "reads no user file", "gradcheck": "takes train's flags, parsed by the same code"}


def test_every_command_that_reads_files_has_bad_input_cases():
    """Every command of the real parser has a case here or is listed with where it is covered: a new command
    that reads files fails this until its bad input is tested."""
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    tested = {c[1][0] for c in CASES if not callable(c[1])}
    assert commands - tested - set(COVERED_ELSEWHERE) == set()
    assert tested <= commands  # no case runs a command that no longer exists


def test_predict_and_evaluate_end_to_end(tmp_path):
    model = MLP([2, 8, 3], seed=0)
    save_model(model, tmp_path / "m.safetensors")
    x = make_spirals(30, seed=3).x.astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.savetxt(tmp_path / "x.csv", x, delimiter=",", header="a,b", comments="")
    expected = model.predict(x)
    shown = subprocess.run([sys.executable, "-m", "sgdlab", "predict", "--model", tmp_path / "m.safetensors",
                            tmp_path / "x.csv"], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert [int(v) for v in shown.stdout.split()] == expected.tolist()
    assert main(["predict", "--model", str(tmp_path / "m.safetensors"), str(tmp_path / "x.npy"), "--proba",
                 "--out", str(tmp_path / "p.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), model.predict_proba(x))
    result = subprocess.run([sys.executable, "-m", "sgdlab", "evaluate", "--model", tmp_path / "m.safetensors",
                             "--dataset", "spirals"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    from sgdlab.run import load_splits

    train, val, test = load_splits(TrainConfig(dataset="spirals"))
    for role, ds in (("train", train), ("val", val), ("test", test)):
        loss, acc = model.evaluate(ds)
        assert f"{role:<5} {len(ds):>7} samples  loss {loss:.6f}  accuracy {acc:.4f}" in result.stdout


# --------------------------------------------------------------------------- fuzz: only sgdlab's errors escape

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FLAGS = ["--" + f.replace("_", "-") for f in TrainConfig.__dataclass_fields__] + [
    "--config", "--out", "--resume", "--overwrite", "--quiet", "--early-stopping", "--nope"]
VALUES = st.one_of(st.text(max_size=8), st.integers(-5, 10**6).map(str), st.floats(allow_nan=True).map(str),
                   st.sampled_from(["true", "no", "relu", "sgd", "1e309", "-0", "0x10", "", "5,5", "nan"]))


@FUZZ
@given(st.lists(st.one_of(st.sampled_from(FLAGS), VALUES), max_size=8))
def test_fuzz_cli_parser_exits_2_or_parses(tmp_path, argv):
    """`sgdlab train ...` with random flags and values either refuses with exit 2 or gets a valid config."""
    try:
        args = build_parser().parse_args(["train", *argv])
    except SystemExit as exc:
        assert exc.code == 2
        return
    try:
        config = config_from_args(args)
    except SgdlabError:
        return
    assert config.validate() is config
    for name in TrainConfig.__dataclass_fields__:
        if hasattr(args, name) and name != "layers":  # a given flag reaches the config
            assert getattr(config, name) == getattr(args, name)


FIELD_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True),
                         st.text(max_size=10), st.lists(st.integers(-3, 300), max_size=4),
                         st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@FUZZ
@given(st.dictionaries(st.sampled_from([*TrainConfig.__dataclass_fields__, "bogus"]), FIELD_VALUES, max_size=6))
def test_fuzz_config_from_dict_raises_only_config_errors(d):
    try:
        config = TrainConfig.from_dict(d)
    except SgdlabError:
        return
    assert TrainConfig.from_dict(config.to_dict()) == config


def _valid_files():
    d = tempfile.mkdtemp(prefix="sgdlab-fuzz-")
    np.save(os.path.join(d, "x.npy"), np.arange(12, dtype=np.float32).reshape(6, 2))
    np.savez(os.path.join(d, "a.npz"), x=np.ones((6, 2), np.float32), t=np.arange(6) % 2)
    save_model(MLP([2, 3, 2]), os.path.join(d, "m.safetensors"))
    trainer = Trainer(MLP([2, 3, 2]), make_spirals(30, n_classes=2), Momentum(lr=0.1), batch_size=5, iterations=2)
    save_checkpoint(os.path.join(d, "c.safetensors"), trainer.state_dict())
    return {name: open(os.path.join(d, name), "rb").read() for name in os.listdir(d)}


VALID = _valid_files()


def _mutated(name):
    """Random bytes, or a valid file of that kind with some bytes changed or cut off."""
    base = VALID[name]
    edits = st.lists(st.tuples(st.integers(0, len(base) - 1), st.integers(0, 255)), max_size=6)
    return st.one_of(st.binary(max_size=400),
                     st.tuples(edits, st.integers(0, len(base))).map(
                         lambda e: bytes(_apply(base, e[0]))[: e[1]]))


def _apply(base, edits):
    data = bytearray(base)
    for i, v in edits:
        data[i] = v
    return data


@FUZZ
@given(x=_mutated("x.npy"), npz=_mutated("a.npz"), csv=st.binary(max_size=300))
def test_fuzz_data_loaders_raise_only_sgdlab_errors(tmp_path, x, npz, csv):
    (tmp_path / "x.npy").write_bytes(x)
    np.save(tmp_path / "t.npy", np.arange(6) % 2)
    (tmp_path / "a.npz").write_bytes(npz)
    (tmp_path / "a.csv").write_bytes(csv)
    for path in (tmp_path, tmp_path / "a.npz", tmp_path / "a.csv"):
        try:
            load_arrays(path)
        except SgdlabError:
            pass
    for path in (tmp_path / "x.npy", tmp_path / "a.npz", tmp_path / "a.csv"):
        try:
            read_inputs(path, 2)
        except SgdlabError:
            pass


@FUZZ
@given(model=_mutated("m.safetensors"), checkpoint=_mutated("c.safetensors"))
def test_fuzz_model_and_checkpoint_loaders_raise_only_sgdlab_errors(tmp_path, model, checkpoint):
    (tmp_path / "m.safetensors").write_bytes(model)
    (tmp_path / "c.safetensors").write_bytes(checkpoint)
    for load, name in ((load_model, "m.safetensors"), (load_model, "c.safetensors"),
                       (load_checkpoint, "c.safetensors"), (load_checkpoint, "m.safetensors")):
        try:
            load(tmp_path / name)
        except SgdlabError:
            pass


if __name__ == "__main__":
    folder = make_files(__import__("pathlib").Path(tempfile.mkdtemp(prefix="sgdlab-bad-")))
    print("| # | bad input | where | message shown |\n|---|---|---|---|")
    for i, case in enumerate(CASES, 1):
        code, message = shown_message(case, folder)
        where = "Python API" if callable(case[1]) else f"CLI, exit {code}"
        print(f"| {i} | {case[0]} | {where} | `{message.replace(str(folder), 'D')}` |")
