"""The built-in training engine: StarSpace trainMode 0 in numba.

The algorithm is StarSpace's own: a set's vector is the
L2-normalised sum of its region rows; a label's vector is its row, normalised; the positive label of a visit
is one of the set's labels drawn at random; negatives are shared by a batch, each a random label of a random
training set; hinge (or sampled softmax) loss on cosine similarities; updates that treat the normalised vectors
as constants; AdaGrad with one accumulator per row; rows clipped to a maximum norm; a linear learning-rate decay.

Threads run Hogwild (lock-free) over disjoint slices of each epoch's shuffled order, each with its own random
stream. With one thread the run is a pure function of the seed.
"""

from __future__ import annotations

import math
import types
from dataclasses import dataclass

import numba
import numpy as np
from numba import prange

from .._params import TrainParams

_EPS = 1e-6
_DECAY_STEP = 1000  # StarSpace lowers the rate every 1000 examples


@dataclass(frozen=True)
class TrainingData:
    """What the engine trains on: each example's region rows and labels, as CSR-like arrays."""

    indptr: np.ndarray  # int64, n_examples + 1
    indices: np.ndarray  # int32 region rows
    label_ptr: np.ndarray  # int64, n_examples + 1
    label_idx: np.ndarray  # int64 label rows
    n_regions: int
    n_labels: int

    @property
    def n_examples(self) -> int:
        """Number of training examples (labelled sets with at least one region)."""
        return int(self.indptr.size - 1)


@numba.njit(inline="always")
def _next_random(state):
    """splitmix64: a fast, well-mixed 64-bit generator with its state in ``state[0]``."""
    z = state[0] + np.uint64(0x9E3779B97F4A7C15)
    state[0] = z
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(inline="always")
def _random_below(state, n):
    return np.int64(_next_random(state) % np.uint64(n))


@numba.njit(inline="always")
def _random_unit(state):
    """Uniform in [0, 1) with 53 random bits."""
    return np.float64(_next_random(state) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@numba.njit(inline="always")
def _normalised_row_into(source, out):
    """``out = source / ‖source‖`` (zero stays zero)."""
    total = np.float32(0.0)
    for d in range(source.size):
        total += source[d] * source[d]
    norm = np.float32(math.sqrt(total))
    scale = np.float32(1.0) / norm if norm > 0 else np.float32(0.0)
    for d in range(source.size):
        out[d] = source[d] * scale


@numba.njit(inline="always")
def _dot(a, b):
    total = np.float32(0.0)
    for d in range(a.size):
        total += a[d] * b[d]
    return total


@numba.njit(inline="always")
def _adagrad_step(matrix, row, direction, scale, sq_norm, accumulators, max_norm):
    """``matrix[row] -= scale / sqrt(G) * direction`` with ``G += sq_norm / dim``, then clip to ``max_norm``."""
    dim = direction.size
    accumulators[row] += sq_norm / dim
    step = np.float32(scale / math.sqrt(accumulators[row] + _EPS))
    target = matrix[row]
    total = np.float32(0.0)
    for d in range(dim):
        value = target[d] - step * direction[d]
        target[d] = value
        total += value * value
    if total > max_norm * max_norm:
        shrink = np.float32(max_norm / math.sqrt(total))
        for d in range(dim):
            target[d] *= shrink


@numba.njit(inline="always")
def _has_label(label_idx, start, stop, label):
    for k in range(start, stop):
        if label_idx[k] == label:
            return True
    return False


@numba.njit(parallel=True, fastmath=True, nogil=True, cache=True)
def _train_epoch(
    regions,  # float32 (n_regions, dim), updated in place
    labels,  # float32 (n_labels, dim), updated in place
    region_adagrad,  # float32 (n_regions,)
    label_adagrad,  # float32 (n_labels,)
    indptr,
    indices,
    label_ptr,
    label_idx,
    order,  # this epoch's permutation of the examples
    seeds,  # uint64 (n_threads,)
    rate_start,
    rate_per_step,  # decrease of the rate every _DECAY_STEP examples
    batch_size,
    neg_search_limit,
    max_neg_samples,
    margin,
    softmax,
    exclude_positives,
    max_norm,
    dropout,
    max_regions,  # most regions of one example (size of the kept-regions buffer)
):
    n_threads = seeds.size
    n_examples = order.size
    dim = regions.shape[1]
    per_thread = (n_examples + n_threads - 1) // n_threads
    batch_loss = np.zeros(n_threads, np.float64)
    batch_count = np.zeros(n_threads, np.int64)
    for t in prange(n_threads):
        state = np.empty(1, np.uint64)
        state[0] = seeds[t]
        lhs = np.zeros((batch_size, dim), np.float32)
        grad = np.zeros((batch_size, dim), np.float32)
        positive_vec = np.zeros((batch_size, dim), np.float32)
        negative_vec = np.zeros((neg_search_limit, dim), np.float32)
        positive = np.zeros(batch_size, np.int64)
        negatives = np.zeros(neg_search_limit, np.int64)
        neg_weight = np.zeros((batch_size, neg_search_limit), np.float32)  # rate multiplier per (example, negative)
        pos_weight = np.zeros(batch_size, np.float32)  # rate multiplier of the positive label
        lhs_sq = np.zeros(batch_size, np.float32)
        active = np.zeros(batch_size, np.bool_)
        kept = np.zeros((batch_size, max_regions), np.int32)  # the regions of this visit, after dropout
        n_kept = np.zeros(batch_size, np.int64)
        usable = np.zeros(neg_search_limit, np.bool_)
        neg_score = np.zeros(neg_search_limit, np.float32)
        first = t * per_thread
        last = min(n_examples, first + per_thread)
        start = first
        while start < last:
            stop = min(start + batch_size, last)
            n_batch = stop - start
            rate = np.float32(rate_start - rate_per_step * (((start - first) * n_threads) // _DECAY_STEP))
            # negatives shared by the batch: a random label of a random example
            for j in range(neg_search_limit):
                example = _random_below(state, n_examples)
                a, b = label_ptr[example], label_ptr[example + 1]
                negatives[j] = label_idx[a + _random_below(state, b - a)]
                _normalised_row_into(labels[negatives[j]], negative_vec[j])
            # forward pass of the whole batch before any update
            total = 0.0
            for i in range(n_batch):
                example = order[start + i]
                a, b = label_ptr[example], label_ptr[example + 1]
                positive[i] = label_idx[a + _random_below(state, b - a)]
                _normalised_row_into(labels[positive[i]], positive_vec[i])
                row = lhs[i]
                row[:] = 0
                n = 0
                for p in range(indptr[example], indptr[example + 1]):
                    if dropout > 0 and _random_unit(state) < dropout:
                        continue
                    kept[i, n] = indices[p]
                    n += 1
                    source = regions[indices[p]]
                    for d in range(dim):
                        row[d] += source[d]
                n_kept[i] = n
                _normalised_row_into(row, row)
                lhs_sq[i] = _dot(row, row)
                pos_score = _dot(row, positive_vec[i])
                g = grad[i]
                for d in range(dim):
                    g[d] = 0
                for j in range(neg_search_limit):
                    neg_weight[i, j] = 0
                active[i] = False
                n_used = 0
                top = pos_score
                for j in range(neg_search_limit):
                    usable[j] = negatives[j] != positive[i] and not (
                        exclude_positives and _has_label(label_idx, a, b, negatives[j])
                    )
                    if usable[j]:
                        neg_score[j] = _dot(row, negative_vec[j])
                        top = max(top, neg_score[j])
                        n_used += 1
                if n_used == 0 or n_kept[i] == 0:
                    continue
                if softmax:
                    # sampled softmax over {positive} ∪ negatives, cosine scores as logits
                    norm = math.exp(pos_score - top)
                    for j in range(neg_search_limit):
                        if usable[j]:
                            norm += math.exp(neg_score[j] - top)
                    p_pos = math.exp(pos_score - top) / norm
                    total += -math.log(max(p_pos, 1e-30))
                    for d in range(dim):
                        g[d] = (p_pos - 1.0) * positive_vec[i, d]
                    for j in range(neg_search_limit):
                        if usable[j]:
                            p = math.exp(neg_score[j] - top) / norm
                            neg_weight[i, j] = p
                            for d in range(dim):
                                g[d] += p * negative_vec[j, d]
                    pos_weight[i] = 1.0 - p_pos
                    active[i] = True
                else:
                    # hinge: the first max_neg_samples violators of the margin
                    n_violators = 0
                    loss = 0.0
                    for j in range(neg_search_limit):
                        if not usable[j]:
                            continue
                        violation = margin - pos_score + neg_score[j]
                        if violation > 0:
                            n_violators += 1
                            loss += violation
                            neg_weight[i, j] = 1
                            for d in range(dim):
                                g[d] += negative_vec[j, d]
                            if n_violators == max_neg_samples:
                                break
                    if n_violators == 0:
                        continue
                    total += loss / neg_search_limit
                    for d in range(dim):
                        g[d] = g[d] / n_violators - positive_vec[i, d]
                    for j in range(neg_search_limit):
                        neg_weight[i, j] /= n_violators
                    pos_weight[i] = 1.0
                    active[i] = True
            batch_loss[t] += total
            batch_count[t] += 1
            if total == 0.0 and not softmax:
                start = stop
                continue
            # updates: region rows and positive labels, then negatives (StarSpace's order)
            for i in range(n_batch):
                if not active[i]:
                    continue
                g = grad[i]
                g_sq = _dot(g, g)
                for p in range(n_kept[i]):
                    _adagrad_step(regions, kept[i, p], g, rate, g_sq, region_adagrad, max_norm)
                _adagrad_step(labels, positive[i], lhs[i], -rate * pos_weight[i], lhs_sq[i], label_adagrad, max_norm)
            for j in range(neg_search_limit):
                for i in range(n_batch):
                    if active[i] and neg_weight[i, j] > 0:
                        _adagrad_step(
                            labels, negatives[j], lhs[i], rate * neg_weight[i, j], lhs_sq[i], label_adagrad, max_norm
                        )
            start = stop
    return batch_loss.sum(), batch_count.sum()


def _serial_twin(kernel, name: str):
    """``kernel`` compiled without parfors, under its own name (and cache file).

    Numba takes about 20 s to compile the parallel epoch and 6 s without parfors; a one-thread run (the demo, every
    reproducible run) needs no parfors, so a first run on a fresh install compiles only this.
    """
    source = kernel.py_func
    twin = types.FunctionType(source.__code__, source.__globals__, name, source.__defaults__, source.__closure__)
    twin.__qualname__ = name
    # numpy's error model, as parfors use: a division by zero gives inf or nan (the caller checks the loss), as on
    # several threads, rather than an exception from inside the kernel
    return numba.njit(fastmath=True, nogil=True, cache=True, error_model="numpy")(twin)


_train_epoch_one_thread = _serial_twin(_train_epoch, "_train_epoch_one_thread")


@numba.njit(parallel=True, fastmath=True, nogil=True, cache=True)
def set_vectors(regions, indptr, indices, normalise=True):
    """L2-normalised sum of each set's region rows (StarSpace's ``embed_doc``); all-zero sets stay zero.

    ``normalise=False``: the sums as they are.
    """
    n_sets = indptr.size - 1
    out = np.zeros((n_sets, regions.shape[1]), np.float32)
    for s in prange(n_sets):
        row = out[s]
        for p in range(indptr[s], indptr[s + 1]):
            source = regions[indices[p]]
            for d in range(row.size):
                row[d] += source[d]
        if normalise:
            _normalised_row_into(row, row)
    return out


@numba.njit(parallel=True, fastmath=True, nogil=True, cache=True)
def _set_vectors_of_halves(bits, halves, indptr, indices, normalise=True):
    """:func:`set_vectors` of float16 region vectors (their bits; ``halves``: each bit pattern's float32 value)."""
    n_sets = indptr.size - 1
    out = np.zeros((n_sets, bits.shape[1]), np.float32)
    for s in prange(n_sets):
        row = out[s]
        for p in range(indptr[s], indptr[s + 1]):
            source = bits[indices[p]]
            for d in range(row.size):
                row[d] += halves[source[d]]
        if normalise:
            _normalised_row_into(row, row)
    return out


# Every float16 as float32 (exact): numba has no float16, so float16 vectors are read as their bits.
_HALVES = np.arange(2**16, dtype=np.uint16).view(np.float16).astype(np.float32)


@dataclass(frozen=True)
class SetSpace:
    """How a set's vector is made from its region vectors when it is more than StarSpace's normalised sum.

    A set of ``n`` regions has the vector ``sum / sqrt(n) + bias``; each block of dimensions is then scaled to
    length ``sqrt(weight)`` of its block (the weights sum to 1, so the whole has length 1 and the cosine of two
    sets is the weighted mean of their blocks' cosines). The default space of ``bs.tl.train`` is one: a block per
    label field, one dimension per label, the bias its scores' constant part, so that a set's block is its
    annotator scores of that field's labels as a unit vector; and a block of the sets' regions themselves (no
    label), which orders sets of the same labels by how alike their regions are.

    Attributes
    ----------
    bias
        Per dimension, what every set adds (float32).
    blocks
        Per dimension, its block (0, 1, …).
    weights
        Per block, its share of the cosine (positive, summing to 1).
    """

    bias: np.ndarray
    blocks: np.ndarray
    weights: np.ndarray

    def __post_init__(self):
        bias = np.ascontiguousarray(self.bias, dtype=np.float32)
        blocks = np.ascontiguousarray(self.blocks, dtype=np.int32)
        weights = np.ascontiguousarray(self.weights, dtype=np.float64)
        if bias.ndim != 1 or blocks.shape != bias.shape:
            raise ValueError(
                f"a set space needs one bias and one block per dimension, got {bias.shape}, {blocks.shape}"
            )
        if not np.isfinite(bias).all():
            raise ValueError("the set space's bias holds non-finite values")
        if blocks.size and (blocks.min() < 0 or np.unique(blocks).size != blocks.max() + 1):
            raise ValueError("the set space's blocks must be numbered 0, 1, … without gaps")
        n_blocks = int(blocks.max()) + 1 if blocks.size else 0
        if weights.shape != (n_blocks,) or not (weights > 0).all() or not math.isclose(weights.sum(), 1.0):
            raise ValueError(f"a set space needs one positive weight per block ({n_blocks}), summing to 1")
        object.__setattr__(self, "bias", bias)
        object.__setattr__(self, "blocks", blocks)
        object.__setattr__(self, "weights", weights)

    @property
    def dim(self) -> int:
        """The number of dimensions."""
        return int(self.bias.size)

    def finish(self, sums: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """Set vectors from the sums of their region vectors and their numbers of regions (in place; returned).

        A set of no region stays zero.
        """
        sums /= np.sqrt(np.maximum(sizes, 1), dtype=np.float32)[:, None]
        sums += self.bias
        for block in range(self.weights.size):
            columns = self.blocks == block
            sums[:, columns] = self._scaled(sums[:, columns], block)
        sums[sizes == 0] = 0
        return sums

    def set_block(self, vectors: np.ndarray, rows: np.ndarray, block: int, values: np.ndarray) -> None:
        """Write ``values`` (rows × the block's dimensions) into ``vectors[rows]``'s block, scaled as it is."""
        vectors[np.ix_(rows, np.flatnonzero(self.blocks == block))] = self._scaled(values, block)

    def _scaled(self, values: np.ndarray, block: int) -> np.ndarray:
        """``values`` (rows of one block) each scaled to the square root of the block's share (zero stays zero)."""
        norms = np.linalg.norm(values, axis=1, keepdims=True) / np.float32(math.sqrt(self.weights[block]))
        return np.divide(values, norms, out=np.zeros(values.shape, np.float32), where=norms > 0)

    def record(self) -> dict:
        """Plain lists (for ``.uns`` and ``model.json``)."""
        return {
            "bias": [float(b) for b in self.bias],
            "blocks": [int(b) for b in self.blocks],
            "weights": [float(w) for w in self.weights],
        }

    @classmethod
    def from_record(cls, record) -> SetSpace | None:
        """The set space of :meth:`record` (``None``: none)."""
        if record is None:
            return None
        return cls(
            np.asarray(record["bias"], dtype=np.float32),
            np.asarray(record["blocks"], dtype=np.int32),
            np.asarray(record["weights"], dtype=np.float64),
        )


def embed_rows(
    regions: np.ndarray, indptr: np.ndarray, indices: np.ndarray, space: SetSpace | None = None
) -> np.ndarray:
    """:func:`set_vectors` of CSR rows (region vectors float32, or float16 as model folders keep them).

    Sums are float32 either way: float16 vectors give the sums of their float32 values. A few rows (a query) run
    on one thread: the kernel spreads rows over threads, so more cannot help a few rows, and waking them costs
    tens of ms on a busy machine. One thread gives the same numbers (each row is summed by one thread).
    With a ``space``, the sums are made into set vectors as it says (:meth:`SetSpace.finish`).
    """
    indptr = np.asarray(indptr, dtype=np.int64)
    normalise = space is None
    if regions.dtype == np.float16:
        kernel, arguments = _set_vectors_of_halves, (regions.view(np.uint16), _HALVES, indptr, indices, normalise)
    else:
        kernel, arguments = set_vectors, (regions, indptr, indices, normalise)
    if indptr.size - 1 >= 8:
        sums = kernel(*arguments)
    else:
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            sums = kernel(*arguments)
        finally:
            numba.set_num_threads(threads)
    return sums if space is None else space.finish(sums, np.diff(indptr))


def train(
    data: TrainingData,
    params: TrainParams,
    *,
    n_threads: int,
    random_state: int,
    progress=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train region and label vectors; returns ``(regions, labels, loss per epoch)``.

    ``progress(epoch, loss)`` is called after every epoch.
    """
    if data.n_examples == 0:
        raise ValueError("nothing to train on: no set has both a label and a region")
    rng = np.random.default_rng(random_state)
    regions = rng.normal(0.0, params.init_std, (data.n_regions, params.dim)).astype(np.float32)
    labels = rng.normal(0.0, params.init_std, (data.n_labels, params.dim)).astype(np.float32)
    region_adagrad = np.zeros(data.n_regions, np.float32)
    label_adagrad = np.zeros(data.n_labels, np.float32)
    n_threads = max(1, min(int(n_threads), data.n_examples, numba.config.NUMBA_NUM_THREADS))
    neg_search_limit = min(params.neg_search_limit, data.n_examples)
    per_epoch = params.lr / params.epochs
    steps = data.n_examples // _DECAY_STEP
    rate_per_step = per_epoch / steps if steps else 0.0
    losses = np.zeros(params.epochs, np.float64)
    max_regions = int(np.diff(data.indptr).max())
    train_epoch = _train_epoch if n_threads > 1 else _train_epoch_one_thread
    previous_threads = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        for epoch in range(params.epochs):
            order = rng.permutation(data.n_examples).astype(np.int64)
            seeds = rng.integers(0, np.iinfo(np.int64).max, n_threads, dtype=np.int64).astype(np.uint64)
            loss_sum, n_batches = train_epoch(
                regions,
                labels,
                region_adagrad,
                label_adagrad,
                data.indptr,
                data.indices,
                data.label_ptr,
                data.label_idx,
                order,
                seeds,
                params.lr - epoch * per_epoch,
                rate_per_step,
                params.batch_size,
                neg_search_limit,
                params.max_neg_samples,
                params.margin,
                params.loss == "softmax",
                params.exclude_positives,
                params.max_norm,
                params.dropout,
                max_regions,
            )
            losses[epoch] = loss_sum / max(n_batches, 1)
            if progress is not None:
                progress(epoch, losses[epoch])
    finally:
        numba.set_num_threads(previous_threads)
    return regions, labels, losses
