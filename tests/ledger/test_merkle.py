"""RFC 9162 Merkle functions against published test vectors, a literal reference, and properties.

Vectors:

- RFC 6962 reference data as published by transparency-dev/merkle (Apache-2.0):
  ``testonly/constants.go`` (``LeafInputs``, ``NodeHashes``, ``RootHashes``),
  ``testonly/reference_test.go`` (``TestRefInclusionProof``, ``TestRefConsistencyProof``) and
  ``rfc6962/rfc6962_test.go`` (leaf and node hashes), at commit
  417fb0c314750d94e53942e9f92e79b6d35915db of https://github.com/transparency-dev/merkle.
  These are the Certificate Transparency reference vectors of the C++ ``merkle_tree_test``.
- ``vectors/transparency-dev-merkle.json``: every inclusion and consistency probe of
  ``testdata/`` in the same repository and commit (generated there by ``cmd/proofgen``): happy
  paths and the corrupted variants (wrong index, size, leaf or root; a flipped bit; garbage
  before or after; a removed or inserted hash), each with the verdict a verifier must reach.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsomia.core.errors import InvalidProofError
from gsomia.ledger import merkle
from gsomia.ledger.merkle import (
    EMPTY_ROOT,
    CompactRange,
    Subtree,
    consistency_proof,
    consistency_proof_length,
    inclusion_proof,
    inclusion_proof_length,
    leaf_hash,
    mth,
    node_hash,
    perfect_subtrees,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads(
    (Path(__file__).parent / "vectors" / "transparency-dev-merkle.json").read_text("utf-8")
)


def h(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text)


# testonly/constants.go: LeafInputs()
LEAVES = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]
# testonly/constants.go: RootHashes(), indexed by tree size
ROOTS = [
    h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]
# testonly/constants.go: NodeHashes(), [level][index]
NODES = [
    [
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        h("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
        h("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
        h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        h("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
        h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        h("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ],
    [
        h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ],
    [
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ],
    [h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")],
]
# testonly/reference_test.go: TestRefInclusionProof (index, size, proof)
REF_INCLUSION = [
    (0, 1, []),
    (0, 2, [h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7")]),
    (1, 2, [h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")]),
    (2, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        1,
        5,
        [
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        0,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        5,
        8,
        [
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]
# testonly/reference_test.go: TestRefConsistencyProof (old, new, proof)
REF_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        2,
        5,
        [
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        8,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]


# -- a literal transcription of RFC 9162 §2.1, as the reference ----------------------------


def ref_mth(leaves: Sequence[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:])).digest()


def ref_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if b else [ref_mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, leaves[:k], b), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


def range_hash_over(leaves: Sequence[bytes]) -> merkle.RangeHash:
    return lambda start, end: ref_mth(leaves[start:end])


def data(n: int) -> list[bytes]:
    return [f"leaf {i}".encode() for i in range(n)]


# -- published vectors ----------------------------------------------------------------------


def test_rfc6962_hash_vectors() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    assert leaf_hash(b"L123456").hex() == (
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    )
    assert node_hash(b"N123", b"N456").hex() == (
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )


@pytest.mark.parametrize("size", range(9))
def test_roots_of_the_reference_leaves(size: int) -> None:
    assert mth(LEAVES[:size]) == ROOTS[size]
    assert ref_mth(LEAVES[:size]) == ROOTS[size]


def test_every_completed_node_is_a_reference_node_hash() -> None:
    tree = CompactRange()
    seen: dict[tuple[int, int], bytes] = {}
    for i, leaf in enumerate(LEAVES):
        seen[(0, i)] = leaf_hash(leaf)
        for level, hashed in enumerate(tree.append(leaf_hash(leaf)), start=1):
            seen[(level, i >> level)] = hashed
        assert tree.root() == ROOTS[i + 1]
    assert seen == {(lv, ix): hh for lv, row in enumerate(NODES) for ix, hh in enumerate(row)}


@pytest.mark.parametrize(("index", "size", "want"), REF_INCLUSION)
def test_reference_inclusion_proofs(index: int, size: int, want: list[bytes]) -> None:
    proof = inclusion_proof(index, size, range_hash_over(LEAVES))
    assert proof == want
    verify_inclusion(leaf_hash(LEAVES[index]), index, size, proof, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "want"), REF_CONSISTENCY)
def test_reference_consistency_proofs(old: int, new: int, want: list[bytes]) -> None:
    proof = consistency_proof(old, new, range_hash_over(LEAVES))
    assert proof == want
    verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


def b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["file"] for c in cases]


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=_ids(VECTORS["inclusion"]))
def test_transparency_dev_inclusion_probes(case: dict[str, Any]) -> None:
    def run() -> None:
        verify_inclusion(
            b64(case["leafHash"]),
            case["leafIdx"],
            case["treeSize"],
            [b64(p) for p in case["proof"] or []],
            b64(case["root"]),
        )

    if case["wantErr"]:
        with pytest.raises(InvalidProofError):
            run()
    else:
        run()


# Where gsomia is stricter than transparency-dev: every root is a 32-byte SHA-256 hash, so two
# equal sizes with equal roots of another length are refused rather than accepted.
STRICTER = {"consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"}


@pytest.mark.parametrize("case", VECTORS["consistency"], ids=_ids(VECTORS["consistency"]))
def test_transparency_dev_consistency_probes(case: dict[str, Any]) -> None:
    def run() -> None:
        verify_consistency(
            case["size1"],
            case["size2"],
            b64(case["root1"]),
            b64(case["root2"]),
            [b64(p) for p in case["proof"] or []],
        )

    if case["wantErr"] or case["file"] in STRICTER:
        with pytest.raises(InvalidProofError):
            run()
    else:
        run()


def test_the_vector_file_has_both_verdicts() -> None:
    # A vector file that lost its happy paths (or its corruptions) would pass vacuously.
    for kind in ("inclusion", "consistency"):
        verdicts = [c["wantErr"] for c in VECTORS[kind]]
        assert verdicts.count(False) >= 5 and verdicts.count(True) >= 80


# -- against the literal RFC text, exhaustively for small trees --------------------------------


def test_generation_matches_the_rfc_for_every_index_and_size_up_to_40() -> None:
    leaves = data(40)
    roots = [ref_mth(leaves[:n]) for n in range(41)]
    rh = range_hash_over(leaves)
    for size in range(1, 41):
        for index in range(size):
            proof = inclusion_proof(index, size, rh)
            assert proof == ref_path(index, leaves[:size])
            assert len(proof) == inclusion_proof_length(index, size)
            verify_inclusion(leaf_hash(leaves[index]), index, size, proof, roots[size])
        for old in range(size + 1):
            proof = consistency_proof(old, size, rh)
            if 0 < old < size:
                assert proof == ref_subproof(old, leaves[:size], True)
            assert len(proof) == consistency_proof_length(old, size)
            verify_consistency(old, size, roots[old], roots[size], proof)


def test_perfect_subtrees_fold_to_the_root_of_their_range() -> None:
    leaves = data(50)
    for size in range(51):
        parts = perfect_subtrees(0, size)
        assert [p.width for p in parts] == [1 << b for b in range(6, -1, -1) if size >> b & 1]
        hashes = [ref_mth(leaves[p.start : p.end]) for p in parts]
        assert merkle.fold(hashes) == ref_mth(leaves[:size])
    assert perfect_subtrees(8, 14) == (Subtree(2, 2), Subtree(1, 6))
    with pytest.raises(ValueError, match="not a subtree range"):
        perfect_subtrees(2, 6)


def test_compact_range_refuses_a_wrong_number_of_peaks() -> None:
    with pytest.raises(ValueError, match="peaks"):
        CompactRange(3, [EMPTY_ROOT])
    assert CompactRange(3, [EMPTY_ROOT, EMPTY_ROOT]).size == 3


# -- properties -------------------------------------------------------------------------------


def flip(value: bytes, bit: int) -> bytes:
    i = bit // 8 % len(value)
    return value[:i] + bytes([value[i] ^ (1 << bit % 8)]) + value[i + 1 :]


def unique_leaves(raw: list[bytes]) -> list[bytes]:
    # Distinct leaves: in a tree of equal leaves a proof for one size can double as a proof for
    # another (a hash of equal nodes repeats), which says nothing about tampering.
    return [b"%d:" % i + leaf for i, leaf in enumerate(raw)]


@st.composite
def tree_and_index(draw: st.DrawFn) -> tuple[list[bytes], int, int]:
    size = draw(st.integers(1, 300))
    leaves = unique_leaves(draw(st.lists(st.binary(max_size=8), min_size=size, max_size=size)))
    return leaves, draw(st.integers(0, size - 1)), size


@settings(max_examples=60, deadline=None)
@given(tree_and_index(), st.integers(0, 10_000))
def test_inclusion_verifies_and_any_tampering_fails(
    case: tuple[list[bytes], int, int], bit: int
) -> None:
    leaves, index, size = case
    root = mth(leaves)
    proof = inclusion_proof(index, size, range_hash_over(leaves))
    leaf = leaf_hash(leaves[index])
    verify_inclusion(leaf, index, size, proof, root)

    tampered_leaf = leaf_hash(leaves[index] + b"!")
    with pytest.raises(InvalidProofError):
        verify_inclusion(tampered_leaf, index, size, proof, root)
    with pytest.raises(InvalidProofError):
        verify_inclusion(leaf, index, size, proof, flip(root, bit))
    if proof:
        k = bit % len(proof)
        with pytest.raises(InvalidProofError):  # one flipped bit anywhere in the proof
            verify_inclusion(
                leaf, index, size, [*proof[:k], flip(proof[k], bit), *proof[k + 1 :]], root
            )
        with pytest.raises(InvalidProofError):  # truncated
            verify_inclusion(leaf, index, size, proof[:-1], root)
        if len(set(proof)) > 1:
            with pytest.raises(InvalidProofError):  # reordered
                verify_inclusion(
                    leaf, index, size, proof[::-1] if proof[::-1] != proof else proof, root
                )
    with pytest.raises(InvalidProofError):  # extended
        verify_inclusion(leaf, index, size, [*proof, root], root)
    if size > 1:
        other = (index + 1 + bit % (size - 1)) % size
        with pytest.raises(InvalidProofError):  # the proof does not move to another index
            verify_inclusion(leaf, other, size, proof, root)


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[list[bytes], int, int]:
    new = draw(st.integers(1, 300))
    leaves = unique_leaves(draw(st.lists(st.binary(max_size=8), min_size=new, max_size=new)))
    return leaves, draw(st.integers(1, new)), new


@settings(max_examples=60, deadline=None)
@given(two_sizes(), st.integers(0, 10_000))
def test_consistency_verifies_and_any_tampering_fails(
    case: tuple[list[bytes], int, int], bit: int
) -> None:
    leaves, old, new = case
    old_root, new_root = mth(leaves[:old]), mth(leaves)
    proof = consistency_proof(old, new, range_hash_over(leaves))
    verify_consistency(old, new, old_root, new_root, proof)

    with pytest.raises(InvalidProofError):
        verify_consistency(old, new, flip(old_root, bit), new_root, proof)
    with pytest.raises(InvalidProofError):
        verify_consistency(old, new, old_root, flip(new_root, bit), proof)
    # A rewritten history: any changed leaf before ``old`` breaks consistency with old's root.
    changed = list(leaves)
    changed[bit % old] += b"!"
    with pytest.raises(InvalidProofError):
        verify_consistency(
            old, new, old_root, mth(changed), consistency_proof(old, new, range_hash_over(changed))
        )
    if proof:
        k = bit % len(proof)
        with pytest.raises(InvalidProofError):
            verify_consistency(
                old, new, old_root, new_root, [*proof[:k], flip(proof[k], bit), *proof[k + 1 :]]
            )
        with pytest.raises(InvalidProofError):
            verify_consistency(old, new, old_root, new_root, proof[:-1])
        if proof[::-1] != proof:
            with pytest.raises(InvalidProofError):
                verify_consistency(old, new, old_root, new_root, proof[::-1])
    if old < new:
        # Truncation: a log that lost its last entry cannot prove it grew into the new root.
        truncated = range_hash_over(leaves[:-1])
        with pytest.raises(InvalidProofError):
            verify_consistency(
                old, new, old_root, new_root, consistency_proof(old, new - 1, truncated)
            )


def test_reordered_leaves_change_the_root() -> None:
    leaves = data(7)
    swapped = [leaves[1], leaves[0], *leaves[2:]]
    assert mth(swapped) != mth(leaves)
    proof = inclusion_proof(0, 7, range_hash_over(swapped))
    with pytest.raises(InvalidProofError):
        verify_inclusion(leaf_hash(leaves[1]), 0, 7, proof, mth(leaves))


def test_lengths_are_checked_before_any_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def counting(data: bytes = b"") -> Any:
        calls.append(data)
        return hashlib.sha256(data)

    leaf = leaf_hash(b"x")
    monkeypatch.setattr(merkle, "_sha256", counting)
    with pytest.raises(InvalidProofError, match="must have 3"):
        verify_inclusion(leaf, 0, 8, [EMPTY_ROOT] * 4, EMPTY_ROOT)
    with pytest.raises(InvalidProofError, match="32-byte"):
        verify_inclusion(leaf, 0, 8, [EMPTY_ROOT, EMPTY_ROOT, b"short"], EMPTY_ROOT)
    with pytest.raises(InvalidProofError, match="must have"):
        verify_consistency(3, 8, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])
    assert calls == []
