"""How good a trained model is, class by class: precision, recall, F1, the confusion matrix; and the
regression errors MAE, RMSE and R^2.  The definitions are scikit-learn's (``classification_report``,
``confusion_matrix``, ``r2_score``), so the numbers carry over.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(t, y, n_classes):
    """C[i, j] = how many samples of true class i were predicted as class j (labels as indices)."""
    t, y = np.asarray(t, dtype=np.int64), np.asarray(y, dtype=np.int64)
    return np.bincount(t * n_classes + y, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _ratio(num, den):
    """num / den, 0 where den is 0 (scikit-learn's zero_division=0)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def classification_report(t, y, classes):
    """Per-class precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2PR / (P + R) and support, their
    macro (plain mean) and weighted (by support) averages, accuracy and the confusion matrix.

    ``t``, ``y``: true and predicted class indices; ``classes``: the class names, in index order.
    """
    classes = list(classes)
    cm = confusion_matrix(t, y, len(classes))
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    precision = _ratio(tp, cm.sum(axis=0))
    recall = _ratio(tp, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    per_class = {str(c): {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                 for c, p, r, f, s in zip(classes, precision, recall, f1, support)}
    total = int(support.sum())
    weights = support / total if total else np.zeros(len(classes))
    averages = {name: {"precision": float(np.sum(precision * w)), "recall": float(np.sum(recall * w)),
                       "f1": float(np.sum(f1 * w)), "support": total}
                for name, w in (("macro avg", np.full(len(classes), 1.0 / len(classes))),
                                ("weighted avg", weights))}
    return {"classes": per_class, **averages, "accuracy": float(tp.sum() / total) if total else None,
            "confusion_matrix": cm.tolist(), "labels": [str(c) for c in classes]}


def regression_report(y, t):
    """MAE = mean |y - t|, RMSE = sqrt(mean (y - t)^2), R^2 = 1 - SS_res / SS_tot (averaged over outputs,
    scikit-learn's "uniform_average"; an output with constant targets scores 1 if fitted exactly, else 0)."""
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    t = np.asarray(t, dtype=np.float64).reshape(len(t), -1)
    err = y - t
    ss_res = np.sum(err ** 2, axis=0)
    ss_tot = np.sum((t - t.mean(axis=0)) ** 2, axis=0)
    r2 = np.where(ss_tot > 0, 1 - _ratio(ss_res, ss_tot), np.where(ss_res == 0, 1.0, 0.0))
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err ** 2))), "r2": float(r2.mean()),
            "support": len(t)}


def model_report(model, dataset):
    """``classification_report`` or ``regression_report`` of ``model`` on a whole Dataset, in chunks."""
    outputs, targets = [], []
    for xb, tb in dataset.chunks(10_000):
        y = model.forward(xb)
        outputs.append(y.argmax(axis=1) if model.is_classifier else y.astype(np.float64))
        targets.append(np.array(tb))
    y, t = np.concatenate(outputs), np.concatenate(targets)
    if not model.is_classifier:
        return regression_report(y, t)
    if t.ndim == 2:
        t = t.argmax(axis=1)
    classes = model.classes if model.classes is not None else range(model.n_out)
    return classification_report(t, y, [c.item() if hasattr(c, "item") else c for c in classes])


def format_report(report):
    """The report as text: scikit-learn's table (precision, recall, f1-score, support) and the confusion matrix."""
    if "mae" in report:
        return f"MAE {report['mae']:.6g}  RMSE {report['rmse']:.6g}  R^2 {report['r2']:.6f}  ({report['support']} samples)"
    names = list(report["classes"])
    width = max(12, *(len(n) for n in names))
    lines = [f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}"]
    for name, row in report["classes"].items():
        lines.append(f"{name:>{width}} {row['precision']:9.4f} {row['recall']:9.4f} {row['f1']:9.4f} "
                     f"{row['support']:9d}")
    lines.append(f"{'accuracy':>{width}} {'':>9} {'':>9} {report['accuracy']:9.4f} "
                 f"{report['macro avg']['support']:9d}")
    for avg in ("macro avg", "weighted avg"):
        row = report[avg]
        lines.append(f"{avg:>{width}} {row['precision']:9.4f} {row['recall']:9.4f} {row['f1']:9.4f} "
                     f"{row['support']:9d}")
    cell = max(5, *(len(str(v)) for r in report["confusion_matrix"] for v in r), *(len(n) for n in names))
    lines.append("confusion matrix (rows: true class, columns: predicted)")
    lines.append(f"{'':>{width}} " + " ".join(f"{n:>{cell}}" for n in names))
    for name, row in zip(names, report["confusion_matrix"]):
        lines.append(f"{name:>{width}} " + " ".join(f"{v:>{cell}d}" for v in row))
    return "\n".join(lines)
