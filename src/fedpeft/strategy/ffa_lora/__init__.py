"""FFA-LoRA (Sun et al., 2024): A frozen and shared, only B trains and travels."""

from fedpeft.strategy.ffa_lora.config import FFALoraStrategy
from fedpeft.strategy.ffa_lora.server import FFALora, freeze_lora_a

__all__ = ["FFALora", "FFALoraStrategy", "freeze_lora_a"]
