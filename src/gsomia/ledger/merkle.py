"""RFC 9162 Merkle trees, as pure functions: hashes, roots, inclusion and consistency proofs.

The construction is RFC 9162 §2.1 (the successor of RFC 6962, with the same tree):

    leaf hash  SHA-256(0x00 || leaf data)
    node hash  SHA-256(0x01 || left || right)
    MTH({})    SHA-256("")
    MTH(D[n])  for n > 1: k is the largest power of two below n, and the root is
               node(MTH(D[0:k]), MTH(D[k:n]))

The two prefixes keep a leaf from ever being taken for a node (a second-preimage attack on the
tree). The tree over n leaves is a list of *perfect* subtrees, one per set bit of n, largest
first (its "peaks"); a :class:`Subtree` names one by ``(level, index)``: ``2**level`` leaves from
leaf ``index * 2**level``. Every hash a proof needs is the hash of a range that is one perfect
subtree or a run of them, so a store that keeps the hash of every perfect subtree can answer any
proof with O(log n) reads: :func:`inclusion_ranges`, :func:`consistency_ranges` and
:func:`perfect_subtrees` say which.

Generation follows RFC 9162 §2.1.3.1 (``PATH``) and §2.1.4.1 (``SUBPROOF``); verification follows
§2.1.3.2 and §2.1.4.2 step by step, after checking every length first (the proof's length is a
function of the index and sizes, so a proof of another length is refused before any hashing).
A proof that does not verify raises :class:`~gsomia.core.errors.InvalidProofError`.

Standard library only (and gsomia.core.errors, itself pure): no I/O, no clock, no state.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from gsomia.core.errors import InvalidProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "InvalidProofError",
    "RangeHash",
    "Subtree",
    "consistency_proof",
    "consistency_proof_length",
    "consistency_ranges",
    "fold",
    "inclusion_proof",
    "inclusion_proof_length",
    "inclusion_ranges",
    "leaf_hash",
    "mth",
    "node_hash",
    "perfect_subtrees",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256

#: The hash of leaves ``[start, end)``: how proof generation reads a tree it does not hold.
RangeHash = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one leaf."""
    return _sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return _sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2): where MTH splits D[n]."""
    return 1 << ((n - 1).bit_length() - 1)


@dataclass(frozen=True, slots=True, order=True)
class Subtree:
    """A perfect subtree: the ``2**level`` leaves from leaf ``index * 2**level``."""

    level: int
    index: int

    @property
    def start(self) -> int:
        return self.index << self.level

    @property
    def end(self) -> int:
        return (self.index + 1) << self.level

    @property
    def width(self) -> int:
        return 1 << self.level


@functools.lru_cache(maxsize=4096)  # pure; proofs at one size share their right-edge ranges
def perfect_subtrees(start: int, end: int) -> tuple[Subtree, ...]:
    """The perfect subtrees, left to right, whose :func:`fold` is MTH(D[start:end]).

    The range must be one that MTH builds: ``start`` a multiple of the smallest power of two
    not below ``end - start``. Every range of :func:`inclusion_ranges` and
    :func:`consistency_ranges` is, and so is ``[0, n)``; the subtrees are then one per set bit
    of ``end - start``, largest first.
    """
    width = end - start
    if start < 0 or width < 0:
        raise ValueError(f"not a range of leaves: [{start}, {end})")
    if width and start % (1 << (width - 1).bit_length()):
        raise ValueError(f"[{start}, {end}) is not a subtree range of any Merkle tree")
    out: list[Subtree] = []
    position = start
    for level in range(width.bit_length() - 1, -1, -1):
        if width >> level & 1:
            out.append(Subtree(level, position >> level))
            position += 1 << level
    return tuple(out)


def fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of a run of perfect subtrees given their hashes, left to right (largest first).

    MTH splits at the largest power of two, so the right part is folded first:
    ``node(h0, node(h1, ... node(h[-2], h[-1])))``.
    """
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = _sha256(NODE_PREFIX + h + acc).digest()
    return acc


class CompactRange:
    """The peaks of a tree of ``size`` leaves, grown one leaf hash at a time.

    This is all an append-only log needs in memory to extend its tree and know its root: the
    hashes of its perfect subtrees, largest first (one per set bit of ``size``). :meth:`append`
    returns the interior nodes that the new leaf completes, lowest level first, so a store can
    keep every perfect subtree's hash as it is made.
    """

    __slots__ = ("_peaks", "_size")

    def __init__(self, size: int = 0, peaks: Sequence[bytes] = ()) -> None:
        if size < 0 or len(peaks) != size.bit_count():
            raise ValueError(f"a tree of {size} leaves has {max(size, 0).bit_count()} peaks")
        if any(len(h) != HASH_SIZE for h in peaks):
            raise ValueError("a peak is not a SHA-256 hash")
        self._size = size
        self._peaks = list(peaks)

    @property
    def size(self) -> int:
        return self._size

    @property
    def peaks(self) -> tuple[bytes, ...]:
        return tuple(self._peaks)

    def append(self, leaf: bytes) -> list[bytes]:
        """Add a leaf hash; the hashes of the perfect subtrees it completes, level 1 upward.

        Leaf ``i`` completes one subtree per trailing one bit of ``i``: the one at level ``L``
        is ``Subtree(L, i >> L)``.
        """
        n = self._size
        self._size = n + 1
        peaks = self._peaks
        if not n & 1:  # half of all leaves complete nothing
            peaks.append(leaf)
            return []
        completed: list[bytes] = []
        h = leaf
        while n & 1:
            h = _sha256(NODE_PREFIX + peaks.pop() + h).digest()
            completed.append(h)
            n >>= 1
        peaks.append(h)
        return completed

    def root(self) -> bytes:
        return fold(self._peaks)

    def copy(self) -> CompactRange:
        return CompactRange(self._size, self._peaks)


def root_from_leaf_hashes(hashes: Iterable[bytes]) -> bytes:
    """MTH over leaves given by their hashes, in O(n) time and O(log n) memory."""
    tree = CompactRange()
    for h in hashes:
        tree.append(h)
    return tree.root()


def mth(leaves: Iterable[bytes]) -> bytes:
    """MTH over leaf data (RFC 9162 §2.1.1)."""
    return root_from_leaf_hashes(leaf_hash(d) for d in leaves)


# -- proof generation -------------------------------------------------------------------------


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTHs make PATH(index, D[size]), from the leaf up (§2.1.3.1)."""
    if not 0 <= index < size:
        raise ValueError(f"no leaf {index} in a tree of {size}")
    top_down: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:  # PATH(m, D[0:k]) : MTH(D[k:n])
            top_down.append((lo + k, hi))
            hi = lo + k
        else:  # PATH(m - k, D[k:n]) : MTH(D[0:k])
            top_down.append((lo, lo + k))
            lo += k
    return top_down[::-1]


def consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTHs make PROOF(old, D[new]) (§2.1.4.1); empty if old is 0 or new."""
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from size {old} to size {new}")
    if old in (0, new):
        return []
    top_down: list[tuple[int, int]] = []
    lo, hi, m, whole = 0, new, old, True  # SUBPROOF(m, D[lo:hi], whole)
    while True:
        n = hi - lo
        if m == n:
            if not whole:
                top_down.append((lo, hi))
            break
        k = _split(n)
        if m <= k:  # SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            top_down.append((lo + k, hi))
            hi = lo + k
        else:  # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            top_down.append((lo, lo + k))
            lo += k
            m -= k
            whole = False
    return top_down[::-1]


def inclusion_proof(index: int, size: int, range_hash: RangeHash) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
    return [range_hash(a, b) for a, b in inclusion_ranges(index, size)]


def consistency_proof(old: int, new: int, range_hash: RangeHash) -> list[bytes]:
    """The proof that the tree of ``old`` leaves is a prefix of the tree of ``new`` leaves."""
    return [range_hash(a, b) for a, b in consistency_ranges(old, new)]


# -- proof verification -----------------------------------------------------------------------


def _decompose(index: int, size: int) -> tuple[int, int]:
    """How many proof hashes lie inside the perfect subtree above the leaf, and on the border."""
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner, border


def inclusion_proof_length(index: int, size: int) -> int:
    if not 0 <= index < size:
        raise ValueError(f"no leaf {index} in a tree of {size}")
    inner, border = _decompose(index, size)
    return inner + border


def consistency_proof_length(old: int, new: int) -> int:
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from size {old} to size {new}")
    if old in (0, new):
        return 0
    inner, border = _decompose(old - 1, new)
    shift = (old & -old).bit_length() - 1  # trailing zeros of old
    seeded = 0 if old == 1 << shift else 1  # a power of two is its own first hash
    return seeded + inner - shift + border


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise InvalidProofError(f"{what} is not a {HASH_SIZE}-byte SHA-256 hash")


def _check_path(proof: Sequence[bytes], want: int, what: str) -> None:
    if len(proof) != want:
        raise InvalidProofError(f"{what} has {len(proof)} hashes; it must have {want}")
    for i, h in enumerate(proof):
        _check_hash(h, f"{what} hash {i}")


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` gives for ``leaf`` at ``index`` (RFC 9162 §2.1.3.2, steps 1-4)."""
    if not 0 <= index < size:  # step 1
        raise InvalidProofError(f"leaf index {index} is not below the tree size {size}")
    _check_hash(leaf, "the leaf hash")
    _check_path(proof, inclusion_proof_length(index, size), "the inclusion proof")
    fn, sn = index, size - 1  # step 2
    r = leaf  # step 3
    for p in proof:  # step 4
        if sn == 0:
            raise InvalidProofError("the inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = _sha256(NODE_PREFIX + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _sha256(NODE_PREFIX + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:  # step 5, first half
        raise InvalidProofError("the inclusion proof is shorter than the path to the root")
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise :class:`InvalidProofError` unless ``proof`` puts ``leaf`` at ``index``.

    That is: the root it gives is ``root`` (RFC 9162 §2.1.3.2 step 5).
    """
    _check_hash(root, "the root hash")
    if root_from_inclusion_proof(leaf, index, size, proof) != root:  # step 5
        raise InvalidProofError(f"the inclusion proof of leaf {index} does not give the root")


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise :class:`InvalidProofError` unless the tree of ``old`` leaves is a prefix of ``new``.

    RFC 9162 §2.1.4.2 covers ``0 < old < new``; the ends are as in transparency-dev/merkle:
    from 0 any tree follows (with an empty proof), and a size is consistent with itself only
    when the roots are equal (again with an empty proof).
    """
    if not 0 <= old <= new:
        raise InvalidProofError(f"size {new} cannot follow size {old}")
    _check_hash(old_root, "the old root hash")
    _check_hash(new_root, "the new root hash")
    _check_path(proof, consistency_proof_length(old, new), "the consistency proof")
    if old == 0:
        return
    if old == new:
        if old_root != new_root:
            raise InvalidProofError(f"two different roots for size {old}")
        return
    path = list(proof)
    if old & (old - 1) == 0:  # step 2: a power of two is its own first hash
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:
            raise InvalidProofError("the consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            fr = _sha256(NODE_PREFIX + c + fr).digest()
            sr = _sha256(NODE_PREFIX + c + sr).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _sha256(NODE_PREFIX + sr + c).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:  # step 7
        raise InvalidProofError("the consistency proof is shorter than the path to the root")
    if fr != old_root:
        raise InvalidProofError(f"the consistency proof does not give the root of size {old}")
    if sr != new_root:
        raise InvalidProofError(f"the consistency proof does not give the root of size {new}")
