from fedpeft.config.load import apply_overrides, dump_yaml, load_config
from fedpeft.config.schema import RunConfig

__all__ = ["RunConfig", "apply_overrides", "dump_yaml", "load_config"]
