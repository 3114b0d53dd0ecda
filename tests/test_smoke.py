from pyrad import packet

from tests.support.builders import add_user
from tests.support.radiusclient import Nas


def test_pap_accept_then_accounting(radius_server, dictionary, db_factory, policies):
    add_user(db_factory, policies, "ana", "anapass123")
    nas = Nas(radius_server, dictionary)
    reply = nas.auth("ana", "anapass123")
    assert reply.code == packet.AccessAccept
    assert nas.acct("Start", "s1", "ana", reply=reply).code == packet.AccountingResponse
