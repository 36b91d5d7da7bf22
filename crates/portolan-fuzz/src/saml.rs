//! The `saml_response` target: a SAML response's checks over mutations of pysaml2's signed
//! answers (`portolan_server::fuzzing::saml_response`).

pub const XML_TOKENS: &[&str] = &[
    "<",
    ">",
    "</",
    "/>",
    "=\"",
    "\"",
    "&amp;",
    "&#x41;",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<?pi x?>",
    "xmlns=\"\"",
    "xmlns:ns1=\"urn:oasis:names:tc:SAML:2.0:assertion\"",
    " ID=\"_x\"",
    "<ns1:Assertion>",
    "</ns1:Assertion>",
    "admin@example.com",
    "<!DOCTYPE r [<!ENTITY a \"b\">]>",
];

/// A SAML response: never a panic, and an accepted one says only what the IdP signed (every
/// seed that is accepted was signed for sam@example.com in the groups platform and sre).
pub fn saml_response(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let request_id = text.split("InResponseTo=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("");
    match portolan_server::fuzzing::saml_response(data, request_id) {
        Ok((name_id, groups)) => {
            assert_eq!(name_id, "sam@example.com", "an accepted answer names whom the IdP signed for");
            assert_eq!(groups, ["platform", "sre"], "an accepted answer carries the groups the IdP signed");
        }
        Err(m) => assert!(!m.is_empty()),
    }
}
