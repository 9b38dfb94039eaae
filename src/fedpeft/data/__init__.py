from fedpeft.data.batching import ArrayDataset, CausalLMDataset, ClientDataset, TokenizedDataset, tokenize
from fedpeft.data.dataset import TextDataset
from fedpeft.data.partition import PARTITIONERS, Partition, partition
from fedpeft.data.sources import DATASETS, load_dataset
from fedpeft.data.split import local_holdout, train_test_split

__all__ = [
    "DATASETS",
    "PARTITIONERS",
    "Partition",
    "TextDataset",
    "ArrayDataset",
    "CausalLMDataset",
    "ClientDataset",
    "TokenizedDataset",
    "load_dataset",
    "local_holdout",
    "partition",
    "tokenize",
    "train_test_split",
]
