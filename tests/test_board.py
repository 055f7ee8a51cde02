"""The board: run folders read safely (also while being written), bounded playground requests, the four
steps against the library's own numbers, the CLI, and the page itself in headless Chromium."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from sgdlab import MLP, board
from sgdlab.config import TrainConfig
from sgdlab.run import train_run

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
HEADER = "epoch,iteration,train_loss,train_acc,val_loss,val_acc,lr,seconds\n"


def metrics_rows(path):
    with open(path, newline="") as f:
        return len(list(csv.DictReader(f)))


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    train_run(TrainConfig(dataset="spirals", layers=(8,), epochs=3, lr=0.1, batch_size=50), root / "alpha",
              quiet=True)
    train_run(TrainConfig(dataset="spirals", layers=(16,), epochs=5, lr=0.05, batch_size=50, optimizer="adam"),
              root / "beta", quiet=True)
    live = root / "live"
    live.mkdir()
    (live / "config.json").write_text(json.dumps(TrainConfig(dataset="spirals").to_dict()))
    (live / "metrics.csv").write_text(HEADER + "1,10,1.0,0.4,1.1,0.35,0.05,0.1\n2,20,0.9,0.5,1.0,0.45,0.0")
    sweep = root / "lr-sweep"
    (sweep / "trials").mkdir(parents=True)
    shutil.copytree(root / "alpha", sweep / "trials" / "t1")
    (sweep / "sweep.csv").write_text("trial,lr,status,best_val_acc\nt0,0.01,completed,0.61\nt1,0.1,completed,0.83\n"
                                     "t2,1.0,diverged,0.42\n")
    outside = tmp_path_factory.mktemp("outside")
    (outside / "config.json").write_text("{}")
    (outside / "secret.txt").write_text("top secret")
    os.symlink(outside, root / "escape")
    (outside / "metrics.csv").write_text(HEADER + "1,1,0.5,0.5,0.5,0.5,0.1,0.0\n")
    leaky = root / "leaky"
    leaky.mkdir()
    os.symlink(outside / "metrics.csv", leaky / "metrics.csv")
    os.symlink(outside / "config.json", leaky / "config.json")
    return root


@pytest.fixture(scope="module")
def server(runs_dir):
    srv = board.BoardServer(runs_dir, port=0)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def request(server, path, body=None, raw=None):
    """(status, parsed JSON or bytes) of a GET, or of a POST when ``body``/``raw`` is given."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(server.url.rstrip("/") + path, data=data,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, content, kind = r.status, r.read(), r.headers["Content-Type"]
    except urllib.error.HTTPError as e:
        status, content, kind = e.code, e.read(), e.headers["Content-Type"]
    return status, json.loads(content) if kind == "application/json" else content


def raw_get(server, target):
    """GET with the request target sent exactly as written (urllib would normalise it)."""
    import http.client

    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.putrequest("GET", target, skip_accept_encoding=True)
    conn.endheaders()
    response = conn.getresponse()
    status, content = response.status, response.read()
    conn.close()
    return status, content


# -- run folders ---------------------------------------------------------------------------------------


def test_lists_runs_and_sweeps_with_every_metrics_row(server, runs_dir):
    status, listing = request(server, "/api/runs")
    assert status == 200
    runs = {r["name"]: r for r in listing["runs"]}
    assert set(runs) == {"alpha", "beta", "leaky", "live", "lr-sweep/trials/t1"}  # not the symlink out of the folder
    assert runs["alpha"]["status"] == "completed" and runs["live"]["status"] == "running"
    assert runs["beta"]["config"]["optimizer"] == "adam"
    assert listing["sweeps"] == [{"name": "lr-sweep", "trials": 3}]
    assert runs["leaky"]["rows"] == 0 and runs["leaky"]["last"] is None        # its files link out: not read
    assert request(server, "/api/run?name=leaky")[1]["metrics"] == []
    for name, epochs in (("alpha", 3), ("beta", 5), ("lr-sweep/trials/t1", 3)):
        status, run = request(server, f"/api/run?name={name}")
        assert len(run["metrics"]) == metrics_rows(runs_dir / name / "metrics.csv") == epochs
        assert [r["epoch"] for r in run["metrics"]] == list(range(1, epochs + 1))
        assert run["summary"]["epochs_run"] == epochs
    status, sweep = request(server, "/api/sweep?name=lr-sweep")
    assert [r["lr"] for r in sweep["rows"]] == [0.01, 0.1, 1.0] and sweep["rows"][1]["best_val_acc"] == 0.83


def test_run_being_written_is_read_up_to_its_last_complete_line(server, runs_dir, tmp_path):
    half = runs_dir / "half"
    half.mkdir()
    try:
        (half / "config.json").write_text('{"dataset": "spir')                  # half-written JSON
        (half / "metrics.csv").write_text(HEADER + "1,10,1.0,0.4,1.1,0.35,0.05,0.1\n2,20,0.9")
        status, run = request(server, "/api/run?name=half")
        assert status == 200 and run["config"] == {} and run["status"] == "running"
        assert [r["iteration"] for r in run["metrics"]] == [10.0]
        with open(half / "metrics.csv", "a") as f:
            f.write(",0.5,1.0,0.45,0.05,0.2\n3,30,nan,0.5,1.0,0.45,0.05,0.3\n4,40,0.8,0.5\n")  # short row skipped
        status, run = request(server, "/api/run?name=half")
        assert [r["iteration"] for r in run["metrics"]] == [10.0, 20.0, 30.0]
        assert run["metrics"][2]["train_loss"] is None                           # NaN becomes null
        text = (HEADER + "".join(f"{k},{10 * k},{1 / k},0.5,1.0,0.45,0.05,{k / 10}\n" for k in range(1, 200)))
        done, counts = threading.Event(), []

        def writer():                                            # a run appending in small, torn pieces
            while not done.is_set():
                with open(half / "metrics.csv", "w") as f:
                    for start in range(0, len(text), 97):
                        f.write(text[start:start + 97])
                        f.flush()

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            for _ in range(40):
                status, run = request(server, "/api/run?name=half")
                assert status == 200
                counts.append(len(run["metrics"]))
                assert [r["epoch"] for r in run["metrics"]] == list(range(1, len(run["metrics"]) + 1))
        finally:
            done.set()
            thread.join()
        assert max(counts) <= 199
        (half / "metrics.csv").write_bytes(b"\xff\xfe\x00garbage")
        assert request(server, "/api/run?name=half")[0] == 200
        assert request(server, "/api/runs")[0] == 200
    finally:
        shutil.rmtree(half)


def test_train_run_rewrites_metrics_at_every_evaluation(tmp_path):
    """What the page follows: metrics.csv holds every evaluation so far while the run trains."""
    from sgdlab.data import make_spirals
    from sgdlab.optimizers import get_optimizer
    from sgdlab.run import LiveMetrics
    from sgdlab.training import Callback, fit

    seen = []

    class Reader(Callback):
        def on_evaluation(self, trainer, row):
            seen.append(len(board.read_csv_rows(tmp_path / "metrics.csv")))

    data = make_spirals(n_samples=90)
    fit(MLP([2, 4, 3]), data, get_optimizer("sgd", 0.1), batch_size=30, epochs=4,
        callbacks=[LiveMetrics(str(tmp_path / "metrics.csv")), Reader()], progress=False)
    assert seen == [1, 2, 3, 4]
    assert os.listdir(tmp_path) == ["metrics.csv"]                            # no temporary files left


@pytest.mark.parametrize("target", [
    "/../etc/passwd", "/static/../board.py", "/static/..%2fboard.py", "/static/%2e%2e/board.py",
    "/static/%252e%252e/board.py", "/static/..\\board.py", "//etc/passwd", "/static//etc/passwd",
    "/api/run?name=../alpha", "/api/run?name=/etc", "/api/run?name=%2Fetc%2Fpasswd", "/api/run?name=alpha/../..",
    "/api/run?name=escape", "/api/run?name=..", "/static/board.py", "/static/plotly.min.js/../app.js",
    "/api/sweep?name=alpha", "/api/run?name=alpha%00",
])
def test_path_escapes_are_refused(server, target):
    status, content = raw_get(server, target)
    assert status in (400, 404), (target, status)
    assert b"secret" not in content and b"import" not in content
    assert json.loads(content)["error"]


def test_oversize_and_out_of_bounds_parameters_are_refused(server):
    status, content = raw_get(server, "/api/runs?" + "x=" + "a" * 600)
    assert status == 413 and "too long" in json.loads(content)["error"]
    assert raw_get(server, "/api/runs?" + "a" * 5000)[0] == 414
    status, body = request(server, "/api/play/create", raw=b"{" + b" " * 5000 + b"}")
    assert status == 413 and "too large" in body["error"]
    bad = [({"layers": [65]}, "layers"), ({"layers": [8] * 5}, "layers"), ({"layers": "8,x"}, "layers"),
           ({"lr": 11}, "lr=11"), ({"lr": 0}, "lr=0"), ({"batch_size": 301}, "batch_size=301"),
           ({"batch_size": 2.5}, "batch_size"), ({"weight_decay": -1}, "weight_decay"),
           ({"dataset": "mnist"}, "dataset"), ({"optimizer": "lbfgs"}, "optimizer"),
           ({"hidden": 3}, "unknown setting 'hidden'"), ({"gradient": "magic"}, "gradient")]
    for settings, words in bad:
        status, body = request(server, "/api/play/create", settings)
        assert status == 400 and words in body["error"] and "\n" not in body["error"], (settings, body)
    assert request(server, "/api/play/create", raw=b"not json")[0] == 400
    status, created = request(server, "/api/play/create", {"layers": [4]})
    sid = created["id"]
    status, body = request(server, "/api/play/train", {"id": sid, "iterations": board.MAX_ITERATIONS + 1})
    assert status == 400 and "iterations" in body["error"]
    status, body = request(server, "/api/play/create", {"layers": [64] * 4, "batch_size": 300,
                                                        "gradient": "numerical"})
    assert status == 400 and "too much for the numerical gradient" in body["error"]
    status, created = request(server, "/api/play/create", {"layers": [64] * 4, "batch_size": 300})
    assert created["state"]["max_iterations"] == int(board.WORK_BUDGET["backprop"] // (12867 * 300)) == 51
    status, body = request(server, "/api/play/train", {"id": created["id"], "iterations": 52})
    assert status == 400 and "iterations=52" in body["error"]
    assert raw_get(server, "/api/runs?" + "&".join(f"k{i}=1" for i in range(17)))[0] == 400
    assert request(server, f"/api/play/boundary?id={sid}&grid={board.MAX_GRID + 1}")[0] == 400
    assert request(server, f"/api/play/boundary?id={sid}&grid=-3")[0] == 400
    assert request(server, "/api/play/state?id=nope")[0] == 404


def test_sessions_are_bounded(server):
    ids = [request(server, "/api/play/create", {"layers": [2]})[1]["id"] for _ in range(board.MAX_SESSIONS + 1)]
    assert len(server.sessions.items) == board.MAX_SESSIONS
    assert request(server, f"/api/play/state?id={ids[0]}")[0] == 404           # least recently used, dropped
    assert request(server, f"/api/play/state?id={ids[-1]}")[0] == 200


# -- the playground's four steps against the library ----------------------------------------------------


def library_model(settings, params):
    train, _ = board.playground_data(settings["dataset"], settings["seed"])
    n_out = train.n_classes if train.is_classification else 1
    model = MLP([train.n_features, *settings["layers"], n_out], activation=settings["activation"],
                loss="softmax_cross_entropy" if train.is_classification else "mse", dtype=np.float64,
                weight_decay=settings["weight_decay"])
    model.params[...] = params
    return model, train


def test_step_reports_the_four_steps_with_the_librarys_numbers(server):
    status, created = request(server, "/api/play/create", {"layers": [6], "optimizer": "sgd", "lr": 0.5,
                                                            "batch_size": 20, "weight_decay": 0.01, "seed": 3})
    sid, settings = created["id"], created["state"]["settings"]
    before = np.array(request(server, f"/api/play/params?id={sid}")[1]["params"])
    status, step = request(server, "/api/play/step", {"id": sid})
    assert status == 200 and step["iteration"] == 1 and step["batch"]["size"] == 20
    after = np.array(request(server, f"/api/play/params?id={sid}")[1]["params"])
    model, train = library_model(settings, before)
    xb, tb = train.batch(np.array(step["batch"]["indices"]))
    loss, grads = model.gradient(xb, tb)
    assert step["loss"]["before"] == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(after, before - 0.5 * grads, rtol=1e-12, atol=1e-15)   # SGD: p - lr * g
    w_norm = np.linalg.norm(grads[: 2 * 6 + 6])
    assert step["gradient"]["layers"][0]["grad_norm"] == pytest.approx(w_norm, rel=1e-12)
    assert step["update"]["norm"] == pytest.approx(0.5 * np.linalg.norm(grads), rel=1e-12)
    model.params[...] = after
    assert step["loss"]["after"] == pytest.approx(model.loss(xb, tb), rel=1e-12)
    assert step["state"]["train_loss"] == pytest.approx(model.evaluate(train)[0], rel=1e-12)


def test_two_parameter_model_gradient_vector_and_contour(server):
    status, created = request(server, "/api/play/create", {"dataset": "line", "optimizer": "sgd", "lr": 0.3,
                                                            "gradient": "numerical"})
    sid = created["id"]
    assert created["state"]["n_params"] == 2 and created["state"]["train_acc"] is None
    status, step = request(server, "/api/play/step", {"id": sid})
    w, b = step["update"]["before"]
    model, train = library_model(created["state"]["settings"], [w, b])
    xb, tb = train.batch(np.array(step["batch"]["indices"]))
    _, grads = model.gradient(xb, tb)
    np.testing.assert_allclose(step["gradient"]["vector"], grads, rtol=1e-7, atol=1e-9)   # central differences
    np.testing.assert_allclose(step["update"]["after"], [w, b] - 0.3 * np.array(step["gradient"]["vector"]),
                               rtol=1e-12)
    status, contour = request(server, f"/api/play/contour?id={sid}&grid=9")
    z = np.array(contour["loss"])
    assert z.shape == (9, 9) and contour["path"][-1] == step["update"]["after"]
    model.params[...] = (contour["w"][4], contour["b"][2])
    assert z[2, 4] == pytest.approx(model.loss(train.x, train.t), rel=1e-12)
    assert z.argmin() == np.argmin(np.abs(np.array(contour["w"])[None, :] - 2) + np.abs(
        np.array(contour["b"])[:, None] + 0.5))                                # minimum near y = 2x - 0.5
    status, spirals = request(server, "/api/play/create", {})
    assert request(server, f"/api/play/contour?id={spirals['id']}&grid=9")[0] == 400


def test_divergence_is_reported_not_crashed(server):
    status, created = request(server, "/api/play/create", {"dataset": "line", "optimizer": "sgd", "lr": 10})
    status, body = request(server, "/api/play/train", {"id": created["id"], "iterations": 200})
    assert status == 409 and "diverged" in body["error"] and "smaller lr" in body["error"]
    status, state = request(server, f"/api/play/state?id={created['id']}")
    assert state["diverged"] and np.isfinite(state["train_loss"])


# -- the command ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("inherited", [signal.SIG_DFL, signal.SIG_IGN], ids=["terminal", "background"])
def test_cli_serves_and_stops_cleanly_on_ctrl_c(runs_dir, inherited):
    """Also when started with SIGINT ignored, as a non-interactive shell starts a background job."""
    proc = subprocess.Popen([sys.executable, "-m", "sgdlab", "board", str(runs_dir), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, inherited))
    try:
        line = proc.stdout.readline()
        assert "serving" in line and "http://127.0.0.1:" in line
        url = line.split(" on ")[1].split()[0]
        with urllib.request.urlopen(url + "api/runs", timeout=10) as r:
            assert {x["name"] for x in json.load(r)["runs"]} == {"alpha", "beta", "leaky", "live", "lr-sweep/trials/t1"}
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "stopped" in out and "Traceback" not in err


def test_cli_refuses_a_missing_folder():
    result = subprocess.run([sys.executable, "-m", "sgdlab", "board", "/no/such/runs", "--port", "0"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "sgdlab: error: runs folder '/no/such/runs' does not exist: give a folder of run folders"]


# -- the page in a real browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip(f"{CHROMIUM} and {CHROMEDRIVER} are needed (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the test extra")
    profile = tempfile.mkdtemp(prefix="sgdlab-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--window-size=1280,1500"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_script_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def artifacts():
    folder = os.environ.get("SGDLAB_ARTIFACTS") or os.path.join(tempfile.gettempdir(), "sgdlab-board-artifacts")
    os.makedirs(folder, exist_ok=True)
    return folder


def wait_for(driver, script, timeout=30, message=""):
    """Poll a JavaScript expression until it is truthy; returns its value."""
    end = time.monotonic() + timeout
    while True:
        value = driver.execute_script("return " + script)
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {script}: {message}")
        time.sleep(0.1)


def trace_points(driver, chart, name):
    return driver.execute_script(
        "const t = (document.getElementById(arguments[0]).data || []).find(t => t.name === arguments[1]);"
        "return t ? t.x.length : -1;", chart, name)


def js_errors(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_page_runs_tab_and_playground(server, runs_dir, browser, artifacts):
    driver = browser
    driver.get(server.url)
    wait_for(driver, "document.querySelectorAll('#runs-table tbody tr').length === 5")
    names = driver.execute_script("return [...document.querySelectorAll('#runs-table tbody tr')].map(r => r.dataset.run)")
    assert sorted(names) == ["alpha", "beta", "leaky", "live", "lr-sweep/trials/t1"]
    for name in ("alpha", "beta", "lr-sweep/trials/t1"):
        rows = metrics_rows(runs_dir / name / "metrics.csv")
        wait_for(driver, f"(document.getElementById('loss-chart').data || []).some(t => t.name === '{name} train_loss')")
        assert trace_points(driver, "loss-chart", f"{name} train_loss") == rows
        assert trace_points(driver, "acc-chart", f"{name} val_acc") == rows
    wait_for(driver, "document.getElementById('sweep-lr-sweep') && document.getElementById('sweep-lr-sweep').data")
    assert driver.execute_script("return document.getElementById('sweep-lr-sweep').data[0].x") == [0.01, 0.1, 1.0]
    assert trace_points(driver, "loss-chart", "live train_loss") == 1              # partial last line ignored
    with open(runs_dir / "live" / "metrics.csv", "a") as f:                        # the run goes on
        f.write("5,0.1\n3,30,0.8,0.6,0.9,0.55,0.05,0.3\n4,40,0.7,0.6")
    wait_for(driver, "document.getElementById('loss-chart').data.find(t => t.name === 'live train_loss').x.length === 3",
             timeout=15, message="the page did not follow metrics.csv")
    driver.save_screenshot(os.path.join(artifacts, "board-runs.png"))

    driver.find_element("id", "tab-play").click()
    wait_for(driver, "typeof play !== 'undefined' && play.id && document.getElementById('boundary-chart').data")
    for element, value in (("p-layers", "32,32"), ("p-lr", "0.02"), ("p-batch", "32")):
        field = driver.find_element("id", element)
        field.clear()
        field.send_keys(value)
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", "p-optimizer")).select_by_visible_text("adam")
    first = driver.execute_script("return play.id")
    driver.find_element("id", "p-reset").click()
    wait_for(driver, f"play.id && play.id !== '{first}' && document.getElementById('p-iteration').textContent === '0'")
    assert driver.execute_script("return play.data.train.x.length") == board.N_TRAIN
    driver.find_element("id", "p-play").click()
    wait_for(driver, "Number(document.getElementById('p-train-acc').dataset.value) >= 0.95", timeout=40,
             message="the playground did not reach 95% train accuracy")
    driver.find_element("id", "p-play").click()                                     # pause
    wait_for(driver, "!play.running && !play.loop")
    sid = driver.execute_script("return play.id")
    status, state = request(server, f"/api/play/state?id={sid}")
    assert state["settings"]["layers"] == [32, 32] and state["settings"]["lr"] == 0.02
    assert state["settings"]["optimizer"] == "adam" and state["iteration"] > 0
    curve = request(server, f"/api/play/curve?id={sid}")[1]["curve"]
    assert max(p["train_acc"] for p in curve) >= 0.95
    assert int(driver.find_element("id", "p-iteration").text) == state["iteration"]

    for _ in range(3):                                                              # step mode
        start = int(driver.find_element("id", "p-iteration").text)
        driver.find_element("id", "p-step").click()
        wait_for(driver, f"Number(document.getElementById('p-iteration').textContent) === {start + 1}"
                         " && !play.busy")
        time.sleep(0.3)
        assert int(driver.find_element("id", "p-iteration").text) == start + 1
        indices = driver.execute_script("return play.lastStep.batch.indices")
        shown = driver.find_element("id", "s-loss-after")
        params = np.array(request(server, f"/api/play/params?id={sid}")[1]["params"])
        model, train = library_model(state["settings"], params)
        xb, tb = train.batch(np.array(indices))
        expected = model.loss(xb, tb)
        assert float(shown.get_attribute("data-value")) == pytest.approx(expected, rel=1e-12)
        assert float(shown.text) == pytest.approx(expected, rel=1e-5)              # six significant digits
    assert len(indices) == 32
    assert driver.execute_script(
        "return document.getElementById('boundary-chart').data.find(t => t.name === 'mini-batch').x.length") == 32
    assert driver.execute_script("return document.getElementById('grad-chart').data[0].y.length") == 3
    driver.save_screenshot(os.path.join(artifacts, "board-playground.png"))

    driver.find_element("css selector", "#p-dataset option[value='line']").click()
    wait_for(driver, "play.data && play.data.task === 'regression' && "
                     "!document.getElementById('contour-chart').classList.contains('hidden')")
    driver.find_element("id", "p-step").click()
    wait_for(driver, "document.getElementById('p-iteration').textContent === '1' && !play.busy")
    wait_for(driver, "(document.getElementById('contour-chart').layout || {}).annotations && "
                     "document.getElementById('contour-chart').layout.annotations.length === 1")
    driver.save_screenshot(os.path.join(artifacts, "board-playground-line.png"))
    assert js_errors(driver) == []
