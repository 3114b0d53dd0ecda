"""A person's standing for the citizen pages: which policy applies where they are, and the decision
policies.evaluate makes for it now (the one RADIUS makes), with the opening hours in words."""

from __future__ import annotations

from flask_babel import get_locale
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from policies import Policy
from policies.evaluate import seconds_to_close
from portal.core import quota
from portal.core.model import Session, Site, User
from portal.web.cache import expiring
from portal.web.extensions import db, now, policies, redis_client, settings


@expiring(10.0)
def site_policy_name(site_id: int) -> str:
    """The policy a site gives its visitors (cached: every splash page asks)."""
    site = db.session.get(Site, site_id)
    return site.policy if site else ""


def site_policy(site_id: int | None) -> Policy | None:
    """The policy of a site, for a visitor not yet known."""
    return policies().get(site_policy_name(site_id)) if site_id else None


def policy_for(user: User, site_id: int | None) -> Policy | None:
    """The person's own policy, else the site's (where they are, or where they last were): as RADIUS
    chooses (the user's policy, else the policy of the NAS's site)."""
    if user.policy and user.policy in policies():
        return policies()[user.policy]
    if site_id is None:
        site_id = db.session.scalar(select(Session.site_id).where(Session.user_id == user.id)
                                    .order_by(Session.updated_at.desc()).limit(1))
    return site_policy(site_id)


def standing_of(user: User, site_id: int | None, running: bool = True) -> quota.Standing | None:
    """The person's Standing now (`running`: see quota.standing), or None when no policy applies."""
    policy = policy_for(user, site_id)
    if policy is None:
        return None
    local = now().astimezone(settings().tz)
    lang = str(get_locale() or "es")
    return quota.standing(redis_client(), sessionmaker(db.engine), user.id, policy, local, lang, running)


def hours_of(policy: Policy | None) -> dict | None:
    """Opening hours as the pages show them ('06:00', '23:00', open now or not); None: always open."""
    if policy is None or policy.open is None or policy.close is None:
        return None
    return {"open": policy.open.strftime("%H:%M"), "close": policy.close.strftime("%H:%M"),
            "closed": seconds_to_close(policy, now().astimezone(settings().tz)) == 0}
