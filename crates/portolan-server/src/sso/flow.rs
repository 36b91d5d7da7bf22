//! A sign-in's two legs: [`start`] sends the browser to the provider with PKCE, `state` and
//! `nonce` kept in the encrypted flow cookie; [`finish`] checks the answer, exchanges the code
//! and verifies the ID token (`identity.rs`).

use super::*;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Flow {
    org: String,
    state: String,
    nonce: String,
    verifier: String,
    next: String,
    exp: i64,
}

fn flow_aad() -> &'static str {
    "sso-flow"
}

/// The failure of a sign-in flow on a server without a secrets key (its cookies are encrypted
/// with it); `what` needs it ("single sign-on", "signed-in frames").
pub fn no_key(what: &str) -> Failure {
    Failure::new(500, format!("This server has no secrets key; {what} cannot work without one."))
        .hint("Set PORTOLAN_SECRETS_KEY (or PORTOLAN_SECRETS_KEY_FILE) on every node.")
}

/// PKCE's S256 challenge of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    B64.encode(Sha256::digest(verifier.as_bytes()))
}

/// Begin a sign-in for the organization named `org_name`: the provider's authorization URL to
/// send the browser to, the provider's display name, and the flow cookie's value.
pub async fn start(
    state: &AppState,
    org_name: &str,
    next: &str,
    base_url: &str,
) -> Result<(String, String, String), Failure> {
    let org_name = org_name.trim();
    if org_name.is_empty() {
        return Err(Failure::new(400, "Type the name of your organization to sign in with single sign-on."));
    }
    let Some(org) = state.store.org_by_name(org_name).await? else {
        return Err(Failure::new(404, format!("There is no organization named {org_name:?} on this server."))
            .hint("Check the spelling; an admin sees the name on the organization page."));
    };
    let sso = load(state, &org.id).await?;
    if let Some(s) = sso.saml.filter(|s| s.enabled) {
        let (url, cookie) = saml::start(state, &org.id, &org.name, &s, next, base_url)?;
        return Ok((url, s.display_name, cookie));
    }
    let Some(oidc) = sso.oidc.filter(|o| o.enabled) else {
        return Err(Failure::new(
            400,
            format!("The organization {org_name:?} does not sign in through single sign-on."),
        )
        .hint("An admin sets up the identity provider on the organization page (or PUT /v1/organization/sso)."));
    };
    let key = state.config.secrets_key.as_ref().ok_or_else(|| no_key("single sign-on"))?;
    let meta = discover(state, &oidc.issuer, false).await?;
    let flow = Flow {
        org: org.id.0.clone(),
        state: crate::auth::new_token(),
        nonce: crate::auth::new_token(),
        verifier: crate::auth::new_token(),
        next: next.to_string(),
        exp: state.clock.now() + FLOW_TTL_SECS,
    };
    let mut url = url::Url::parse(&meta.authorization_endpoint).map_err(|_| {
        Failure::new(
            502,
            format!("The provider's authorization endpoint {:?} is not a URL.", meta.authorization_endpoint),
        )
    })?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &oidc.client_id)
        .append_pair("redirect_uri", &format!("{base_url}{CALLBACK_PATH}"))
        .append_pair("scope", &oidc.scopes.join(" "))
        .append_pair("state", &flow.state)
        .append_pair("nonce", &flow.nonce)
        .append_pair("code_challenge", &pkce_challenge(&flow.verifier))
        .append_pair("code_challenge_method", "S256");
    let cookie = key.encrypt(&serde_json::to_string(&flow).unwrap_or_default(), flow_aad());
    Ok((url.to_string(), oidc.display_name, cookie))
}

/// Who the provider says signed in.
/// What a provider's `error` code usually means, for the admin.
fn provider_error_hint(code: &str) -> &'static str {
    match code {
        "access_denied" => {
            "The provider refused the sign-in: usually the person is not assigned to the application at the provider, or declined consent."
        }
        "invalid_client" | "unauthorized_client" => {
            "The provider does not accept this client: check the client id and secret on the organization page against the application at the provider."
        }
        "invalid_scope" => {
            "A scope in the organization's SSO settings is unknown to the provider: remove it or allow it."
        }
        "invalid_grant" => {
            "The code was refused: it expired or was used already, or the redirect URI registered at the provider differs from the one on the organization page."
        }
        "invalid_request" | "redirect_uri_mismatch" => {
            "Register exactly the redirect URI shown on the organization page at the provider."
        }
        "login_required" | "consent_required" | "interaction_required" => {
            "Sign in again and complete the provider's page."
        }
        "temporarily_unavailable" | "server_error" => {
            "The provider had a problem: try again, then ask its administrator."
        }
        _ => "Look the error up in the provider's documentation or its logs.",
    }
}

/// Finish a sign-in from the provider's redirect: the organization, who signed in, and where to
/// go next.
pub async fn finish(
    state: &AppState,
    cookie: Option<&str>,
    query: &std::collections::HashMap<String, String>,
    base_url: &str,
) -> Result<(OrgId, Identity, String), Failure> {
    let key = state.config.secrets_key.as_ref().ok_or_else(|| no_key("single sign-on"))?;
    let flow: Option<Flow> =
        cookie.and_then(|c| key.decrypt(c, flow_aad()).ok()).and_then(|t| serde_json::from_str(&t).ok());
    let stale = || {
        Failure::new(400, "This sign-in was not started in this browser, or it took longer than 10 minutes.").hint(
            "Start again from the sign-in page. If it keeps happening, the browser may block cookies for this site.",
        )
    };
    let Some(flow) = flow else { return Err(stale()) };
    if flow.exp < state.clock.now() {
        return Err(stale());
    }
    if query.get("state") != Some(&flow.state) {
        return Err(Failure::new(
            400,
            "The provider's answer does not belong to the sign-in this browser started (the state differs).",
        )
        .hint("Start again from the sign-in page."));
    }
    if let Some(code) = query.get("error") {
        let mut f = Failure::new(400, "The identity provider did not sign you in.").hint(provider_error_hint(code));
        f.provider_error = Some(code.clone());
        f.provider_description = query.get("error_description").cloned();
        return Err(f);
    }
    let org = OrgId(flow.org.clone());
    let sso = load(state, &org).await?;
    let Some(oidc) = sso.oidc.filter(|o| o.enabled) else {
        return Err(Failure::new(400, "Single sign-on was turned off for this organization during the sign-in."));
    };
    let Some(code) = query.get("code") else {
        return Err(Failure::new(400, "The provider's answer has neither a code nor an error."));
    };
    let meta = discover(state, &oidc.issuer, false).await?;
    let secret = match &oidc.client_secret_encrypted {
        Some(enc) => Some(key.decrypt(enc, &secret_aad(&org)).map_err(|e| {
            Failure::new(500, format!("The stored client secret cannot be read: {e}."))
                .hint("An admin enters the client secret again on the organization page.")
        })?),
        None => None,
    };
    let redirect_uri = format!("{base_url}{CALLBACK_PATH}");
    let mut pairs: Vec<(&str, &str)> = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &redirect_uri),
        ("code_verifier", &flow.verifier),
    ];
    let mut headers = vec![
        ("content-type".to_string(), "application/x-www-form-urlencoded".to_string()),
        ("accept".to_string(), "application/json".to_string()),
    ];
    let methods = meta.token_endpoint_auth_methods_supported.clone().unwrap_or_default();
    match &secret {
        // client_secret_basic is the default (RFC 8414 §2); _post when the provider offers only it.
        Some(s) if methods.is_empty() || methods.iter().any(|m| m == "client_secret_basic") => {
            let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(&oidc.client_id), enc(s)));
            headers.push(("authorization".into(), format!("Basic {basic}")));
        }
        Some(s) => pairs.extend([("client_id", oidc.client_id.as_str()), ("client_secret", s.as_str())]),
        None => pairs.push(("client_id", &oidc.client_id)),
    }
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    let ex = state
        .outbound
        .send(OutboundRequest {
            method: "POST".into(),
            url: meta.token_endpoint.clone(),
            headers,
            body: Some(body.into_bytes()),
        })
        .await;
    let tokens = answer_json(ex, "token endpoint", &meta.token_endpoint).map_err(|mut f| {
        if let Some(code) = &f.provider_error {
            f.hint = Some(provider_error_hint(code).to_string());
        }
        f
    })?;
    let Some(id_token) = tokens.get("id_token").and_then(Value::as_str) else {
        return Err(Failure::new(502, "The provider's token answer has no ID token.")
            .hint("Keep the scope \"openid\" in the organization's SSO settings."));
    };
    let jwks = cached_json(state, &meta.jwks_uri, "key set (JWKS)", false).await?;
    let now = state.clock.now();
    let claims = match verify_id_token(id_token, &jwks, &oidc.issuer, &oidc.client_id, &flow.nonce, now) {
        // A key the cached set lacks: the provider may have rotated its keys since.
        Err(f) if f.message.contains("which the provider's key set does not hold") => {
            let jwks = cached_json(state, &meta.jwks_uri, "key set (JWKS)", true).await?;
            verify_id_token(id_token, &jwks, &oidc.issuer, &oidc.client_id, &flow.nonce, now)?
        }
        other => other?,
    };
    let identity = identity_of(&claims, oidc.groups_claim.as_deref())?;
    Ok((org, identity, flow.next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_is_rfc7636_s256() {
        // RFC 7636 appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
