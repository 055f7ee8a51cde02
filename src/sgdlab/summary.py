"""A model at a glance, as Keras's ``model.summary()`` prints it: every layer, its output shape
and how many entries of the flat parameter vector it takes, then the totals.

Output shapes come from one forward pass of a single zero sample, layer by layer, so any
layer that can run forward is described without knowing its kind.  Parameter counts are
``layer.size`` plus the layer's state arrays (BatchNorm's running mean and variance), which
Keras counts as non-trainable parameters.
"""

import re

import numpy as np

from .display import html_table

COLUMNS = ["Layer (type)", "Output Shape", "Param #"]


def _snake(name):
    """CamelCase -> snake_case, as Keras names layers: BatchNorm -> batch_norm, ReLU -> re_lu."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def shape_text(shape):
    """(100,) -> "(None, 100)": the batch axis first, as Keras writes it."""
    return f"(None, {', '.join(map(str, shape))})"


class ModelSummary:
    """Rows (name, output shape without the batch axis, parameter count) and the totals of a model."""

    def __init__(self, model):
        self.model_name = type(model).__name__
        self.loss = model.loss_layer.name
        self.dtype = model.params.dtype
        input_shape = tuple(getattr(model, "input_shape", None) or (model.n_in,))
        y = model._as_input(np.zeros((1, *input_shape), dtype=model.params.dtype))
        seen = {}
        self.rows = []
        for layer in model.layers:
            y = layer.forward(y, train=False)
            kind = type(layer).__name__
            base = _snake(kind)
            name = base if base not in seen else f"{base}_{seen[base]}"
            seen[base] = seen.get(base, 0) + 1
            state = sum(getattr(layer, state_name).size for state_name in layer.state_names)
            self.rows.append((f"{name} ({kind})", tuple(int(n) for n in y.shape[1:]), int(layer.size + state)))
        self.input_shape = input_shape
        self.trainable = int(model.params.size)
        self.non_trainable = sum(count for _, _, count in self.rows) - self.trainable

    @property
    def total(self):
        return self.trainable + self.non_trainable

    def _size(self, count):
        """Bytes of ``count`` numbers of the model's dtype, in KB/MB as Keras 3 prints them."""
        nbytes = count * self.dtype.itemsize
        for unit, scale in (("MB", 1024 ** 2), ("KB", 1024)):
            if nbytes >= scale:
                return f"{nbytes / scale:.2f} {unit}"
        return f"{nbytes} B"

    def description(self):
        return f"input {shape_text(self.input_shape)}, loss {self.loss}, {self.dtype.name}"

    def totals(self):
        """The lines under the table: total, trainable and non-trainable parameter counts."""
        return [f"Total params: {self.total:,} ({self._size(self.total)})",
                f"Trainable params: {self.trainable:,} ({self._size(self.trainable)})",
                f"Non-trainable params: {self.non_trainable:,} ({self._size(self.non_trainable)})"]

    def __str__(self):
        table = [COLUMNS] + [[name, shape_text(shape), f"{count:,}"]
                             for name, shape, count in self.rows]
        widths = [max(len(row[i]) for row in table) + 2 for i in range(3)]
        width = sum(widths)

        def line(cells):
            return "".join([cells[0].ljust(widths[0]), cells[1].ljust(widths[1]), cells[2].rjust(widths[2])])

        rule, double = "_" * width, "=" * width
        body = [line(row) for row in table[1:]]
        return "\n".join([f'Model: "{self.model_name}"  {self.description()}', rule, line(table[0]), double, *body, double, *self.totals(), rule])

    def _repr_html_(self):
        rows = [[name, shape_text(shape), f"{count:,}"] for name, shape, count in self.rows]
        caption = f"{self.model_name}: {self.description()}"
        footer = "<br>".join(self.totals())
        return html_table(COLUMNS, rows, caption=caption, numeric=["Param #"]) + f"<p>{footer}</p>"
