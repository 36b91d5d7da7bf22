//! The identity provider's `<samlp:Response>` checked ([`check`]): its status, then the one
//! assertion, trusted only when the response or the assertion itself carries a valid enveloped
//! signature (`dsig.rs`) with a certificate of the IdP's metadata; then issuer, destination,
//! audience, the bearer confirmation (recipient, `InResponseTo`, expiry) and the conditions'
//! validity window against this server's clock with [`LEEWAY_SECS`]. Every refusal is a
//! [`Failure`] in words, with what an admin should change.
//!
//! Values are read only from the verified elements: an ID may occur once in the document (a
//! second element with a signed element's ID is how signature-wrapping attacks smuggle an
//! unsigned assertion past a verifier), and the assertion read is the one the signature covers.

use roxmltree::Node;

use super::dsig::{self, DsigError};
use crate::sso::{Failure, LEEWAY_SECS};

pub const PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
/// Largest `SAMLResponse` accepted, base64 (a real one is a few KiB to some tens).
pub const MAX_RESPONSE: usize = 512 * 1024;
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// What the response must match.
pub struct Expect<'a> {
    /// The IdP's entity ID (its metadata's `entityID`).
    pub idp_entity_id: &'a str,
    /// This organization's service provider entity ID (the audience).
    pub sp_entity_id: &'a str,
    /// Where the response was posted (`Destination`, `Recipient`).
    pub acs_url: &'a str,
    /// The ID of the AuthnRequest this browser sent.
    pub request_id: &'a str,
    /// The IdP's signing certificates (DER).
    pub certs: &'a [Vec<u8>],
    /// This server's clock, seconds since the epoch.
    pub now: i64,
}

/// What a verified assertion says.
#[derive(Debug, Clone, PartialEq)]
pub struct Asserted {
    pub name_id: String,
    pub name_id_format: Option<String>,
    /// Each attribute's `Name` (and `FriendlyName`, when given) with its values.
    pub attributes: Vec<(String, Option<String>, Vec<String>)>,
}

impl Asserted {
    /// The values of the attribute named `name` (by `Name` or `FriendlyName`).
    pub fn values(&self, name: &str) -> Option<&[String]> {
        self.attributes.iter().find(|(n, f, _)| n == name || f.as_deref() == Some(name)).map(|(_, _, v)| v.as_slice())
    }
}

fn bad(m: impl Into<String>) -> Failure {
    Failure::new(502, m)
}

fn is<'a>(n: &Node<'a, '_>, ns: &str, name: &str) -> bool {
    n.is_element() && n.tag_name().namespace() == Some(ns) && n.tag_name().name() == name
}

fn children<'a, 'i>(n: Node<'a, 'i>, ns: &'static str, name: &'static str) -> impl Iterator<Item = Node<'a, 'i>> {
    n.children().filter(move |c| is(c, ns, name))
}

fn child<'a, 'i>(n: Node<'a, 'i>, ns: &'static str, name: &'static str) -> Option<Node<'a, 'i>> {
    children(n, ns, name).next()
}

fn text(n: Node<'_, '_>) -> String {
    n.children().filter(|c| c.is_text()).filter_map(|c| c.text()).collect::<String>().trim().to_string()
}

/// An xs:dateTime as seconds since the epoch.
fn instant(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.timestamp())
}

const SKEW: &str = "If the identity provider issued it just now, this server's clock and the provider's differ: synchronise both (NTP).";

/// A time window check: `not_before` / `not_on_or_after` of `what`.
fn window(what: &str, n: Node<'_, '_>, now: i64) -> Result<(), Failure> {
    if let Some(nb) = n.attribute("NotBefore") {
        let t = instant(nb).ok_or_else(|| bad(format!("The {what}'s NotBefore {nb:?} is not a time.")))?;
        if t > now + LEEWAY_SECS {
            return Err(bad(format!(
                "The {what} becomes valid only {} s from now by this server's clock (allowed clock difference: {LEEWAY_SECS} s).",
                t - now
            ))
            .hint(SKEW));
        }
    }
    if let Some(na) = n.attribute("NotOnOrAfter") {
        let t = instant(na).ok_or_else(|| bad(format!("The {what}'s NotOnOrAfter {na:?} is not a time.")))?;
        if now >= t + LEEWAY_SECS {
            return Err(bad(format!(
                "The {what} expired {} s ago by this server's clock (allowed clock difference: {LEEWAY_SECS} s).",
                now - t
            ))
            .hint(SKEW));
        }
    }
    Ok(())
}

/// What a second-level status code means, for the admin.
fn status_hint(code: &str) -> &'static str {
    match code.rsplit(':').next().unwrap_or("") {
        "AuthnFailed" => {
            "The identity provider could not authenticate the person: wrong credentials, or a failed second factor."
        }
        "RequestDenied" => {
            "The identity provider refused the request: usually the person is not assigned to this application there."
        }
        "InvalidNameIDPolicy" => {
            "The identity provider cannot send the requested NameID format: allow an unspecified or e-mail NameID for this application."
        }
        "NoPassive" | "NoAuthnContext" => {
            "The identity provider could not sign the person in the way requested: check the application's authentication policy there."
        }
        "UnknownPrincipal" => "The identity provider does not know this person.",
        "RequestUnsupported" | "UnsupportedBinding" => {
            "The identity provider does not accept Portolan's request: check that the application at the provider uses the HTTP-POST binding for the assertion consumer URL shown on the organization page."
        }
        "VersionMismatch" => "The identity provider does not speak SAML 2.0 for this application.",
        _ => "Look the status code up in the identity provider's logs.",
    }
}

/// Check a base64 `SAMLResponse` (HTTP-POST binding) against `expect`.
pub fn check(saml_response: &str, expect: &Expect<'_>) -> Result<Asserted, Failure> {
    if saml_response.len() > MAX_RESPONSE {
        return Err(Failure::new(
            400,
            format!(
                "The identity provider's answer is larger than {} KiB, which no sign-in needs.",
                MAX_RESPONSE / 1024
            ),
        ));
    }
    let clean: String = saml_response.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, clean)
        .map_err(|_| Failure::new(400, "The identity provider's answer (SAMLResponse) is not base64."))?;
    let xml =
        String::from_utf8(bytes).map_err(|_| Failure::new(400, "The identity provider's answer is not UTF-8 XML."))?;
    let doc = dsig::parse(&xml)
        .map_err(|e| Failure::new(400, format!("The identity provider's answer was refused: {e}.")))?;
    let response = doc.root_element();
    if !is(&response, PROTOCOL, "Response") {
        return Err(bad(format!(
            "The identity provider's answer is a {:?}, not a SAML 2.0 Response.",
            response.tag_name().name()
        )));
    }
    // IDs are unique in the document, or no signature over one of them means anything.
    let mut ids = std::collections::HashSet::new();
    for n in doc.descendants().filter(|n| n.is_element()) {
        for a in n.attributes().filter(|a| matches!(a.name(), "ID" | "Id" | "AssertionID")) {
            if !ids.insert(a.value()) {
                return Err(bad(format!(
                    "The identity provider's answer holds the ID {:?} twice: it was tampered with (signature wrapping).",
                    a.value()
                )));
            }
        }
    }
    let Some(status) = child(response, PROTOCOL, "Status") else {
        return Err(bad("The identity provider's response has no Status (SAML requires one)."));
    };
    {
        let top = child(status, PROTOCOL, "StatusCode");
        let code = top.and_then(|c| c.attribute("Value")).unwrap_or("");
        if code != SUCCESS {
            let sub = top.and_then(|c| child(c, PROTOCOL, "StatusCode")).and_then(|c| c.attribute("Value"));
            let mut f =
                Failure::new(400, "The identity provider did not sign you in.").hint(status_hint(sub.unwrap_or(code)));
            f.provider_error = Some(match sub {
                Some(s) => format!("{code} / {s}"),
                None => code.to_string(),
            });
            f.provider_description = child(status, PROTOCOL, "StatusMessage").map(text).filter(|s| !s.is_empty());
            return Err(f);
        }
    }
    if let Some(d) = response.attribute("Destination")
        && d != expect.acs_url
    {
        return Err(bad(format!("The response was sent to {d:?}, not to this server's {:?}.", expect.acs_url))
            .hint("Set the assertion consumer (ACS) URL at the identity provider to the one on the organization page; behind a proxy, set PORTOLAN_PUBLIC_URL."));
    }
    match response.attribute("InResponseTo") {
        None => {
            return Err(Failure::new(400, "The identity provider sent a sign-in that Portolan did not ask for (IdP-initiated, no InResponseTo).").hint(
                "Start the sign-in from Portolan's sign-in page (single sign-on); IdP-initiated sign-in is not accepted.",
            ));
        }
        Some(r) if r != expect.request_id => {
            return Err(Failure::new(400, "The identity provider's answer belongs to another sign-in (InResponseTo differs): it was replayed, or started in another tab.").hint("Start again from the sign-in page."));
        }
        Some(_) => {}
    }
    if let Some(i) = child(response, ASSERTION, "Issuer").map(text)
        && i != expect.idp_entity_id
    {
        return Err(issuer_failure(&i, expect.idp_entity_id));
    }
    if child(response, ASSERTION, "EncryptedAssertion").is_some() {
        return Err(bad("The identity provider encrypted the assertion, which Portolan does not decrypt.")
            .hint("Turn assertion encryption off for this application at the identity provider (the response travels over TLS)."));
    }
    let assertions: Vec<_> = children(response, ASSERTION, "Assertion").collect();
    let [assertion] = assertions.as_slice() else {
        return Err(bad(format!("The response holds {} assertions; Portolan accepts exactly one.", assertions.len())));
    };
    let assertion = *assertion;
    let explain = |what: &str, e: DsigError| {
        let f = bad(format!("The identity provider's {what} was refused: {e}."));
        match e {
            DsigError::Signature => f.hint("The identity provider signs with a certificate its metadata on the organization page does not hold: load its current metadata again (certificates rotate)."),
            DsigError::Digest => f.hint("Something between the identity provider and this server changed the answer; if it repeats, ask the provider's administrator."),
            _ => f.hint("Have the identity provider sign the response or the assertion with RSA-SHA256."),
        }
    };
    match dsig::verify_enveloped(response, expect.certs) {
        // A signed response must say where it was sent (SAML bindings §3.5.5.2), or it could
        // be posted to another service provider's ACS.
        Ok(()) if response.attribute("Destination").is_none() => {
            return Err(bad("The identity provider signed the response without a Destination (SAML requires one on a signed response).")
                .hint("Have the identity provider send the response's Destination, or sign only the assertion."));
        }
        Ok(()) => {}
        Err(DsigError::NotSigned) => match dsig::verify_enveloped(assertion, expect.certs) {
            Ok(()) => {}
            Err(DsigError::NotSigned) => {
                return Err(bad("Neither the identity provider's response nor its assertion is signed.")
                    .hint("Have the identity provider sign the assertion (or the whole response)."));
            }
            Err(e) => return Err(explain("assertion", e)),
        },
        Err(e) => return Err(explain("response", e)),
    }
    read_assertion(assertion, expect)
}

fn issuer_failure(got: &str, want: &str) -> Failure {
    bad(format!("The answer was issued by {got:?}, not by the configured identity provider {want:?}."))
        .hint("Load the metadata of the identity provider this application lives at on the organization page.")
}

/// The verified assertion's checks and values.
fn read_assertion(a: Node<'_, '_>, expect: &Expect<'_>) -> Result<Asserted, Failure> {
    let issuer = child(a, ASSERTION, "Issuer").map(text).unwrap_or_default();
    if issuer != expect.idp_entity_id {
        return Err(issuer_failure(&issuer, expect.idp_entity_id));
    }
    let Some(subject) = child(a, ASSERTION, "Subject") else {
        return Err(bad("The assertion has no Subject: it does not say who signed in."));
    };
    let name_id = child(subject, ASSERTION, "NameID");
    let confirmations: Vec<_> =
        children(subject, ASSERTION, "SubjectConfirmation").filter(|c| c.attribute("Method") == Some(BEARER)).collect();
    if confirmations.is_empty() {
        return Err(bad("The assertion has no bearer SubjectConfirmation."));
    }
    // One bearer confirmation that holds is enough; the last refusal explains otherwise.
    let mut last = None;
    let mut confirmed = false;
    for c in confirmations {
        let Some(data) = child(c, ASSERTION, "SubjectConfirmationData") else {
            last = Some(bad("The assertion's bearer confirmation has no SubjectConfirmationData."));
            continue;
        };
        if data.attribute("Recipient") != Some(expect.acs_url) {
            last = Some(bad(format!(
                "The assertion is meant for {:?}, not for this server's {:?}.",
                data.attribute("Recipient").unwrap_or("(no Recipient)"),
                expect.acs_url
            ))
            .hint("Set the assertion consumer (ACS) URL at the identity provider to the one on the organization page."));
            continue;
        }
        // Required, not only compared when present: the response's own InResponseTo may be
        // unsigned, and an unsolicited assertion (no InResponseTo) put in a response made for
        // this browser's request would otherwise sign in whoever it names.
        if data.attribute("InResponseTo") != Some(expect.request_id) {
            let why = match data.attribute("InResponseTo") {
                None => {
                    "The assertion does not say which sign-in it answers (its confirmation has no InResponseTo): it was not made for a sign-in Portolan started."
                }
                Some(_) => "The assertion belongs to another sign-in (InResponseTo differs).",
            };
            last = Some(Failure::new(400, why).hint("Start again from the sign-in page."));
            continue;
        }
        if data.attribute("NotOnOrAfter").is_none() {
            last = Some(bad("The assertion's bearer confirmation has no NotOnOrAfter (SAML requires one)."));
            continue;
        }
        if let Err(f) = window("assertion's confirmation", data, expect.now) {
            last = Some(f);
            continue;
        }
        confirmed = true;
        break;
    }
    if !confirmed {
        return Err(last.unwrap_or_else(|| bad("The assertion's subject is not confirmed.")));
    }
    // The audience is what ties an assertion to this organization (the ACS is shared and
    // requests are unsigned), so an assertion must name one.
    let audience_hint = "Set the audience (SP entity ID) of the application at the identity provider to the one on the organization page.";
    let Some(cond) = child(a, ASSERTION, "Conditions") else {
        return Err(bad("The assertion has no Conditions, so no audience: it is not tied to this organization.")
            .hint(audience_hint));
    };
    if child(cond, ASSERTION, "AudienceRestriction").is_none() {
        return Err(bad("The assertion names no audience (AudienceRestriction): it is not tied to this organization.")
            .hint(audience_hint));
    }
    {
        window("assertion", cond, expect.now)?;
        for r in children(cond, ASSERTION, "AudienceRestriction") {
            let audiences: Vec<String> = children(r, ASSERTION, "Audience").map(text).collect();
            if !audiences.iter().any(|x| x == expect.sp_entity_id) {
                return Err(bad(format!(
                    "The assertion is meant for the audience {audiences:?}, not for this organization's service provider {:?}.",
                    expect.sp_entity_id
                ))
                .hint("Set the audience (SP entity ID) of the application at the identity provider to the one on the organization page."));
            }
        }
    }
    if child(a, ASSERTION, "AuthnStatement").is_none() {
        return Err(bad("The assertion has no AuthnStatement: it does not say the person signed in."));
    }
    let mut attributes = Vec::new();
    for stmt in children(a, ASSERTION, "AttributeStatement") {
        for at in children(stmt, ASSERTION, "Attribute").take(500) {
            let values = children(at, ASSERTION, "AttributeValue").map(text).take(super::super::MAX_GROUPS).collect();
            attributes.push((
                at.attribute("Name").unwrap_or("").to_string(),
                at.attribute("FriendlyName").map(str::to_string),
                values,
            ));
        }
    }
    Ok(Asserted {
        name_id: name_id.map(text).unwrap_or_default(),
        name_id_format: name_id.and_then(|n| n.attribute("Format")).map(str::to_string),
        attributes,
    })
}
