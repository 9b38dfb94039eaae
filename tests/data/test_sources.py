from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedpeft.config.schema import DataConfig
from fedpeft.data import load_dataset, train_test_split
from fedpeft.data.split import local_holdout
from fedpeft.errors import DataError

from ..conftest import make_reviews  # type: ignore[import-not-found]


@pytest.fixture
def frame() -> pd.DataFrame:
    return make_reviews(60)


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_local_files_load_with_named_columns(tmp_path: Path, frame: pd.DataFrame, kind: str) -> None:
    path = tmp_path / f"d.{kind}"
    {
        "csv": lambda: frame.to_csv(path, index=False),
        "jsonl": lambda: frame.to_json(path, orient="records", lines=True),
        "parquet": lambda: frame.to_parquet(path),
    }[kind]()
    ds = load_dataset(
        DataConfig(dataset=kind, path=str(path), text_column="review", label_column="stars", client_column="shop")
    )
    assert len(ds) == 60 and ds.label_names == ["neg", "pos"]
    assert ds.texts[0] == frame.review[0]
    assert ds.labels[0] == int(frame.stars[0] == "pos")
    assert set(ds.groups) == set(frame.shop)


def test_hf_path_goes_through_the_datasets_library(tmp_path: Path, frame: pd.DataFrame) -> None:
    folder = tmp_path / "hfdata"
    folder.mkdir()
    frame.to_csv(folder / "train.csv", index=False)
    ds = load_dataset(DataConfig(dataset="hf", hf_id=str(folder), text_column="review", label_column="stars"))
    assert len(ds) == 60 and ds.groups is None


def test_unknown_hf_id_says_what_to_do() -> None:
    with pytest.raises(DataError, match="HF_HUB_OFFLINE is set; use a local dataset folder"):
        load_dataset(DataConfig(dataset="hf", hf_id="no-such-user/no-such-dataset"))


@pytest.mark.parametrize("dict_", [False, True])
def test_a_save_to_disk_folder_loads(tmp_path: Path, frame: pd.DataFrame, dict_: bool) -> None:
    import datasets

    ds = datasets.Dataset.from_pandas(frame)
    (datasets.DatasetDict(train=ds) if dict_ else ds).save_to_disk(str(tmp_path / "saved"))
    cfg = DataConfig(dataset="hf", hf_id=str(tmp_path / "saved"), text_column="review", label_column="stars")
    loaded = load_dataset(cfg)
    assert len(loaded) == len(frame) and list(loaded.texts) == list(frame.review)


def test_missing_column_lists_the_columns(tmp_path: Path, frame: pd.DataFrame) -> None:
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"column\(s\) \['text'\] not found.*'review'"):
        load_dataset(DataConfig(dataset="csv", path=str(path), label_column="stars"))


def test_missing_file_and_unknown_dataset_are_clear() -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(DataConfig(dataset="csv", path="/no/such/file.csv"))
    with pytest.raises(DataError, match="unknown dataset 'imdb'.*rotten_tomatoes"):
        load_dataset(DataConfig(dataset="imdb"))


def test_single_label_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    pd.DataFrame({"text": ["a", "b"], "label": [1, 1]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="single value"):
        load_dataset(DataConfig(dataset="csv", path=str(path)))


def test_rotten_tomatoes_is_real_and_keyed_by_movie() -> None:
    ds = load_dataset(DataConfig(dataset="rotten_tomatoes"))
    assert len(ds) == 12808 and ds.label_names == ["rotten", "fresh"]
    assert int(ds.labels.sum()) == 7403  # fresh
    assert len(set(ds.groups)) == 508


def test_train_test_split_is_fixed_by_seed_and_capped(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    cfg = DataConfig(
        dataset="csv",
        path=str(path),
        text_column="review",
        label_column="stars",
        test_fraction=0.25,
        max_test_examples=10,
    )
    ds = load_dataset(cfg)
    tr1, te1 = train_test_split(ds, cfg, seed=3)
    tr2, te2 = train_test_split(ds, cfg, seed=3)
    _, te3 = train_test_split(ds, cfg, seed=4)
    assert len(tr1) == 45 and len(te1) == 10
    assert te1.texts == te2.texts and tr1.texts == tr2.texts and te1.texts != te3.texts
    assert not set(tr1.texts) & set(te1.texts) or len(set(ds.texts)) < len(ds)


def test_local_holdout_keeps_a_training_example() -> None:
    train, test = local_holdout([np.arange(10), np.arange(10, 11)], 0.3, seed=0)
    assert [len(t) for t in train] == [7, 1] and [len(t) for t in test] == [3, 0]
    assert not set(train[0]) & set(test[0])


def test_a_latin1_file_names_the_encoding_option_and_loads_with_it(tmp_path: Path, frame: pd.DataFrame) -> None:
    path = tmp_path / "latin.csv"
    frame.assign(review=frame.review + " café").to_csv(path, index=False, encoding="latin-1")
    cfg = {"dataset": "csv", "path": str(path), "text_column": "review", "label_column": "stars"}
    with pytest.raises(DataError, match=r"as utf-8 text .* data.encoding=latin-1"):
        load_dataset(DataConfig(**cfg))
    assert load_dataset(DataConfig(**cfg, encoding="latin-1")).texts[0].endswith(" café")
    with pytest.raises(DataError, match="not a known text encoding"):
        load_dataset(DataConfig(**cfg, encoding="klingon"))
