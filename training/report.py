"""Classification metrics and the report files written beside a trained model."""
import io

import numpy as np


def classification_metrics(true, predicted, labels):
    """Accuracy, per-class precision and recall, and the confusion matrix (rows: true)."""
    count = len(labels)
    matrix = np.zeros((count, count), int)
    for t, p in zip(true, predicted):
        matrix[t, p] += 1
    per_class = {}
    for index, label in enumerate(labels):
        hits = matrix[index, index]
        predicted_as = matrix[:, index].sum()
        actual = matrix[index].sum()
        per_class[label] = {"precision": float(hits / predicted_as) if predicted_as else 0.0,
                            "recall": float(hits / actual) if actual else 0.0, "support": int(actual)}
    total = matrix.sum()
    return {"accuracy": float(np.trace(matrix) / total) if total else 0.0, "clips": int(total),
            "per_class": per_class, "confusion_matrix": matrix.tolist(), "labels": list(labels)}


def metrics_text(metrics, title):
    lines = [f"{title}: accuracy {metrics['accuracy']:.1%} on {metrics['clips']} clips"]
    width = max(len(label) for label in metrics["labels"])
    lines.append(f"  {'class':<{width}}  precision  recall  clips")
    for label, row in metrics["per_class"].items():
        lines.append(f"  {label:<{width}}  {row['precision']:9.1%}  {row['recall']:6.1%}  {row['support']:5d}")
    lines.append("  confusion matrix (rows: true, columns: predicted)")
    for label, row in zip(metrics["labels"], metrics["confusion_matrix"]):
        lines.append(f"  {label:<{width}}  " + " ".join(f"{v:4d}" for v in row))
    return "\n".join(lines)


def _png(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def confusion_png(metrics):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, matrix = metrics["labels"], np.asarray(metrics["confusion_matrix"])
    figure, axes = plt.subplots(figsize=(1.2 + 0.7 * len(labels), 1 + 0.6 * len(labels)))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for (i, j), value in np.ndenumerate(matrix):
        axes.text(j, i, str(value), ha="center", va="center",
                  color="white" if value > matrix.max() / 2 else "black")
    data = _png(figure)
    plt.close(figure)
    return data


def curves_png(history):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 3.5))
    for key, axes in (("loss", loss_axes), ("accuracy", accuracy_axes)):
        for prefix in ("", "val_"):
            if prefix + key in history:
                axes.plot(history[prefix + key], label=(prefix or "train_").rstrip("_"))
        axes.set_title(key)
        axes.set_xlabel("L-BFGS iteration" if "iterations" in history else "epoch")
        if axes.lines:
            axes.legend()
    data = _png(figure)
    plt.close(figure)
    return data
