"""The access points the tests play, registered in Conecta. The simulators are tests/support/chilli.py
(CoovaChilli) and tests/support/mikrotik.py (a MikroTik hotspot), on the shared base in
tests/support/simbase.py with their RFC 5176 side in tests/support/simcoa.py."""

from __future__ import annotations

from tests.support.builders import SECRET
from tests.support.simbase import SimNas

COOVA_UAM_SECRET = "uam-secret-for-tests-4567"
COOVA_NAS = "ap-coova"          # its name in Conecta
COOVA_NASID = "nas01"           # what it calls itself (HS_NASID; chilli's default is nas01)
MIKROTIK_NAS = "ap-mikrotik"


def register_sim_nas(db_factory, policies, communities: str = "Centro\nSan José\nEjido El Mirador") -> dict[str, int]:
    """Site "Parque Central" (parque policy) with a Coova NAS at 127.0.0.2 (uam secret; it calls itself
    COOVA_NASID) and a MikroTik at 127.0.0.1: the browser reaches the portal from 127.0.0.1, so the
    MikroTik is also identified by the source address. Return {vendor: nas id}."""
    from portal.core import sites
    from portal.core.model import Site
    with db_factory() as db:
        site = sites.add_site(db, policies, "Parque Central", "park", "parque", planned_gb_month=100)
        site.communities = communities
        coova, _ = sites.add_nas(db, sites.NasSpec(COOVA_NAS, "Parque Central", "127.0.0.2", SECRET, "coova",
                                                   uam_secret=COOVA_UAM_SECRET, nas_identifier=COOVA_NASID),
                                 production=False)
        mikrotik, _ = sites.add_nas(db, sites.NasSpec(MIKROTIK_NAS, "Parque Central", "127.0.0.1", SECRET,
                                                      "mikrotik"), production=False)
        db.commit()
        assert db.get(Site, site.id).communities
        return {"coova": coova.id, "mikrotik": mikrotik.id}


def use_coa_port(db_factory, sim: SimNas, nas_name: str) -> SimNas:
    """Register the simulator's RFC 5176 port (an ephemeral one, known only once it runs) as the CoA
    port of its NAS; return the simulator."""
    from sqlalchemy import update

    from portal.core.model import Nas
    with db_factory.begin() as db:
        db.execute(update(Nas).where(Nas.name == nas_name).values(coa_port=sim.coa_port))
    return sim
