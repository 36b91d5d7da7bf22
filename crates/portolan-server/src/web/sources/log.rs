//! The event log of an integration or a webhook: its filter (levels, time range, page size,
//! all in the query string) and one page of lines, newest first.

use minijinja::Value as Mj;
use portolan_store::{IntegrationLog, LogFilter};
use serde::Serialize;

use super::{LEVELS, LOG_PAGE, MAX_LOG_PAGE};
use crate::web::form::Form;
use crate::web::format::date_time;
use crate::web::urlencode;

/// The event log's filter, from the query string.
#[derive(Debug, Default, Serialize)]
pub(super) struct LogView {
    levels: Vec<String>,
    /// As typed (`YYYY-MM-DDTHH:MM`, UTC) and as compared.
    from: Option<String>,
    to: Option<String>,
    #[serde(skip)]
    from_at: Option<String>,
    #[serde(skip)]
    to_at: Option<String>,
    /// The page starts below this line id (`il_<n>`, or `wl_<n>` for a webhook), newest first.
    pub before: Option<String>,
    /// The log's line-id prefix (`il_`, `wl_`).
    #[serde(skip)]
    prefix: &'static str,
    limit: u32,
    /// Problems with the filter, shown above the table.
    error: Option<String>,
}

/// A time of the filter as the store compares it (`at` is ISO 8601 text): a minute given as
/// `YYYY-MM-DDTHH:MM` covers that whole minute; a full RFC 3339 time is converted to UTC.
fn filter_time(s: &str, end: bool) -> Option<String> {
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
    }
    let t = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    Some(if end { t.format("%Y-%m-%dT%H:%M:59.999999Z") } else { t.format("%Y-%m-%dT%H:%M:00") }.to_string())
}

impl LogView {
    pub(super) fn parse(f: &Form, prefix: &'static str) -> LogView {
        let mut v = LogView {
            prefix,
            levels: f
                .all("level")
                .into_iter()
                .map(|l| l.to_ascii_uppercase())
                .filter(|l| LEVELS.contains(&l.as_str()))
                .collect(),
            limit: f
                .get("limit")
                .and_then(|l| l.parse().ok())
                .filter(|l| (1..=MAX_LOG_PAGE).contains(l))
                .unwrap_or(LOG_PAGE),
            before: f
                .get("before")
                .filter(|b| b.strip_prefix(prefix).is_some_and(|n| n.parse::<i64>().is_ok()))
                .map(str::to_string),
            ..LogView::default()
        };
        for (key, end) in [("from", false), ("to", true)] {
            let Some(s) = f.get(key) else { continue };
            match filter_time(s, end) {
                Some(t) if end => (v.to, v.to_at) = (Some(s.to_string()), Some(t)),
                Some(t) => (v.from, v.from_at) = (Some(s.to_string()), Some(t)),
                None => v.error = Some(format!("\"{key}\" must be a time like 2024-11-10T08:30 (UTC); \"{s}\" is not")),
            }
        }
        v
    }

    pub(super) fn filter(&self) -> LogFilter {
        LogFilter {
            levels: self.levels.clone(),
            cursor: self.before.as_deref().and_then(|b| b.strip_prefix(self.prefix)?.parse().ok()).map(|n| (n, true)),
            from: self.from_at.clone(),
            to: self.to_at.clone(),
            limit: self.limit + 1,
            ..LogFilter::default()
        }
    }

    /// The link to this view of the page at `base`, starting below `before` (`None`: the newest
    /// lines).
    pub(super) fn link(&self, base: &str, before: Option<&str>) -> String {
        let mut p: Vec<(&str, String)> = self.levels.iter().map(|l| ("level", l.clone())).collect();
        if let Some(f) = &self.from {
            p.push(("from", f.clone()));
        }
        if let Some(t) = &self.to {
            p.push(("to", t.clone()));
        }
        if self.limit != LOG_PAGE {
            p.push(("limit", self.limit.to_string()));
        }
        if let Some(b) = before {
            p.push(("before", b.to_string()));
        }
        let qs: Vec<String> = p.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect();
        format!("{base}?{}#event-log", qs.join("&"))
    }
}

/// A line of the event log as the page shows it.
#[derive(Serialize)]
pub(super) struct LogRow {
    id: String,
    /// Safe HTML (a `<time>`).
    at: Mj,
    level: String,
    source: String,
    event: String,
    resync: Option<String>,
    message: String,
    /// The line's extra fields as JSON, when it has any.
    extra: Option<String>,
}

/// One page of an event log (read with `view.filter()`: a line more than the page) as template
/// rows, and the link to the older lines if there are any.
pub(super) fn log_page(
    view: &LogView,
    base: &str,
    mut lines: Vec<IntegrationLog>,
    now: i64,
) -> (Vec<LogRow>, Option<String>) {
    let older = (lines.len() > view.limit as usize).then(|| {
        lines.truncate(view.limit as usize);
        view.link(base, lines.last().map(|l| l.id.as_str()))
    });
    let log = lines
        .iter()
        .map(|l| LogRow {
            id: l.id.clone(),
            at: Mj::from_safe_string(date_time(&l.at, now)),
            level: l.level.clone(),
            source: l.source.clone(),
            event: l.event.clone(),
            resync: l.resync_id.clone(),
            message: l.message.clone(),
            extra: (l.extra.as_object().is_some_and(|o| !o.is_empty())).then(|| l.extra.to_string()),
        })
        .collect();
    (log, older)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::form::parse_form;

    #[test]
    fn filter_times_cover_the_minute() {
        assert_eq!(filter_time("2024-11-10T08:30", false).unwrap(), "2024-11-10T08:30:00");
        assert_eq!(filter_time("2024-11-10T08:30", true).unwrap(), "2024-11-10T08:30:59.999999Z");
        assert_eq!(filter_time("2024-11-10T09:30:00+01:00", false).unwrap(), "2024-11-10T08:30:00.000000Z");
        assert!(filter_time("yesterday", false).is_none());
    }

    #[test]
    fn the_log_filter_keeps_known_levels_and_links_to_itself() {
        let v = LogView::parse(
            &Form(parse_form("level=error&level=nope&from=2024-11-10T08:30&before=il_7&limit=9")),
            "il_",
        );
        assert_eq!(v.levels, ["ERROR"]);
        assert_eq!(v.filter().cursor, Some((7, true)));
        assert_eq!(v.filter().limit, 10);
        assert_eq!(v.link("/b", Some("il_3")), "/b?level=ERROR&from=2024-11-10T08%3A30&limit=9&before=il_3#event-log");
        let bad = LogView::parse(&Form(parse_form("to=soon&before=wl_1")), "il_");
        assert!(bad.error.unwrap().contains("\"to\" must be a time"));
        assert_eq!(bad.before, None, "another log's line id is ignored");
    }
}
