"""``sgdlab gradcheck``: backprop against numerical gradients."""

from .args import add_config_flags, config_from_args, number_type, whole_at_least


def cmd_gradcheck(args):
    """Backprop against central differences, per layer, on a small batch, in float64."""
    import numpy as np

    from ..gradients import gradient_check
    from ..run import build_model, load_splits

    config = config_from_args(args)
    train, _, _ = load_splits(config)
    task = "classification" if train.is_classification else "regression"
    n_outputs = train.n_classes if task == "classification" else train.t.shape[1]
    model = build_model(config, train.x.shape[1:], n_outputs, task).copy(dtype=np.float64)
    if len(model.input_shape) > 1:
        # a blank image patch (common: digits have black borders) under a zero bias gives a
        # pre-activation of exactly 0, ReLU's kink, where backprop and differences rightly differ:
        # check at biases off zero instead
        rng = np.random.default_rng(config.seed)
        for layer in model.layers:
            if hasattr(layer, "b"):
                layer.b[...] = rng.normal(0.0, 0.1, layer.b.shape)
        print("conv net: biases set to N(0, 0.1²) draws so that no blank patch sits on ReLU's kink")
    rows = np.random.default_rng(config.seed).choice(len(train), size=min(args.samples, len(train)), replace=False)
    x, t = train.batch(np.sort(rows))
    report = gradient_check(model, x.astype(np.float64), t, tolerance=args.tolerance)
    print(report.table())
    return 0 if report.passed else 1


def add_parser(sub):
    check = sub.add_parser("gradcheck", help="compare backprop with numerical gradients, layer by layer",
                           description="Backprop against central differences in float64 on a few samples; "
                                       "exit 1 if any layer's relative error exceeds the tolerance.")
    add_config_flags(check)
    check.add_argument("--samples", type=whole_at_least(1), default=10, help="samples in the batch (default 10)")
    check.add_argument("--tolerance", type=number_type(float), default=1e-6,
                       help="largest relative error that passes (default 1e-6)")
    check.set_defaults(handler=cmd_gradcheck)
