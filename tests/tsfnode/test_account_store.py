"""The repositories of people's tables (tsfnode/store/accounts.py, destinations.py) on a
real node database: a decision that writes several rows writes all or none of them, and
a person changes only their own rows."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tsfnode.store import Store
from tsfnode.store.accounts import AccountStore, NewAccount, UsernameTaken
from tsfnode.store.destinations import DestinationStore

NOW = 1_767_348_000_000
HASH = "$argon2id$v=19$m=65536,t=2,p=1$not-a-real-hash"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "node.db", create=True)
    yield opened
    await opened.close()


async def account(accounts: AccountStore, username: str, role: str = "reader") -> int:
    return await accounts.add_account(
        NewAccount(username, f"Dr {username}", role, HASH, "fr"),
        now=NOW,
        person_key=username.encode().ljust(32, b"\0"),
    )


async def apply(accounts: AccountStore, username: str) -> int:
    return await accounts.add_application(
        role="reader",
        group_key=b"g" * 32,
        username=username,
        display_name="Dr Fatou",
        password_hash=HASH + "fatou",
        language="en",
        details='{"registration": "ONMB-5678"}',
        source="127.0.0.2",
        now=NOW,
    )


async def test_an_application_becomes_an_account_and_is_attested_together(store: Store) -> None:
    accounts = AccountStore(store.db)
    application_id = await apply(accounts, "fatou")
    (application,) = await accounts.pending_applications(application_id)
    with pytest.raises(dataclasses.FrozenInstanceError):
        application.username = "other"  # type: ignore[misc]
    await accounts.attest_application(application, by=b"c" * 32, now=NOW + 1, person_key=b"k" * 32)
    assert await accounts.pending_applications() == []
    made = await accounts.credentials("fatou")
    assert made is not None
    assert made.password_hash == HASH + "fatou"  # the password the applicant chose
    assert (made.account.role, made.account.language, made.account.person_key) == (
        "reader",
        "en",
        b"k" * 32,
    )


async def test_an_application_whose_name_was_taken_meanwhile_changes_nothing(
    store: Store,
) -> None:
    accounts = AccountStore(store.db)
    (application,) = await accounts.pending_applications(await apply(accounts, "fatou"))
    await account(accounts, "fatou")  # made by the operator in the meantime
    with pytest.raises(UsernameTaken):
        await accounts.attest_application(application, by=b"c" * 32, now=NOW, person_key=b"k" * 32)
    assert await accounts.pending_applications() == [application]  # still waiting
    still = await accounts.account("fatou")
    assert still is not None
    assert still.person_key == b"fatou".ljust(32, b"\0")


async def test_a_session_forgets_the_failures_of_its_name_and_address_only(
    store: Store,
) -> None:
    accounts = AccountStore(store.db)
    marie = await account(accounts, "marie")
    for source in ("127.0.0.2", "127.0.0.3"):
        for n in range(3):
            await accounts.add_failure("marie", source, now=NOW + n, forget_before=0)
    await accounts.open_session(
        token_hash=b"t" * 32,
        account_id=marie,
        csrf="c",
        now=NOW + 10,
        expires_ms=NOW + 100,
        attempts=("marie", "127.0.0.2"),
    )
    assert (await accounts.failures("marie", "127.0.0.2", 0)).count == 0
    assert (await accounts.failures("marie", "127.0.0.3", 0)).count == 3
    session = await accounts.session(b"t" * 32, NOW + 99)
    assert session is not None
    assert (session.username, session.csrf) == ("marie", "c")
    assert await accounts.session(b"t" * 32, NOW + 100) is None  # ended


async def test_a_person_revokes_and_deletes_only_their_own_rows(store: Store) -> None:
    accounts, destinations = AccountStore(store.db), DestinationStore(store.db)
    marie, leo = await account(accounts, "marie"), await account(accounts, "leo")
    for owner in (marie, leo):
        await accounts.add_token(
            token_hash=bytes([owner]) * 32,
            account_id=owner,
            purpose="dicomweb",
            now=NOW,
            expires_ms=NOW + 1000,
            label="Weasis",
        )
        await destinations.add_destination(
            owner, label="PACS", ae_title="PACS", host="10.0.0.1", port=104, calling_ae="TSF"
        )
    (leos_token,) = await accounts.tokens_of(leo, "dicomweb")
    (leos_destination,) = await destinations.destinations_of(leo)
    await accounts.revoke_token(leos_token.id, account_id=marie, purpose="dicomweb")
    await destinations.delete_destination(leos_destination.id, account_id=marie)
    assert not (await accounts.tokens_of(leo, "dicomweb"))[0].revoked
    assert await destinations.destinations_of(leo) == [leos_destination]
    await accounts.revoke_token(leos_token.id, account_id=leo, purpose="dicomweb")
    await destinations.delete_destination(leos_destination.id, account_id=leo)
    assert (await accounts.tokens_of(leo, "dicomweb"))[0].revoked
    assert await destinations.destinations_of(leo) == []
    assert len(await destinations.destinations_of(marie)) == 1


async def test_a_sending_is_recorded_from_its_start_to_its_outcome(store: Store) -> None:
    accounts, destinations = AccountStore(store.db), DestinationStore(store.db)
    marie = await account(accounts, "marie")
    to = await destinations.add_destination(
        marie, label="Home", ae_title="WEASIS", host="127.0.0.1", port=11112, calling_ae="TSF"
    )
    send = await destinations.start_send(
        marie, case_id=b"\1" * 16, destination_id=to, now=NOW, total=3
    )
    (started,) = await destinations.sends_of(marie, 20)
    assert (started.state, started.sent, started.done_ms, started.destination) == (
        "sending",
        0,
        None,
        "Home",
    )
    await destinations.finish_send(send, state="done", error="", sent=3, now=NOW + 5)
    await destinations.delete_destination(to, account_id=marie)
    (done,) = await destinations.sends_of(marie, 20)
    assert (done.state, done.sent, done.done_ms, done.destination) == ("done", 3, NOW + 5, "")
