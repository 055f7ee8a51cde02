"""The model: layers in order over one flat parameter vector, a loss, and backprop.

``params`` and ``grads`` are contiguous 1-D arrays; every layer's ``W`` and
``b`` are views into them, in layer order, ``W`` (in, out) in C order then
``b``.  An optimizer updates ``params`` in one expression; a checkpoint is
``params`` plus ``describe()``.
"""

import math

import numpy as np

from .blas import axpy
from .errors import ConfigError, DataError
from .conv import CONV_LAYERS
from .fast_gradient import model_numerical_gradient
from .layers import ACTIVATIONS, LAYERS, BatchNorm, Dense, Dropout, Standardize, layer_from_description
from .losses import LOSSES
from .memory import EVAL_CHUNK, check_fits

EVAL_BYTES = 128 << 20  # ... and about this much of layer outputs and im2col columns per pass at most

LAYER_TYPES = {**LAYERS, **CONV_LAYERS}

DTYPES = {"float32": np.float32, "float64": np.float64}


def resolve_dtype(dtype):
    """np.float32 / "float32" / np.dtype -> np.dtype, refusing anything but float32/float64."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or resolved.name not in DTYPES:
        raise ConfigError(f"dtype={dtype!r} is not allowed: use float32 (to train) or float64 (to check)")
    return resolved


class Sequential:
    """Layers applied in order, then a loss.

    Loss with L2 weight decay:  L = loss(y, t) + (weight_decay / 2) * sum over Dense and Conv2D W of ||W||².
    ``input_shape``: one sample's shape, (features,) by default or (C, H, W) for images, which
    then reach the layers as (N, C, H, W) (flat rows of C·H·W values are reshaped, no copy).
    """

    def __init__(self, layers, loss="softmax_cross_entropy", dtype=np.float32, seed=0, weight_decay=0.0,
                 task=None, input_shape=None):
        if loss not in LOSSES:
            raise ConfigError(f"loss={loss!r} is unknown: use {' or '.join(LOSSES)}")
        if not (np.isfinite(weight_decay) and weight_decay >= 0):
            raise ConfigError(f"weight_decay={weight_decay!r} is not allowed: use a number >= 0")
        self.layers = list(layers)
        self.output = None  # the last forward pass's output
        self.loss_layer = LOSSES[loss]()
        self.weight_decay = float(weight_decay)
        self.task = task or ("regression" if loss == "mse" else "classification")
        if self.task not in ("classification", "regression"):
            raise ConfigError(f"task={task!r} is unknown: use 'classification' or 'regression'")
        self.dtype = resolve_dtype(dtype)
        self.classes = None  # the original class labels (output k predicts classes[k]); None: k itself
        self.inputs = None   # how a table's named columns become x (``data.frame.Columns.describe()``)
        dense = [layer for layer in self.layers if isinstance(layer, Dense)]
        if not dense:
            raise ConfigError("a model needs at least one Dense layer")
        self.input_shape = self._check_input_shape(input_shape, dense[0])
        self.n_in, self.n_out = math.prod(self.input_shape), dense[-1].shape[1]
        shape, floats = self.input_shape, 0
        for layer in self.layers:
            shape = layer.output_shape(shape)
            floats += math.prod(shape) + getattr(layer, "columns_per_sample", 0)
        if shape != (self.n_out,):
            raise ConfigError(f"the last layer gives samples shaped {shape}: end the model with a Dense layer")
        self.eval_rows = int(min(EVAL_CHUNK, max(64, EVAL_BYTES // (self.dtype.itemsize * floats))))
        size = sum(layer.size for layer in self.layers)
        check_fits(f"a model of {size:,} parameters (and its gradients)", 2 * size * self.dtype.itemsize)
        self.params = np.zeros(size, dtype=self.dtype)
        self.grads = np.zeros(size, dtype=self.dtype)
        self._bind()
        rng = np.random.default_rng(seed)
        for layer in self.layers:
            layer.init(rng)

    def _check_input_shape(self, input_shape, first_dense):
        if input_shape is None:
            if any(getattr(layer, "spatial", False) for layer in self.layers):
                raise ConfigError("a model with convolution or pooling layers needs input_shape=(channels, height, "
                                  "width), e.g. (1, 28, 28) for MNIST")
            return (first_dense.shape[0],)
        shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else (input_shape,)
        if not shape or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in shape):
            raise ConfigError(f"input_shape={input_shape!r} is not allowed: give whole numbers >= 1, e.g. (1, 28, 28)")
        return tuple(int(n) for n in shape)

    def _bind(self):
        offset = 0
        self.param_slices = []  # (layer index, slice of the flat vector)
        for k, layer in enumerate(self.layers):
            if layer.size:
                sl = slice(offset, offset + layer.size)
                layer.bind(self.params[sl], self.grads[sl])
                self.param_slices.append((k, sl))
                offset += layer.size
        self._first_trainable = self.param_slices[0][0]
        self._decay = None

    # -- the forward pass and the loss -----------------------------------------------------------

    def _as_input(self, x):
        x = np.asarray(x)
        if x.shape[1:] != self.input_shape:
            n_features = math.prod(x.shape[1:])
            if n_features != self.n_in:
                raise DataError(f"input has {n_features} features per sample: this model expects {self.n_in}"
                                + (f" (images {self.input_shape})" if len(self.input_shape) > 1 else ""))
            x = x.reshape(x.shape[0], *self.input_shape)
        return x if x.dtype == self.params.dtype else x.astype(self.params.dtype)

    def forward(self, x, train=False):
        """The network's output (scores before the loss), kept as ``self.output``.  Valid until the next call."""
        y = self._as_input(x)
        for layer in self.layers:
            y = layer.forward(y, train)
        self.output = y
        return y

    def penalty(self):
        """(weight_decay / 2) * sum of squared Dense and Conv2D weights."""
        if not self.weight_decay:
            return 0.0
        total = 0.0
        for layer in self.layers:
            if layer.decays_weights:
                w = layer.W.ravel()
                total = total + np.dot(w, w)
        return 0.5 * self.weight_decay * total

    def loss(self, x, t, train=False):
        """L(x, t) as a Python float (complex when the parameters are complex)."""
        value = self.loss_layer.forward(self.forward(x, train), np.asarray(t)) + self.penalty()
        return complex(value) if np.iscomplexobj(self.params) else float(value)

    # -- step 2: the gradient ----------------------------------------------------------------------

    def gradient(self, x, t):
        """Backprop: returns (loss, grads), ``grads`` being ``self.grads`` overwritten (never accumulated)."""
        t = np.asarray(t)
        loss = self.loss_layer.forward(self.forward(x, train=True), t) + self.penalty()
        dy = self.loss_layer.backward()
        for k in range(len(self.layers) - 1, self._first_trainable - 1, -1):
            dy = self.layers[k].backward(dy, need_dx=k > self._first_trainable)
        if self.weight_decay:  # dW += weight_decay * W, layer by layer (biases are not decayed)
            for w, dw in self._decayed():
                axpy(self.weight_decay, w, dw)
        return float(loss), self.grads

    def _decayed(self):
        """(W, dW) of every Dense and Conv2D layer as flat views, made once: the arrays weight decay touches."""
        if self._decay is None:
            self._decay = [(layer.W.reshape(-1), layer.dW.reshape(-1)) for layer in self.layers
                           if layer.decays_weights]
        return self._decay

    def numerical_gradient(self, x, t, h=None, method="central"):
        """The same gradient by finite differences of ``loss`` (see ``sgdlab.gradients``)."""
        return model_numerical_gradient(self, x, t, h=h, method=method)

    def has_plain_maths(self):
        """True unless a subclass overrides the maths the fast numerical gradient re-derives (forward, loss)."""
        cls = type(self)
        return all(getattr(cls, name) is getattr(Sequential, name)
                   for name in ("forward", "loss", "penalty", "_as_input"))

    # -- using the trained model -------------------------------------------------------------------

    @property
    def is_classifier(self):
        return self.task == "classification"

    @property
    def feature_names(self):
        """The names of the table columns the model was trained on (None when it was trained on arrays)."""
        return None if self.inputs is None else list(self.inputs["names"])

    def predict(self, x, batch_size=None):
        """Class labels (argmax, as ``classes[k]`` when the model keeps its classes) for a classifier, outputs
        for a regressor; fresh array, in chunks."""
        x = np.asarray(x)
        batch_size = batch_size or self.eval_rows
        results = []
        for start in range(0, x.shape[0], batch_size):
            y = self.forward(x[start : start + batch_size])
            results.append(y.argmax(axis=1) if self.is_classifier else y.copy())
        k = np.concatenate(results) if results else np.empty((0,), dtype=np.int64)
        return k if self.classes is None or not self.is_classifier else self.classes[k]

    def predict_proba(self, x, batch_size=None):
        """Class probabilities (softmax or sigmoid of the output), in chunks; for classifiers only."""
        if not self.is_classifier:
            raise ConfigError(f"predict_proba is for classifiers: this model is a regressor (loss "
                              f"{self.loss_layer.name!r}); use predict for its outputs")
        x = np.asarray(x)
        batch_size = batch_size or self.eval_rows
        out = [self.loss_layer.probabilities(self.forward(x[s : s + batch_size]).astype(np.float64))
               for s in range(0, x.shape[0], batch_size)]
        return np.concatenate(out)

    def accuracy(self, x, t, batch_size=None):
        """Fraction of samples whose predicted class equals the label (one-hot labels allowed; labels as
        ``predict`` gives them)."""
        t = np.asarray(t)
        labels = t.argmax(axis=1) if t.ndim == 2 else t
        return float(np.mean(self.predict(x, batch_size) == labels))

    @staticmethod
    def count_correct(y, t):
        """How many rows of the output y have their largest score at their integer label t (0 for float targets)."""
        return int(np.count_nonzero(y.argmax(axis=1) == t)) if t.ndim == 1 else 0

    def evaluate(self, dataset, batch_size=None):
        """(mean loss incl. weight decay, accuracy or None) over a whole Dataset or (x, t), in large chunks."""
        from .data import as_dataset

        dataset = as_dataset(dataset, "evaluation")
        total_loss, correct, n = 0.0, 0, 0
        for xb, tb in dataset.chunks(batch_size or self.eval_rows):
            y = self.forward(xb)
            total_loss += float(self.loss_layer.forward(y, tb)) * len(xb)
            correct += self.count_correct(y, tb)
            n += len(xb)
        accuracy = correct / n if dataset.is_classification else None
        return total_loss / n + float(self.penalty()), accuracy

    # -- description, copies -----------------------------------------------------------------------

    def describe(self):
        """JSON-able architecture: rebuilding from it and loading ``params`` gives the same model."""
        return {
            "format": "sgdlab.sequential/1",
            "layers": [layer.describe() for layer in self.layers],
            "loss": self.loss_layer.name,
            "weight_decay": self.weight_decay,
            "task": self.task,
            "dtype": self.dtype.name,
            "n_params": int(self.params.size),
            **({} if self.classes is None else {"classes": self.classes.tolist()}),
            **({} if self.inputs is None else {"inputs": self.inputs}),
            **({"input_shape": list(self.input_shape)} if len(self.input_shape) > 1 else {}),
        }

    @classmethod
    def from_description(cls, desc, params=None):
        """Rebuild a model from ``describe()``; copy ``params`` in when given."""
        layers = [layer_from_description(d, LAYER_TYPES) for d in desc["layers"]]
        model = Sequential(layers, loss=desc["loss"], dtype=desc.get("dtype", "float32"),
                           weight_decay=desc.get("weight_decay", 0.0), task=desc.get("task"),
                           input_shape=desc.get("input_shape"))
        if desc.get("classes") is not None:
            model.classes = np.array(desc["classes"])
        model.inputs = desc.get("inputs")
        if params is not None:
            if params.shape != model.params.shape:
                raise ValueError(f"{params.size} parameters do not fit this architecture's {model.params.size}")
            model.params[...] = params
        return model

    def state_buffers(self):
        """Non-parameter state by name, ``layers.K.running_mean`` ...: the arrays themselves (BatchNorm's)."""
        return {f"layers.{k}.{name}": getattr(layer, name)
                for k, layer in enumerate(self.layers) for name in layer.state_names}

    def load_state_buffers(self, buffers):
        """Copy arrays from ``state_buffers()``-style names into this model's state, in place."""
        for name, target in self.state_buffers().items():
            target[...] = buffers[name]

    def copy(self, dtype=None):
        """An independent model with the same architecture, parameters and state (optionally another dtype)."""
        desc = self.describe()
        if dtype is not None:
            desc["dtype"] = resolve_dtype(dtype).name
        model = Sequential.from_description(desc, self.params)
        model.load_state_buffers(self.state_buffers())
        return model

    def summary(self, print_fn=print):
        """Print every layer, its output shape and parameter count, and the totals (Keras's ``summary()``)."""
        from .summary import ModelSummary

        print_fn(str(ModelSummary(self)))

    def _repr_html_(self):
        """Jupyter shows a model as its summary table."""
        from .summary import ModelSummary

        return ModelSummary(self)._repr_html_()

    def __repr__(self):
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"{type(self).__name__}([{inner}], loss={self.loss_layer.name!r}, params={self.params.size})"


class MLP(Sequential):
    """A multilayer perceptron: Dense -> activation, ..., Dense; sizes = [inputs, hidden..., outputs].

    Each hidden block is Dense -> [BatchNorm] -> activation -> [Dropout(dropout)];
    each Dropout's mask Generator is seeded from ``seed`` and its layer index.
    ``standardize``: a Standardize layer first (call ``model.layers[0].adapt(x_train)`` before training).
    """

    def __init__(self, sizes, activation="relu", loss="softmax_cross_entropy", seed=0, dtype=np.float32,
                 weight_decay=0.0, task=None, dropout=0.0, batch_norm=False, standardize=False):
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or any(s <= 0 for s in sizes):
            raise ConfigError(f"sizes={sizes!r} is not allowed: give [inputs, hidden..., outputs], all positive")
        if activation not in ACTIVATIONS:
            raise ConfigError(f"activation={activation!r} is unknown: use {', '.join(ACTIVATIONS)}")
        init = "he" if activation == "relu" else "xavier"
        layers = [Standardize(sizes[0])] if standardize else []
        for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Dense(n_in, n_out, init=init))
            if k < len(sizes) - 2:
                if batch_norm:
                    layers.append(BatchNorm(n_out))
                layers.append(ACTIVATIONS[activation]())
                if dropout:
                    stream = np.random.SeedSequence(seed, spawn_key=(len(layers) - bool(standardize),))
                    layers.append(Dropout(dropout, seed=int(stream.generate_state(1)[0])))
        self.sizes, self.activation = sizes, activation
        self.dropout, self.batch_norm = dropout, batch_norm
        super().__init__(layers, loss=loss, dtype=dtype, seed=seed, weight_decay=weight_decay, task=task)
