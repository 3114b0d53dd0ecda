"""The portal's tests run with their access points registered: the CoovaChilli and MikroTik simulators
(with the real RADIUS server behind them, when a test asks for one) and an openNDS, a pfSense and a
generic NAS known only by their redirects. The app and its test client are tests/conftest.py's."""

from __future__ import annotations

import pytest

from portal.core import sites
from tests.support.builders import SECRET, settle
from tests.support.chilli import CoovaSim
from tests.support.mikrotik import MikrotikSim
from tests.support.nassim import COOVA_NAS, COOVA_NASID, MIKROTIK_NAS, register_sim_nas, use_coa_port
from tests.support.ndsfas import FASKEY
from tests.support.portal import PORTAL


@pytest.fixture(autouse=True)
def fleet_ids(db_factory, policies) -> dict[str, int]:
    """Every access point the portal tests arrive from, registered before anything else; ids by vendor."""
    ids = register_sim_nas(db_factory, policies)
    with db_factory() as db:
        for name, ip, vendor in (("ap-opennds", "10.9.0.3", "opennds"), ("ap-pfsense", "10.9.0.4", "pfsense"),
                                 ("ap-generic", "10.9.0.5", "generic")):
            fas = (2, FASKEY) if vendor == "opennds" else (None, None)
            # openNDS names its gateway by its address on the clients' side: registered as a login host.
            hosts = "10.77.0.1" if vendor == "opennds" else None
            nas, _ = sites.add_nas(db, sites.NasSpec(name, "Parque Central", ip, SECRET, vendor, login_hosts=hosts,
                                                     fas_level=fas[0], faskey=fas[1]), production=False)
            ids[vendor] = nas.id
        db.commit()
    return ids


@pytest.fixture()
def nas_id(fleet_ids) -> int:
    """The radius_server fixture registers these access points instead of its default one."""
    return fleet_ids["coova"]


@pytest.fixture()
def coova(radius_server, dictionary, db_factory):
    sim = CoovaSim(radius_server.ports, dictionary, PORTAL, COOVA_NASID, radius_source="127.0.0.2",
                   applied=lambda: settle(radius_server))
    yield use_coa_port(db_factory, sim, COOVA_NAS)
    sim.close()


@pytest.fixture()
def mikrotik(radius_server, dictionary, db_factory):
    sim = MikrotikSim(radius_server.ports, dictionary, PORTAL, "MikroTik", applied=lambda: settle(radius_server))
    yield use_coa_port(db_factory, sim, MIKROTIK_NAS)
    sim.close()
