"""The tamper-evident ledger: RFC 9162 Merkle functions, signed checkpoints, the persistent log.

    merkle.py       pure: hashes, roots, inclusion and consistency proofs (RFC 9162)
    checkpoint.py   C2SP signed notes and checkpoints, Ed25519 (cosignatures included)
    tables.py       the ledger's tables on the node's declarative base
    log.py          the persistent log: appends, proofs, checkpoints, verification
    witness.py      witnessing peers' logs: cosign, compare notes, send cosignatures back
    schedule.py     witnessing every N seconds, in a background thread

Nothing is imported here, so that ``gsomia.store.models`` can import ``tables`` without a cycle.
"""
