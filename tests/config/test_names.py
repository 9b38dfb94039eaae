"""Hub names checked before anything downloads: local paths, the cache, an offline or unreachable hub."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedpeft.config import names as hub
from fedpeft.errors import DataError, ModelError


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def cached(cache: Path, repo_id: str, kind: str = "model") -> None:
    snap = cache / f"{kind}s--{repo_id.replace('/', '--')}" / "snapshots" / "0123abc"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")


def test_offline_names_fail_naming_the_setting_and_the_alternatives(cache: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match=r"model.name='me/nothing' .* HF_HUB_OFFLINE is set; use an alias"):
        hub.check_hub_name("me/nothing", "model", "model.name", "an alias")


def test_cached_names_and_local_paths_pass_offline(cache: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cached(cache, "me/model")
    cached(cache, "me/data", "dataset")
    hub.check_hub_name("me/model", "model", "model.name", "x")
    hub.check_hub_name("me/data", "dataset", "data.hf_id", "x")
    with pytest.raises(DataError):  # a dataset's cache is not a model's
        hub.check_hub_name("me/data", "model", "model.name", "x")
    hub.check_hub_name(str(tmp_path), "model", "model.name", "x")


def test_an_unreachable_hub_counts_as_offline(cache: Path, monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    hub.hub_reachable.cache_clear()
    try:
        assert not hub.hub_reachable()
        with pytest.raises(DataError, match="the hub is unreachable from here"):
            hub.check_hub_name("me/nothing", "model", "model.name", "x")
    finally:
        hub.hub_reachable.cache_clear()


def test_malformed_ids_are_refused_as_such() -> None:
    with pytest.raises(ModelError, match="not a valid Hugging Face id"):
        hub.check_hub_name("a/b c", "model", "model.name", "x", ModelError)
    with pytest.raises(ModelError, match="'/no/such/folder': no such file or folder"):
        hub.check_hub_name("/no/such/folder", "model", "model.name", "x", ModelError)


def test_an_unknown_model_is_refused_before_any_loader_runs(monkeypatch) -> None:
    import transformers

    from fedpeft.model.load import load_model

    def never(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the loader was called")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", never)
    with pytest.raises(ModelError, match=r"model.name='minilmm' .*packaged alias \(minilm, mobilenet_v2, smollm2\)"):
        load_model("minilmm", "sequence_classification", ["a", "b"], seed=0)


def test_an_unknown_model_fails_before_torch_is_imported(tmp_path: Path) -> None:
    """What makes the refusal immediate: no plug-in, model or torch import happens before it."""
    import subprocess
    import sys

    script = (
        "import sys, fedpeft\n"
        "from fedpeft.errors import FedPeftError\n"
        "try:\n"
        f"    fedpeft.run({{'output': {{'dir': {str(tmp_path)!r}}}}}, ['model.name=nobody/no-such-model'])\n"
        "except FedPeftError as exc:\n"
        "    print('refused', 'torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["refused", "False", "False"], out.stderr[-2000:]
    assert not any(tmp_path.iterdir())


def test_behind_a_proxy_the_hub_counts_as_reachable(cache: Path, monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    hub.hub_reachable.cache_clear()
    try:
        hub.check_hub_name("me/nothing", "model", "model.name", "x")  # the download will decide
    finally:
        hub.hub_reachable.cache_clear()
