"""scikit-learn's training rules as pieces of sgdlab's one loop (``training.Trainer``).

``sgdlab.sklearn``'s estimators train through the Trainer; what makes their
numbers equal scikit-learn's lives here, each as the kind of piece it is:
its Nesterov and Adam forms (optimizers), ``invscaling`` (a schedule), its
batches (a sampler: ``sklearn.utils.shuffle`` each epoch, ``gen_batches``), and
its L2 term alpha/n per batch (a hook on the gradient).  Its ``tol`` /
``n_iter_no_change`` / ``adaptive`` rules are ``EarlyStopping(rule="sklearn",
reduce_lr_by=5, min_lr=1e-6)``.  Needs scikit-learn.
"""

import math

import numpy as np
from sklearn.utils import gen_batches
from sklearn.utils import shuffle as shuffle_rows

from .blas import axpby, axpy
from .callbacks import Callback
from .optimizers import Optimizer, adaptive_step, average, average_of_squares
from .schedules import Schedule
from .validation import check_number


class SklearnNesterov(Optimizer):
    """scikit-learn's Nesterov step: v <- momentum * v - lr * g;  p <- p + momentum * v - lr * g.

    Equals sgdlab's ``Nesterov`` (v = -lr * b) while lr is constant; when lr
    changes (invscaling, adaptive) v keeps the earlier lr's scale, as sklearn's does.
    """

    name = "sklearn_nesterov"
    hyper = ("momentum",)
    buffers = ("v",)

    def __init__(self, lr=0.001, momentum=0.9):
        super().__init__(lr)
        self.momentum = check_number("momentum", momentum, low=0, high=1)

    def update(self, params, grads):
        s = self._prepare(params, grads)
        axpby(-self.lr, grads, self.momentum, self.v, scratch=s)
        axpy(self.momentum, self.v, params, scratch=s)
        axpy(-self.lr, grads, params, scratch=s)
        self.step += 1


class SklearnAdam(Optimizer):
    """scikit-learn's Adam: m, v as usual;  p <- p - lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps).

    eps is added to the raw sqrt(v) (torch adds it to the bias-corrected one): the two differ while t is small.
    """

    name = "sklearn_adam"
    hyper = ("beta_1", "beta_2", "epsilon")
    buffers = ("m", "v")

    def __init__(self, lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        super().__init__(lr)
        self.beta_1 = check_number("beta_1", beta_1, low=0, high=1, high_open=True)
        self.beta_2 = check_number("beta_2", beta_2, low=0, high=1, high_open=True)
        self.epsilon = check_number("epsilon", epsilon, low=0, low_open=True)

    def update(self, params, grads):
        s = self._prepare(params, grads)
        t = self.step + 1
        average(self.m, self.beta_1, grads, s)
        average_of_squares(self.v, self.beta_2, grads, s)
        factor = self.lr * np.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)
        adaptive_step(params, self.m, self.v, self.epsilon, factor, s)
        self.step = t


class InvScaling(Schedule):
    """scikit-learn's "invscaling": after each epoch lr = base_lr / (t + 1) ** power_t, t = samples seen so far.

    ``samples_seen`` counts the samples of earlier fits (``t_``); until this run's first epoch ends the
    lr is ``first_lr`` (the optimizer's lr as the run begins).
    """

    name = "invscaling"
    hyper = ("power_t", "samples_per_epoch", "samples_seen", "first_lr")

    def __init__(self, base_lr, power_t=0.5, samples_per_epoch=1, samples_seen=0, first_lr=None):
        super().__init__(base_lr)
        self.power_t = check_number("power_t", power_t, low=0)
        self.samples_per_epoch, self.samples_seen = int(samples_per_epoch), int(samples_seen)
        self.first_lr = self.base_lr if first_lr is None else float(first_lr)

    def lr_at(self, iteration, iterations_per_epoch, total_iterations):
        epochs = self._epoch(iteration, iterations_per_epoch)
        if epochs == 0:
            return self.first_lr
        return self.base_lr / (self.samples_seen + epochs * self.samples_per_epoch + 1) ** self.power_t


class SklearnBatches:
    """scikit-learn's mini-batches over ``n`` samples: ``gen_batches`` slices (the last one smaller) of an
    order reshuffled by ``sklearn.utils.shuffle(order, random_state)`` at each epoch's start (kept as it is
    without ``shuffle``).  Each batch's indices are sorted, as ``BatchSampler``'s are."""

    mode = "sklearn"

    def __init__(self, n, batch_size, shuffle, random_state):
        self.n, self.batch_size, self.shuffle, self.random_state = int(n), int(batch_size), shuffle, random_state
        self.iterations_per_epoch = math.ceil(self.n / self.batch_size)
        self.slices = list(gen_batches(self.n, self.batch_size))
        self.order = np.arange(self.n)
        self.position = len(self.slices)  # "shuffle first"
        self._indices = np.empty(self.batch_size, dtype=np.intp)

    def next(self):
        if self.position >= len(self.slices):
            if self.shuffle:
                self.order = shuffle_rows(self.order, random_state=self.random_state)
            self.position = 0
        batch = self.slices[self.position]
        self.position += 1
        out = self._indices[: batch.stop - batch.start]
        np.copyto(out, self.order[batch])
        out.sort()
        return out


class SklearnLoss(Callback):
    """scikit-learn's batch loss and L2 term: loss <- scale * loss + alpha / (2k) * sum ||W||²,
    dL/dW += (alpha / k) * W for a batch of k (biases are not penalised)."""

    def __init__(self, dense_layers, alpha, scale=1.0):
        self.alpha, self.scale = float(alpha), scale
        self.dense = [(layer.W.reshape(-1), layer.dW.reshape(-1), np.empty(layer.W.size, layer.W.dtype))
                      for layer in dense_layers]

    def after_gradient(self, trainer):
        loss = trainer.loss * self.scale
        if self.alpha:
            scale = self.alpha / len(trainer.tb)
            for w, dw, scratch in self.dense:
                loss += 0.5 * scale * float(np.dot(w, w))
                axpy(scale, w, dw, scratch=scratch)
        trainer.loss = loss
