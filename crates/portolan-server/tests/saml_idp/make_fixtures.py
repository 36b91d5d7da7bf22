"""Regenerate src/sso/saml/fixtures.json: answers of the test IdP (idp.py, pysaml2 + xmlsec1) to
AuthnRequests of an SP at http://127.0.0.1:9 with the organization `acme`, one per behaviour,
for the unit tests of the SAML checks (which set their clock to `issuedAt`).

    target/saml-venv/bin/python crates/portolan-server/tests/saml_idp/make_fixtures.py
"""

import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SP = "http://127.0.0.1:9/ui/sso/saml/metadata?org=acme"
ACS = "http://127.0.0.1:9/ui/sso/saml/acs"
SP_METADATA = f"""<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{SP.replace('&', '&amp;')}">
  <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{ACS}" index="0"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"""
CASES = [
    ("assertion", {}),
    ("response", {"sign": "response"}),
    ("both", {"sign": "both"}),
    ("none", {"sign": "none"}),
    ("tamper", {"tamper": True}),
    ("wrap", {"wrap": True}),
    ("sha1", {"sha1": True}),
    ("error", {"status": "AuthnFailed"}),
    ("foreign", {"foreign_key": True}),
]
DEFAULTS = {"sign": "assertion", "tamper": False, "wrap": False, "status": None, "foreign_key": False, "sha1": False, "edit": []}


def main():
    sp = tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False)
    sp.write(SP_METADATA)
    sp.close()
    idp = subprocess.Popen([sys.executable, os.path.join(HERE, "idp.py"), "--sp-metadata", sp.name], stdout=subprocess.PIPE, text=True)
    base = idp.stdout.readline().split()[1]

    def request(rid):
        xml = (f'<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
               f'ID="{rid}" Version="2.0" IssueInstant="2026-12-06T14:00:00Z" Destination="{base}/sso/redirect" AssertionConsumerServiceURL="{ACS}" '
               f'ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"><saml:Issuer>{SP.replace("&", "&amp;")}</saml:Issuer></samlp:AuthnRequest>')
        c = zlib.compressobj(wbits=-15)
        q = urllib.parse.urlencode({"SAMLRequest": base64.b64encode(c.compress(xml.encode()) + c.flush()).decode(), "RelayState": "rs"})
        page = urllib.request.urlopen(f"{base}/sso/redirect?{q}").read().decode()
        return re.search(r'name="key" value="([^"]+)"', page).group(1)

    def login(key):
        body = urllib.parse.urlencode({"key": key, "email": "sam@example.com", "groups": "platform,sre"}).encode()
        page = urllib.request.urlopen(f"{base}/login", data=body).read().decode()
        return re.search(r'name="SAMLResponse" value="([^"]+)"', page).group(1)

    out = {"idp": base + "/metadata", "sp": SP, "acs": ACS, "issuedAt": int(time.time()),
           "metadata": urllib.request.urlopen(f"{base}/metadata").read().decode(), "responses": {}}
    try:
        for name, b in CASES:
            req = urllib.request.Request(f"{base}/control", data=json.dumps({**DEFAULTS, **b}).encode(), method="POST")
            urllib.request.urlopen(req).read()
            out["responses"][name] = login(request("_req-" + name))
    finally:
        idp.kill()
        os.unlink(sp.name)
    path = os.path.join(HERE, "..", "..", "src", "sso", "saml", "fixtures.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
