-- Single sign-on answers already used: a sign-in flow's request ID (SAML's InResponseTo) is
-- spent when its answer signs someone in, so the same answer posted again (a copied response
-- and flow cookie) is refused on every node until the flow would have expired anyway.
CREATE TABLE sso_spent (
    org_id TEXT NOT NULL,
    id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX sso_spent_expiry ON sso_spent(expires_at);
