"""The SMPP provider against the fake SMSC, over real TCP: bind, submits, the window, keep-alive,
dropped connections, throttling, refused binds, deliver_sm and the time a send may take."""

from __future__ import annotations

import asyncio
import itertools
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from notification.dev.fake_smsc import FakeSmscOptions, RunningFakeSmsc, serve_fake_smsc
from notification.mailings.sms import measure
from notification.messages.models import ErrorKind
from notification.provider import smpp_wire as wire
from notification.provider.base import Outcome, OutgoingMessage, Provider
from notification.provider.smpp import InboundMessage, SmppProvider, SmppSettings
from tests.waiting import wait_for

PHONE = "79001234567"


@pytest.fixture
async def fake_smsc() -> AsyncIterator[RunningFakeSmsc]:
    async with serve_fake_smsc(FakeSmscOptions(system_id="esme", password="secret")) as fake:
        yield fake


def settings_for(fake: RunningFakeSmsc, **changes: Any) -> SmppSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": fake.port,
        "system_id": "esme",
        "password": "secret",
        "source_addr": "ACME",
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.5,
        "response_timeout_s": 5.0,
    }
    return SmppSettings(**(values | changes))


async def value(x: Any) -> Any:
    return x


async def bound_provider(fake: RunningFakeSmsc, **changes: Any) -> SmppProvider:
    provider = SmppProvider("smsc-a", settings_for(fake, **changes))
    await provider.open()
    assert await provider.wait_bound(10), provider.last_error
    return provider


def by_text(fake: RunningFakeSmsc) -> Counter[str]:
    return Counter(submit.text for submit in fake.submits())


async def test_binds_as_transceiver_and_submits_with_the_configured_addresses(fake_smsc: RunningFakeSmsc) -> None:
    fake_smsc.set_options(system_type="VMA")
    provider = await bound_provider(
        fake_smsc, system_type="VMA", source_addr="ACME", source_addr_ton=5, source_addr_npi=0
    )
    try:
        assert isinstance(provider, Provider)
        assert provider.kind == "smpp"
        result = await provider.send(OutgoingMessage(1, PHONE, "Hello"), 5)
    finally:
        await provider.aclose()

    assert result.outcome is Outcome.SENT, result
    (bind,) = fake_smsc.binds()
    assert (bind.command, bind.system_id, bind.system_type, bind.accepted) == ("bind_transceiver", "esme", "VMA", True)
    (submit,) = fake_smsc.submits()
    assert result.provider_message_id == submit.message_id
    assert (submit.source_addr, submit.source_addr_ton, submit.destination_addr) == ("ACME", 5, PHONE)
    assert submit.registered_delivery == 1
    assert fake_smsc.unbinds == 1


@pytest.mark.parametrize(
    ("text", "data_coding"), [("Hello {world} €", wire.DATA_CODING_GSM7), ("Привет, мир", wire.DATA_CODING_UCS2)]
)
async def test_text_goes_as_gsm7_or_ucs2_as_its_encoding_decides(
    fake_smsc: RunningFakeSmsc, text: str, data_coding: int
) -> None:
    provider = await bound_provider(fake_smsc)
    try:
        result = await provider.send(OutgoingMessage(1, PHONE, text), 5)
    finally:
        await provider.aclose()
    assert result.outcome is Outcome.SENT
    (submit,) = fake_smsc.submits()
    assert (submit.data_coding, submit.text, submit.udh) == (data_coding, text, None)


@pytest.mark.parametrize("mode", list(wire.LongText))
async def test_long_text_goes_in_parts_as_the_setting_says(fake_smsc: RunningFakeSmsc, mode: wire.LongText) -> None:
    text = "Длинный текст рассылки. " * 12
    provider = await bound_provider(fake_smsc, long_text=mode)
    try:
        result = await provider.send(OutgoingMessage(1, PHONE, text), 5)
    finally:
        await provider.aclose()

    assert result.outcome is Outcome.SENT, result
    submits = fake_smsc.submits()
    assert "".join(s.text for s in submits) == text
    assert result.provider_message_id == ",".join(s.message_id or "" for s in submits)
    if mode is wire.LongText.PAYLOAD:
        assert [s.payload for s in submits] == [True]
        return
    parts = measure(text).parts
    assert len(submits) == parts > 1
    if mode is wire.LongText.UDH:
        assert [s.udh[3:] if s.udh else None for s in submits] == [
            bytes([submits[0].udh[3] if submits[0].udh else 0, parts, i]) for i in range(1, parts + 1)
        ]
    else:
        assert [s.sar[1:] if s.sar else None for s in submits] == [(parts, i) for i in range(1, parts + 1)]
        assert all(s.udh is None for s in submits)


async def test_submits_are_pipelined_but_never_more_than_the_window(fake_smsc: RunningFakeSmsc) -> None:
    fake_smsc.set_options(latency_ms=5, max_window=10, window_excess="record")
    provider = await bound_provider(fake_smsc, window=10)
    try:
        results = await asyncio.gather(*(provider.send(OutgoingMessage(i, PHONE, f"m{i}"), 30) for i in range(200)))
    finally:
        await provider.aclose()

    assert {r.outcome for r in results} == {Outcome.SENT}
    assert len(fake_smsc.submits()) == 200
    assert fake_smsc.window_violations == 0
    # Exactly the window: submits did wait for one another's answers, yet never one by one.
    assert fake_smsc.max_in_flight == 10


async def test_enquire_link_keeps_an_idle_bind_alive(fake_smsc: RunningFakeSmsc) -> None:
    provider = await bound_provider(fake_smsc, enquire_link_interval_s=0.1)
    try:
        await wait_for(lambda: value(fake_smsc.enquire_links), lambda n: n >= 3, timeout_s=10, interval_s=0.02)
        assert provider.bound
        assert len(fake_smsc.binds()) == 1
    finally:
        await provider.aclose()


async def test_connection_dropped_with_submits_in_flight_loses_nothing_and_repeats_at_most_the_window(
    fake_smsc: RunningFakeSmsc,
) -> None:
    window = 10
    fake_smsc.set_options(latency_ms=20, drop_after_submits=25)
    provider = await bound_provider(fake_smsc, window=window)
    outcomes: Counter[str] = Counter()

    async def deliver(message_id: int) -> None:
        # What the engine does: a transient failure is tried again.
        for _ in range(5):
            result = await provider.send(OutgoingMessage(message_id, PHONE, f"m{message_id}"), 20)
            outcomes[result.error_kind or "sent"] += 1
            if result.outcome is Outcome.SENT:
                return
            assert result.outcome is Outcome.TRANSIENT, result
        pytest.fail(f"message {message_id} never sent")

    try:
        await asyncio.wait_for(asyncio.gather(*(deliver(i) for i in range(100))), 60)
    finally:
        await provider.aclose()

    accepted = Counter(s.text for s in fake_smsc.submits() if s.message_id is not None)
    assert set(accepted) == {f"m{i}" for i in range(100)}
    received_twice = sum(n - 1 for n in by_text(fake_smsc).values())
    # Only submits written and unanswered when the connection dropped may have reached it: some of
    # those written into a socket the SMSC had already closed never did.
    assert 0 < received_twice <= outcomes[ErrorKind.CONNECTION_ERROR] <= window
    assert [b.accepted for b in fake_smsc.binds()] == [True, True]


async def test_throttling_pauses_only_the_throttled_provider() -> None:
    async with (
        serve_fake_smsc(FakeSmscOptions(throttle_rate=1.0)) as throttling,
        serve_fake_smsc(FakeSmscOptions()) as calm,
    ):
        slowed = await bound_provider(throttling, throttle_pause_s=0.5)
        other = await bound_provider(calm)
        try:
            first = await slowed.send(OutgoingMessage(1, PHONE, "a"), 5)
            assert first.outcome is Outcome.TRANSIENT
            assert (first.error_kind, first.status_code) == (ErrorKind.SMPP_THROTTLED, wire.ESME_RTHROTTLED)
            assert first.retry_after_s == 0.5

            # Held: answered at once without a submit, while the other provider sends freely.
            held = await slowed.send(OutgoingMessage(2, PHONE, "b"), 5)
            assert held.error_kind is ErrorKind.SMPP_THROTTLED
            assert held.retry_after_s is not None
            assert 0 < held.retry_after_s <= 0.5
            assert len(throttling.submits()) == 1
            others = await asyncio.gather(*(other.send(OutgoingMessage(i, PHONE, "c"), 5) for i in range(20)))
            assert {r.outcome for r in others} == {Outcome.SENT}

            throttling.set_options(throttle_rate=0.0)
            await wait_for(lambda: value(slowed.held_for_s), lambda s: s == 0, timeout_s=5, interval_s=0.02)
            again = await slowed.send(OutgoingMessage(2, PHONE, "b"), 5)
            assert again.outcome is Outcome.SENT
        finally:
            await slowed.aclose()
            await other.aclose()


async def test_throttling_in_a_row_doubles_the_pause(fake_smsc: RunningFakeSmsc) -> None:
    fake_smsc.set_options(throttle_rate=1.0)
    provider = await bound_provider(fake_smsc, throttle_pause_s=0.05, throttle_pause_max_s=0.15)
    try:
        pauses = []
        for i in range(4):
            await wait_for(lambda: value(provider.held_for_s), lambda s: s == 0, timeout_s=5, interval_s=0.01)
            pauses.append((await provider.send(OutgoingMessage(i, PHONE, "x"), 5)).retry_after_s)
    finally:
        await provider.aclose()
    assert pauses == [0.05, 0.1, 0.15, 0.15]


async def test_a_refused_bind_is_a_clear_transient_error_and_binding_is_retried_with_growing_pauses(
    fake_smsc: RunningFakeSmsc,
) -> None:
    provider = SmppProvider("smsc-a", settings_for(fake_smsc, password="wrong", reconnect_min_s=0.1))
    await provider.open()
    try:
        refused = await wait_for(lambda: value(fake_smsc.binds()), lambda b: len(b) >= 4, timeout_s=15)
        assert {b.status for b in refused} == {wire.ESME_RINVPASWD}
        result = await provider.send(OutgoingMessage(1, PHONE, "x"), 0.2)
        assert result.outcome is Outcome.TRANSIENT
        assert result.error_kind in {ErrorKind.SMPP_BIND, ErrorKind.DEADLINE}
        assert provider.last_error == "bind refused: ESME_RINVPASWD"
        assert "wrong" not in repr(provider.settings)
        gaps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(refused)]
        assert gaps[2] > gaps[0] * 1.5, gaps

        fake_smsc.set_options(password="wrong")
        assert await provider.wait_bound(10)
        assert (await provider.send(OutgoingMessage(1, PHONE, "x"), 5)).outcome is Outcome.SENT
    finally:
        await provider.aclose()


async def test_binds_beyond_the_smsc_limit_are_refused(fake_smsc: RunningFakeSmsc) -> None:
    fake_smsc.set_options(max_binds=1)
    first = await bound_provider(fake_smsc)
    second = SmppProvider("smsc-a", settings_for(fake_smsc))
    await second.open()
    try:
        await wait_for(lambda: value(second.last_error), lambda e: e == "bind refused: ESME_RALYBND", timeout_s=10)
        assert fake_smsc.max_binds_seen == 1
    finally:
        await second.aclose()
        await first.aclose()


async def test_a_refused_submit_is_classified_by_its_command_status(fake_smsc: RunningFakeSmsc) -> None:
    provider = await bound_provider(fake_smsc)
    try:
        fake_smsc.set_options(status_rates={wire.ESME_RINVDSTADR: 1.0})
        invalid = await provider.send(OutgoingMessage(1, PHONE, "x"), 5)
        fake_smsc.set_options(status_rates={wire.ESME_RSYSERR: 1.0})
        system_error = await provider.send(OutgoingMessage(2, PHONE, "x"), 5)
        fake_smsc.set_options(status_rates={wire.ESME_RMSGQFUL: 1.0})
        queue_full = await provider.send(OutgoingMessage(3, PHONE, "x"), 5)
    finally:
        await provider.aclose()
    assert (invalid.outcome, invalid.error_kind, invalid.status_code) == (
        Outcome.PERMANENT,
        ErrorKind.SMPP_STATUS,
        wire.ESME_RINVDSTADR,
    )
    assert invalid.error == "SMSC answered ESME_RINVDSTADR"
    assert (system_error.outcome, system_error.error_kind) == (Outcome.TRANSIENT, ErrorKind.SMPP_STATUS)
    assert (queue_full.outcome, queue_full.error_kind) == (Outcome.TRANSIENT, ErrorKind.SMPP_THROTTLED)


async def test_a_retried_long_text_sends_only_the_parts_not_yet_accepted(fake_smsc: RunningFakeSmsc) -> None:
    text = "Часть за частью. " * 10
    provider = await bound_provider(fake_smsc)
    try:
        fake_smsc.set_options(drop_after_submits=2)
        first = await provider.send(OutgoingMessage(1, PHONE, text), 10)
        assert first.error_kind is ErrorKind.CONNECTION_ERROR
        second = await provider.send(OutgoingMessage(1, PHONE, text), 10)
    finally:
        await provider.aclose()
    assert second.outcome is Outcome.SENT
    submits = fake_smsc.submits()
    udhs = [s.udh for s in submits]
    # Part 1 accepted once, part 2 cut with its connection and sent again, part 3 once; one reference.
    assert [u[5] if u else 0 for u in udhs] == [1, 2, 2, 3]
    assert len({u[3] if u else 0 for u in udhs}) == 1
    accepted = [s.message_id for s in submits if s.message_id]
    assert second.provider_message_id == ",".join(accepted)


async def test_deliver_sm_is_answered_only_after_the_hook_returns(fake_smsc: RunningFakeSmsc) -> None:
    entered = asyncio.Event()
    release = asyncio.Event()
    seen: list[InboundMessage] = []

    async def store(message: InboundMessage) -> None:
        seen.append(message)
        entered.set()
        await release.wait()

    provider = SmppProvider("smsc-a", settings_for(fake_smsc), on_deliver=store)
    await provider.open()
    try:
        assert await provider.wait_bound(10)
        fake_smsc.send_mo("79007654321", "STOP", destination_addr="ACME")
        await asyncio.wait_for(entered.wait(), 10)
        # A full submit round trip on the same connection while the hook still works: the link is
        # read, the deliver_sm is not answered.
        assert (await provider.send(OutgoingMessage(1, PHONE, "x"), 5)).outcome is Outcome.SENT
        (pending,) = fake_smsc.delivers()
        assert pending.answer_status is None

        release.set()
        (answered,) = await wait_for(
            lambda: value(fake_smsc.delivers()), lambda d: d[0].answer_status is not None, timeout_s=10
        )
        assert answered.answer_status == wire.ESME_ROK
        assert answered.answered_at is not None
    finally:
        await provider.aclose()
    (mo,) = seen
    assert (mo.text, mo.source_addr, mo.is_receipt) == ("STOP", "79007654321", False)


async def test_a_receipt_reaches_the_hook_with_its_ids_and_a_failing_hook_makes_the_smsc_retry(
    fake_smsc: RunningFakeSmsc,
) -> None:
    seen: list[InboundMessage] = []
    fail = True

    async def store(message: InboundMessage) -> None:
        if fail:
            raise RuntimeError("database unavailable")
        seen.append(message)

    provider = SmppProvider("smsc-a", settings_for(fake_smsc), on_deliver=store)
    await provider.open()
    try:
        assert await provider.wait_bound(10)
        sent = await provider.send(OutgoingMessage(1, PHONE, "Hello"), 5)
        assert sent.provider_message_id is not None
        fake_smsc.send_receipt(sent.provider_message_id)
        (refused,) = await wait_for(
            lambda: value(fake_smsc.delivers()), lambda d: bool(d) and d[0].answer_status is not None, timeout_s=10
        )
        assert refused.answer_status == wire.ESME_RX_T_APPN
        fail = False
        fake_smsc.send_receipt(sent.provider_message_id)
        await wait_for(lambda: value(seen), bool, timeout_s=10)
    finally:
        await provider.aclose()
    (receipt,) = seen
    assert receipt.is_receipt
    assert receipt.receipted_message_id == sent.provider_message_id
    assert receipt.message_state == 2
    assert receipt.receipt["stat"] == "DELIVRD"
    assert receipt.receipt["err"] == "000"
    assert receipt.receipt["id"] == sent.provider_message_id


async def test_fake_smsc_sends_receipts_by_itself_some_undelivered(fake_smsc: RunningFakeSmsc) -> None:
    fake_smsc.set_options(receipts=True, receipt_delay_ms=10, undelivered_rate=0.5, seed=3)
    seen: list[InboundMessage] = []

    async def store(message: InboundMessage) -> None:
        seen.append(message)

    provider = SmppProvider("smsc-a", settings_for(fake_smsc), on_deliver=store)
    await provider.open()
    try:
        assert await provider.wait_bound(10)
        await asyncio.gather(*(provider.send(OutgoingMessage(i, PHONE, f"m{i}"), 5) for i in range(20)))
        await wait_for(lambda: value(len(seen)), lambda n: n == 20, timeout_s=10)
    finally:
        await provider.aclose()
    states = Counter(r.receipt["stat"] for r in seen)
    assert set(states) == {"DELIVRD", "UNDELIV"}


async def test_no_time_left_means_no_submit(fake_smsc: RunningFakeSmsc) -> None:
    provider = await bound_provider(fake_smsc)
    try:
        result = await provider.send(OutgoingMessage(1, PHONE, "x"), 0)
        assert (result.outcome, result.error_kind) == (Outcome.TRANSIENT, ErrorKind.DEADLINE)
        assert fake_smsc.submits() == []

        fake_smsc.set_options(latency_ms=2000)
        started = time.monotonic()
        late = await provider.send(OutgoingMessage(2, PHONE, "x"), 0.3)
        elapsed = time.monotonic() - started
    finally:
        await provider.aclose()
    assert late.error_kind is ErrorKind.DEADLINE
    assert 0.3 <= elapsed < 1.0


async def test_a_send_waits_for_the_bind_only_as_long_as_it_has(fake_smsc: RunningFakeSmsc) -> None:
    fake_smsc.set_options(refuse_binds=True)
    provider = SmppProvider("smsc-a", settings_for(fake_smsc))
    await provider.open()
    try:
        started = time.monotonic()
        result = await provider.send(OutgoingMessage(1, PHONE, "x"), 0.4)
        elapsed = time.monotonic() - started
    finally:
        await provider.aclose()
    assert result.outcome is Outcome.TRANSIENT
    assert elapsed < 1.0
    assert fake_smsc.submits() == []


async def test_a_connection_cut_on_demand_is_bound_again(fake_smsc: RunningFakeSmsc) -> None:
    provider = await bound_provider(fake_smsc)
    try:
        fake_smsc.drop_connections().result(5)
        await wait_for(lambda: value(fake_smsc.binds()), lambda b: len(b) == 2, timeout_s=10)
        assert await provider.wait_bound(10)
        assert (await provider.send(OutgoingMessage(1, PHONE, "x"), 5)).outcome is Outcome.SENT
        assert provider.binds_made == 2
    finally:
        await provider.aclose()


async def test_fake_smsc_throttles_submits_beyond_its_window() -> None:
    async with serve_fake_smsc(FakeSmscOptions(max_window=5, latency_ms=20)) as fake:
        provider = await bound_provider(fake, window=8, throttle_pause_s=0.01)
        try:
            results = await asyncio.gather(*(provider.send(OutgoingMessage(i, PHONE, "x"), 5) for i in range(8)))
        finally:
            await provider.aclose()
    assert Counter(r.error_kind for r in results) == {None: 5, ErrorKind.SMPP_THROTTLED: 3}
    assert fake.window_violations == 3


async def test_fake_smsc_duplicates_receipts_and_sends_them_out_of_order(fake_smsc: RunningFakeSmsc) -> None:
    fake_smsc.set_options(receipts=True, receipt_delay_ms=30, duplicate_rate=0.5, out_of_order=True, seed=5)
    seen: list[InboundMessage] = []

    async def store(message: InboundMessage) -> None:
        seen.append(message)

    provider = SmppProvider("smsc-a", settings_for(fake_smsc), on_deliver=store)
    await provider.open()
    try:
        assert await provider.wait_bound(10)
        sent = [await provider.send(OutgoingMessage(i, PHONE, f"m{i}"), 5) for i in range(20)]
        ids = [r.provider_message_id for r in sent]
        await wait_for(lambda: value({m.receipted_message_id for m in seen}), lambda s: s == set(ids), timeout_s=10)
    finally:
        await provider.aclose()
    order = [m.receipted_message_id for m in seen]
    assert len(order) > len(ids)
    assert order[: len(ids)] != ids


def test_fake_smsc_options_refuse_rates_beyond_one() -> None:
    with pytest.raises(ValueError, match="must not add up"):
        FakeSmscOptions(throttle_rate=0.6, status_rates={wire.ESME_RSYSERR: 0.6})


async def test_a_send_with_hours_left_waits_for_a_missing_bind_no_longer_than_the_response_timeout(
    fake_smsc: RunningFakeSmsc,
) -> None:
    fake_smsc.set_options(password="other")
    provider = SmppProvider("smsc-a", settings_for(fake_smsc, response_timeout_s=0.3))
    await provider.open()
    try:
        await wait_for(lambda: value(provider.last_bind_status), lambda s: s is not None, timeout_s=10)
        started = time.monotonic()
        result = await provider.send(OutgoingMessage(1, PHONE, "x"), 3600)
        elapsed = time.monotonic() - started
    finally:
        await provider.aclose()
    assert (result.outcome, result.error_kind, result.status_code) == (
        Outcome.TRANSIENT,
        ErrorKind.SMPP_BIND,
        wire.ESME_RINVPASWD,
    )
    assert result.error == "not bound: bind refused: ESME_RINVPASWD"
    assert elapsed < 1.0


async def test_binds_over_tls_checking_the_smsc_certificate(tmp_path: Path) -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path / "smsc-ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    async with serve_fake_smsc(FakeSmscOptions(), tls=server_context) as fake:
        trusting = await bound_provider(fake, tls=True, tls_ca_file=str(ca_file))
        doubting = SmppProvider("smsc-b", settings_for(fake, tls=True))
        await doubting.open()
        try:
            assert (await trusting.send(OutgoingMessage(1, PHONE, "over TLS"), 5)).outcome is Outcome.SENT
            await wait_for(lambda: value(doubting.last_error), lambda e: e is not None, timeout_s=10)
            assert doubting.last_error == "cannot bind: SSLCertVerificationError"
        finally:
            await trusting.aclose()
            await doubting.aclose()
    assert [s.text for s in fake.submits()] == ["over TLS"]
    assert [b.accepted for b in fake.binds()] == [True]


async def test_closing_lets_a_running_hook_finish_and_answers_it_before_unbinding(fake_smsc: RunningFakeSmsc) -> None:
    entered = asyncio.Event()
    stored: list[str] = []

    async def store(message: InboundMessage) -> None:
        entered.set()
        await asyncio.sleep(0.2)
        stored.append(message.text)

    provider = SmppProvider("smsc-a", settings_for(fake_smsc), on_deliver=store)
    await provider.open()
    assert await provider.wait_bound(10)
    fake_smsc.send_mo("79007654321", "STOP")
    await asyncio.wait_for(entered.wait(), 10)
    await provider.aclose()
    assert stored == ["STOP"]
    (answered,) = fake_smsc.delivers()
    assert answered.answer_status == wire.ESME_ROK
    assert fake_smsc.unbinds == 1


@pytest.mark.parametrize("host", ["smsc.example.net", "203.0.113.7"])
def test_an_smsc_off_this_host_needs_tls_or_an_explicit_plaintext(host: str) -> None:
    # The bind carries the password and each submit a phone and a text: never in cleartext by default.
    with pytest.raises(ValueError, match="tls must be true for an SMSC off this host"):
        SmppSettings(host=host, system_id="esme", password="secret")
    assert SmppSettings(host=host, system_id="esme", password="secret", tls=True).tls
    assert SmppSettings(host=host, system_id="esme", password="secret", plaintext=True).plaintext
    for loopback in ("127.0.0.1", "::1", "localhost"):
        assert not SmppSettings(host=loopback, system_id="esme", password="secret").tls
