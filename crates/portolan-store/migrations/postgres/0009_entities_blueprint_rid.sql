-- A blueprint's entities in rid order — the order every page of a blueprint search and every
-- catalog page reads — and a narrow index for counting them (an index-only scan over three
-- short columns instead of a sequential scan of the table or of the wide entities_key).
CREATE INDEX entities_blueprint_rid ON entities(org_id, blueprint, rid);
