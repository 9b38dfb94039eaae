"""Split training examples across clients: iid, Dirichlet label skew, label shards, quantity skew, natural.

Every partitioner is deterministic given the numpy Generator it receives and refuses impossible requests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fedpeft.config.schema import PartitionConfig
from fedpeft.errors import DataError
from fedpeft.registry import Registry

DEFAULT_CLIENTS = 10
Partitioner = Callable[[np.ndarray, "np.ndarray | None", PartitionConfig, np.random.Generator], "Partition"]
PARTITIONERS: Registry[Partitioner] = Registry("partitioner")


@dataclass(frozen=True)
class Partition:
    """Client ids and, for each, the indices of its examples.

    Example:
        >>> p = Partition(["a", "b"], [np.array([0, 2]), np.array([1])])
        >>> p.sizes()
        [2, 1]
    """

    client_ids: list[str]
    indices: list[np.ndarray]

    def sizes(self) -> list[int]:
        return [len(i) for i in self.indices]

    def label_histograms(self, labels: np.ndarray, num_labels: int) -> list[list[int]]:
        return [np.bincount(labels[i], minlength=num_labels).tolist() for i in self.indices]


def partition(labels: np.ndarray, groups: np.ndarray | None, cfg: PartitionConfig, seed: int) -> Partition:
    """Partition examples with the configured method, seeded so the split never changes for a seed."""
    rng = np.random.default_rng([seed, 0x9A27])
    result = PARTITIONERS.get(cfg.method)(labels, groups, cfg, rng)
    small = [c for c, i in zip(result.client_ids, result.indices) if len(i) < cfg.min_examples_per_client]
    if small and cfg.method != "natural":
        raise DataError(
            f"{len(small)} client(s) got fewer than {cfg.min_examples_per_client} examples; "
            "lower partition.num_clients or partition.min_examples_per_client"
        )
    return result


def _num_clients(labels: np.ndarray, cfg: PartitionConfig, per_client: int = 1) -> int:
    k = cfg.num_clients or DEFAULT_CLIENTS
    need = k * max(per_client, cfg.min_examples_per_client)
    if need > len(labels):
        raise DataError(
            f"cannot split {len(labels)} training examples into {k} clients with at least "
            f"{max(per_client, cfg.min_examples_per_client)} each; lower partition.num_clients"
        )
    return k


def _ids(k: int) -> list[str]:
    width = max(3, len(str(k - 1)))
    return [f"client_{i:0{width}d}" for i in range(k)]


@PARTITIONERS.register("iid")
def iid(labels: np.ndarray, groups: np.ndarray | None, cfg: PartitionConfig, rng: np.random.Generator) -> Partition:
    k = _num_clients(labels, cfg)
    parts = np.array_split(rng.permutation(len(labels)), k)
    return Partition(_ids(k), [np.sort(p) for p in parts])


@PARTITIONERS.register("dirichlet")
def dirichlet(
    labels: np.ndarray, groups: np.ndarray | None, cfg: PartitionConfig, rng: np.random.Generator
) -> Partition:
    """Label skew. ``over: labels`` spreads each class over clients by proportions drawn from Dir(alpha);
    ``over: clients`` gives every client an equal share of examples whose label mix is drawn from Dir(alpha)
    (the form that still works at alpha 0.1 with few labels and many clients)."""
    k = _num_clients(labels, cfg)
    classes = np.unique(labels)
    if cfg.dirichlet_over == "clients":
        return _dirichlet_per_client(labels, classes, k, cfg.alpha, rng)
    for _attempt in range(200):
        buckets: list[list[np.ndarray]] = [[] for _ in range(k)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(labels == c))
            cuts = (np.cumsum(rng.dirichlet(np.full(k, cfg.alpha))) * len(idx)).astype(int)[:-1]
            for client, piece in enumerate(np.split(idx, cuts)):
                buckets[client].append(piece)
        parts = [np.sort(np.concatenate(b)) for b in buckets]
        if min(len(p) for p in parts) >= cfg.min_examples_per_client:
            return Partition(_ids(k), parts)
    raise DataError(
        f"dirichlet(alpha={cfg.alpha}) left some of {k} clients with fewer than "
        f"{cfg.min_examples_per_client} examples in 200 draws; raise partition.alpha or lower "
        "partition.num_clients / partition.min_examples_per_client"
    )


def _dirichlet_per_client(
    labels: np.ndarray, classes: np.ndarray, k: int, alpha: float, rng: np.random.Generator
) -> Partition:
    pools = [list(rng.permutation(np.flatnonzero(labels == c))) for c in classes]
    parts = []
    for size in [len(a) for a in np.array_split(np.arange(len(labels)), k)]:
        mix = rng.dirichlet(np.full(len(classes), alpha))
        want = rng.multinomial(size, mix)
        take = np.minimum(want, [len(p) for p in pools])
        for j in np.argsort(-mix, kind="stable"):  # a label that ran out is made up from the client's next ones
            extra = min(size - int(take.sum()), len(pools[j]) - int(take[j]))
            take[j] += max(extra, 0)
        chosen = [pools[j][: take[j]] for j in range(len(classes))]
        pools = [p[t:] for p, t in zip(pools, take)]
        parts.append(np.sort(np.concatenate(chosen).astype(np.int64)))
    return Partition(_ids(k), parts)


@PARTITIONERS.register("shards")
def shards(labels: np.ndarray, groups: np.ndarray | None, cfg: PartitionConfig, rng: np.random.Generator) -> Partition:
    """Pathological split (McMahan et al.): label-sorted shards, shards_per_client of them per client."""
    k = _num_clients(labels, cfg, per_client=cfg.shards_per_client)
    num_labels = len(np.unique(labels))
    if cfg.shards_per_client > num_labels:
        raise DataError(f"partition.shards_per_client={cfg.shards_per_client} exceeds the {num_labels} labels present")
    shuffled = rng.permutation(len(labels))
    by_label = shuffled[np.argsort(labels[shuffled], kind="stable")]
    pieces = np.array_split(by_label, k * cfg.shards_per_client)
    order = rng.permutation(len(pieces)).reshape(k, cfg.shards_per_client)
    return Partition(_ids(k), [np.sort(np.concatenate([pieces[j] for j in row])) for row in order])


@PARTITIONERS.register("quantity")
def quantity(
    labels: np.ndarray, groups: np.ndarray | None, cfg: PartitionConfig, rng: np.random.Generator
) -> Partition:
    """Quantity skew: client sizes drawn from Dir(alpha), labels spread iid."""
    k = _num_clients(labels, cfg)
    floor = cfg.min_examples_per_client
    spare = len(labels) - k * floor
    sizes = floor + np.floor(rng.dirichlet(np.full(k, cfg.alpha)) * spare).astype(int)
    sizes[: len(labels) - sizes.sum()] += 1  # hand out the rounding remainder
    cuts = np.cumsum(sizes)[:-1]
    parts = np.split(rng.permutation(len(labels)), cuts)
    return Partition(_ids(k), [np.sort(p) for p in parts])


@PARTITIONERS.register("natural")
def natural(labels: np.ndarray, groups: np.ndarray | None, cfg: PartitionConfig, rng: np.random.Generator) -> Partition:
    """One client per distinct value of the dataset's client column (e.g. movie, speaker, category)."""
    if groups is None:
        raise DataError(
            "partition.method 'natural' needs a client key per example; this dataset has none. "
            "Set data.client_column to a column of your file, or pick iid / dirichlet / shards / quantity."
        )
    names, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(names))]
    keep = [g for g in range(len(names)) if len(members[g]) >= cfg.min_examples_per_client]
    if cfg.num_clients is not None:
        if cfg.num_clients > len(keep):
            raise DataError(
                f"partition.num_clients={cfg.num_clients} but only {len(keep)} natural clients have at least "
                f"{cfg.min_examples_per_client} examples; lower num_clients or leave it unset for all"
            )
        keep = sorted(sorted(keep, key=lambda g: (-len(members[g]), names[g]))[: cfg.num_clients])
    if not keep:
        raise DataError(f"no natural client has {cfg.min_examples_per_client} examples or more")
    return Partition([str(names[g]) for g in keep], [members[g] for g in keep])
