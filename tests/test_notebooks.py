"""The notebooks: each, in English and Korean, runs top to bottom in quick mode (SGDLAB_QUICK=1)
and computes the numbers its text claims; exported to HTML it holds the figures it promises.

Numbers are read from the kernel after the run (a probe cell appended in memory prints the
notebook's variables as JSON), never from stored outputs: the committed files have none.
"""

import io
import json
import pathlib
import re
import tokenize

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

FOLDER = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
LANGUAGES = ("en", "ko")
# notebook -> PNG figures in its HTML export (each plt.show(), sgdlab figure and LivePlot is one)
FIGURES = {
    "01_numerical_differentiation": 3,
    "02_gradient_descent": 3,
    "03_minibatch_sgd_mnist": 4,
    "04_local_minima_and_momentum": 3,
    "05_overfitting": 3,
}
MNIST = {"03_minibatch_sgd_mnist", "05_overfitting"}  # train on MNIST: marked slow

PROBE = """
import json as _json
import numpy as _np


def _plain(value):
    if isinstance(value, _np.ndarray):
        return value.tolist()
    if isinstance(value, (_np.floating, _np.integer, _np.bool_)):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


print(_json.dumps({name: _plain(value) for name, value in globals().items()
                  if not name.startswith("_") and name not in ("In", "Out")
                  and isinstance(value, (int, float, str, list, tuple, dict, _np.ndarray, _np.generic))},
                 default=lambda other: None))
"""


def cases():
    marks = {name: [pytest.mark.slow] if name in MNIST else [] for name in FIGURES}
    return [pytest.param(name, lang, marks=marks[name], id=f"{name}.{lang}") for name in FIGURES for lang in LANGUAGES]


def path_of(name, lang):
    return FOLDER / f"{name}.{lang}.ipynb"


_executed = {}  # (name, lang) -> (notebook, values): each notebook runs once per session, for all its tests


def executed(name, lang, workdir):
    """(the executed notebook without the probe, {variable: value} read from its kernel)."""
    if (name, lang) not in _executed:
        _executed[name, lang] = execute(name, lang, workdir)
    return _executed[name, lang]


def execute(name, lang, workdir):
    notebook = nbformat.read(path_of(name, lang), as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(PROBE))
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": workdir}})
    client.execute()
    probe = notebook.cells.pop()
    text = "".join(output.get("text", "") for output in probe.outputs if output.output_type == "stream")
    return notebook, json.loads(text.strip().splitlines()[-1])


@pytest.fixture
def run(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SGDLAB_QUICK", "1")
    # One BLAS thread in the kernels: the notebooks' matrices are small (batches of 100 x 100 units), where a
    # second thread only adds hand-offs, and on a busy machine threads crawl (notebook 5's plain run: 1.9 s
    # with one, 24 s with two, at load 12 on 2 cores).
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, "1")
    workdir = str(tmp_path_factory.mktemp("notebook-runs"))

    def run_notebook(name, lang):
        notebook, values = executed(name, lang, workdir)
        assert values["QUICK"] is True, "SGDLAB_QUICK=1 must switch quick mode on"
        return notebook, values

    return run_notebook


def images_in_html(notebook):
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(notebook)
    return len(re.findall(r'<img [^>]*src="data:image/png;base64,', body))


def outputs_of(notebook, source):
    """Text printed by the first code cell whose source contains ``source``."""
    cell = next(c for c in notebook.cells if c.cell_type == "code" and source in c.source)
    return "".join(o.get("text", "") for o in cell.outputs)


# -- the files themselves -----------------------------------------------------------------------

def code_tokens(source):
    """A code cell's tokens without comments and blank lines: what must match between languages."""
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    return [(tok.type, tok.string) for tok in tokenize.generate_tokens(io.StringIO(source).readline)
            if tok.type not in skip]


def test_every_notebook_exists_in_both_languages_with_the_same_code_and_no_outputs():
    names = sorted({p.name.split(".")[0] for p in FOLDER.glob("*.ipynb")})
    assert names == sorted(FIGURES), "each notebook needs its figure count in FIGURES"
    for name in names:
        english, korean = (nbformat.read(path_of(name, lang), as_version=4) for lang in LANGUAGES)
        for notebook in (english, korean):
            nbformat.validate(notebook)
            code = [c for c in notebook.cells if c.cell_type == "code"]
            assert all(not c.outputs and c.execution_count is None for c in code), f"{name}: strip outputs"
            assert "parameters" in code[0].metadata.get("tags", []) and "SGDLAB_QUICK" in code[0].source
        assert [c.cell_type for c in english.cells] == [c.cell_type for c in korean.cells]
        for en, ko in zip(english.cells, korean.cells):
            if en.cell_type == "code":
                assert code_tokens(en.source) == code_tokens(ko.source), f"{name}: code differs between languages"
            else:
                assert en.source != ko.source or not en.source, f"{name}: a markdown cell is not translated"


@pytest.mark.parametrize("name, lang", cases())
def test_html_export_holds_the_promised_figures(run, name, lang):
    notebook, _ = run(name, lang)
    assert images_in_html(notebook) == FIGURES[name]


# -- the numbers each notebook claims -----------------------------------------------------------

@pytest.mark.parametrize("lang", LANGUAGES)
def test_01_numerical_differentiation(run, lang):
    _, v = run("01_numerical_differentiation", lang)
    assert v["grad_at_3_4"] == pytest.approx([6.0, 8.0], abs=1e-6)
    assert v["grad_at_0_2"] == pytest.approx([0.0, 4.0], abs=1e-6)
    assert v["grad_at_3_0"] == pytest.approx([6.0, 0.0], abs=1e-6)
    assert v["diff_at_5"] == pytest.approx(0.2, abs=1e-9) and v["diff_at_10"] == pytest.approx(0.3, abs=1e-9)
    central, forward = np.array(v["central_error"]), np.array(v["forward_error"])
    assert central.min() < 1e-10 < forward.min() < 1e-7  # central beats forward by orders of magnitude
    assert 1e-7 <= v["best_h"] <= 1e-3  # the bottom of the V, near cbrt(eps) ~ 6e-6
    assert central[0] > 1e-3 and central[-1] > 1e-5  # both arms of the V: rounding, truncation
    assert v["max_error"] < 1e-6 and v["fraction_toward_minimum"] == 1.0


@pytest.mark.parametrize("lang", LANGUAGES)
def test_02_gradient_descent(run, lang):
    _, v = run("02_gradient_descent", lang)
    assert np.linalg.norm(v["x_end"]) == pytest.approx(5 * 0.8 ** 100, rel=1e-6)  # |x| shrinks 0.8x a step
    assert v["same_path_difference"] < 1e-10
    distance = v["final_distance"]
    assert distance["too small"] > 4.99 and distance["good"] < 1e-8 and distance["too large"] > 1e100
    status = {float(lr): s for lr, s in v["status_by_lr"].items()}
    assert status[10.0] == "diverged" and status[0.001] == "too slow"
    assert v["chosen_lr"] in (0.1, 1.0) and status[v["chosen_lr"]] == "ok"


@pytest.mark.slow
@pytest.mark.parametrize("lang", LANGUAGES)
def test_03_minibatch_sgd_mnist(run, lang):
    notebook, v = run("03_minibatch_sgd_mnist", lang)
    assert v["loop_test_accuracy"] >= 0.90 and v["test_accuracy"] >= 0.90
    assert v["gradient_difference"] < 1e-8
    assert v["numerical_losses"][-1] < v["numerical_losses"][0]
    assert len(v["loop_losses"]) == v["LOOP_ITERATIONS"]
    assert "Total params: 79,510" in outputs_of(notebook, "model.summary()")
    # LivePlot: one picture in the fit cell, replaced at each of the EPOCHS evaluations, not appended
    live = [c for c in notebook.cells if "LivePlot()" in c.source][0]
    pictures = [o for o in live.outputs if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    assert len(pictures) == 1 and len(live.outputs) <= 2  # the picture (and the progress bar)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_04_local_minima_and_momentum(run, lang):
    _, v = run("04_local_minima_and_momentum", lang)
    local, best = np.sort(np.roots([4.0, 0.0, -8.0, 1.0]).real)[[2, 0]]  # f'(x) = 4x³ - 8x + 1 = 0
    assert v["sgd_end"] == pytest.approx(local, abs=1e-3) and v["momentum_end"] == pytest.approx(best, abs=1e-2)
    start = (-7.0) ** 2 / 20 + 2.0 ** 2  # f at (-7, 2)
    assert set(v["bowl_final"]) == {"SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"}
    assert all(value < 0.05 * start for value in v["bowl_final"].values())
    for name, last in v["last_loss"].items():
        assert last < 0.5 * v["first_loss"][name], name
        assert v["val_accuracy"][name] > 0.6, name


@pytest.mark.slow
@pytest.mark.parametrize("lang", LANGUAGES)
def test_05_overfitting(run, lang):
    _, v = run("05_overfitting", lang)
    assert v["plain_train_accuracy"] == 1.0 and v["plain_gap"] > 0.15  # memorised, far from the test set
    assert v["early_stopped_at"] < v["EPOCHS"] and v["early_test_accuracy"] > v["plain_test_accuracy"] - 0.03
    gaps = v["gaps"]
    assert gaps["weight decay 0.1"] < gaps["plain"] - 0.03
    assert gaps["dropout 0.2"] < gaps["plain"]
