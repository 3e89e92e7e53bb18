"""The legacy engine's store latency draws: the store's latency model, drawn in blocks.

Both legacy modes (tick by tick and fast) install a :class:`BlockSampler` on their replay store in
place of the store's own sampler. The model is the same (:class:`engines.store.LatencyModel`: a
lognormal capped at ``cap``, a constant, or zero); only the generator differs: numpy draws 4,096
values at a time, so a draw is a list pop instead of a Python ``lognormvariate`` (which was a third of
a fast replay's CPU). Values can be taken ahead and handed back (:meth:`take` / :meth:`give_back`):
the fast path simulates a poll speculatively and returns the draws of one it does not keep, so the
sequence the store sees is the same in both modes.

Concurrency: one sampler per store, used from the loop's thread.
"""

from __future__ import annotations

import hashlib

import numpy as np

from engines.store import LatencyModel
from engines.store.latency import LatencyKind

__all__ = ["BLOCK", "BlockSampler"]

BLOCK = 4096


class BlockSampler:
    """Draws of ``model`` from a seeded numpy generator, a block at a time (next value last in ``buf``)."""

    __slots__ = ("_cap", "_const", "_gen", "_mu", "_sigma", "buf")

    def __init__(self, model: LatencyModel, seed: int) -> None:
        digest = hashlib.sha256(f"legacy-store-latency:{seed}".encode()).digest()
        self._gen = np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "big")))
        self._cap = model.cap
        self._mu = float(np.log(model.median)) if model.median > 0 else 0.0
        self._sigma = model.sigma
        if model.kind is LatencyKind.ZERO:
            self._const: float | None = 0.0
        elif model.kind is LatencyKind.CONSTANT or model.sigma == 0.0 or model.median == 0.0:
            self._const = min(model.median, model.cap)
        else:
            self._const = None
        self.buf: list[float] = []

    def _refill(self) -> None:
        if self._const is not None:
            block = [self._const] * BLOCK
        else:
            block = np.minimum(self._gen.lognormal(self._mu, self._sigma, BLOCK), self._cap)[::-1].tolist()
        self.buf[:0] = block  # older values handed back stay on top

    def draw(self) -> float:
        buf = self.buf
        if not buf:
            self._refill()
        return buf.pop()

    def take(self, n: int) -> list[float]:
        """The next ``n`` draws, in order."""
        buf = self.buf
        if len(buf) < n:
            self._refill()
        out = buf[-n:]
        del buf[-n:]
        out.reverse()
        return out

    def give_back(self, values: list[float]) -> None:
        """Hand back draws taken with :meth:`take` / :meth:`draw` (``values`` in draw order): they come next."""
        self.buf.extend(reversed(values))
