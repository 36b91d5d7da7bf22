//! Who signed in: the ID token verified ([`verify_id_token`]), the person read from its claims
//! ([`identity_of`]), and their account found or made, with SSO teams ([`provision`]).

use super::*;

/// Who the provider says signed in.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `None`: no groups claim configured, or the token did not carry it (teams unchanged).
    pub groups: Option<Vec<String>>,
    /// Who said so: `OIDC` or `SAML` (the person's provider, and its SSO teams' provider).
    pub provider: &'static str,
}

/// The claims of a token without checking anything (for error messages only).
fn unverified_claims(token: &str) -> Map<String, Value> {
    token
        .split('.')
        .nth(1)
        .and_then(|p| B64.decode(p.trim_end_matches('=')).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
}

/// Verify an ID token against the provider's key set (`jwks`): signature, issuer, audience
/// (and `azp` when there are several audiences), `exp` / `iat` / `nbf` against `now` with
/// [`LEEWAY_SECS`], and the nonce. Its claims when it holds.
pub fn verify_id_token(
    token: &str,
    jwks: &Value,
    issuer: &str,
    client_id: &str,
    nonce: &str,
    now: i64,
) -> Result<Map<String, Value>, Failure> {
    let bad = |m: String| Failure::new(502, m);
    let header = jsonwebtoken::decode_header(token)
        .map_err(|e| bad(format!("The provider's ID token is not a well-formed signed JWT ({e}).")))?;
    let alg = format!("{:?}", header.alg);
    if !ALGORITHMS.contains(&alg.as_str()) {
        return Err(bad(format!(
            "The ID token is signed with {alg}, a shared-secret algorithm; Portolan accepts only tokens signed with the provider's published keys ({}).",
            ALGORITHMS.join(", ")
        ))
        .hint("Set the client's ID token signature algorithm to RS256 (or ES256) at the provider."));
    }
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone())
        .map_err(|e| bad(format!("The provider's key set (JWKS) cannot be read: {e}.")))?;
    let jwk = match &header.kid {
        Some(kid) => set.find(kid),
        None => (set.keys.len() == 1).then(|| &set.keys[0]),
    };
    let Some(jwk) = jwk else {
        return Err(bad(format!(
            "The ID token names the key {:?}, which the provider's key set does not hold.",
            header.kid.as_deref().unwrap_or("(none)")
        ))
        .hint("The provider may have rotated its keys; if this lasts, its key set URL is not the one it signs with."));
    };
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk)
        .map_err(|e| bad(format!("The provider's key {:?} cannot be used: {e}.", header.kid)))?;
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_audience(&[client_id]);
    v.set_issuer(&[issuer]);
    v.set_required_spec_claims(&["iss", "aud", "exp"]);
    // Times are checked below against this server's clock, with words for each case.
    v.validate_exp = false;
    v.validate_nbf = false;
    let seen = unverified_claims(token);
    let claims = match jsonwebtoken::decode::<Map<String, Value>>(token.as_bytes(), &key, &v) {
        Ok(d) => d.claims,
        Err(e) => {
            use jsonwebtoken::errors::ErrorKind as K;
            return Err(match e.kind() {
                K::InvalidSignature => bad(
                    "The ID token's signature does not verify with the provider's published keys: it was altered on the way, or signed by someone else."
                        .into(),
                ),
                K::InvalidAudience => bad(format!(
                    "The ID token is meant for another application (aud {}), not this organization's client {client_id:?}.",
                    seen.get("aud").map(Value::to_string).unwrap_or_else(|| "missing".into())
                ))
                .hint("Set the client id on the organization page to the provider's client id of this application."),
                K::InvalidIssuer => bad(format!(
                    "The ID token was issued by {}, not by the configured issuer {issuer:?}.",
                    seen.get("iss").map(Value::to_string).unwrap_or_else(|| "nobody (no iss)".into())
                ))
                .hint("Set the issuer on the organization page to the provider's issuer exactly."),
                K::MissingRequiredClaim(c) => bad(format!("The ID token has no {c:?} claim.")),
                _ => bad(format!("The ID token was refused: {e}.")),
            });
        }
    };
    let time = |k: &str| claims.get(k).and_then(Value::as_i64);
    let skew =
        "If the provider issued it just now, this server's clock and the provider's differ: synchronise both (NTP).";
    let Some(exp) = time("exp") else { return Err(bad("The ID token's exp is not a number of seconds.".into())) };
    if now > exp + LEEWAY_SECS {
        return Err(bad(format!(
            "The ID token expired {} s ago by this server's clock (allowed clock difference: {LEEWAY_SECS} s).",
            now - exp
        ))
        .hint(skew));
    }
    for (k, what) in [("iat", "was issued"), ("nbf", "becomes valid")] {
        if let Some(t) = time(k)
            && t > now + LEEWAY_SECS
        {
            return Err(bad(format!(
                "The ID token {what} {} s in the future by this server's clock (allowed clock difference: {LEEWAY_SECS} s).",
                t - now
            ))
            .hint(skew));
        }
    }
    if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
        return Err(bad(
            "The ID token's nonce does not match this sign-in: it was issued for another sign-in (replayed).".into(),
        )
        .hint("Start again from the sign-in page."));
    }
    if claims.get("aud").and_then(Value::as_array).is_some_and(|a| a.len() > 1)
        && claims.get("azp").and_then(Value::as_str).is_some_and(|azp| azp != client_id)
    {
        return Err(bad(format!("The ID token was issued to another client (azp), not {client_id:?}.")));
    }
    Ok(claims)
}

/// Who signed in, from verified claims.
pub fn identity_of(claims: &Map<String, Value>, groups_claim: Option<&str>) -> Result<Identity, Failure> {
    let Some(email) = claims.get("email").and_then(Value::as_str).map(crate::web::session::normalize_email) else {
        return Err(Failure::new(502, "The provider sent no e-mail address for this person (no email claim).")
            .hint("Keep the scope \"email\" in the organization's SSO settings, and give the person an e-mail at the provider."));
    };
    if !crate::ops::people::valid_email(&email) {
        return Err(Failure::new(502, format!("The provider's email claim {email:?} is not an e-mail address.")));
    }
    if claims.get("email_verified").is_some_and(|v| v == &Value::Bool(false) || v == "false") {
        return Err(Failure::new(403, format!("The provider says the e-mail {email} is not verified."))
            .hint("Verify the e-mail at the provider (Portolan trusts verified addresses only)."));
    }
    let name = |k: &str| claims.get(k).and_then(Value::as_str).map(|s| s.chars().take(100).collect::<String>());
    let groups = groups_claim.and_then(|c| claims.get(c)).map(|v| match v {
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_string).take(MAX_GROUPS).collect(),
        Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    });
    Ok(Identity {
        email,
        first_name: name("given_name"),
        last_name: name("family_name"),
        groups,
        provider: TEAM_PROVIDER,
    })
}

const QUOTA_HINT: &str =
    "An admin frees a seat (removes a user) or asks the operator to raise the users quota (portolan org quota).";

/// A group name as a team name: a leading `/` (Keycloak's group paths) dropped; `None` when it
/// breaks Port's team name rule.
fn team_name(group: &str) -> Option<String> {
    let name = group.trim().trim_start_matches('/').to_string();
    crate::ops::people::check_team_name(&name).ok().map(|()| name)
}

/// The signed-in person's account: found, or created just in time as a Member; names and SSO
/// teams brought up to date. Audited as done by the person through SSO.
pub async fn provision(state: &AppState, org: &OrgId, id: &Identity) -> Result<User, Failure> {
    let actor = Actor {
        client_id: id.email.clone(),
        org: org.clone(),
        user_agent: Some(format!("SSO ({})", id.provider)),
        principal: portolan_core::permissions::Principal::Machine,
        depth: 0,
        blueprints_version: None,
    };
    let user = match state.store.user_by_email(&id.email).await? {
        Some(u) if u.org != *org => {
            return Err(Failure::new(403, format!(
                "The e-mail {} belongs to a user of another organization on this server.",
                id.email
            ))
            .hint("A person belongs to one organization; an operator moves the account, or the person uses another e-mail."));
        }
        Some(u) => u,
        None => {
            let (_, token) = crate::ops::people::create_invitation(state, org, &id.email, "member", "sso")
                .await
                .map_err(|e| Failure::from(e).hint(QUOTA_HINT))?;
            let user = User {
                id: crate::web::session::new_user_id(),
                org: org.clone(),
                email: id.email.clone(),
                // Not a PHC string: no password ever verifies against it. It names the provider,
                // so the account's `providers` say it from the start.
                password_hash: format!("!sso:{}", id.provider),
                role: "member".into(),
                created_at: crate::ops::audit::now_iso(),
            };
            let user = state
                .store
                .accept_invitation(&crate::auth::hash_secret(&token), &user, state.clock.now())
                .await
                .map_err(|e| match e {
                    StoreError::Invalid(m) => {
                        Failure::new(403, format!("No account was created: {}.", m.message)).hint(QUOTA_HINT)
                    }
                    StoreError::Conflict(_) => Failure::new(
                        409,
                        "The account was created by another sign-in at the same moment: sign in again.",
                    ),
                    e => e.into(),
                })?;
            let diff =
                json!({"before": null, "after": {"email": user.email, "role": "member", "provider": id.provider}});
            crate::ops::audit::record_change(state, &actor, "user", "CREATE", &user.email, Some(diff)).await;
            user
        }
    };
    let Some(person) = state.store.get_person(org, &user.email).await? else { return Ok(user) };
    if person.status == "Disabled" {
        return Err(Failure::new(403, "This account is disabled.")
            .hint("An admin of your organization enables it on the users page."));
    }
    if person.kind == portolan_core::system::SERVICE_ACCOUNT {
        return Err(Failure::new(403, "This is a service account: it uses the API only and does not sign in.")
            .hint("The identity provider sent the e-mail of a service account; give the person their own e-mail."));
    }
    let mut edit = PersonEdit::default();
    if !person.providers.iter().any(|p| p == id.provider) {
        edit.signed_in_with = Some(id.provider.to_string());
    }
    if id.first_name.is_some() && id.first_name != person.first_name {
        edit.first_name = Some(id.first_name.clone());
    }
    if id.last_name.is_some() && id.last_name != person.last_name {
        edit.last_name = Some(id.last_name.clone());
    }
    if let Some(groups) = &id.groups {
        let teams = state.store.list_teams(org).await?;
        // A group named like a team an admin manages in Portolan does not join it: at IdPs
        // where people create their own groups, that would let anyone into any team.
        let wanted: BTreeSet<String> = groups
            .iter()
            .filter_map(|g| team_name(g))
            .filter(|n| !teams.iter().any(|t| &t.name == n && t.provider != id.provider))
            .collect();
        for name in wanted.iter().filter(|n| !teams.iter().any(|t| &t.name == *n)) {
            let w = TeamWrite {
                name: name.clone(),
                id: format!("team_{}", crate::auth::hex(&crate::auth::random_bytes::<8>())),
                description: Some(format!("Provided by single sign-on ({} groups).", id.provider)),
                provider: id.provider.into(),
                members: None,
            };
            match state.store.save_team(org, None, &w, SaveMode::Create, &audit_ctx(&actor)).await {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Teams an admin manages in Portolan stay; SSO teams follow the groups.
        let managed: BTreeSet<&str> =
            teams.iter().filter(|t| t.provider == id.provider).map(|t| t.name.as_str()).collect();
        let mut next: BTreeSet<String> =
            person.teams.iter().filter(|t| !managed.contains(t.as_str())).cloned().collect();
        next.extend(wanted);
        if next.iter().ne(person.teams.iter().collect::<BTreeSet<_>>()) {
            edit.teams = Some(next.into_iter().collect());
        }
    }
    if edit != PersonEdit::default() {
        state.store.update_person(org, &user.email, &edit, &audit_ctx(&actor)).await?;
    }
    // Teams created and memberships changed: their `_team` / `_user` upkeep may have given jobs work.
    crate::jobs::wake_workers(state);
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_become_team_names_or_are_skipped() {
        assert_eq!(team_name("/platform").as_deref(), Some("platform"));
        assert_eq!(team_name(" SRE ").as_deref(), Some("SRE"));
        assert_eq!(team_name("a/b"), None);
        assert_eq!(team_name(""), None);
    }

    #[test]
    fn identity_needs_a_verified_email_and_reads_groups() {
        let c = |v: Value| v.as_object().cloned().unwrap();
        let id = identity_of(
            &c(json!({"email": "Ann@Example.com", "given_name": "Ann", "groups": ["a", 3, "b"]})),
            Some("groups"),
        )
        .unwrap();
        assert_eq!(id.email, "ann@example.com");
        assert_eq!(id.groups, Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(identity_of(&c(json!({"email": "a@b.co"})), Some("groups")).unwrap().groups, None);
        assert_eq!(identity_of(&c(json!({"email": "a@b.co", "groups": "x"})), None).unwrap().groups, None);
        assert!(identity_of(&c(json!({"sub": "1"})), None).unwrap_err().message.contains("no email claim"));
        let f = identity_of(&c(json!({"email": "a@b.co", "email_verified": false})), None).unwrap_err();
        assert!(f.message.contains("not verified"), "{f:?}");
    }
}
