"""sgdlab.sklearn: scikit-learn's estimator checks, the same numbers as sklearn's MLP, and sklearn tooling."""

import io
import pickle
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest

pytest.importorskip("sklearn")

from numpy.testing import assert_allclose, assert_array_equal  # noqa: E402
from sklearn import neural_network  # noqa: E402
from sklearn.datasets import load_digits, make_multilabel_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.metrics import log_loss  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from sgdlab.errors import ConfigError, DataError  # noqa: E402
from sgdlab.losses import LOSSES, SigmoidCrossEntropy  # noqa: E402
from sgdlab.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

quiet = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return x / 16.0, y


@pytest.fixture(scope="module")
def multilabel():
    return make_multilabel_classification(n_samples=300, n_features=10, n_classes=4, random_state=0)


@pytest.fixture(scope="module")
def regression():
    x, y = make_regression(n_samples=300, n_features=10, n_targets=3, noise=1.0, random_state=0)
    return x, y / 100.0


# -- scikit-learn's own estimator suite ------------------------------------------------------------
# Nothing is marked as an expected failure.  Skips come from scikit-learn itself, not from us:
# "SCIPY_ARRAY_API is not set" (array-API inputs, which these estimators do not claim to support),
# "does not have a decision_function method" (there is none, as in sklearn's MLPClassifier), and
# "pandas is not installed" where pandas is missing.  Sample-weight checks are not run because
# ``fit`` takes no sample_weight (scikit-learn checks for that parameter itself).


@quiet
@parametrize_with_checks([MLPClassifier(max_iter=100), MLPRegressor(max_iter=100)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# -- the same arithmetic as sklearn.neural_network ----------------------------------------------------

SETTINGS = [
    dict(solver="sgd"),  # momentum 0.9, Nesterov: sklearn's defaults
    dict(solver="sgd", nesterovs_momentum=False),
    dict(solver="sgd", momentum=0.0),
    dict(solver="adam"),
    dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.5),
    dict(solver="sgd", learning_rate="adaptive", tol=0.05, n_iter_no_change=1, max_iter=30),
    dict(solver="sgd", early_stopping=True, validation_fraction=0.2),
    dict(solver="adam", early_stopping=True, n_iter_no_change=2, tol=0.01, max_iter=30),
    dict(solver="sgd", shuffle=False),
    dict(solver="sgd", activation="logistic"),
    dict(activation="identity"),
    dict(activation="tanh", alpha=0.1, batch_size=64, hidden_layer_sizes=(16, 12)),
    dict(solver="adam", tol=0.5, n_iter_no_change=2),  # stops on the training loss
]


def fit_both(ours, theirs, x, y, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return ours(**params).fit(x, y), theirs(**params).fit(x, y)


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_classifier_matches_sklearn(digits, settings):
    x, y = digits
    params = dict(hidden_layer_sizes=(20,), max_iter=8, random_state=0, learning_rate_init=0.05) | settings
    ours, theirs = fit_both(MLPClassifier, neural_network.MLPClassifier, x, y, **params)
    assert ours.n_iter_ == theirs.n_iter_ and ours.t_ == theirs.t_
    assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    if settings.get("early_stopping"):
        assert_allclose(ours.validation_scores_, theirs.validation_scores_)
        assert ours.best_validation_score_ == theirs.best_validation_score_ and ours.best_loss_ is None
    else:
        assert ours.validation_scores_ is None and ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=1e-10)
    assert_allclose(ours.predict_proba(x), theirs.predict_proba(x), rtol=1e-8, atol=1e-12)
    assert_array_equal(ours.predict(x), theirs.predict(x))
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert_allclose(a, b, rtol=1e-8, atol=1e-12)
    if settings.get("solver") == "sgd":
        assert ours._optimizer.lr == pytest.approx(theirs._optimizer.learning_rate, rel=1e-12)
    assert ours.out_activation_ == theirs.out_activation_ == "softmax"
    assert ours.n_outputs_ == theirs.n_outputs_ == 10


def test_binary_and_multilabel_match_sklearn(digits, multilabel):
    x, y = digits
    labels = np.where(y > 4, "big", "small")
    ours, theirs = fit_both(MLPClassifier, neural_network.MLPClassifier, x, labels, hidden_layer_sizes=(20,),
                            solver="sgd", max_iter=5, random_state=0)
    assert ours.n_outputs_ == 1 and ours.out_activation_ == "logistic" and list(ours.classes_) == ["big", "small"]
    assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    assert_allclose(ours.predict_proba(x), theirs.predict_proba(x), rtol=1e-8)
    assert ours.score(x, labels) == theirs.score(x, labels)

    xm, ym = multilabel
    ours, theirs = fit_both(MLPClassifier, neural_network.MLPClassifier, xm, ym, hidden_layer_sizes=(20,),
                            max_iter=20, learning_rate_init=0.01, random_state=0)
    assert ours.n_outputs_ == 4 and ours.out_activation_ == "logistic"
    assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    proba = ours.predict_proba(xm)
    assert proba.shape == (300, 4) and not np.allclose(proba.sum(axis=1), 1)  # independent sigmoids
    assert_allclose(proba, theirs.predict_proba(xm), rtol=1e-8)
    assert_array_equal(ours.predict(xm), (proba > 0.5).astype(int))
    assert_array_equal(ours.predict(xm), theirs.predict(xm))
    majority = np.mean(np.maximum(ym.mean(axis=0), 1 - ym.mean(axis=0)))  # best constant per label
    assert np.mean(ours.predict(xm) == ym) > majority + 0.1 and ours.score(xm, ym) > 0.3  # subset accuracy


@pytest.mark.parametrize("settings", [dict(), dict(solver="sgd", learning_rate_init=0.01, alpha=0.01),
                                      dict(early_stopping=True)], ids=["adam", "sgd-alpha", "early-stopping"])
def test_regressor_matches_sklearn(regression, settings):
    x, y = regression
    for target in (y, y[:, 0]):  # multi-output, and one output predicted as (n,)
        ours, theirs = fit_both(MLPRegressor, neural_network.MLPRegressor, x, target, hidden_layer_sizes=(20,),
                                max_iter=6, random_state=0, **settings)
        assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
        pred = ours.predict(x)
        assert pred.shape == target.shape and pred.dtype == np.float64
        assert_allclose(pred, theirs.predict(x), rtol=1e-8, atol=1e-12)
        assert ours.out_activation_ == "identity" and ours.n_outputs_ == (target.shape[1] if target.ndim == 2 else 1)


def test_regressor_loss_is_half_mean_squared_error(regression):
    """One full batch, tiny lr, no L2: loss_curve_[0] is 0.5 * mean((f(x) - y)²) at the initial weights."""
    x, y = regression
    reg = MLPRegressor(hidden_layer_sizes=(8,), solver="sgd", momentum=0.0, learning_rate_init=1e-300,
                       alpha=0.0, batch_size=300, max_iter=1, random_state=3)
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(1\)"):
        reg.fit(x, y)
    assert reg.loss_curve_[0] == pytest.approx(0.5 * np.mean((reg.predict(x) - y) ** 2), rel=1e-12)


def test_convergence_warning_only_when_max_iter_reached(digits):
    x, y = digits
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\) reached"):
        MLPClassifier(hidden_layer_sizes=(10,), max_iter=3, random_state=0).fit(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(10,), max_iter=50, tol=10.0, n_iter_no_change=2,
                            random_state=0).fit(x, y)
    assert clf.n_iter_ == 4  # epoch 1 sets best_loss_; 2, 3, 4 miss tol=10: 3 > n_iter_no_change


def test_invscaling_and_adaptive_learning_rates(digits):
    x, y = digits
    clf = MLPClassifier(hidden_layer_sizes=(10,), solver="sgd", learning_rate="invscaling", learning_rate_init=0.3,
                        power_t=0.25, max_iter=3, random_state=0)
    with pytest.warns(ConvergenceWarning):
        clf.fit(x, y)
    assert clf.t_ == 3 * len(x)
    assert clf._optimizer.lr == pytest.approx(0.3 / (3 * len(x) + 1) ** 0.25, rel=1e-15)

    out = io.StringIO()
    clf = MLPClassifier(hidden_layer_sizes=(10,), solver="sgd", learning_rate="adaptive", learning_rate_init=0.1,
                        tol=100.0, n_iter_no_change=1, max_iter=7, random_state=0, verbose=True)
    with redirect_stdout(out), pytest.warns(ConvergenceWarning):
        clf.fit(x, y)
    # every 2 epochs without a gain of tol: lr / 5 (epochs 2, 4, 6)
    assert clf._optimizer.lr == pytest.approx(0.1 / 5**3, rel=1e-15)
    assert out.getvalue().count("Setting learning rate to") == 3


def test_verbose_prints_what_sklearn_prints(digits):
    x, y = digits
    printed = []
    for cls in (MLPClassifier, neural_network.MLPClassifier):
        out = io.StringIO()
        with redirect_stdout(out):
            cls(hidden_layer_sizes=(10,), max_iter=20, tol=1.0, n_iter_no_change=2, verbose=True,
                random_state=0).fit(x, y)
        printed.append(out.getvalue())
    assert printed[0] == printed[1]
    assert printed[0].startswith("Iteration 1, loss = ") and "Stopping." in printed[0]


def test_warm_start_and_partial_fit_match_sklearn(digits):
    x, y = digits
    ours, theirs = (cls(hidden_layer_sizes=(15,), solver="sgd", max_iter=3, warm_start=True, random_state=0)
                    for cls in (MLPClassifier, neural_network.MLPClassifier))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(2):
            ours.fit(x, y)
            theirs.fit(x, y)
    assert len(ours.loss_curve_) == 6 and ours.n_iter_ == 3 and ours.t_ == 6 * len(x)
    assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    with pytest.raises(DataError, match="warm_start needs y with the classes"):
        ours.fit(x[y < 5], y[y < 5])

    ours, theirs = (cls(hidden_layer_sizes=(15,), solver="adam", random_state=0)
                    for cls in (MLPClassifier, neural_network.MLPClassifier))
    classes = np.unique(y)
    for part in np.array_split(np.arange(len(x)), 4):
        ours.partial_fit(x[part], y[part], classes=classes)
        theirs.partial_fit(x[part], y[part], classes=classes)
    assert ours.n_iter_ == 1 and len(ours.loss_curve_) == 4
    assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    assert_allclose(ours.predict_proba(x), theirs.predict_proba(x), rtol=1e-8)


def test_partial_fit_errors(digits):
    x, y = digits
    with pytest.raises(DataError, match="classes must be passed on the first call"):
        MLPClassifier().partial_fit(x, y)
    with pytest.raises(ConfigError, match="partial_fit does not support early_stopping=True"):
        MLPClassifier(early_stopping=True).partial_fit(x, y, classes=np.unique(y))
    clf = MLPClassifier(hidden_layer_sizes=(5,)).partial_fit(x[y < 5], y[y < 5], classes=np.arange(5))
    with pytest.raises(DataError, match=r"y has classes \[5 6 7 8 9\] not in classes_"):
        clf.partial_fit(x, y)


@pytest.mark.parametrize("bad, message", [
    (dict(solver="lbfgs"), "solver='lbfgs' is unknown: use one of sgd, adam"),
    (dict(activation="softmax"), "activation='softmax' is unknown: use one of identity, logistic, tanh, relu"),
    (dict(hidden_layer_sizes=(10, 0)), r"hidden_layer_sizes=\(10, 0\) is not allowed"),
    (dict(learning_rate_init=0.0), "learning_rate_init=0.0 is not allowed: use a number > 0"),
    (dict(batch_size=0), "batch_size=0 is not allowed: use a whole number >= 1"),
    (dict(dtype="float16"), "dtype='float16' is unknown: use one of auto, float32, float64"),
    (dict(momentum=1.5), "momentum=1.5 is not allowed"),
])
def test_bad_parameters_name_the_value(digits, bad, message):
    x, y = digits
    with pytest.raises(ConfigError, match=message) as info:
        MLPClassifier(**bad).fit(x[:50], y[:50])
    assert "\n" not in str(info.value)


def test_diverging_fit_says_what_to_do(digits):
    x, y = digits
    with pytest.raises(DataError, match="non-finite weights.*learning_rate_init=1e\\+30"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        MLPRegressor(hidden_layer_sizes=(5,), solver="sgd", learning_rate_init=1e30, max_iter=3).fit(x, y * 1e3)


@quiet
def test_random_state(digits):
    x, y = digits
    state = np.random.get_state()[1].copy()
    unseeded = [MLPClassifier(hidden_layer_sizes=(5,), max_iter=1).fit(x, y).loss_curve_[0] for _ in range(2)]
    assert unseeded[0] != unseeded[1]
    assert_array_equal(np.random.get_state()[1], state)  # NumPy's global generator is never drawn from
    seeded = [MLPClassifier(hidden_layer_sizes=(5,), max_iter=1, random_state=7).fit(x, y).loss_curve_[0]
              for _ in range(2)]
    assert seeded[0] == seeded[1]


# -- dtypes, views, pickling -------------------------------------------------------------------------------


@quiet
def test_float32_input_kept_float32(digits):
    x, y = digits
    x32 = x.astype(np.float32)
    clf = MLPClassifier(hidden_layer_sizes=(20,), max_iter=5, random_state=0).fit(x32, y)
    assert clf._model.dtype == np.float32 and clf.coefs_[0].dtype == np.float32
    assert clf.predict_proba(x32).dtype == np.float32
    # the same arithmetic as sklearn's float32 path, to float32 rounding
    theirs = neural_network.MLPClassifier(hidden_layer_sizes=(20,), max_iter=5, random_state=0).fit(x32, y)
    assert_allclose(clf.loss_curve_, theirs.loss_curve_, rtol=1e-4)
    assert np.mean(clf.predict(x32) == theirs.predict(x32)) > 0.99

    forced = MLPClassifier(hidden_layer_sizes=(20,), max_iter=2, dtype="float32", random_state=0).fit(x, y)
    assert forced.coefs_[0].dtype == np.float32 and forced.predict_proba(x).dtype == np.float64
    wide = MLPRegressor(hidden_layer_sizes=(5,), max_iter=2, dtype="float64").fit(x32, y.astype(np.float32))
    assert wide.coefs_[0].dtype == np.float64 and wide.predict(x32).dtype == np.float32
    assert MLPClassifier(max_iter=1).fit(x.astype(np.int64) * 16, y).coefs_[0].dtype == np.float64


@quiet
def test_coefs_are_views_of_the_flat_vector_and_survive_pickle(digits):
    x, y = digits
    clf = MLPClassifier(hidden_layer_sizes=(20, 10), max_iter=3, random_state=0).fit(x, y)
    params = clf._model.params
    assert [c.shape for c in clf.coefs_] == [(64, 20), (20, 10), (10, 10)]
    assert all(np.shares_memory(a, params) for a in clf.coefs_ + clf.intercepts_)
    assert sum(a.size for a in clf.coefs_ + clf.intercepts_) == params.size
    copy = pickle.loads(pickle.dumps(clf))
    assert_array_equal(copy.predict_proba(x), clf.predict_proba(x))
    assert all(np.shares_memory(a, copy._model.params) for a in copy.coefs_ + copy.intercepts_)
    assert not np.shares_memory(copy._model.params, params)
    copy.intercepts_[-1][:] += 100 * np.eye(10)[3]  # writing a view moves the model
    assert np.all(copy.predict(x) == 3) and not np.all(clf.predict(x) == 3)


# -- scikit-learn tooling ----------------------------------------------------------------------------------


@quiet
def test_grid_search_over_learning_rate_init(digits):
    x, y = digits
    base = MLPClassifier(hidden_layer_sizes=(20,), solver="sgd", max_iter=5, random_state=0)
    grid = [1e-4, 0.01, 0.3]
    search = GridSearchCV(base, {"learning_rate_init": grid}, cv=3).fit(x, y)
    means = search.cv_results_["mean_test_score"]
    for lr, mean in zip(grid, means):
        assert mean == pytest.approx(cross_val_score(base.set_params(learning_rate_init=lr), x, y, cv=3).mean())
    assert means[0] < 0.2 < means[1] < 0.5 < 0.8 < means[2]  # too slow, slow, right in 5 epochs
    assert search.best_params_ == {"learning_rate_init": 0.3}
    assert search.best_estimator_.score(x, y) > 0.9


@quiet
def test_cross_val_score_equals_sklearn(digits):
    x, y = digits
    params = dict(hidden_layer_sizes=(20,), solver="sgd", learning_rate_init=0.05, max_iter=5, random_state=0)
    ours = cross_val_score(MLPClassifier(**params), x, y, cv=4)
    theirs = cross_val_score(neural_network.MLPClassifier(**params), x, y, cv=4)
    assert_allclose(ours, theirs)
    assert ours.min() > 0.8


@quiet
def test_pipeline_with_standard_scaler(digits):
    x, y = digits
    x_train, x_test, y_train, y_test = train_test_split(x * 16, y, test_size=0.3, random_state=0)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(32,), max_iter=60, random_state=0))
    pipe.fit(x_train, y_train)
    assert pipe.score(x_test, y_test) > 0.95
    regressor = make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(32,), max_iter=200, random_state=0))
    xr, yr = make_regression(n_samples=400, n_features=5, noise=0.1, random_state=1)
    assert regressor.fit(xr[:300], yr[:300] / 100).score(xr[300:], yr[300:] / 100) > 0.9


@quiet
def test_feature_names_in(digits):
    pd = pytest.importorskip("pandas")
    x, y = digits
    frame = pd.DataFrame(x[:, :5], columns=[f"pixel{i}" for i in range(5)])
    clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=2).fit(frame, y)
    assert list(clf.feature_names_in_) == [f"pixel{i}" for i in range(5)] and clf.n_features_in_ == 5
    with pytest.warns(UserWarning, match="feature names"):
        clf.predict(x[:, :5])


def test_numerical_gradient_trains_like_backprop(digits):
    x, y = digits
    params = dict(hidden_layer_sizes=(4,), solver="sgd", max_iter=2, random_state=0, learning_rate_init=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        num = MLPClassifier(gradient="numerical", **params).fit(x[:200, :16], y[:200])
        back = MLPClassifier(**params).fit(x[:200, :16], y[:200])
    assert_allclose(num.loss_curve_, back.loss_curve_, rtol=1e-6)


# -- the multi-label loss ----------------------------------------------------------------------------------


def test_sigmoid_cross_entropy_value_gradient_and_stability():
    assert LOSSES["sigmoid_cross_entropy"] is SigmoidCrossEntropy
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 4)) * 3
    t = (rng.random((6, 4)) > 0.5).astype(float)
    loss = SigmoidCrossEntropy()
    value = loss.forward(z, t)
    p = 1 / (1 + np.exp(-z))
    assert value == pytest.approx(np.mean(np.sum(-t * np.log(p) - (1 - t) * np.log(1 - p), axis=1)), rel=1e-12)
    assert value == pytest.approx(4 * log_loss(t.ravel(), p.ravel()), rel=1e-12)
    grad = loss.backward().copy()
    assert_allclose(grad, (p - t) / 6, rtol=1e-12)
    h = 1e-6
    numeric = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        up, down = z.copy(), z.copy()
        up[i] += h
        down[i] -= h
        numeric[i] = (loss.forward(up, t) - loss.forward(down, t)) / (2 * h)
    assert_allclose(numeric, grad, rtol=1e-5, atol=1e-8)
    # far in the tails: finite value, exact gradient, no overflow warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert loss.forward(np.array([[1000.0, -1000.0]]), np.array([[0.0, 1.0]])) == 2000.0
        assert_array_equal(loss.backward(), [[1.0, -1.0]])
        assert_allclose(SigmoidCrossEntropy.probabilities(np.array([-800.0, 0.0, 800.0])), [0.0, 0.5, 1.0])
    # integer labels are one-hot rows; float32 stays float32
    z32 = z.astype(np.float32)
    labels = np.array([0, 1, 2, 3, 0, 1])
    reference = loss.forward(z, np.eye(4)[labels])
    assert loss.forward(z32, labels) == pytest.approx(reference, rel=1e-5)
    assert loss.backward().dtype == np.float32
