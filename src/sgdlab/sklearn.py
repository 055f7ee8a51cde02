"""scikit-learn's ``MLPClassifier`` and ``MLPRegressor`` on sgdlab's engine (needs ``pip install sgdlab[sklearn]``).

Same parameter names, defaults and arithmetic as ``sklearn.neural_network``
for the stochastic solvers: Glorot-uniform initialisation from
``random_state``, the same shuffles and batches (``sklearn.utils.shuffle`` /
``gen_batches``), the same update rules (sklearn's Nesterov and Adam forms),
the same loss definitions (``loss_curve_``), the same L2 scaling and the same
stopping rules; in float64 ``loss_curve_`` equals scikit-learn's to rounding.
The work per batch is sgdlab's: one flat parameter vector, hand-written
backward passes into reused buffers, one vectorised optimizer step.
"""

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .errors import ConfigError, DataError
from .layers import Dense, Sigmoid, ReLU, Tanh
from .model import EVAL_CHUNK, Sequential
from .callbacks import Callback, EarlyStopping
from .data.datasets import _trusted
from .optimizers import SGD, Momentum
from .sklearn_rules import InvScaling, SklearnAdam, SklearnBatches, SklearnLoss, SklearnNesterov
from .training import GRADIENTS, Trainer
from .validation import check_choice, check_number, check_whole_number

__all__ = ["MLPClassifier", "MLPRegressor", "SklearnNesterov", "SklearnAdam"]  # the optimizers: sklearn_rules

HIDDEN_ACTIVATIONS = {"identity": None, "logistic": Sigmoid, "tanh": Tanh, "relu": ReLU}
SOLVERS = ("sgd", "adam")
LEARNING_RATES = ("constant", "invscaling", "adaptive")
DTYPES = ("auto", "float32", "float64")


class _BaseMLP(BaseEstimator):
    """The shared engine: parameters, and ``_fit_stochastic``, which trains through ``training.Trainer``."""

    _loss_scale = 1.0  # loss_curve_ = scale * sgdlab loss (+ L2): 1/n_outputs for sklearn's squared error

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, gradient="backprop", dtype="auto"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.gradient = gradient
        self.dtype = dtype

    # -- parameters ------------------------------------------------------------------------------

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in sizes):
            raise ConfigError(f"hidden_layer_sizes={self.hidden_layer_sizes!r} is not allowed: "
                              "use whole numbers > 0, e.g. (100,) or (64, 32)")
        return [int(s) for s in sizes]

    def _check_params(self):
        def _choice(name, value, allowed):
            check_choice(name, value, allowed, verb="is unknown: use one of")

        _choice("activation", self.activation, HIDDEN_ACTIVATIONS)
        _choice("solver", self.solver, SOLVERS)
        _choice("learning_rate", self.learning_rate, LEARNING_RATES)
        _choice("gradient", self.gradient, GRADIENTS)
        _choice("dtype", self.dtype, DTYPES)
        check_number("alpha", self.alpha, low=0)
        check_number("learning_rate_init", self.learning_rate_init, low=0, low_open=True)
        check_number("power_t", self.power_t, low=0)
        check_number("tol", self.tol, low=0)
        check_number("momentum", self.momentum, low=0, high=1)
        check_number("validation_fraction", self.validation_fraction, low=0, high=1, high_open=True)
        check_whole_number("max_iter", self.max_iter, 1)
        check_whole_number("n_iter_no_change", self.n_iter_no_change, 1)
        if self.batch_size != "auto":
            check_whole_number("batch_size", self.batch_size, 1)

    def _make_optimizer(self):
        if self.solver == "adam":
            return SklearnAdam(self.learning_rate_init, self.beta_1, self.beta_2, self.epsilon)
        if self.momentum == 0:
            return SGD(self.learning_rate_init)
        if self.nesterovs_momentum:
            return SklearnNesterov(self.learning_rate_init, self.momentum)
        return Momentum(self.learning_rate_init, self.momentum)

    # -- the model ----------------------------------------------------------------------------------

    def _initialize(self, n_features, n_outputs, loss, dtype):
        """A fresh Sequential with sklearn's Glorot-uniform weights and biases, drawn layer by layer."""
        sizes = [n_features, *self._hidden_sizes(), n_outputs]
        activation = HIDDEN_ACTIVATIONS[self.activation]
        layers = []
        for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Dense(n_in, n_out))
            if activation is not None and k < len(sizes) - 2:
                layers.append(activation())
        task = "regression" if loss == "mse" else "classification"
        self._model = Sequential(layers, loss=loss, dtype=dtype, task=task)
        factor = 2.0 if self.activation == "logistic" else 6.0
        for n_in, n_out, layer in zip(sizes[:-1], sizes[1:], self._dense()):
            bound = np.sqrt(factor / (n_in + n_out))
            layer.W[...] = self._random_state.uniform(-bound, bound, (n_in, n_out))
            layer.b[...] = self._random_state.uniform(-bound, bound, n_out)
        self._bind_attributes()
        self.n_iter_ = 0
        self.t_ = 0
        self.n_layers_ = len(sizes)
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None
        self._best_params = self._model.params.copy()

    def _dense(self):
        return [layer for layer in self._model.layers if isinstance(layer, Dense)]

    def _bind_attributes(self):
        """coefs_[i] / intercepts_[i]: views of layer i's W (in, out) and b in the flat parameter vector."""
        self.coefs_ = [layer.W for layer in self._dense()]
        self.intercepts_ = [layer.b for layer in self._dense()]

    def _training_dtype(self, x):
        return x.dtype if self.dtype == "auto" else np.dtype(self.dtype)

    # -- fitting -------------------------------------------------------------------------------------

    def _fit(self, X, y, incremental):
        self._check_params()
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        dtype = self._training_dtype(X) if first_pass else self._model.dtype
        targets, loss, self.out_activation_ = self._encode(y, dtype)
        # random_state=None: a fresh generator seeded from the OS, never NumPy's global one
        self._random_state = np.random.RandomState() if self.random_state is None else check_random_state(
            self.random_state)
        n_outputs = targets.shape[1] if targets.ndim == 2 else len(self.classes_)
        if first_pass:
            self._initialize(X.shape[1], n_outputs, loss, dtype)
        elif self._model.n_out != n_outputs:
            raise DataError(f"the targets have {n_outputs} outputs but the fitted network has "
                            f"{self._model.n_out}: fit again with warm_start=False")
        self.n_outputs_ = n_outputs
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = self._make_optimizer()
        self._fit_stochastic(X, y, targets, incremental)
        if not np.isfinite(self._model.params).all():
            raise DataError("training produced non-finite weights: scale the input (e.g. StandardScaler) "
                            f"or lower learning_rate_init={self.learning_rate_init!r}")
        return self

    def _fit_stochastic(self, X, y, targets, incremental):
        """scikit-learn's epochs on the one loop: its sampler, optimizer, schedule, L2 hook and stopping rule."""
        if self.early_stopping and incremental:
            raise ConfigError("partial_fit does not support early_stopping=True")
        model = self._model
        x = np.ascontiguousarray(X, dtype=model.dtype)
        metrics = {}
        if self.early_stopping:
            stratify = targets if (self._is_classifier and self.n_outputs_ == 1) else None
            x, x_val, targets, _, _, y_val = train_test_split(
                x, targets, y, random_state=self._random_state, test_size=self.validation_fraction,
                stratify=stratify)
            if x_val.shape[0] < 2:
                raise DataError(f"the validation set has {x_val.shape[0]} samples: raise validation_fraction="
                                f"{self.validation_fraction!r} or give more data")
            metrics["val_score"] = lambda trainer: self._score_prepared(x_val, y_val)
        n = x.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn(f"batch_size={self.batch_size} is larger than the {n} samples: clipped to {n}",
                              stacklevel=3)
            batch_size = min(self.batch_size, n)
        optimizer = self._optimizer
        schedule = None
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            schedule = InvScaling(self.learning_rate_init, self.power_t, samples_per_epoch=n, samples_seen=self.t_,
                                  first_lr=optimizer.lr)
        stopper = self._stopper()
        self.n_iter_ = 0
        # validate_data has checked X and y: no second scan of the data (it cost ~5% of a short MNIST fit)
        train = _trusted(x, targets, None, model.n_out if targets.ndim == 1 else None, "")
        trainer = Trainer(model, train, optimizer, epochs=1 if incremental else self.max_iter,
                          sampler=SklearnBatches(n, batch_size, self.shuffle, self._random_state),
                          callbacks=[SklearnLoss(self._dense(), self.alpha, self._loss_scale), _Epochs(self, n),
                                     stopper],
                          gradient=self.gradient, schedule=schedule, progress=False, divergence_factor=None,
                          train_metrics="running", metrics=metrics)
        trainer.count_accuracy = False  # scikit-learn reports the epoch's loss only
        history = trainer.run()
        if schedule is not None and trainer.iteration:  # the lr after the last epoch, for the next partial_fit
            optimizer.lr = schedule.lr_at(trainer.iteration, trainer.iterations_per_epoch, trainer.total_iterations)
        self._no_improvement_count = stopper.wait
        if self.early_stopping:
            self.best_validation_score_ = -np.inf if stopper.best_value is None else stopper.best_value
            self._best_params = stopper.best_params
            model.params[...] = self._best_params
        else:
            self.best_loss_ = np.inf if stopper.best_value is None else stopper.best_value
        if history.status == "diverged":
            raise DataError("training produced non-finite weights: scale the input (e.g. StandardScaler) "
                            f"or lower learning_rate_init={self.learning_rate_init!r}")
        if history.status == "interrupted":
            warnings.warn("Training interrupted by user.", stacklevel=3)
        elif history.status == "completed" and not incremental:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                          "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=3)

    def _stopper(self):
        """scikit-learn's tol / n_iter_no_change (and "adaptive") rule as an EarlyStopping, carrying its count
        and best over from the previous fit (warm_start, partial_fit)."""
        adaptive = self.solver == "sgd" and self.learning_rate == "adaptive"
        stopper = EarlyStopping(monitor="val_score" if self.early_stopping else "train_loss",
                                mode="max" if self.early_stopping else "min", patience=self.n_iter_no_change + 1,
                                min_delta=self.tol, restore_best=self.early_stopping, rule="sklearn",
                                reduce_lr_by=5.0 if adaptive else None, min_lr=1e-6,
                                report=self._report_stopping if self.verbose else None)
        best = self.best_validation_score_ if self.early_stopping else self.best_loss_
        stopper.best_value = best if best is not None and np.isfinite(best) else None
        stopper.best_params = self._best_params if self.early_stopping else None
        stopper.wait = self._no_improvement_count
        return stopper

    def _report_stopping(self, event, stopper, trainer):
        """What scikit-learn prints (verbose=True) when its stopping rule fires."""
        what = "Validation score" if self.early_stopping else "Training loss"
        msg = f"{what} did not improve more than tol={self.tol:f} for {self.n_iter_no_change} consecutive epochs."
        if event == "reduce_lr":
            print(msg + f" Setting learning rate to {trainer.optimizer.lr:f}")
        elif event == "lr_floor":
            print(msg + " Learning rate too small. Stopping.")
        else:
            print(msg + " Stopping.")

    def _score_prepared(self, x, y):
        pred = self._predict_validated(x)
        if np.issubdtype(pred.dtype, np.floating) and not np.isfinite(pred).all():
            return np.nan
        return float(self._score_function(y, pred))

    # -- predicting ------------------------------------------------------------------------------------

    def _output(self, x):
        """The network's output after its output activation (softmax, sigmoid or identity), in chunks."""
        model = self._model
        chunks = []
        for start in range(0, x.shape[0], EVAL_CHUNK):
            z = model.forward(x[start : start + EVAL_CHUNK])
            chunks.append(z.copy() if model.loss_layer.name == "mse" else model.loss_layer.probabilities(z))
        if not chunks:
            return np.empty((0, model.n_out), dtype=model.dtype)
        return np.concatenate(chunks).astype(x.dtype, copy=False)

    def _validate_X(self, X):
        return validate_data(self, X, reset=False, dtype=(np.float64, np.float32), order="C")

    # -- pickling: the model's layers hold views of its flat vector, which pickle would turn into copies --

    def __getstate__(self):
        state = dict(super().__getstate__())  # object.__getstate__ returns the live __dict__
        model = state.pop("_model", None)
        if model is not None:
            state["_model_state"] = (model.describe(), model.params.copy())
            state.pop("coefs_", None)
            state.pop("intercepts_", None)
        return state

    def __setstate__(self, state):
        saved = state.pop("_model_state", None)
        super().__setstate__(state)
        if saved is not None:
            self._model = Sequential.from_description(*saved)
            self._bind_attributes()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class _Epochs(Callback):
    """scikit-learn's per-epoch record: n_iter_, t_, loss_, loss_curve_, validation_scores_, verbose lines."""

    def __init__(self, estimator, n_samples):
        self.estimator, self.n_samples = estimator, n_samples

    def on_evaluation(self, trainer, row):
        est = self.estimator
        est.n_iter_ += 1
        est.loss_ = row["train_loss"]
        est.t_ += self.n_samples
        est.loss_curve_.append(est.loss_)
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {est.loss_:.8f}")
        if est.early_stopping:
            est.validation_scores_.append(row["val_score"])
            if est.verbose:
                print(f"Validation score: {row['val_score']:f}")


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """scikit-learn's MLPClassifier (solvers sgd and adam) on sgdlab's engine.

    Multi-class: softmax outputs, L = mean_i -log p_i[y_i].  Binary and multi-label (y a 0/1
    indicator matrix): one sigmoid per output, L = mean_i sum_k [softplus(z_ik) - t_ik z_ik],
    predicted 1 where p >= 0.5.  L2 as sklearn's ``_backprop``: each batch of n adds
    0.5 * alpha * sum ||W||² / n to the loss and alpha * W / n to dL/dW (biases are not penalised).
    ``learning_rate`` (solver sgd): "constant"; "invscaling" lr = learning_rate_init / (t + 1)^power_t
    after each epoch, t = samples seen; "adaptive" lr /= 5 whenever n_iter_no_change + 1 epochs in a
    row miss the tol improvement.  ``dtype="auto"`` trains in float32 for float32 X and in float64 for
    anything else (as sklearn does); "float32" trains in float32 whatever X is (sgdlab's fast path).
    ``gradient="numerical"`` takes every gradient by central differences instead of backprop.
    """

    _is_classifier = True

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, multi_output=True, dtype=(np.float64, np.float32), order="C",
                             reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise DataError(f"warm_start needs y with the classes of the previous fit {self.classes_}: "
                                    f"y has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise DataError(f"y has classes {np.setdiff1d(classes, self.classes_)} not in classes_ "
                                f"{self.classes_}")
        return X, y

    def _encode(self, y, dtype):
        """(targets, loss, output activation): int codes (n,) for a softmax over the classes, or 0/1
        columns of ``dtype`` for one sigmoid per column (binary: one column; multi-label: one per label)."""
        lb = self._label_binarizer
        if lb.y_type_ == "multiclass":
            return np.searchsorted(self.classes_, y), "softmax_cross_entropy", "softmax"
        return lb.transform(y).astype(dtype), "sigmoid_cross_entropy", "logistic"

    def fit(self, X, y):
        """Train on (X, y) from a fresh start (or from the last fit with warm_start=True)."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y); ``classes`` (all labels to expect) is required at the first call."""
        if getattr(self, "classes_", None) is None or not hasattr(self, "coefs_"):
            if classes is None and not type_of_target(y).startswith("multilabel"):
                raise DataError("classes must be passed on the first call to partial_fit: "
                                "e.g. classes=np.unique(y_all)")
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y if classes is None else classes)
            self.classes_ = self._label_binarizer.classes_
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise DataError(f"classes={classes!r} is not classes_ {self.classes_} of the first partial_fit call")
        return self._fit(X, y, incremental=True)

    def _predict_validated(self, x):
        out = self._output(x)
        if self.n_outputs_ == 1:
            out = out.ravel()
        return self._label_binarizer.inverse_transform(out)

    def _score_function(self, y, pred):
        return accuracy_score(y, pred)

    def predict(self, X):
        """Class labels: argmax of the softmax, or each sigmoid >= 0.5 (binary, multi-label)."""
        check_is_fitted(self)
        return self._predict_validated(self._validate_X(X))

    def predict_proba(self, X):
        """Probabilities, columns in ``classes_`` order: (n, 2) for binary, one sigmoid per label for multi-label."""
        check_is_fitted(self)
        out = self._output(self._validate_X(X))
        if self.n_outputs_ == 1:
            p = out.ravel()
            return np.vstack([1 - p, p]).T
        return out

    def predict_log_proba(self, X):
        """log of ``predict_proba``."""
        p = self.predict_proba(X)
        return np.log(p, out=p)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """scikit-learn's MLPRegressor (solvers sgd and adam, squared error) on sgdlab's engine.

    Identity outputs.  ``loss_curve_`` is sklearn's squared error, L = (1 / 2 n k) sum ||y - t||²
    over n samples and k outputs, plus the L2 term 0.5 * alpha * sum ||W||² / n; the gradient is,
    as in sklearn, that of (1 / 2n) sum ||y - t||² (sgdlab's mse) plus alpha * W / n.  Other
    parameters as in ``MLPClassifier``.
    """

    _is_classifier = False

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=(np.float64, np.float32),
                             order="C", reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def _encode(self, y, dtype):
        """(targets (n, k) of ``dtype``, "mse", "identity"); loss_curve_ will divide sgdlab's mse by k."""
        t = y.reshape(-1, 1) if y.ndim == 1 else y
        self._loss_scale = 1.0 / t.shape[1]
        return t.astype(dtype), "mse", "identity"

    def fit(self, X, y):
        """Train on (X, y) from a fresh start (or from the last fit with warm_start=True)."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y):
        """One epoch over (X, y), continuing from the last call."""
        return self._fit(X, y, incremental=True)

    def _predict_validated(self, x):
        out = self._output(x)
        return out.ravel() if out.shape[1] == 1 else out

    def _score_function(self, y, pred):
        return r2_score(y, pred)

    def predict(self, X):
        """The network's outputs: (n,) for one target, (n, k) for k."""
        check_is_fitted(self)
        return self._predict_validated(self._validate_X(X))
