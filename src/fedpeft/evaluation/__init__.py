from fedpeft.evaluation.classification import (
    Predictions,
    confusion_matrix,
    metrics,
    per_client_metrics,
    predict,
)

__all__ = ["Predictions", "confusion_matrix", "metrics", "per_client_metrics", "predict"]
