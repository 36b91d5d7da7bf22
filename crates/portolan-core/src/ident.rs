//! Identifier rules (docs/reference/port-api.md §1.1, §2.1, §10 item 2).

use crate::FieldError;

/// Longest blueprint, property and relation identifier.
pub const MAX_IDENT: usize = 100;
/// Longest entity identifier.
pub const MAX_ENTITY_IDENT: usize = 1000;
/// Longest entity identifier in bytes (UTF-8). PostgreSQL's B-tree indexes, which key entities,
/// relation targets, scorecard results and audit records by identifier, refuse an entry over
/// about 2,700 bytes (a third of a page); 1,000 letters of a script written with 3-byte
/// characters would pass the character limit and fail there. 1,600 leaves room in the widest
/// key (scorecard results: organization, blueprint and scorecard identifiers of up to 100
/// letters of up to 4 bytes each, and the entity).
pub const MAX_ENTITY_IDENT_BYTES: usize = 1600;

fn is_ident_char(c: char, allow_eq: bool) -> bool {
    c.is_alphabetic()
        || c.is_ascii_digit()
        || matches!(c, '@' | '_' | '.' | '+' | ':' | '\\' | '/' | '-')
        || (allow_eq && c == '=')
}

fn check(path: &str, what: &str, id: &str, max: usize, allow_eq: bool) -> Result<(), FieldError> {
    if id.is_empty() {
        return Err(FieldError::new(path, format!("must not be empty ({what})")));
    }
    let len = id.chars().count();
    if len > max {
        return Err(FieldError::new(
            path,
            format!("must be at most {max} characters ({what} is {len} characters long)"),
        ));
    }
    if id == "." || id == ".." {
        return Err(FieldError::new(path, format!("must not be \".\" or \"..\" ({what})")));
    }
    if let Some(bad) = id.chars().find(|c| !is_ident_char(*c, allow_eq)) {
        let allowed = if allow_eq { "letters, digits and @_.+:\\/=-" } else { "letters, digits and @_.+:\\/-" };
        return Err(FieldError::new(path, format!("contains {bad:?}; a {what} may only contain {allowed}")));
    }
    Ok(())
}

/// `^(?!\.{1,2}$)[\p{L}0-9@_.+:\\/-]+$`, at most 100 characters.
pub fn check_blueprint_id(path: &str, id: &str) -> Result<(), FieldError> {
    check(path, "blueprint identifier", id, MAX_IDENT, false)
}

/// `^(?!\.{1,2}$)[\p{L}0-9@_.+:\\/=-]+$`, at most 1000 characters and
/// [`MAX_ENTITY_IDENT_BYTES`] bytes.
pub fn check_entity_id(path: &str, id: &str) -> Result<(), FieldError> {
    check(path, "entity identifier", id, MAX_ENTITY_IDENT, true)?;
    if id.len() > MAX_ENTITY_IDENT_BYTES {
        return Err(FieldError::new(
            path,
            format!(
                "must be at most {MAX_ENTITY_IDENT_BYTES} bytes in UTF-8 (this entity identifier is {} bytes: {} \
                 characters, many of several bytes); the database indexes identifiers and cannot key longer ones",
                id.len(),
                id.chars().count()
            ),
        ));
    }
    Ok(())
}

/// Keys of properties, relations, mirror, calculation and aggregation properties:
/// `^[A-Za-z0-9@_=-]+$`, at most 100 characters.
pub fn check_property_id(path: &str, id: &str) -> Result<(), FieldError> {
    if id.is_empty() || id.len() > MAX_IDENT {
        return Err(FieldError::new(path, "must be 1 to 100 characters long"));
    }
    if let Some(bad) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '@' | '_' | '=' | '-'))) {
        return Err(FieldError::new(
            path,
            format!("contains {bad:?}; identifiers may only contain A-Z, a-z, 0-9 and @_=-"),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn blueprint_ids() {
        assert!(check_blueprint_id("identifier", "service").is_ok());
        assert!(check_blueprint_id("identifier", "my.svc/ä+1").is_ok());
        assert!(check_blueprint_id("identifier", "..").is_err());
        assert!(check_blueprint_id("identifier", ".").is_err());
        assert!(check_blueprint_id("identifier", "a=b").is_err());
        assert!(check_blueprint_id("identifier", "a b").is_err());
        assert!(check_blueprint_id("identifier", "").is_err());
        assert!(check_blueprint_id("identifier", &"a".repeat(101)).is_err());
        assert!(check_blueprint_id("identifier", &"a".repeat(100)).is_ok());
    }

    #[test]
    fn entity_ids() {
        assert!(check_entity_id("identifier", "a=b").is_ok());
        assert!(check_entity_id("identifier", &"a".repeat(1000)).is_ok());
        let e = check_entity_id("identifier", &"a".repeat(1001)).unwrap_err();
        assert!(e.message.contains("1000"), "{e}");
        assert!(check_entity_id("identifier", "..").is_err());
        assert!(check_entity_id("identifier", "x\ny").is_err());
        // Characters and bytes: 800 letters of 2 bytes fit, 1000 of 3 bytes do not.
        assert!(check_entity_id("identifier", &"é".repeat(800)).is_ok());
        assert!(check_entity_id("identifier", &"é".repeat(801)).is_err());
        let e = check_entity_id("identifier", &"中".repeat(1000)).unwrap_err();
        assert!(e.message.contains("1600 bytes") && e.message.contains("3000 bytes"), "{e}");
        assert!(check_entity_id("identifier", &"中".repeat(533)).is_ok());
    }

    #[test]
    fn property_ids() {
        assert!(check_property_id("p", "cpu-count_2@x=").is_ok());
        assert!(check_property_id("p", "a.b").is_err());
        assert!(check_property_id("p", "ä").is_err());
    }
}
