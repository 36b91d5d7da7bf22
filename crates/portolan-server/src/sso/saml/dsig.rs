//! XML signatures as SAML uses them (enveloped, one reference to the signed element's `ID`),
//! verified with the identity provider's certificates from its metadata, never with a key the
//! message itself carries.
//!
//! - [`parse`]: the document, refused when it has a DTD (no entity expansion), more than
//!   [`MAX_NODES`] nodes, or elements nested deeper than [`MAX_DEPTH`].
//! - [`exc_c14n`]: Exclusive XML Canonicalization 1.0 (with or without comments, with an
//!   `InclusiveNamespaces` prefix list) of one element's subtree, optionally without one
//!   descendant (the enveloped signature).
//! - [`verify_enveloped`]: the element's own `ds:Signature` child checked: one reference, to
//!   `#` + the element's `ID`; transforms enveloped-signature and exclusive c14n only; the digest
//!   of the canonical element; the signature over the canonical `SignedInfo` with one of the
//!   given certificates. SHA-1 digests and signatures are refused.
//!
//! Pure: no IO, no clock. The caller (`saml::response`) decides which elements must be signed
//! and reads only those (the defence against signature wrapping).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use roxmltree::{Document, Node, NodeId};
use sha2::Digest;

pub const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const EXC_C14N_COMMENTS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
/// What a signature no configured certificate verifies is refused with (the IdP may have
/// rotated its key: `saml::finish` reads its metadata URL again once).
pub const NO_CERTIFICATE_VERIFIES: &str =
    "its signature does not verify with any certificate of the identity provider's metadata";
/// Most nodes a SAML message may have (a real one has a few hundred).
pub const MAX_NODES: u32 = 20_000;
/// Deepest element nesting accepted (a real SAML response nests about eight deep).
pub const MAX_DEPTH: usize = 64;

/// Why a signature does not hold, in words.
#[derive(Debug, Clone, PartialEq)]
pub enum DsigError {
    /// The element has no `ds:Signature` child.
    NotSigned,
    /// The signature is malformed or uses what Portolan refuses (the message says which).
    Unsupported(String),
    /// The canonical element's digest differs from the signed one: altered after signing.
    Digest,
    /// No configured certificate verifies the signature.
    Signature,
}

impl std::fmt::Display for DsigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DsigError::NotSigned => f.write_str("it is not signed"),
            DsigError::Unsupported(m) => f.write_str(m),
            DsigError::Digest => f.write_str("its content was changed after it was signed (the digest differs)"),
            DsigError::Signature => f.write_str(NO_CERTIFICATE_VERIFIES),
        }
    }
}

/// Most attributes a SAML message may have in all (a real one has about a hundred): the
/// parser's duplicate-attribute check is quadratic in one element's attributes, and
/// [`MAX_NODES`] does not count them.
pub const MAX_ATTRIBUTES: usize = 2_000;
/// Most prefixes an `InclusiveNamespaces` list may name (each is looked up per element).
pub const MAX_PREFIXES: usize = 16;

/// XML's whitespace (not Unicode's: U+1680 and others are name characters in XML).
fn xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Parse a SAML message: no DTD, at most [`MAX_NODES`] nodes, [`MAX_ATTRIBUTES`] attributes and
/// [`MAX_DEPTH`] levels; and every element and attribute name as written must be the name the
/// parser read (canonicalization writes names from the input text, the checks read the
/// parser's: the two may never disagree).
pub fn parse(xml: &str) -> Result<Document<'_>, String> {
    if xml.matches("=\"").count() + xml.matches("='").count() > MAX_ATTRIBUTES {
        return Err(format!("it has more than {MAX_ATTRIBUTES} attributes"));
    }
    let opts = roxmltree::ParsingOptions { allow_dtd: false, nodes_limit: MAX_NODES, ..Default::default() };
    let doc = Document::parse_with_options(xml, opts).map_err(|e| format!("it is not well-formed XML ({e})"))?;
    let local = |q: &str| q.rsplit(':').next().unwrap_or("").to_string();
    for n in doc.root_element().descendants().filter(|n| n.is_element()) {
        if n.ancestors().count() > MAX_DEPTH + 1 {
            return Err(format!("its elements nest deeper than {MAX_DEPTH} levels"));
        }
        if local(elem_qname(&doc, n)) != n.tag_name().name()
            || n.attributes().any(|a| local(&xml[a.range_qname()]) != a.name())
        {
            return Err(format!("the element name {:?} is not written as it is read", n.tag_name().name()));
        }
    }
    Ok(doc)
}

/// The qualified name of an element as written (roxmltree keeps the namespace, not the prefix).
fn elem_qname<'i>(doc: &Document<'i>, n: Node<'_, 'i>) -> &'i str {
    let text = doc.input_text();
    let rest = &text[n.range().start + 1..];
    let end = rest.find(|c: char| xml_space(c) || c == '>' || c == '/').unwrap_or(rest.len());
    &rest[..end]
}

fn prefix_of(qname: &str) -> &str {
    qname.split_once(':').map(|(p, _)| p).unwrap_or("")
}

fn escape_text(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

fn escape_attr(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

/// The namespace a prefix (`""`: the default) is bound to at `n`; `""` when none.
fn ns_uri<'a>(n: Node<'a, '_>, prefix: &str) -> &'a str {
    if prefix.is_empty() {
        n.default_namespace().unwrap_or("")
    } else {
        n.lookup_namespace_uri(Some(prefix)).unwrap_or("")
    }
}

/// Exclusive XML Canonicalization 1.0 of `apex`'s subtree, without the subtree of `exclude`;
/// `inclusive` is the `InclusiveNamespaces` prefix list (`#default` for the default namespace).
pub fn exc_c14n(apex: Node<'_, '_>, exclude: Option<NodeId>, inclusive: &[String], with_comments: bool) -> String {
    let mut out = String::new();
    let rendered = BTreeMap::new();
    render(apex, exclude, inclusive, with_comments, &rendered, &mut out);
    out
}

fn render(
    n: Node<'_, '_>,
    exclude: Option<NodeId>,
    inclusive: &[String],
    with_comments: bool,
    rendered: &BTreeMap<String, String>,
    out: &mut String,
) {
    let doc = n.document();
    let qname = elem_qname(doc, n);
    // The prefixes this element visibly uses, and those of the inclusive list in scope.
    let mut used: Vec<String> = vec![prefix_of(qname).to_string()];
    for a in n.attributes() {
        let aq = &doc.input_text()[a.range_qname()];
        let p = prefix_of(aq);
        if !p.is_empty() && p != "xml" {
            used.push(p.to_string());
        }
    }
    for p in inclusive {
        let p = if p == "#default" { "" } else { p.as_str() };
        if p.is_empty() || n.lookup_namespace_uri(Some(p)).is_some() {
            used.push(p.to_string());
        }
    }
    used.sort();
    used.dedup();
    let mut mine = rendered.clone();
    out.push('<');
    out.push_str(qname);
    for p in &used {
        let uri = ns_uri(n, p);
        let before = rendered.get(p).map(String::as_str);
        let emit =
            if p.is_empty() && uri.is_empty() { before.is_some_and(|b| !b.is_empty()) } else { before != Some(uri) };
        if emit {
            if p.is_empty() {
                out.push_str(" xmlns=\"");
            } else {
                out.push_str(" xmlns:");
                out.push_str(p);
                out.push_str("=\"");
            }
            escape_attr(uri, out);
            out.push('"');
            mine.insert(p.clone(), uri.to_string());
        }
    }
    let mut attrs: Vec<_> = n.attributes().collect();
    attrs.sort_by(|a, b| (a.namespace().unwrap_or(""), a.name()).cmp(&(b.namespace().unwrap_or(""), b.name())));
    for a in attrs {
        out.push(' ');
        out.push_str(&doc.input_text()[a.range_qname()]);
        out.push_str("=\"");
        escape_attr(a.value(), out);
        out.push('"');
    }
    out.push('>');
    for c in n.children() {
        if Some(c.id()) == exclude {
            continue;
        }
        match c.node_type() {
            roxmltree::NodeType::Element => render(c, exclude, inclusive, with_comments, &mine, out),
            roxmltree::NodeType::Text => escape_text(c.text().unwrap_or(""), out),
            roxmltree::NodeType::Comment if with_comments => {
                out.push_str("<!--");
                out.push_str(c.text().unwrap_or(""));
                out.push_str("-->");
            }
            roxmltree::NodeType::PI => {
                if let Some(pi) = c.pi() {
                    out.push_str("<?");
                    out.push_str(pi.target);
                    if let Some(v) = pi.value.filter(|v| !v.is_empty()) {
                        out.push(' ');
                        out.push_str(v);
                    }
                    out.push_str("?>");
                }
            }
            _ => {}
        }
    }
    out.push_str("</");
    out.push_str(qname);
    out.push('>');
}

/// The element's only child named `name` in the signature namespace.
fn ds_child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Result<Node<'a, 'i>, DsigError> {
    let mut it = n
        .children()
        .filter(|c| c.is_element() && c.tag_name().namespace() == Some(DSIG) && c.tag_name().name() == name);
    match (it.next(), it.next()) {
        (Some(c), None) => Ok(c),
        (None, _) => Err(DsigError::Unsupported(format!("its signature has no ds:{name}"))),
        (Some(_), Some(_)) => Err(DsigError::Unsupported(format!("its signature has more than one ds:{name}"))),
    }
}

fn algorithm<'a>(n: Node<'a, '_>) -> &'a str {
    n.attribute("Algorithm").unwrap_or("")
}

/// The `InclusiveNamespaces PrefixList` under a c14n method or transform.
fn prefix_list(n: Node<'_, '_>) -> Result<Vec<String>, DsigError> {
    let list: Vec<String> = n
        .children()
        .find(|c| c.is_element() && c.tag_name().name() == "InclusiveNamespaces")
        .and_then(|c| c.attribute("PrefixList"))
        .map(|l| l.split(xml_space).filter(|p| !p.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    if list.len() > MAX_PREFIXES {
        return Err(DsigError::Unsupported(format!(
            "its signature's InclusiveNamespaces names {} prefixes (at most {MAX_PREFIXES})",
            list.len()
        )));
    }
    Ok(list)
}

fn b64(text: &str) -> Option<Vec<u8>> {
    let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    B64.decode(clean).ok()
}

/// The text of an element (all its text children joined).
fn text_of(n: Node<'_, '_>) -> String {
    n.children().filter(|c| c.is_text()).filter_map(|c| c.text()).collect()
}

fn sha1_refused(what: &str) -> DsigError {
    DsigError::Unsupported(format!(
        "its {what} uses SHA-1, which Portolan refuses (it is broken): have the identity provider sign with RSA-SHA256 and digest with SHA-256"
    ))
}

/// Verify the enveloped signature of `element` (its own `ds:Signature` child) with one of the
/// DER `certs`.
pub fn verify_enveloped(element: Node<'_, '_>, certs: &[Vec<u8>]) -> Result<(), DsigError> {
    let sigs: Vec<_> = element
        .children()
        .filter(|c| c.is_element() && c.tag_name().namespace() == Some(DSIG) && c.tag_name().name() == "Signature")
        .collect();
    let sig = match sigs.as_slice() {
        [] => return Err(DsigError::NotSigned),
        [s] => *s,
        _ => return Err(DsigError::Unsupported("it has more than one signature".into())),
    };
    let Some(id) = element.attribute("ID").filter(|id| !id.is_empty()) else {
        return Err(DsigError::Unsupported("the signed element has no ID".into()));
    };
    let signed_info = ds_child(sig, "SignedInfo")?;
    let c14n_method = ds_child(signed_info, "CanonicalizationMethod")?;
    let si_comments = match algorithm(c14n_method) {
        EXC_C14N => false,
        EXC_C14N_COMMENTS => true,
        other => {
            return Err(DsigError::Unsupported(format!(
                "its signature is canonicalized with {other:?}; Portolan supports exclusive canonicalization ({EXC_C14N})"
            )));
        }
    };
    let sig_method = algorithm(ds_child(signed_info, "SignatureMethod")?);
    let refs: Vec<_> = signed_info
        .children()
        .filter(|c| c.is_element() && c.tag_name().namespace() == Some(DSIG) && c.tag_name().name() == "Reference")
        .collect();
    let [reference] = refs.as_slice() else {
        return Err(DsigError::Unsupported(format!(
            "its signature has {} references; a SAML signature has exactly one, to the signed element",
            refs.len()
        )));
    };
    if reference.attribute("URI") != Some(&format!("#{id}")) {
        return Err(DsigError::Unsupported(format!(
            "its signature refers to {:?}, not to the element it is in (#{id})",
            reference.attribute("URI").unwrap_or("")
        )));
    }
    let mut enveloped = false;
    let mut c14n: Option<(Vec<String>, bool)> = None;
    if let Ok(transforms) = ds_child(*reference, "Transforms") {
        for t in transforms.children().filter(|c| c.is_element()) {
            match algorithm(t) {
                ENVELOPED => enveloped = true,
                EXC_C14N => c14n = Some((prefix_list(t)?, false)),
                // A same-document `#id` reference drops comments even with this transform
                // (XML Signature §4.4.3.3).
                EXC_C14N_COMMENTS => c14n = Some((prefix_list(t)?, false)),
                other => {
                    return Err(DsigError::Unsupported(format!(
                        "its signature's reference uses the transform {other:?}; Portolan accepts enveloped-signature and exclusive canonicalization"
                    )));
                }
            }
        }
    }
    let (Some((inclusive, comments)), true) = (c14n, enveloped) else {
        return Err(DsigError::Unsupported(
            "its signature's reference must list the enveloped-signature transform and exclusive canonicalization"
                .into(),
        ));
    };
    // The signature over SignedInfo first (small), so that nobody without the IdP's key makes
    // this server canonicalize and digest a large element.
    let digest_method = algorithm(ds_child(*reference, "DigestMethod")?);
    if digest_method == "http://www.w3.org/2000/09/xmldsig#sha1" {
        return Err(sha1_refused("digest"));
    }
    verify_signed_info(signed_info, c14n_method, si_comments, sig_method, sig, certs)?;
    let canonical = exc_c14n(element, Some(sig.id()), &inclusive, comments);
    let digest: Vec<u8> = match digest_method {
        "http://www.w3.org/2001/04/xmlenc#sha256" => sha2::Sha256::digest(canonical.as_bytes()).to_vec(),
        "http://www.w3.org/2001/04/xmldsig-more#sha384" => sha2::Sha384::digest(canonical.as_bytes()).to_vec(),
        "http://www.w3.org/2001/04/xmlenc#sha512" => sha2::Sha512::digest(canonical.as_bytes()).to_vec(),
        "http://www.w3.org/2000/09/xmldsig#sha1" => return Err(sha1_refused("digest")),
        other => return Err(DsigError::Unsupported(format!("its digest method {other:?} is not supported"))),
    };
    let expected = b64(&text_of(ds_child(*reference, "DigestValue")?))
        .ok_or_else(|| DsigError::Unsupported("its DigestValue is not base64".into()))?;
    if !bool::from(subtle::ConstantTimeEq::ct_eq(digest.as_slice(), expected.as_slice())) {
        return Err(DsigError::Digest);
    }
    Ok(())
}

/// The signature value over the canonical `SignedInfo`, verified with one of `certs`.
fn verify_signed_info(
    signed_info: Node<'_, '_>,
    c14n_method: Node<'_, '_>,
    si_comments: bool,
    sig_method: &str,
    sig: Node<'_, '_>,
    certs: &[Vec<u8>],
) -> Result<(), DsigError> {
    let signed = exc_c14n(signed_info, None, &prefix_list(c14n_method)?, si_comments);
    let value = b64(&text_of(ds_child(sig, "SignatureValue")?))
        .ok_or_else(|| DsigError::Unsupported("its SignatureValue is not base64".into()))?;
    use aws_lc_rs::signature as s;
    let alg: &'static dyn s::VerificationAlgorithm = match sig_method {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => &s::RSA_PKCS1_2048_8192_SHA256,
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => &s::RSA_PKCS1_2048_8192_SHA384,
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => &s::RSA_PKCS1_2048_8192_SHA512,
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256" => &s::ECDSA_P256_SHA256_FIXED,
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384" => &s::ECDSA_P384_SHA384_FIXED,
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1" => return Err(sha1_refused("signature")),
        other => return Err(DsigError::Unsupported(format!("its signature method {other:?} is not supported"))),
    };
    for der in certs {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else { continue };
        let key = cert.public_key().subject_public_key.data.as_ref();
        if s::UnparsedPublicKey::new(alg, key).verify(signed.as_bytes(), &value).is_ok() {
            return Ok(());
        }
    }
    Err(DsigError::Signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c14n(xml: &str, path: &[&str]) -> String {
        let doc = parse(xml).unwrap();
        let mut n = doc.root_element();
        for p in path {
            n = n.children().find(|c| c.is_element() && c.tag_name().name() == *p).unwrap();
        }
        exc_c14n(n, None, &[], false)
    }

    #[test]
    fn exclusive_c14n_renders_only_visibly_used_namespaces_sorted() {
        // From the Exclusive XML Canonicalization recommendation, §2.2's example shape: the
        // subtree keeps the prefixes it uses and drops the ones only its ancestors use.
        let xml = r#"<n0:local xmlns:n0="foo:bar" xmlns:n3="ftp://example.org"><n1:elem2 xmlns:n1="http://example.net" xml:lang="en"><n3:stuff xmlns:n3="ftp://example.org"/></n1:elem2></n0:local>"#;
        assert_eq!(
            c14n(xml, &["elem2"]),
            r#"<n1:elem2 xmlns:n1="http://example.net" xml:lang="en"><n3:stuff xmlns:n3="ftp://example.org"></n3:stuff></n1:elem2>"#
        );
    }

    #[test]
    fn c14n_sorts_attributes_escapes_and_drops_comments() {
        let xml = "<r xmlns=\"urn:d\" xmlns:b=\"urn:b\" xmlns:a=\"urn:a\"><e z=\"1\" b:y=\"&quot;2&#x9;\" a:x=\"3\" id=\"&lt;\">t &amp; &gt; <![CDATA[<c>]]><!-- gone --><?pi  data?></e></r>";
        assert_eq!(
            c14n(xml, &["e"]),
            "<e xmlns=\"urn:d\" xmlns:a=\"urn:a\" xmlns:b=\"urn:b\" id=\"&lt;\" z=\"1\" a:x=\"3\" b:y=\"&quot;2&#x9;\">t &amp; &gt; &lt;c&gt;<?pi data?></e>"
        );
    }

    #[test]
    fn c14n_undeclares_the_default_namespace_only_when_an_output_ancestor_declared_one() {
        let xml = r#"<r xmlns="urn:d"><e><f xmlns=""/></e></r>"#;
        assert_eq!(c14n(xml, &["e"]), r#"<e xmlns="urn:d"><f xmlns=""></f></e>"#);
        let xml = r#"<r><e><f xmlns=""/></e></r>"#;
        assert_eq!(c14n(xml, &["e"]), "<e><f></f></e>");
    }

    #[test]
    fn c14n_inclusive_prefixes_are_rendered_when_in_scope() {
        let xml = r#"<r xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:p="urn:p"><p:e/></r>"#;
        let doc = parse(xml).unwrap();
        let e = doc.root_element().first_element_child().unwrap();
        assert_eq!(
            exc_c14n(e, None, &["xs".into(), "absent".into()], false),
            r#"<p:e xmlns:p="urn:p" xmlns:xs="http://www.w3.org/2001/XMLSchema"></p:e>"#
        );
    }

    #[test]
    fn names_are_cut_at_xml_whitespace_only_and_must_read_as_written() {
        // U+1680 is whitespace to Rust but a name character to XML: a name holding it must not
        // canonicalize like the name without it (it would hide a signed element from the checks).
        let odd = "<p:A\u{1680}B xmlns:p=\"u\"/>";
        let plain = "<p:A xmlns:p=\"u\"/>";
        match (parse(odd), parse(plain)) {
            (Ok(a), Ok(b)) => {
                assert_ne!(exc_c14n(a.root_element(), None, &[], false), exc_c14n(b.root_element(), None, &[], false))
            }
            (Err(e), _) => assert!(e.contains("not written as it is read") || e.contains("well-formed"), "{e}"),
            (_, Err(e)) => panic!("{e}"),
        }
    }

    #[test]
    fn many_attributes_and_long_prefix_lists_are_refused_before_costing_time() {
        let attrs: String = (0..3000).map(|i| format!(" a{i}=\"1\"")).collect();
        let xml = format!("<r{attrs}/>");
        let t = std::time::Instant::now();
        assert!(parse(&xml).unwrap_err().contains("more than 2000 attributes"));
        assert!(t.elapsed() < std::time::Duration::from_millis(100));
        let prefixes: String = (0..100).map(|i| format!("p{i} ")).collect();
        let xml = format!(
            r##"<r ID="x"><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#x"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"><ec:InclusiveNamespaces xmlns:ec="http://www.w3.org/2001/10/xml-exc-c14n#" PrefixList="{prefixes}"/></ds:Transform></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>AA==</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>AA==</ds:SignatureValue></ds:Signature></r>"##
        );
        let doc = parse(&xml).unwrap();
        let e = verify_enveloped(doc.root_element(), &[]).unwrap_err();
        assert!(e.to_string().contains("names 100 prefixes"), "{e}");
    }

    #[test]
    fn parse_refuses_dtds_and_deep_nesting() {
        let bomb = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><r>&a;</r>"#;
        assert!(parse(bomb).unwrap_err().contains("not well-formed"), "{:?}", parse(bomb).err());
        let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
        assert!(parse(&deep).unwrap_err().contains("deeper than 64"));
    }

    #[test]
    fn unsigned_and_sha1_and_foreign_references_are_refused() {
        let doc = parse(r#"<r ID="x"/>"#).unwrap();
        assert_eq!(verify_enveloped(doc.root_element(), &[]), Err(DsigError::NotSigned));
        let signed = |digest: &str, uri: &str| {
            format!(
                r##"<r ID="x"><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="{uri}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="{digest}"/><ds:DigestValue>AA==</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>AA==</ds:SignatureValue></ds:Signature></r>"##
            )
        };
        let xml = signed("http://www.w3.org/2000/09/xmldsig#sha1", "#x");
        let doc = parse(&xml).unwrap();
        let e = verify_enveloped(doc.root_element(), &[]).unwrap_err();
        assert!(e.to_string().contains("SHA-1"), "{e}");
        let xml = signed("http://www.w3.org/2001/04/xmlenc#sha256", "#other");
        let doc = parse(&xml).unwrap();
        let e = verify_enveloped(doc.root_element(), &[]).unwrap_err();
        assert!(e.to_string().contains("refers to \"#other\""), "{e}");
        // No certificate verifies it: refused before the element is canonicalized and digested.
        let xml = signed("http://www.w3.org/2001/04/xmlenc#sha256", "#x");
        let doc = parse(&xml).unwrap();
        assert_eq!(verify_enveloped(doc.root_element(), &[]), Err(DsigError::Signature));
    }
}
