from fedpeft.model.load import MODEL_ALIASES, load_sequence_classifier, resolve
from fedpeft.model.state import TensorDict, TrainableState, count_parameters

__all__ = [
    "MODEL_ALIASES",
    "TensorDict",
    "TrainableState",
    "count_parameters",
    "load_sequence_classifier",
    "resolve",
]
