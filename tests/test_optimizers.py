"""Optimizers, gradient clipping and lr schedules: numbers checked by hand and against torch.optim."""

import math
import tracemalloc

import numpy as np
import pytest

from sgdlab.errors import ConfigError
from sgdlab.optimizers import (
    OPTIMIZERS,
    SCHEDULES,
    SGD,
    AdaGrad,
    Adam,
    AdamW,
    Constant,
    Cosine,
    Exponential,
    Momentum,
    Nesterov,
    ReduceOnPlateau,
    RMSprop,
    StepDecay,
    clip_grad_norm,
    get_optimizer,
    make_schedule,
)

P0 = [1.0, -2.0]
G1 = [0.5, 0.1]
G2 = [0.2, -0.3]
EPS = 1e-8


def two_steps(opt):
    p = np.array(P0)
    opt.update(p, np.array(G1))
    p1 = p.copy()
    opt.update(p, np.array(G2))
    return p1, p


def close(actual, expected, atol=1e-15):
    np.testing.assert_allclose(actual, expected, rtol=0, atol=atol)


# ------------------------------------------------------------------ two steps by hand


def test_sgd_two_steps_by_hand():
    p1, p2 = two_steps(SGD(lr=0.1))
    close(p1, [1 - 0.05, -2 - 0.01])  # p - 0.1 * [0.5, 0.1]
    close(p2, [0.95 - 0.02, -2.01 + 0.03])
    close(p2, [0.93, -1.98])


def test_sgd_weight_decay_two_steps_by_hand():
    p1, p2 = two_steps(SGD(lr=0.1, weight_decay=0.1))
    # d1 = g1 + 0.1 p0 = [0.6, -0.1]
    close(p1, [0.94, -1.99])
    # d2 = g2 + 0.1 p1 = [0.294, -0.499]
    close(p2, [0.94 - 0.0294, -1.99 + 0.0499])
    close(p2, [0.9106, -1.9401])


def test_momentum_two_steps_by_hand():
    p1, p2 = two_steps(Momentum(lr=0.1, momentum=0.9))
    # v1 = -0.1 g1 = [-0.05, -0.01]
    close(p1, [0.95, -2.01])
    # v2 = 0.9 v1 - 0.1 g2 = [-0.065, 0.021]
    close(p2, [0.885, -1.989])


def test_nesterov_two_steps_by_hand():
    p1, p2 = two_steps(Nesterov(lr=0.1, momentum=0.9))
    # b1 = g1 = [0.5, 0.1]; step g1 + 0.9 b1 = [0.95, 0.19]
    close(p1, [0.905, -2.019])
    # b2 = 0.9 b1 + g2 = [0.65, -0.21]; step g2 + 0.9 b2 = [0.785, -0.489]
    close(p2, [0.905 - 0.0785, -2.019 + 0.0489])
    close(p2, [0.8265, -1.9701])


def test_adagrad_two_steps_by_hand():
    p1, p2 = two_steps(AdaGrad(lr=0.1))
    # h1 = [0.25, 0.01]
    e1 = [1 - 0.1 * 0.5 / (0.5 + EPS), -2 - 0.1 * 0.1 / (0.1 + EPS)]
    close(p1, e1)
    # h2 = [0.29, 0.10]
    close(p2, [e1[0] - 0.1 * 0.2 / (math.sqrt(0.29) + EPS), e1[1] + 0.1 * 0.3 / (math.sqrt(0.10) + EPS)])
    close(p1, [0.9, -2.1], atol=1e-8)  # the first AdaGrad step moves each coordinate by lr


def test_rmsprop_two_steps_by_hand():
    p1, p2 = two_steps(RMSprop(lr=0.01, alpha=0.99))
    # h1 = 0.01 g1² = [0.0025, 0.0001]; sqrt = [0.05, 0.01]
    e1 = [1 - 0.01 * 0.5 / (0.05 + EPS), -2 - 0.01 * 0.1 / (0.01 + EPS)]
    close(p1, e1)
    # h2 = 0.99 h1 + 0.01 g2² = [0.002475 + 0.0004, 0.000099 + 0.0009]
    h2 = [0.002875, 0.000999]
    close(p2, [e1[0] - 0.01 * 0.2 / (math.sqrt(h2[0]) + EPS), e1[1] + 0.01 * 0.3 / (math.sqrt(h2[1]) + EPS)])


def adam_by_hand(lr, p0):
    """Two Adam steps (betas 0.9/0.999) from p0 with G1, G2, written out per coordinate."""
    # step 1: m1 = 0.1 g1, v1 = 0.001 g1²; bias corrections 0.1 and 0.001
    m1 = [0.05, 0.01]
    v1 = [0.00025, 0.00001]
    p1 = [p0[i] - lr / 0.1 * m1[i] / (math.sqrt(v1[i]) / math.sqrt(0.001) + EPS) for i in range(2)]
    # step 2: m2 = 0.9 m1 + 0.1 g2, v2 = 0.999 v1 + 0.001 g2²; bias corrections 0.19 and 0.001999
    m2 = [0.065, -0.021]
    v2 = [0.00024975 + 0.00004, 0.00000999 + 0.00009]
    return p1, m2, v2


def test_adam_two_steps_by_hand():
    p1, p2 = two_steps(Adam(lr=0.1))
    e1, m2, v2 = adam_by_hand(0.1, P0)
    close(p1, e1)
    close(p1, [0.9, -2.1], atol=1e-8)  # the first Adam step moves each coordinate by lr
    e2 = [e1[i] - 0.1 / 0.19 * m2[i] / (math.sqrt(v2[i]) / math.sqrt(0.001999) + EPS) for i in range(2)]
    close(p2, e2)


def test_adamw_two_steps_by_hand():
    p1, p2 = two_steps(AdamW(lr=0.1, weight_decay=0.01))
    # decay first: p <- p - 0.1 * 0.01 * p = 0.999 p, then the Adam step
    e1, m2, v2 = adam_by_hand(0.1, [0.999, -1.998])
    close(p1, e1)
    d1 = [0.999 * x for x in e1]
    e2 = [d1[i] - 0.1 / 0.19 * m2[i] / (math.sqrt(v2[i]) / math.sqrt(0.001999) + EPS) for i in range(2)]
    close(p2, e2)


def test_lr_is_read_at_every_call():
    opt = SGD(lr=0.1)
    p = np.array(P0)
    opt.update(p, np.array(G1))
    opt.lr = 0.2
    opt.update(p, np.array(G2))
    close(p, [0.95 - 0.04, -2.01 + 0.06])
    opt = Adam(lr=0.1)
    p = np.array(P0)
    opt.update(p, np.array(G1))
    opt.lr = 0.05
    opt.update(p, np.array(G2))
    e1, m2, v2 = adam_by_hand(0.1, P0)
    close(p, [e1[i] - 0.05 / 0.19 * m2[i] / (math.sqrt(v2[i]) / math.sqrt(0.001999) + EPS) for i in range(2)])


def test_nesterov_with_zero_momentum_is_sgd():
    _, p = two_steps(Nesterov(lr=0.1, momentum=0.0))
    close(p, [0.93, -1.98])


def test_momentum_equals_sgd_with_buffer_for_constant_lr():
    """The textbook velocity is -lr times torch's momentum buffer: same parameters for a constant lr."""
    rng = np.random.default_rng(0)
    p = rng.normal(size=5)
    q, buf = p.copy(), np.zeros(5)
    opt = Momentum(lr=0.05, momentum=0.8)
    for _ in range(20):
        g = rng.normal(size=5)
        opt.update(p, g)
        buf = 0.8 * buf + g
        q = q - 0.05 * buf
    close(p, q, atol=1e-13)


# ------------------------------------------------------------------ against torch.optim


def torch_pairs():
    return [
        (lambda: SGD(lr=0.05), lambda t, w: t.optim.SGD(w, lr=0.05)),
        (lambda: SGD(lr=0.05, weight_decay=0.1), lambda t, w: t.optim.SGD(w, lr=0.05, weight_decay=0.1)),
        (lambda: Momentum(lr=0.05, momentum=0.9), lambda t, w: t.optim.SGD(w, lr=0.05, momentum=0.9)),
        (lambda: Nesterov(lr=0.05, momentum=0.9), lambda t, w: t.optim.SGD(w, lr=0.05, momentum=0.9, nesterov=True)),
        (lambda: AdaGrad(lr=0.1), lambda t, w: t.optim.Adagrad(w, lr=0.1, eps=1e-8, initial_accumulator_value=0)),
        (lambda: RMSprop(lr=0.01), lambda t, w: t.optim.RMSprop(w, lr=0.01, alpha=0.99, eps=1e-8)),
        (lambda: Adam(lr=0.01), lambda t, w: t.optim.Adam(w, lr=0.01, betas=(0.9, 0.999), eps=1e-8)),
        (lambda: AdamW(lr=0.01), lambda t, w: t.optim.AdamW(w, lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)),
        (lambda: AdamW(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.3),
         lambda t, w: t.optim.AdamW(w, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.3)),
    ]


@pytest.mark.parametrize("index", range(len(torch_pairs())))
def test_matches_torch_for_20_random_steps(index):
    torch = pytest.importorskip("torch")
    ours, theirs = torch_pairs()[index]
    rng = np.random.default_rng(index)
    p = rng.normal(size=17)
    w = torch.tensor(p.copy(), dtype=torch.float64, requires_grad=True)
    opt, ref = ours(), theirs(torch, [w])
    for _ in range(20):
        g = rng.normal(size=17)
        opt.update(p, g)
        w.grad = torch.tensor(g, dtype=torch.float64)
        ref.step()
    close(p, w.detach().numpy(), atol=1e-12)


# ------------------------------------------------------------------ state, in place, no allocation

ALL = [
    lambda: SGD(lr=0.1),
    lambda: SGD(lr=0.1, weight_decay=0.05),
    lambda: Momentum(lr=0.1, momentum=0.9),
    lambda: Nesterov(lr=0.1, momentum=0.9),
    lambda: AdaGrad(lr=0.1),
    lambda: RMSprop(lr=0.01),
    lambda: Adam(lr=0.01),
    lambda: AdamW(lr=0.01, weight_decay=0.1),
]
IDS = ["sgd", "sgd_wd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"]


@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_state_dict_round_trip_resumes_exactly(make):
    rng = np.random.default_rng(1)
    p0 = rng.normal(size=9)
    gs = rng.normal(size=(6, 9))

    straight, p = make(), p0.copy()
    for g in gs:
        straight.update(p, g)

    first, q = make(), p0.copy()
    for g in gs[:3]:
        first.update(q, g)
    state = first.state_dict()
    resumed = make()
    resumed.load_state_dict(state)
    assert resumed.step == 3
    q2 = q.copy()
    for g in gs[3:]:
        resumed.update(q2, g.copy())
    np.testing.assert_array_equal(q2, p)
    assert resumed.state_dict()["step"] == straight.state_dict()["step"] == 6


@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_state_dict_arrays_are_copies(make):
    rng = np.random.default_rng(2)
    opt, p = make(), rng.normal(size=4)
    for _ in range(2):
        opt.update(p, rng.normal(size=4))
    state = opt.state_dict()
    arrays = [k for k, v in state.items() if isinstance(v, np.ndarray)]
    assert len(arrays) == len(type(opt).buffers)
    before = {k: state[k].copy() for k in arrays}
    for k in arrays:
        state[k][:] = 123.0  # mutating the saved state does not reach the optimizer
    again = opt.state_dict()
    for k in arrays:
        np.testing.assert_array_equal(again[k], before[k])
    # and loading copies too: mutating the dict afterwards leaves the loaded optimizer alone
    fresh = make()
    saved = opt.state_dict()
    fresh.load_state_dict(saved)
    for k in arrays:
        saved[k][:] = -7.0
        np.testing.assert_array_equal(fresh.state_dict()[k], before[k])


def test_load_state_dict_rejects_other_optimizer_and_wrong_shape():
    adam = Adam()
    adam.update(np.zeros(3), np.ones(3))
    with pytest.raises(ConfigError, match="'adam'"):
        AdaGrad().load_state_dict(adam.state_dict())
    other = Adam()
    other.load_state_dict(adam.state_dict())
    with pytest.raises(ConfigError, match=r"shape \(3,\)"):
        other.update(np.zeros(4), np.ones(4))


def test_state_dict_holds_lr_of_zero_from_a_schedule():
    opt = SGD(lr=0.1)
    opt.lr = 0.0  # a cosine schedule ends at min_lr=0
    fresh = SGD(lr=0.5)
    fresh.load_state_dict(opt.state_dict())
    assert fresh.lr == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_update_in_place_keeps_grads_and_buffers(make, dtype):
    rng = np.random.default_rng(3)
    opt = make()
    p = rng.normal(size=50).astype(dtype)
    g = rng.normal(size=50).astype(dtype)
    g_before = g.copy()
    p_id = id(p)
    opt.update(p, g)
    buffers = [id(opt._scratch)] + [id(getattr(opt, b)) for b in type(opt).buffers]
    for _ in range(3):
        opt.update(p, g)
    assert id(p) == p_id and p.dtype == dtype
    np.testing.assert_array_equal(g, g_before)
    assert [id(opt._scratch)] + [id(getattr(opt, b)) for b in type(opt).buffers] == buffers
    assert all(getattr(opt, b).dtype == dtype for b in type(opt).buffers)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_no_allocation_after_first_call(make, dtype):
    rng = np.random.default_rng(4)
    opt = make()
    p = rng.normal(size=100_000).astype(dtype)
    g = rng.normal(size=100_000).astype(dtype)
    opt.update(p, g)
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(5):
            opt.lr = opt.lr * 0.9
            opt.update(p, g)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < p.nbytes // 10  # not one array-sized temporary


# ------------------------------------------------------------------ descent and validation


@pytest.mark.parametrize(
    "name, lr",
    [("sgd", 0.9), ("momentum", 0.1), ("nesterov", 0.1), ("adagrad", 1.5), ("rmsprop", 0.1), ("adam", 0.3), ("adamw", 0.3)],
)
def test_each_optimizer_descends_the_books_quadratic(name, lr):
    """f(x0, x1) = x0²/20 + x1² from (-7, 2), the textbook's optimizer comparison."""

    def f(p):
        return p[0] ** 2 / 20 + p[1] ** 2

    opt = get_optimizer(name, lr)
    p = np.array([-7.0, 2.0])
    f0 = f(p)
    values = []
    for _ in range(100):
        opt.update(p, np.array([p[0] / 10, 2 * p[1]]))
        values.append(f(p))
    assert values[-1] < 0.05 * f0
    assert min(values[:10]) < f0


@pytest.mark.parametrize("lr", [0, -0.1, float("nan"), float("inf"), "0.1", True, None])
@pytest.mark.parametrize("cls", list(OPTIMIZERS.values()))
def test_bad_lr_is_rejected(cls, lr):
    with pytest.raises(ConfigError, match="lr="):
        cls(lr=lr)


@pytest.mark.parametrize(
    "build, pattern",
    [
        (lambda: Momentum(momentum=1.0), "momentum=1.0"),
        (lambda: Momentum(momentum=-0.1), "momentum=-0.1"),
        (lambda: Nesterov(momentum=1.0), "momentum=1.0"),
        (lambda: Nesterov(momentum=float("nan")), "momentum=nan"),
        (lambda: Adam(betas=(1.0, 0.999)), "beta1=1.0"),
        (lambda: Adam(betas=(0.9, -0.5)), "beta2=-0.5"),
        (lambda: Adam(betas=0.9), "betas=0.9"),
        (lambda: AdamW(eps=0), "eps=0"),
        (lambda: AdaGrad(eps=-1e-8), "eps=-1e-08"),
        (lambda: RMSprop(alpha=1.0), "alpha=1.0"),
        (lambda: SGD(weight_decay=-0.1), "weight_decay=-0.1"),
        (lambda: AdamW(weight_decay=float("inf")), "weight_decay=inf"),
    ],
)
def test_bad_hyper_parameters_are_rejected(build, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        build()
    assert "\n" not in str(info.value) and "use" in str(info.value)


def test_get_optimizer_registry_and_settings():
    assert list(OPTIMIZERS) == ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"]
    opt = get_optimizer("adam", 0.01, betas=(0.8, 0.9), eps=1e-6)
    assert isinstance(opt, Adam) and opt.lr == 0.01 and opt.betas == (0.8, 0.9) and opt.eps == 1e-6
    assert get_optimizer("AdamW", None).lr == 1e-3  # case-insensitive; lr=None takes the default
    with pytest.raises(ConfigError, match="adagrad.*adamw"):
        get_optimizer("lbfgs", 0.1)
    with pytest.raises(ConfigError, match="'momentum'.*allowed settings are betas, eps$"):
        get_optimizer("adam", 0.1, momentum=0.9)
    with pytest.raises(ConfigError, match="'weight_decay'.*allowed settings are momentum$"):
        get_optimizer("nesterov", 0.1, weight_decay=0.1)
    with pytest.raises(ConfigError, match="allowed settings are weight_decay"):
        get_optimizer("sgd", 0.1, nesterov=True)


def test_mismatched_grads_are_rejected():
    with pytest.raises(ConfigError, match="does not match"):
        Adam().update(np.zeros(3), np.zeros(4))
    with pytest.raises(ConfigError, match="floating-point"):
        SGD().update(np.zeros(3, dtype=int), np.zeros(3))


# ------------------------------------------------------------------ gradient clipping


def test_clip_grad_norm_scales_in_place_and_returns_norm_before():
    g = np.array([3.0, 4.0])
    ident = id(g)
    assert clip_grad_norm(g, 1.0) == 5.0
    assert id(g) == ident
    close(g, [0.6, 0.8])
    g = np.array([3.0, 4.0])
    assert clip_grad_norm(g, 5.0) == 5.0  # not above max_norm: untouched
    np.testing.assert_array_equal(g, [3.0, 4.0])


def test_clip_grad_norm_float32_overflow_and_nan():
    g = np.array([3e20, 4e20], dtype=np.float32)  # the sum of squares overflows float32
    norm = clip_grad_norm(g, 1.0)
    assert norm == pytest.approx(5e20, rel=1e-6)
    close(g.astype(np.float64), [0.6, 0.8], atol=1e-6)
    g = np.array([np.nan, 1.0])
    assert math.isnan(clip_grad_norm(g, 1.0))
    with pytest.raises(ConfigError, match="max_norm=0"):
        clip_grad_norm(np.ones(2), 0)


# ------------------------------------------------------------------ schedules


def test_constant_step_exponential_values():
    assert Constant(0.1).lr_at(12345, 10, 100000) == 0.1
    step = StepDecay(0.1, step_epochs=2, gamma=0.5)
    # 10 iterations per epoch: epochs 0-1 -> 0.1, 2-3 -> 0.05, 4-5 -> 0.025
    assert [step.lr_at(i, 10, 100) for i in (0, 19, 20, 39, 40, 59)] == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    exp = Exponential(0.2, gamma=0.5)  # per completed epoch
    assert [exp.lr_at(i, 7, 100) for i in (0, 6, 7, 13, 14, 21)] == [0.2, 0.2, 0.1, 0.1, 0.05, 0.025]


def test_cosine_values_with_and_without_warmup():
    cos = Cosine(1.0, min_lr=0.1)
    assert cos.lr_at(0, 10, 100) == 1.0
    assert cos.lr_at(50, 10, 100) == pytest.approx(0.55, abs=1e-15)  # halfway: (1 + cos(pi/2)) / 2
    assert cos.lr_at(25, 10, 100) == pytest.approx(0.1 + 0.9 * (1 + math.sqrt(0.5)) / 2, abs=1e-15)
    assert cos.lr_at(100, 10, 100) == pytest.approx(0.1, abs=1e-15)
    assert cos.lr_at(150, 10, 100) == pytest.approx(0.1, abs=1e-15)
    warm = Cosine(0.4, warmup_iterations=4)
    assert [warm.lr_at(i, 10, 104) for i in range(4)] == [0.1, 0.2, 0.30000000000000004, 0.4]
    assert warm.lr_at(4, 10, 104) == 0.4
    assert warm.lr_at(54, 10, 104) == pytest.approx(0.2, abs=1e-15)
    with pytest.raises(ConfigError, match="total_iterations=4"):
        warm.lr_at(0, 10, 4)


def test_plateau_reduces_after_patience_and_respects_min_lr():
    plateau = ReduceOnPlateau(1.0, factor=0.1, patience=2, min_lr=0.005)
    lrs = []
    for metric in [5.0, 4.0, 4.0, 4.5, 4.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0]:
        plateau.observe(metric)
        lrs.append(plateau.lr_at(0, 1, 1))
    # bad observations: 4.0, 4.5 -> 2 (not more than patience); the third bad one (4.0) reduces
    assert lrs[:5] == [1.0, 1.0, 1.0, 1.0, 0.1]
    assert lrs[5:8] == [0.1, 0.1, 0.1]  # 3.0 improves, then two bad
    assert lrs[8] == pytest.approx(0.01)  # third bad after the improvement
    assert lrs[9:11] == [lrs[8], lrs[8]]
    assert lrs[11] == 0.005  # max(0.001, min_lr)
    assert lrs[12:] == [0.005, 0.005]


def test_plateau_max_mode_min_delta_and_nan():
    plateau = ReduceOnPlateau(0.5, factor=0.5, patience=0, min_delta=0.1, mode="max")
    plateau.observe(0.90)
    plateau.observe(1.05)  # +0.15 > min_delta: an improvement
    assert plateau.lr == 0.5
    plateau.observe(1.10)  # +0.05: not enough
    assert plateau.lr == 0.25
    plateau.observe(float("nan"))
    assert plateau.lr == 0.125


def test_schedule_state_round_trip():
    plateau = ReduceOnPlateau(1.0, factor=0.5, patience=1)
    for metric in [3.0, 3.0, 3.0, 2.0, 2.5]:
        plateau.observe(metric)
    state = plateau.state_dict()
    fresh = ReduceOnPlateau(1.0, factor=0.5, patience=1)
    fresh.load_state_dict(state)
    assert fresh.state_dict() == state
    for m in [2.5, 2.5, 1.0]:
        plateau.observe(m)
        fresh.observe(m)
        assert fresh.lr == plateau.lr
    assert fresh.lr == 0.25
    cos = Cosine(0.3, min_lr=0.01, warmup_iterations=5)
    other = Cosine(1.0)
    other.load_state_dict(cos.state_dict())
    assert [other.lr_at(i, 3, 50) for i in range(50)] == [cos.lr_at(i, 3, 50) for i in range(50)]
    with pytest.raises(ConfigError, match="'cosine'"):
        StepDecay(0.1).load_state_dict(cos.state_dict())


def test_make_schedule_and_validation():
    assert list(SCHEDULES) == ["constant", "step", "exponential", "cosine", "plateau"]
    assert isinstance(make_schedule("step", 0.1, step_epochs=3), StepDecay)
    assert make_schedule("plateau", 0.1, patience=5).patience == 5
    with pytest.raises(ConfigError, match="constant, step, exponential, cosine, plateau"):
        make_schedule("linear", 0.1)
    with pytest.raises(ConfigError, match="'warmup'.*allowed settings are min_lr, warmup_iterations"):
        make_schedule("cosine", 0.1, warmup=3)
    with pytest.raises(ConfigError, match="allowed settings are none"):
        make_schedule("constant", 0.1, gamma=0.5)
    for build, pattern in [
        (lambda: Constant(0), "base_lr=0"),
        (lambda: StepDecay(0.1, step_epochs=0), "step_epochs=0"),
        (lambda: Exponential(0.1, gamma=1.5), "gamma=1.5"),
        (lambda: Cosine(0.1, min_lr=0.2), "min_lr=0.2"),
        (lambda: ReduceOnPlateau(0.1, mode="lowest"), "mode='lowest'"),
        (lambda: ReduceOnPlateau(0.1, factor=1.0), "factor=1.0"),
        (lambda: ReduceOnPlateau(0.1, patience=-1), "patience=-1"),
    ]:
        with pytest.raises(ConfigError, match=pattern):
            build()
