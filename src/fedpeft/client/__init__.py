from fedpeft.client.app import FederatedClient, FitInstruction, FitReply
from fedpeft.client.state_store import ClientStateStore
from fedpeft.client.trainer import LocalResult, LocalTrainer

__all__ = [
    "ClientStateStore",
    "FederatedClient",
    "FitInstruction",
    "FitReply",
    "LocalResult",
    "LocalTrainer",
]
