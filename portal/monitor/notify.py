"""Delivers the alerts `portal/core/alerts.py` made: e-mail over SMTP and a JSON POST to the webhook, in
a thread of its own so that a slow or dead server never delays a probe. Each attempt is bounded by a
timeout; a failure is retried later (10 s, 1 min, 5 min), then recorded as failed. Every outcome is
written to the alert's row, which the console shows."""

from __future__ import annotations

import logging
import smtplib
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import sessionmaker

from portal.core.metrics import m
from portal.core.model import Alert, utcnow
from portal.core.settings import Settings

log = logging.getLogger("conecta.alerts")
TIMEOUT = 10.0          # seconds for one SMTP or webhook attempt
CLAIM = timedelta(minutes=2)   # a row being sent is not taken by another sender for this long


class SendError(Exception):
    """One attempt failed; the message is short and holds no secret (never the webhook's URL)."""


class Sender(threading.Thread):
    """Sends due alerts every half second while `active()` (this monitor holds the lease)."""

    def __init__(self, settings: Settings, db_factory: sessionmaker, active: Callable[[], bool]) -> None:
        super().__init__(name="alert-sender", daemon=True)
        self.settings, self.db_factory, self.active = settings, db_factory, active
        self.backoff = (10.0, 60.0, 300.0)      # after the 1st, 2nd and 3rd failure; the 4th is final
        self.timeout = TIMEOUT
        self.stopping = threading.Event()
        self.failing = False

    def run(self) -> None:
        """Until stop()."""
        while not self.stopping.wait(0.5):
            if not self.active():
                continue
            try:
                self.send_due()
                self.failing = False
            except Exception as exc:  # noqa: BLE001 - the database may be away; try again soon
                if not self.failing:
                    log.warning("alerts not sent now: %s", type(exc).__name__)
                self.failing = True

    def stop(self) -> None:
        """Finish the attempt under way, then stop."""
        self.stopping.set()
        self.join(self.timeout * 2)

    def send_due(self) -> int:
        """Send every alert that is due; return how many were attempted."""
        done = 0
        while not self.stopping.is_set():
            alert = self._claim(utcnow())
            if alert is None:
                return done
            self._attempt(alert)
            done += 1
        return done

    def _claim(self, now: datetime) -> Alert | None:
        """Take one due alert (a row left `sending` by a sender that died is due again after CLAIM)."""
        with self.db_factory() as db:
            due = db.scalar(select(Alert).where(or_(Alert.status == "pending", Alert.status == "sending"),
                                                Alert.next_attempt_at <= now).order_by(Alert.id).limit(1))
            if due is None:
                return None
            taken = db.execute(update(Alert).where(Alert.id == due.id, Alert.status == due.status,
                                                   Alert.next_attempt_at == due.next_attempt_at)
                               .values(status="sending", next_attempt_at=now + CLAIM)).rowcount
            db.commit()
            return due if taken else None

    def _attempt(self, alert: Alert) -> None:
        try:
            (self._email if alert.channel == "email" else self._webhook)(alert)
        except SendError as exc:
            m().alerts.labels(alert.channel, "failed").inc()
            self._record_failure(alert, str(exc))
            return
        m().alerts.labels(alert.channel, "sent").inc()
        with self.db_factory() as db:
            db.execute(update(Alert).where(Alert.id == alert.id).values(
                status="sent", sent_at=utcnow(), attempts=alert.attempts + 1, last_error=None))
            db.commit()
        log.info("alert %d sent by %s to %s", alert.id, alert.channel, alert.recipient)

    def _record_failure(self, alert: Alert, error: str) -> None:
        attempts = alert.attempts + 1
        final = attempts > len(self.backoff)
        retry = utcnow() + timedelta(seconds=self.backoff[min(attempts, len(self.backoff)) - 1])
        with self.db_factory() as db:
            db.execute(update(Alert).where(Alert.id == alert.id).values(
                status="failed" if final else "pending", attempts=attempts, last_error=error[:200],
                next_attempt_at=retry))
            db.commit()
        log.warning("alert %d by %s to %s failed (attempt %d%s): %s", alert.id, alert.channel, alert.recipient,
                    attempts, ", given up" if final else "", error)

    def _email(self, alert: Alert) -> None:
        s = self.settings
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = s.smtp_from, alert.recipient, alert.subject
        message["Date"], message["Message-ID"] = format_datetime(datetime.now().astimezone()), make_msgid("conecta")
        message.set_content(alert.body)
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=self.timeout) as smtp:
                if s.smtp_starttls:
                    smtp.starttls()
                if s.smtp_user:
                    smtp.login(s.smtp_user, s.smtp_password or "")
                smtp.send_message(message)
        except smtplib.SMTPResponseException as exc:
            raise SendError(f"SMTP {exc.smtp_code}: {_text(exc.smtp_error)}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise SendError(f"SMTP {code}: {_text(text)}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise SendError(f"SMTP: {type(exc).__name__}") from None

    def _webhook(self, alert: Alert) -> None:
        try:
            response = httpx.post(self.settings.alert_webhook_url, content=alert.payload, timeout=self.timeout,
                                  headers={"Content-Type": "application/json", "User-Agent": "conecta-alerts"})
        except httpx.TimeoutException:
            raise SendError("webhook: no answer in time") from None
        except httpx.HTTPError as exc:
            raise SendError(f"webhook: {type(exc).__name__}") from None
        if response.status_code >= 300:
            raise SendError(f"webhook: HTTP {response.status_code}")


def _text(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return " ".join(text.split())[:120]
