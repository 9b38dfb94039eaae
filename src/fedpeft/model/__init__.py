from fedpeft.config.names import MODEL_ALIASES, resolve
from fedpeft.model.load import load_sequence_classifier
from fedpeft.model.state import TensorDict, TrainableState, count_parameters

__all__ = [
    "MODEL_ALIASES",
    "TensorDict",
    "TrainableState",
    "count_parameters",
    "load_sequence_classifier",
    "resolve",
]
