"""Secure aggregation (Bonawitz et al., 2017), for an honest-but-curious server: the server learns the sum of
the surviving clients' quantised updates and nothing else, even when clients drop out after sharing keys.

1. Advertise: each client makes an X25519 key pair and a random self-mask seed b_i.
2. Share: it splits its secret key and b_i into t-of-n Shamir shares, one per client, each encrypted with
   AES-GCM under the pair's agreed key (the server only relays ciphertexts).
3. Masked input: y_i = q(x_i) + PRG(b_i) + sum_{j>i} PRG(s_ij) - sum_{j<i} PRG(s_ij)  (mod 2^32), where
   s_ij comes from X25519(sk_i, pk_j) through HKDF and PRG is AES-CTR. Pairwise masks cancel in the sum.
4. Unmask: for every client that sent y_i, survivors reveal their share of b_i; for every client that
   dropped after step 2, its secret key (so the server can remove the pairwise masks it left behind). No
   client ever reveals both for the same client.

Updates are fixed-point integers: q(x) = round(x 2^frac_bits) mod 2^32, after clipping to +-``bound`` so
that the sum of n of them cannot wrap.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fedpeft.errors import FedPeftError

PRIME = 2**521 - 1  # a Mersenne prime above every 256-bit secret
MOD = 2**32


class SecAggError(FedPeftError):
    """The protocol cannot finish (too few survivors, a share that does not decrypt)."""


# -- Shamir secret sharing over GF(PRIME) ------------------------------------------------------------------
def share(secret: int, n: int, t: int) -> list[tuple[int, int]]:
    """t-of-n shares (x, f(x)) of ``secret`` with x = 1..n.

    Example:
        >>> shares = share(123456789, n=5, t=3)
        >>> reconstruct(shares[1:4]), reconstruct(shares[:2]) == 123456789
        (123456789, False)
    """
    coeffs = [secret] + [secrets.randbelow(PRIME) for _ in range(t - 1)]
    return [(x, sum(c * pow(x, k, PRIME) for k, c in enumerate(coeffs)) % PRIME) for x in range(1, n + 1)]


def reconstruct(shares: Sequence[tuple[int, int]]) -> int:
    """Lagrange interpolation at 0 of the given shares."""
    total = 0
    for i, (xi, yi) in enumerate(shares):
        num = den = 1
        for j, (xj, _) in enumerate(shares):
            if i != j:
                num = num * -xj % PRIME
                den = den * (xi - xj) % PRIME
        total = (total + yi * num * pow(den, -1, PRIME)) % PRIME
    return total


# -- keys, PRG, fixed point --------------------------------------------------------------------------------
def agree(sk: X25519PrivateKey, pk: bytes) -> bytes:
    """The 32-byte key a pair agrees on (X25519, then HKDF-SHA256)."""
    shared = sk.exchange(X25519PublicKey.from_public_bytes(pk))
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"fedpeft secagg").derive(shared)


def prg(seed: bytes, size: int) -> np.ndarray:
    """``size`` pseudo-random uint32 values: the AES-256-CTR keystream under ``seed``."""
    enc = Cipher(algorithms.AES(seed), modes.CTR(b"\x00" * 16)).encryptor()
    return np.frombuffer(enc.update(b"\x00" * (4 * size)), dtype=np.uint32).copy()


def quantise(x: np.ndarray, bound: float, frac_bits: int) -> np.ndarray:
    """Clip to +-bound, scale by 2^frac_bits, round, and wrap into uint32 (two's complement)."""
    q = np.round(np.clip(x, -bound, bound) * 2.0**frac_bits).astype(np.int64)
    return (q % MOD).astype(np.uint32)


def dequantise(q: np.ndarray, frac_bits: int) -> np.ndarray:
    signed = q.astype(np.int64)
    signed[signed >= MOD // 2] -= MOD
    return signed.astype(np.float64) / 2.0**frac_bits


def _raw(sk: X25519PrivateKey) -> bytes:
    return sk.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())


def _pub(sk: X25519PrivateKey) -> bytes:
    return sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# -- the two parties ---------------------------------------------------------------------------------------
@dataclass
class SecAggClient:
    """One client's side. ``index`` is its Shamir x-coordinate (1..n) and orders the pairwise masks."""

    client_id: str
    index: int
    sk: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate)
    self_seed: bytes = field(default_factory=lambda: os.urandom(32))
    received: dict[str, bytes] = field(default_factory=dict)  # encrypted shares from the others
    peers: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # id -> (index, public key)
    own: tuple[int, int] = (0, 0)  # this client's own shares of its (secret key, self-mask seed)

    @property
    def public_key(self) -> bytes:
        return _pub(self.sk)

    def shares_for(self, peers: Mapping[str, tuple[int, bytes]], t: int) -> dict[str, bytes]:
        """Step 2: encrypted shares of (secret key, self-mask seed), one ciphertext per other client."""
        self.peers = dict(peers)
        n = len(peers)
        sk_shares = share(int.from_bytes(_raw(self.sk), "big"), n, t)
        b_shares = share(int.from_bytes(self.self_seed, "big"), n, t)
        out = {}
        for cid, (idx, pk) in peers.items():
            if cid == self.client_id:
                self.own = (sk_shares[idx - 1][1], b_shares[idx - 1][1])  # a client keeps its own shares
                continue
            plain = b"".join(v.to_bytes(66, "big") for v in (sk_shares[idx - 1][1], b_shares[idx - 1][1]))
            nonce = os.urandom(12)
            out[cid] = nonce + AESGCM(agree(self.sk, pk)).encrypt(nonce, plain, self.client_id.encode())
        return out

    def masked_input(self, x: np.ndarray, bound: float, frac_bits: int) -> np.ndarray:
        """Step 3: q(x) plus the self mask plus the pairwise masks, mod 2^32."""
        y = quantise(x, bound, frac_bits).astype(np.uint64) + prg(self.self_seed, x.size)
        for cid, (idx, pk) in self.peers.items():
            if cid == self.client_id:
                continue
            mask = prg(agree(self.sk, pk), x.size).astype(np.uint64)
            y = y + mask if self.index < idx else y + (MOD - mask)
        return (y % MOD).astype(np.uint32)

    def reveal(self, survivors: Sequence[str], dropped: Sequence[str]) -> dict[str, tuple[str, int]]:
        """Step 4: my share of b_j for each survivor j and of sk_j for each dropped j (never both)."""
        if set(survivors) & set(dropped):
            raise SecAggError("a client cannot be both a survivor and dropped: refusing to reveal both shares")
        out = {}
        for cid in [*survivors, *dropped]:
            if cid == self.client_id:
                sk_share, b_share = self.own
            else:
                blob = self.received[cid]
                plain = AESGCM(agree(self.sk, self.peers[cid][1])).decrypt(blob[:12], blob[12:], cid.encode())
                sk_share, b_share = int.from_bytes(plain[:66], "big"), int.from_bytes(plain[66:], "big")
            out[cid] = ("b", b_share) if cid in survivors else ("sk", sk_share)
        return out


class SecAggServer:
    """The server's side: relays, then unmasks the sum. It holds public keys, ciphertexts, masked inputs and
    the revealed shares, and never an individual update.

    Example:
        >>> xs = {f"c{i}": np.full(4, float(i)) for i in range(4)}
        >>> total = run_secagg(xs, threshold=3, bound=4.0, drop_after_sharing=["c3"])
        >>> total.tolist()
        [3.0, 3.0, 3.0, 3.0]
    """

    def __init__(self, threshold: int, bound: float, frac_bits: int) -> None:
        self.t, self.bound, self.frac_bits = threshold, bound, frac_bits
        self.masked: dict[str, np.ndarray] = {}

    def unmask(
        self, size: int, peers: Mapping[str, tuple[int, bytes]], reveals: Mapping[str, Mapping[str, tuple[str, int]]]
    ) -> np.ndarray:
        """The sum of the masked inputs received, with every mask removed, as floats."""
        survivors = sorted(self.masked)
        if len(survivors) < self.t:
            raise SecAggError(f"{len(survivors)} client(s) sent masked updates; at least {self.t} are needed")
        dropped = sorted(set(peers) - set(survivors))
        total = np.zeros(size, dtype=np.uint64)
        for y in self.masked.values():
            total = (total + y) % MOD
        for cid in [*survivors, *dropped]:
            shares = [(peers[h][0], r[cid][1]) for h, r in reveals.items() if cid in r]
            if len(shares) < self.t:
                raise SecAggError(f"only {len(shares)} share(s) of {cid}'s secret arrived; {self.t} are needed")
            secret = reconstruct(shares[: self.t])
            if cid in self.masked:
                total = (total + (MOD - prg(secret.to_bytes(32, "big"), size).astype(np.uint64))) % MOD
                continue
            sk = X25519PrivateKey.from_private_bytes(secret.to_bytes(32, "big"))
            idx = peers[cid][0]
            for other in survivors:  # remove the pairwise masks the dropped client left in each survivor
                mask = prg(agree(sk, peers[other][1]), size).astype(np.uint64)
                total = (total + (MOD - mask)) % MOD if peers[other][0] < idx else (total + mask) % MOD
        return dequantise(total.astype(np.uint32), self.frac_bits)


def run_secagg(
    inputs: Mapping[str, np.ndarray],
    *,
    threshold: int,
    bound: float = 1.0,
    frac_bits: int | None = None,
    drop_after_sharing: Sequence[str] = (),
) -> np.ndarray:
    """One full protocol run among ``inputs``' clients; those in ``drop_after_sharing`` leave after step 2.
    Returns the sum of the survivors' (clipped, fixed-point) inputs."""
    n = len(inputs)
    if frac_bits is None:  # as many fraction bits as the sum of n clipped values leaves room for
        frac_bits = max(0, 30 - math.ceil(math.log2(max(bound, 1e-12) * n + 1)))
    clients = {cid: SecAggClient(cid, i + 1) for i, cid in enumerate(sorted(inputs))}
    peers = {cid: (c.index, c.public_key) for cid, c in clients.items()}
    for cid, c in clients.items():
        for other, blob in c.shares_for(peers, threshold).items():
            clients[other].received[cid] = blob
    server = SecAggServer(threshold, bound, frac_bits)
    size = next(iter(inputs.values())).size
    for cid, c in clients.items():
        if cid not in drop_after_sharing:
            server.masked[cid] = c.masked_input(inputs[cid], bound, frac_bits)
    survivors = sorted(server.masked)
    dropped = sorted(set(clients) - set(survivors))
    reveals = {cid: clients[cid].reveal(survivors, dropped) for cid in survivors}
    return server.unmask(size, peers, reveals)
