"""Federation security against a running KOR node: requests built by hand with httpx, signed
with ``gsomia.crypto.httpsig.sign_request`` (or deliberately wrongly), carrying envelopes sealed
with ``gsomia.crypto.envelope.seal`` under keys loaded from the JPN and USA nodes' directories or
freshly generated. Every refusal is problem+json with its stable code, and stores nothing."""

from __future__ import annotations

import copy
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms

from gsomia.core.canonical import canonical_bytes
from gsomia.crypto.envelope import seal, verify_receipt
from gsomia.crypto.httpsig import COVERED, SENDER_HEADER, TAG, sign_request
from gsomia.crypto.keys import EncryptionPublicKey, SigningPrivateKey
from gsomia.node.cluster import Cluster
from gsomia.node.config import load_config, load_encryption_key, load_signing_key
from gsomia.node.federation import ENDPOINT

from .conftest import BEFORE, PROBLEM, create_item, db_rows, held_by_title, item_count

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class NodeKeys:
    party: str
    signing: SigningPrivateKey
    encryption_public: EncryptionPublicKey


def node_keys(cluster: Cluster, party: str) -> NodeKeys:
    config = load_config(cluster.nodes[party].data_dir)
    encryption = load_encryption_key(config, None)
    return NodeKeys(party, load_signing_key(config, None), encryption.public_key)


@dataclass
class Setting:
    cluster: Cluster
    jpn: NodeKeys
    kor: NodeKeys
    usa: NodeKeys
    item: dict[str, Any]  # a JPN item whose label the hand-made share envelopes carry
    http: httpx.Client

    @property
    def url(self) -> str:
        return self.cluster.nodes["KOR"].url + ENDPOINT


@pytest.fixture(scope="module")
def setting(in_force: Cluster) -> Iterator[Setting]:
    item = create_item(in_force, "JPN", title="the label carried by hand-made envelopes")
    with httpx.Client(timeout=15.0) as http:
        yield Setting(
            in_force,
            node_keys(in_force, "JPN"),
            node_keys(in_force, "KOR"),
            node_keys(in_force, "USA"),
            item,
            http,
        )


def share_header(st: Setting, *, title: str, **changes: Any) -> dict[str, Any]:
    """The header JPN's node would write for a direct share of ``st.item`` to KOR."""
    header = {
        "id": str(uuid.uuid4()),
        "kind": "share",
        "sender": "JPN",
        "recipient": "KOR",
        "created_at": datetime.fromisoformat(BEFORE).isoformat(),
        "sent_real": datetime.now(UTC).isoformat(),
        "nonce": secrets.token_hex(16),
        "registry_hash": st.cluster.registry.content_hash,
        "share_id": str(uuid.uuid4()),
        "route": ["JPN", "KOR"],
        "instruments": ["JPN-KOR-GSOMIA"],
        "final_recipient": "KOR",
        "label": st.item["label"],
        "received_under": None,
        "consents": ["JPN"],
        "decision_digest": "sha256:" + "0" * 64,
        "origin_item_id": str(uuid.uuid4()),
        "title": title,
        "relay_of": None,
    }
    header.update(changes)
    return header


def sealed(
    st: Setting,
    *,
    title: str,
    wrap_for: NodeKeys | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """A share envelope signed by JPN, its content key wrapped for KOR (or ``wrap_for``)."""
    return seal(
        share_header(st, title=title, **changes),
        f"{title}: details follow.".encode(),
        sender_key=st.jpn.signing,
        recipient_key=(wrap_for or st.kor).encryption_public,
    )


def signed(st: Setting, body: bytes, *, party: str, key: SigningPrivateKey) -> httpx.Request:
    """A request signed exactly as the delivery worker signs one."""
    request = st.http.build_request(
        "POST", st.url, content=body, headers={"content-type": "application/json"}
    )
    sign_request(request, body, party=party, key=key)
    return request


def hand_signed(
    st: Setting,
    body: bytes,
    *,
    sender: str,
    key_id: str,
    key: SigningPrivateKey,
    created: datetime | None = None,
) -> httpx.Request:
    """A request signed with whatever key id, sender header and creation time a test wants."""
    request = st.http.build_request(
        "POST", st.url, content=body, headers={"content-type": "application/json"}
    )
    request.headers[SENDER_HEADER] = sender
    HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={key_id: key.key}),
    ).sign(
        request,
        key_id=key_id,
        nonce=secrets.token_hex(16),
        tag=TAG,
        label="gsomia",
        covered_component_ids=COVERED,
        body=body,
        created=created,
    )
    return request


def _register_count(st: Setting, action: str) -> int:
    ((n,),) = db_rows(
        st.cluster, "KOR", f"SELECT count(*) FROM access_register WHERE action = '{action}'"
    )
    return int(n)


def inbox_count(st: Setting) -> int:
    ((n,),) = db_rows(st.cluster, "KOR", "SELECT count(*) FROM inbox")
    return int(n)


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    return body


class NothingStored:
    """Asserts that KOR's items and inbox are unchanged by what runs inside."""

    def __init__(self, st: Setting, *titles: str) -> None:
        self.st, self.titles = st, titles

    def __enter__(self) -> None:
        self.items, self.inbox = item_count(self.st.cluster, "KOR"), inbox_count(self.st)

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            return
        assert item_count(self.st.cluster, "KOR") == self.items
        assert inbox_count(self.st) == self.inbox
        for title in self.titles:
            assert held_by_title(self.st.cluster, "KOR", title) == []


def _accepted(st: Setting) -> tuple[dict[str, Any], bytes, httpx.Request, httpx.Response]:
    """A well-made share request from JPN, accepted by KOR: (envelope, body, request, response)."""
    title = f"hand-made share {uuid.uuid4().hex[:6]}"
    envelope = sealed(st, title=title)
    body = canonical_bytes(envelope)
    captured = signed(st, body, party="JPN", key=st.jpn.signing)
    before = item_count(st.cluster, "KOR")
    first = st.http.send(captured)
    assert first.status_code == 200, first.text
    receipt = verify_receipt(first.json(), st.kor.signing.public_key)
    assert receipt["envelope_id"] == envelope["header"]["id"]
    assert receipt["status"] == "accepted"
    (held,) = held_by_title(st.cluster, "KOR", title)
    assert held["id"] == receipt["item_id"]
    assert held["level"]["id"] == "gunsa-2"
    assert item_count(st.cluster, "KOR") == before + 1
    return envelope, body, captured, first


def test_a_well_made_request_is_accepted_once(setting: Setting) -> None:
    st = setting
    _, body, _, first = _accepted(st)
    # The same envelope in a fresh request is a redelivery: the first receipt, no second copy.
    with NothingStored(st):
        again = st.http.send(signed(st, body, party="JPN", key=st.jpn.signing))
        assert again.status_code == 200, again.text
        assert again.json() == first.json()


def test_a_replayed_request_is_refused(setting: Setting) -> None:
    st = setting
    _, _, captured, _ = _accepted(st)
    with NothingStored(st):
        replay = st.http.send(captured)  # the same bytes, headers and nonce
        assert_problem(replay, 409, "replayed-request")


def _forgeries(st: Setting, body: bytes) -> dict[str, httpx.Request]:
    stranger = SigningPrivateKey.generate()
    jpn_key_id = f"JPN/{st.jpn.signing.key_id}"
    altered = signed(st, body, party="JPN", key=st.jpn.signing)
    tampered_body = body.replace(b'"title":"', b'"title":"X', 1)
    assert tampered_body != body
    headers = {k: v for k, v in altered.headers.items() if k.lower() != "content-length"}
    altered = st.http.build_request("POST", st.url, content=tampered_body, headers=headers)
    unsigned = st.http.build_request(
        "POST",
        st.url,
        content=body,
        headers={"content-type": "application/json", SENDER_HEADER: "JPN"},
    )
    return {
        "unknown key claiming JPN": signed(st, body, party="JPN", key=stranger),
        "unknown party": signed(st, body, party="PRK", key=stranger),
        "JPN's key id, another key's signature": hand_signed(
            st, body, sender="JPN", key_id=jpn_key_id, key=stranger
        ),
        "body changed after signing": altered,
        "signed sender is not the key's party": hand_signed(
            st, body, sender="USA", key_id=jpn_key_id, key=st.jpn.signing
        ),
        "a peer's key signing as another peer": signed(st, body, party="JPN", key=st.usa.signing),
        "no signature": unsigned,
    }


def test_forged_signatures_are_refused(setting: Setting) -> None:
    st = setting
    title = f"forged share {uuid.uuid4().hex[:6]}"
    body = canonical_bytes(sealed(st, title=title))
    with NothingStored(st, title):
        for case, request in _forgeries(st, body).items():
            response = st.http.send(request)
            assert response.status_code == 401, (case, response.text)
            assert_problem(response, 401, "bad-request-signature")


def test_a_request_older_than_the_window_is_refused(setting: Setting) -> None:
    st = setting
    title = f"stale share {uuid.uuid4().hex[:6]}"
    body = canonical_bytes(sealed(st, title=title))
    stale = hand_signed(
        st,
        body,
        sender="JPN",
        key_id=f"JPN/{st.jpn.signing.key_id}",
        key=st.jpn.signing,
        created=datetime.now(UTC) - timedelta(minutes=10),
    )
    with NothingStored(st, title):
        problem = assert_problem(st.http.send(stale), 401, "bad-request-signature")
        assert "age" in problem["detail"], problem


def test_misaddressed_envelopes_are_refused(setting: Setting) -> None:
    st = setting
    title = f"misaddressed share {uuid.uuid4().hex[:6]}"
    # Sealed for USA (its key, its name in the header), sent to KOR by JPN.
    for_usa = sealed(st, title=title, wrap_for=st.usa, recipient="USA")
    # Addressed to USA in the header but wrapped for KOR's key.
    header_usa = sealed(st, title=title, recipient="USA")
    # JPN's envelope for KOR, passed on by USA under USA's own request signature.
    forwarded = canonical_bytes(sealed(st, title=title))
    # For KOR, but naming USA as the next hop of its route.
    wrong_hop = sealed(
        st,
        title=title,
        route=["JPN", "USA", "KOR"],
        instruments=["TISA", "TISA"],
    )
    with NothingStored(st, title):
        for envelope in (for_usa, header_usa, wrong_hop):
            body = canonical_bytes(envelope)
            response = st.http.send(signed(st, body, party="JPN", key=st.jpn.signing))
            assert_problem(response, 421, "misaddressed")
        response = st.http.send(signed(st, forwarded, party="USA", key=st.usa.signing))
        assert_problem(response, 421, "misaddressed")


def test_an_envelope_wrapped_for_another_key_does_not_open(setting: Setting) -> None:
    """The header names KOR, but the content key is wrapped for USA's key: refused, opaquely,
    as an envelope that does not open (envelope.py gives every failure to open one error)."""
    st = setting
    title = f"wrapped for USA {uuid.uuid4().hex[:6]}"
    body = canonical_bytes(sealed(st, title=title, wrap_for=st.usa))
    with NothingStored(st, title):
        response = st.http.send(signed(st, body, party="JPN", key=st.jpn.signing))
        assert_problem(response, 400, "envelope-invalid")


def test_a_tampered_label_is_refused(setting: Setting) -> None:
    st = setting
    title = f"tampered share {uuid.uuid4().hex[:6]}"
    envelope = sealed(st, title=title)
    lowered = copy.deepcopy(envelope)
    lowered["header"]["label"]["classification"] = "hi"  # 極秘 passed off as 秘
    widened = copy.deepcopy(envelope)
    widened["header"]["label"]["releasable_to"] = [*envelope["header"]["label"]["releasable_to"]]
    widened["header"]["label"]["topics"] = ["dprk-nuclear"]
    with NothingStored(st, title):
        for bad in (lowered, widened):
            body = canonical_bytes(bad)
            response = st.http.send(signed(st, body, party="JPN", key=st.jpn.signing))
            assert_problem(response, 400, "envelope-invalid")


def test_a_refused_request_is_recorded_and_cannot_be_replayed(setting: Setting) -> None:
    """Issue 5: refused requests are recorded; a refused request's nonce is spent too."""
    st = setting
    header_before = _register_count(st, "federation-refused")
    request = signed(st, b'{"header": {"sender": "JPN"}}', party="JPN", key=st.jpn.signing)
    first = st.http.send(request)
    assert first.status_code >= 400
    assert _register_count(st, "federation-refused") == header_before + 1
    again = st.http.send(request)
    assert again.status_code == 409
    assert again.json()["code"] == "replayed-request"
