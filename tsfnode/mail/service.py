"""The queue's sender: a background task of the node, driven by the node's clock.

It wakes when a notice is queued (``wake``) or when the next queued e-mail is due, and
sends what is due: a notice for a person who chose "immediately" alone, the notices of
a person who chose the daily digest together, once a day at ``[notices] digest_hour``
(UTC). A refusal for good (a 5xx answer) marks the e-mail failed, shown to the operator
on the admin page; a 4xx answer, a timeout or no server is tried again later, the wait
doubling from ``retry_base_s`` up to ``retry_cap_s``, at most ``max_attempts`` times;
while the server cannot be reached the whole queue waits as long. The queue is in the
database, so a restart takes it up where it was.

Each e-mail is marked sent once the server took it; a crash between the two would send
it again on restart, with the same Message-ID (derived from its notices), which mail
programs show once. Logs name the kind of notice and the server's code, never an
address.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Iterable

from tsfnode.clock import Clock
from tsfnode.config import NodeConfig
from tsfnode.logs import log
from tsfnode.mail import smtp
from tsfnode.mail.messages import KINDS, Notice, compose
from tsfnode.store.mail import Contact, MailStore, Queued
from tsfnode.tasks import stop_task

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MAX_SLEEP_S = 60.0


def next_digest(now: int, hour: int) -> int:
    """The next time daily digests go: ``hour`` o'clock UTC, after ``now``."""
    at = now // DAY_MS * DAY_MS + hour * HOUR_MS
    return at if at > now else at + DAY_MS


def backoff_ms(attempts: int, base_s: int, cap_s: int) -> int:
    """The wait after the ``attempts``-th failed attempt: base, doubling, capped."""
    wait_s: int = min(cap_s, base_s * 2 ** min(max(attempts - 1, 0), 30))
    return wait_s * 1000


def base_url(config: NodeConfig) -> str:
    """The node's web address as people reach it, for the links in e-mails."""
    if config.smtp_link_url:
        return config.smtp_link_url.rstrip("/")
    if config.http_public_url:
        return config.http_public_url.rstrip("/")
    return f"http://{config.http_host or '127.0.0.1'}:{config.http_port}"


async def queue_notice(
    mail: MailStore,
    config: NodeConfig,
    contact: Contact,
    key: str,
    notice: Notice,
    now: int,
) -> bool:
    """Queue ``notice`` (known to all by ``key``) for one person, as they chose; not
    committed. False when they want no e-mail, have no address, or it was queued."""
    if notice.kind not in KINDS:
        raise ValueError(f"no e-mail for a notice of kind {notice.kind!r}")
    if not config.smtp_host or contact.mode == "never" or not contact.email:
        return False
    digest = contact.mode == "digest"
    return await mail.queue(
        notice=key,
        account_id=contact.account_id,
        kind=notice.kind,
        case_id=notice.case_id,
        figures=notice.figures,
        digest=digest,
        due_ms=next_digest(now, config.notices_digest_hour) if digest else now,
        now=now,
    )


def _batches(rows: Iterable[Queued]) -> list[list[Queued]]:
    """One e-mail per immediate notice; one per person for the digests due."""
    out: list[list[Queued]] = []
    digests: dict[int, list[Queued]] = {}
    for row in rows:
        if row.digest:
            digests.setdefault(row.account_id, []).append(row)
        else:
            out.append([row])
    return out + list(digests.values())


class MailService:
    def __init__(
        self,
        store: MailStore,
        config: NodeConfig,
        settings: smtp.SmtpSettings | None,
        clock: Clock,
    ) -> None:
        self.store = store
        self.config = config
        self.settings = settings
        self.clock = clock
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._server_failures = 0
        self.paused_until = 0  # the server could not be reached: nothing before then

    async def start(self) -> None:
        if self.settings is not None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        await stop_task(self._task)

    def wake(self) -> None:
        """Look at the queue now (something was queued, or the clock moved)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            sleep_s = MAX_SLEEP_S
            try:
                now = self.clock.now_ms()
                await self.send_due(now)
                upcoming = await self.store.next_due()
                if upcoming is not None:
                    start = max(upcoming, self.paused_until)
                    sleep_s = min(sleep_s, max(0.01, (start - now) / 1000))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not stop the e-mails for good
                log("mail loop error", error=type(exc).__name__, detail=str(exc)[:200])
                sleep_s = 5.0
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), sleep_s)

    async def send_due(self, now: int) -> int:
        """Send what is due at ``now`` (one call at a time); how many e-mails went."""
        if self.settings is None:
            return 0
        async with self._lock:
            if now < self.paused_until:
                return 0
            done = 0
            for batch in _batches(await self.store.due(now)):
                went = await self._send(batch, now)
                if went is None:  # the server cannot be reached: the rest waits too
                    break
                done += went
            return done

    async def _send(self, batch: list[Queued], now: int) -> int | None:
        if self.settings is None:
            return None
        ids = [row.id for row in batch]
        contact = await self.store.contact(batch[0].account_id)
        if contact is None or contact.mode == "never" or not contact.email:
            await self.store.failed(ids, "no address, or e-mail turned off", state="dropped")
            return 0
        notices = [Notice(row.kind, row.case_id, row.figures) for row in batch]
        seed = ",".join(row.notice for row in batch) + f"/{contact.account_id}"
        domain = self.settings.from_address.rpartition("@")[2] or "tsf.invalid"
        message = compose(
            notices,
            lang=contact.language,
            node_name=self.config.name,
            base_url=base_url(self.config),
            from_address=self.settings.from_address,
            to_address=contact.email,
            message_id=f"<{hashlib.sha256(seed.encode()).hexdigest()[:32]}.tsf@{domain}>",
            now_ms=now,
        )
        kind = batch[0].kind if len(batch) == 1 else "digest"
        try:
            await asyncio.to_thread(smtp.send, self.settings, message)
        except smtp.SendError as exc:
            attempts = max(row.attempts for row in batch) + 1
            if exc.permanent or attempts >= self.config.notices_max_attempts:
                await self.store.failed(ids, exc.reason)
                log("e-mail failed", kind=kind, code=exc.code, attempts=attempts)
                return 0
            wait = backoff_ms(
                attempts, self.config.notices_retry_base_s, self.config.notices_retry_cap_s
            )
            await self.store.retry(ids, exc.reason, now + wait)
            log("e-mail deferred", kind=kind, code=exc.code, attempts=attempts, wait_s=wait // 1000)
            if exc.code is None:  # no answer at all: the server is down or unreachable
                self._server_failures += 1
                self.paused_until = now + backoff_ms(
                    self._server_failures,
                    self.config.notices_retry_base_s,
                    self.config.notices_retry_cap_s,
                )
                return None
            return 0
        self._server_failures = 0
        self.paused_until = 0
        await self.store.sent(ids, now)
        log("e-mail sent", kind=kind, notices=len(batch))
        return 1
