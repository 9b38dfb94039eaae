"""FedSA-LoRA (Guo et al., 2025): A shared and averaged, B kept on each client."""

from fedpeft.strategy.fedsa_lora.client import PersonalTensors
from fedpeft.strategy.fedsa_lora.config import FedSALoraStrategy
from fedpeft.strategy.fedsa_lora.server import FedSALora

__all__ = ["FedSALora", "FedSALoraStrategy", "PersonalTensors"]
