"""A SAML 2.0 identity provider for Portolan's tests, built on PyPI's pysaml2 (which signs with
xmlsec1, as many production IdPs do).

    python idp.py --sp-metadata SP.xml [--port 0]

prints `ready http://127.0.0.1:PORT` once it listens. Endpoints:

- GET  /metadata                the IdP's metadata (entity ID, HTTP-Redirect sign-in, signing cert)
- GET  /sso/redirect            an AuthnRequest (HTTP-Redirect binding): a sign-in form
- POST /login                   the form: answers with pysaml2's HTTP-POST page to the SP's ACS
- POST /control                 JSON: how the next answers are made (see BEHAVIOUR)
- GET  /received                JSON: the AuthnRequests received, as pysaml2 parsed them

Test-only: it signs in whoever the form names, and a test can make it misbehave.
"""

import argparse
import base64
import warnings

warnings.filterwarnings("ignore")  # pysaml2's own deprecation warnings, on every start
import datetime
import html
import json
import os
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, saml
from saml2.config import IdPConfig
from saml2.s_utils import UnknownPrincipal
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID
from saml2.samlp import STATUS_AUTHN_FAILED, STATUS_REQUEST_DENIED
from saml2.server import Server
from saml2.sigver import pre_signature_part
from saml2.xmldsig import DIGEST_SHA1, DIGEST_SHA256, SIG_RSA_SHA1, SIG_RSA_SHA256

# How the next answers are made; POST /control merges a JSON object over it.
BEHAVIOUR = {
    # What is signed: "assertion", "response", "both" or "none".
    "sign": "assertion",
    # Change the e-mail in the signed XML afterwards (a tampered answer).
    "tamper": False,
    # Send an unsigned forged assertion beside the signed one hidden in Extensions (signature
    # wrapping).
    "wrap": False,
    # [old, new] string replacements in the XML before it is signed.
    "edit": [],
    # Refuse the sign-in with this second-level status ("AuthnFailed", "RequestDenied").
    "status": None,
    # Sign with a key that is not the one the metadata names.
    "foreign_key": False,
    # Sign and digest with SHA-1 (pysaml2's own default) instead of SHA-256.
    "sha1": False,
    # The IdP rotated its key: it signs with the second key, and its metadata names that key's
    # certificate instead of the first.
    "rotated": False,
    # An unsolicited (IdP-initiated) signed assertion, put in an unsigned response that claims
    # to answer the SP's request (the response's InResponseTo added after signing).
    "unsolicited": False,
}
RECEIVED = []
PENDING = {}
LOCK = threading.Lock()


def make_key_and_cert(directory, name):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_file = os.path.join(directory, name + ".key")
    cert_file = os.path.join(directory, name + ".crt")
    with open(key_file, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with open(cert_file, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file, base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def build(base, sp_metadata, directory):
    key_file, cert_file, cert_b64 = make_key_and_cert(directory, "idp")
    foreign_key, _, foreign_b64 = make_key_and_cert(directory, "foreign")
    conf = {
        "entityid": base + "/metadata",
        "service": {
            "idp": {
                "name": "Portolan test IdP",
                "endpoints": {"single_sign_on_service": [(base + "/sso/redirect", BINDING_HTTP_REDIRECT)]},
                "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                "policy": {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None}},
            }
        },
        "key_file": key_file,
        "cert_file": cert_file,
        "xmlsec_binary": "/usr/bin/xmlsec1",
        "metadata": {"local": [sp_metadata]},
        "delete_tmpfiles": True,
    }
    cfg = IdPConfig()
    cfg.load(conf)
    def metadata(cert_b64):
        return f"""<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{base}/metadata">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert_b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:NameIDFormat>{NAMEID_FORMAT_EMAILADDRESS}</md:NameIDFormat>
    <md:SingleSignOnService Binding="{BINDING_HTTP_REDIRECT}" Location="{base}/sso/redirect"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
"""
    return Server(config=cfg), {False: metadata(cert_b64), True: metadata(foreign_b64)}, foreign_key


def sign(idp, xml, node_name, node_id, key_file):
    return idp.sec.sign_statement(xml, node_name, key_file=key_file, node_id=node_id)


def answer(idp, foreign_key, key, email, groups):
    with LOCK:
        req, relay = PENDING.pop(key)
        b = dict(BEHAVIOUR)
    args = idp.response_args(req.message, [BINDING_HTTP_POST])
    destination = args["destination"]
    if b["status"]:
        code = {"AuthnFailed": STATUS_AUTHN_FAILED, "RequestDenied": STATUS_REQUEST_DENIED}[b["status"]]
        resp = idp.create_error_response(args["in_response_to"], destination, (code, "The user could not be authenticated (test IdP)."))
        xml = str(resp)
    else:
        identity = {"email": [email], "givenName": ["Sam"], "sn": ["Ell"], "groups": groups}
        name_id = NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=email)
        authn = {"class_ref": saml.AUTHN_PASSWORD, "authn_auth": idp.config.entityid}
        resp = idp.create_authn_response(
            identity, None if b["unsolicited"] else args["in_response_to"], destination, args["sp_entity_id"],
            name_id=name_id, authn=authn, sign_response=False, sign_assertion=False,
        )
        assertion_id = resp.assertion.id
        response_id = resp.id
        algs = {"digest_alg": DIGEST_SHA1 if b["sha1"] else DIGEST_SHA256,
                "sign_alg": SIG_RSA_SHA1 if b["sha1"] else SIG_RSA_SHA256}
        if b["sign"] in ("assertion", "both"):
            resp.assertion.signature = pre_signature_part(assertion_id, idp.sec.my_cert, 1, **algs)
        if b["sign"] in ("response", "both"):
            resp.signature = pre_signature_part(response_id, idp.sec.my_cert, 2, **algs)
        xml = str(resp)
        for old, new in b["edit"]:
            xml = xml.replace(old, new)
        key_file = foreign_key if b["foreign_key"] or b["rotated"] else None
        if b["sign"] in ("assertion", "both"):
            xml = sign(idp, xml, "urn:oasis:names:tc:SAML:2.0:assertion:Assertion", assertion_id, key_file)
        if b["sign"] in ("response", "both"):
            xml = sign(idp, xml, "urn:oasis:names:tc:SAML:2.0:protocol:Response", response_id, key_file)
        if b["tamper"]:
            xml = xml.replace(email, "admin@example.com")
        if b["unsolicited"]:
            xml = xml.replace("<ns0:Response ", f'<ns0:Response InResponseTo="{args["in_response_to"]}" ', 1)
        if b["wrap"]:
            # pysaml2 writes ns0: for the protocol, ns1: for assertions, ns2: for signatures.
            start = xml.index("<ns1:Assertion")
            end = xml.index("</ns1:Assertion>") + len("</ns1:Assertion>")
            signed = xml[start:end]
            forged = signed.replace(assertion_id, "_forged").replace(email, "admin@example.com")
            # The forged one has no signature; the signed one hides in Extensions.
            fs = forged.index("<ns2:Signature")
            fe = forged.index("</ns2:Signature>") + len("</ns2:Signature>")
            forged = forged[:fs] + forged[fe:]
            xml = xml[:start] + "<ns0:Extensions>" + signed + "</ns0:Extensions>" + forged + xml[end:]
    http = idp.apply_binding(BINDING_HTTP_POST, xml, destination, relay, response=True)
    return http["data"]


class Handler(BaseHTTPRequestHandler):
    idp = None
    metadata = {}
    foreign_key = None

    def log_message(self, fmt, *args):
        if os.environ.get("IDP_VERBOSE"):
            sys.stderr.write("idp: " + (fmt % args) + "\n")

    def send(self, status, body, ctype="text/html; charset=utf-8"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def form(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n).decode()
        return raw, {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}

    def do_GET(self):
        u = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        if u.path == "/metadata":
            with LOCK:
                rotated = BEHAVIOUR["rotated"]
            return self.send(200, self.metadata[rotated], "application/samlmetadata+xml")
        if u.path == "/received":
            with LOCK:
                return self.send(200, json.dumps(RECEIVED), "application/json")
        if u.path == "/sso/redirect":
            try:
                req = self.idp.parse_authn_request(q["SAMLRequest"], BINDING_HTTP_REDIRECT)
            except Exception as e:  # noqa: BLE001 - shown to the test
                return self.send(400, f"bad AuthnRequest: {html.escape(repr(e))}")
            m = req.message
            key = base64.urlsafe_b64encode(os.urandom(12)).decode()
            with LOCK:
                PENDING[key] = (req, q.get("RelayState"))
                RECEIVED.append({"id": m.id, "issuer": m.issuer.text, "acs": m.assertion_consumer_service_url,
                                 "destination": m.destination, "relayState": q.get("RelayState")})
            return self.send(200, f"""<!doctype html><html><body><h1>Test IdP sign-in</h1>
<form method="post" action="/login"><input type="hidden" name="key" value="{key}">
<label>E-mail <input name="email" id="idp-email" value="sam@example.com"></label>
<label>Groups <input name="groups" id="idp-groups" value=""></label>
<button type="submit" id="idp-signin">Sign in</button></form></body></html>""")
        return self.send(404, "not found")

    def do_POST(self):
        u = urlparse(self.path)
        raw, f = self.form()
        if u.path == "/control":
            with LOCK:
                BEHAVIOUR.update(json.loads(raw or "{}"))
            return self.send(200, "ok", "text/plain")
        if u.path == "/login":
            groups = [g for g in f.get("groups", "").split(",") if g.strip()]
            try:
                page = answer(self.idp, self.foreign_key, f["key"], f.get("email", ""), groups)
            except (KeyError, UnknownPrincipal) as e:
                return self.send(400, f"no such sign-in: {html.escape(repr(e))}")
            return self.send(200, page)
        return self.send(404, "not found")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sp-metadata", required=True)
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    directory = tempfile.mkdtemp(prefix="portolan-idp-")
    Handler.idp, Handler.metadata, Handler.foreign_key = build(base, a.sp_metadata, directory)
    print(f"ready {base}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
