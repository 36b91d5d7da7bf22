//! Property values as HTML, by the property's format. Everything here returns HTML that is
//! safe to insert as is: every value goes through [`esc`], URLs through [`safe_url`] (only
//! http, https and mailto become links; `javascript:`, `data:` and the rest are shown as
//! text), and markdown through [`markdown`] (raw HTML in the source is shown as text, links
//! and images are checked like any URL). It is the only place in web/ that builds markup in Rust
//! (entity links, the data-model SVG); everything else is a template of [`super::Templates`].

use std::collections::HashMap;

use portolan_core::blueprint::PropType;
use portolan_core::{Blueprint, Property};
use serde_json::Value;

/// HTML-escape text (also for attribute values in double quotes).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// `url` if it is an absolute http(s) or mailto URL (or a path on this site), else `None`.
/// Control characters and whitespace inside the scheme are what browsers strip before
/// deciding (`java\tscript:`), so any URL holding them is refused.
pub fn safe_url(url: &str) -> Option<&str> {
    let u = url.trim();
    if u.is_empty() || u.chars().any(|c| c.is_control()) {
        return None;
    }
    if u.starts_with('/') && !u.starts_with("//") && !u.starts_with("/\\") {
        return Some(u);
    }
    let lower = u.to_ascii_lowercase();
    let ok = ["http://", "https://", "mailto:"].iter().any(|p| lower.starts_with(p));
    ok.then_some(u)
}

/// A link if the URL is safe, else the URL as text.
pub fn link(url: &str, label: Option<&str>) -> String {
    let text = esc(label.unwrap_or(url));
    match safe_url(url) {
        Some(u) => format!("<a href=\"{}\" rel=\"noopener noreferrer nofollow\" target=\"_blank\">{text}</a>", esc(u)),
        None => format!(
            "<span class=\"unsafe-url\" title=\"not a link: only http, https and mailto URLs are\">{}</span>",
            esc(url)
        ),
    }
}

/// Markdown to HTML: raw HTML is escaped (shown as text), link and image URLs must pass
/// [`safe_url`] (otherwise the link text alone is shown), images become links.
pub fn markdown(src: &str) -> String {
    use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};
    let parser = Parser::new_ext(src, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH);
    let mut dropped_links = 0usize;
    let mut events: Vec<Event<'_>> = Vec::new();
    for ev in parser {
        match ev {
            Event::Html(h) | Event::InlineHtml(h) => events.push(Event::Text(h)),
            Event::Start(Tag::Link { link_type, dest_url, title, id }) => match safe_url(&dest_url) {
                Some(_) => events.push(Event::Start(Tag::Link { link_type, dest_url, title, id })),
                None => dropped_links += 1,
            },
            Event::Start(Tag::Image { dest_url, title, .. }) => match safe_url(&dest_url) {
                Some(_) => events.push(Event::Start(Tag::Link {
                    link_type: pulldown_cmark::LinkType::Inline,
                    dest_url,
                    title,
                    id: CowStr::Borrowed(""),
                })),
                None => dropped_links += 1,
            },
            Event::End(TagEnd::Link) | Event::End(TagEnd::Image) => {
                if dropped_links > 0 {
                    dropped_links -= 1;
                } else {
                    events.push(Event::End(TagEnd::Link));
                }
            }
            other => events.push(other),
        }
    }
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events.into_iter());
    out
}

/// Port's enum colours as CSS classes (no inline styles under the CSP).
const COLOURS: &[&str] = &[
    "blue",
    "turquoise",
    "orange",
    "purple",
    "pink",
    "yellow",
    "green",
    "red",
    "gold",
    "silver",
    "bronze",
    "lightGray",
    "darkGray",
    "lime",
    "olive",
    "brown",
    "teal",
];

fn enum_badge(v: &str, colour: Option<&str>) -> String {
    let class = colour.filter(|c| COLOURS.contains(c)).unwrap_or("default");
    format!("<span class=\"badge enum-{class}\">{}</span>", esc(v))
}

/// "3 days ago" / "in 2 hours" between `t` and `now` (Unix seconds).
pub fn relative(t: i64, now: i64) -> String {
    let d = now - t;
    let a = d.unsigned_abs();
    let (n, unit) = match a {
        0..60 => return if d >= 0 { "just now".into() } else { "in a moment".into() },
        60..3600 => (a / 60, "minute"),
        3600..86_400 => (a / 3600, "hour"),
        86_400..2_592_000 => (a / 86_400, "day"),
        2_592_000..31_536_000 => (a / 2_592_000, "month"),
        _ => (a / 31_536_000, "year"),
    };
    let s = if n == 1 { "" } else { "s" };
    if d >= 0 { format!("{n} {unit}{s} ago") } else { format!("in {n} {unit}{s}") }
}

fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|d| d.with_timezone(&chrono::Utc))
}

/// A date-time: relative, with the exact time on hover.
pub fn date_time(s: &str, now: i64) -> String {
    match parse_time(s) {
        Some(t) => format!(
            "<time datetime=\"{}\" title=\"{}\">{}</time>",
            esc(s),
            esc(&t.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
            esc(&relative(t.timestamp(), now))
        ),
        None => esc(s),
    }
}

/// A timer: "Expired" once past, else how long is left; exact time on hover.
pub fn timer(s: &str, now: i64) -> String {
    match parse_time(s) {
        Some(t) if t.timestamp() <= now => format!(
            "<time class=\"expired\" datetime=\"{}\" title=\"{}\">Expired</time>",
            esc(s),
            esc(&t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        ),
        Some(_) => date_time(s, now),
        None => esc(s),
    }
}

fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value as HTML, by its property definition (or its JSON type when there is none).
pub fn value_html(v: &Value, prop: Option<&Property>, now: i64) -> String {
    if v.is_null() {
        return String::new();
    }
    let format = prop.and_then(|p| p.format.as_deref());
    if let (Some(p), Value::String(s)) = (prop, v)
        && p.enum_values.is_some()
    {
        let colour = p.keyword("enumColors").and_then(|c| c.get(s)).and_then(Value::as_str);
        return enum_badge(s, colour);
    }
    match (v, format) {
        (Value::String(s), Some("url")) => link(s, None),
        (Value::String(s), Some("email")) => match safe_url(&format!("mailto:{s}")) {
            Some(_) if !s.contains(['?', '&', '/']) => {
                format!("<a href=\"mailto:{}\">{}</a>", esc(s), esc(s))
            }
            _ => esc(s),
        },
        (Value::String(s), Some("markdown")) => format!("<div class=\"markdown\" hx-disable>{}</div>", markdown(s)),
        (Value::String(s), Some("yaml")) => format!("<pre class=\"yaml\">{}</pre>", esc(s)),
        (Value::String(s), Some("date-time")) => date_time(s, now),
        (Value::String(s), Some("timer")) => timer(s, now),
        (Value::String(s), Some("user")) => format!("<span class=\"user\">👤 {}</span>", esc(s)),
        (Value::String(s), Some("team")) => format!("<span class=\"team\">👥 {}</span>", esc(s)),
        (Value::Array(items), _) => {
            let item_format = prop.and_then(|p| p.items_format());
            let parts: Vec<String> = items
                .iter()
                .map(|x| match (x, item_format) {
                    (Value::String(s), Some("url")) => link(s, None),
                    (x, _) => format!("<span class=\"chip\">{}</span>", esc(&json_text(x))),
                })
                .collect();
            parts.join(" ")
        }
        (Value::Object(o), _)
            if prop.is_some_and(|p| p.format.as_deref() == Some("labeled-url") || p.ty == PropType::Object) =>
        {
            // Port's labeled URL: {"url": …, "displayText": …}.
            match o.get("url").and_then(Value::as_str) {
                Some(u) if prop.is_some_and(|p| p.format.as_deref() == Some("labeled-url")) || o.len() <= 2 => {
                    link(u, o.get("displayText").and_then(Value::as_str))
                }
                _ => format!("<pre class=\"json\">{}</pre>", esc(&serde_json::to_string_pretty(v).unwrap_or_default())),
            }
        }
        (Value::Object(_), _) => {
            format!("<pre class=\"json\">{}</pre>", esc(&serde_json::to_string_pretty(v).unwrap_or_default()))
        }
        (Value::Bool(b), _) => (if *b { "✔ true" } else { "✘ false" }).to_string(),
        (v, _) => esc(&json_text(v)),
    }
}

/// A short plain-text version of a value for table cells that must stay one line.
pub fn cell_html(v: &Value, prop: Option<&Property>, now: i64) -> String {
    match prop.and_then(|p| p.format.as_deref()) {
        Some("markdown") | Some("yaml") => {
            let t = json_text(v);
            let short: String = t.chars().take(80).collect();
            esc(&if t.chars().count() > 80 { format!("{short}…") } else { short })
        }
        _ => value_html(v, prop, now),
    }
}

/// The title of a column: the property's title, else its identifier.
pub fn column_title(bp: &Blueprint, col: &str) -> String {
    match col {
        "$identifier" => "Identifier".into(),
        "$title" => "Title".into(),
        "$team" => "Team".into(),
        "$createdAt" => "Created".into(),
        "$updatedAt" => "Updated".into(),
        c => bp
            .schema
            .properties
            .get(c)
            .and_then(|p| p.title.clone())
            .or_else(|| bp.relations.get(c).and_then(|r| r.title.clone()))
            .or_else(|| bp.mirror_properties.get(c).and_then(|m| m.title.clone()))
            .or_else(|| bp.calculation_properties.get(c).and_then(|m| m.title.clone()))
            .unwrap_or_else(|| c.to_string()),
    }
}

/// A link to an entity's page, the identifier as its text.
pub fn entity_link(blueprint: &str, id: &str) -> String {
    format!(
        "<a href=\"/ui/entities/{}/{}\">{}</a>",
        esc(&super::urlencode(blueprint)),
        esc(&super::urlencode(id)),
        esc(id)
    )
}

/// The data model as SVG, drawn on the server: blueprints in layers (a blueprint sits one
/// layer right of every blueprint its relations point at), relations as arrows.
pub fn graph_svg(bps: &HashMap<String, Blueprint>) -> String {
    let mut ids: Vec<&String> = bps.keys().collect();
    ids.sort();
    let mut layer: HashMap<&str, usize> = ids.iter().map(|i| (i.as_str(), 0)).collect();
    for _ in 0..ids.len() {
        let mut changed = false;
        for id in &ids {
            for rel in bps[*id].relations.values() {
                if rel.target != **id
                    && let Some(&t) = layer.get(rel.target.as_str())
                    && layer[id.as_str()] < t + 1
                    && t + 1 < ids.len()
                {
                    layer.insert(id.as_str(), t + 1);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let (w, h, gap_x, gap_y) = (170.0, 44.0, 90.0, 26.0);
    let mut pos: HashMap<&str, (f64, f64)> = HashMap::new();
    let mut per_layer: HashMap<usize, usize> = HashMap::new();
    for id in &ids {
        let l = layer[id.as_str()];
        let n = per_layer.entry(l).or_insert(0);
        pos.insert(id.as_str(), (20.0 + l as f64 * (w + gap_x), 20.0 + *n as f64 * (h + gap_y)));
        *n += 1;
    }
    let width = 40.0 + (per_layer.len().max(1)) as f64 * (w + gap_x);
    let height = 40.0 + per_layer.values().max().copied().unwrap_or(1) as f64 * (h + gap_y);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"13\" role=\"img\" aria-label=\"Data model\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#555\"/></marker></defs>"
    );
    for id in &ids {
        let (x, y) = pos[id.as_str()];
        for (rid, rel) in &bps[*id].relations {
            let Some(&(tx, ty)) = pos.get(rel.target.as_str()) else { continue };
            let (x1, y1, x2, y2) =
                if tx < x { (x, y + h / 2.0, tx + w, ty + h / 2.0) } else { (x + w, y + h / 2.0, tx, ty + h / 2.0) };
            svg.push_str(&format!(
                "<g class=\"relation\"><line x1=\"{x1}\" y1=\"{y1}\" x2=\"{x2}\" y2=\"{y2}\" stroke=\"#555\" marker-end=\"url(#arrow)\"/><text x=\"{}\" y=\"{}\" fill=\"#333\" font-size=\"11\">{}{}</text></g>",
                (x1 + x2) / 2.0,
                (y1 + y2) / 2.0 - 4.0,
                esc(rid),
                if rel.many { " (many)" } else { "" }
            ));
        }
    }
    for id in &ids {
        let (x, y) = pos[id.as_str()];
        let b = &bps[*id];
        svg.push_str(&format!(
            "<g class=\"blueprint\"><rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" rx=\"6\" fill=\"#eef3ff\" stroke=\"#3b5bdb\"/><text x=\"{}\" y=\"{}\" fill=\"#111\" font-weight=\"bold\">{}</text><text x=\"{}\" y=\"{}\" fill=\"#555\" font-size=\"11\">{}</text></g>",
            x + 10.0,
            y + 19.0,
            esc(&b.title),
            x + 10.0,
            y + 35.0,
            esc(&b.identifier)
        ));
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_https_mailto_and_local_paths_are_links() {
        for bad in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            " javascript:alert(1)",
            "java\tscript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:x",
            "//evil.example/x",
            "/\\evil.example",
        ] {
            assert_eq!(safe_url(bad), None, "{bad}");
            assert!(!link(bad, None).contains("href"), "{bad}");
        }
        for good in ["https://example.com/a?b=1&c=2", "http://x", "mailto:a@b.c", "/ui/catalog"] {
            assert!(safe_url(good).is_some(), "{good}");
        }
        assert_eq!(
            link("https://x/?a=1&b=\"2\"", Some("<b>")),
            "<a href=\"https://x/?a=1&amp;b=&quot;2&quot;\" rel=\"noopener noreferrer nofollow\" target=\"_blank\">&lt;b&gt;</a>"
        );
    }

    #[test]
    fn markdown_keeps_formatting_and_drops_html_and_bad_links() {
        let html = markdown(
            "# Title\n\n**bold** <script>alert(1)</script> <img src=x onerror=alert(1)>\n\n[ok](https://e.com) [bad](javascript:alert(1)) ![i](data:image/png;base64,AA)",
        );
        assert!(html.contains("<h1>Title</h1>"), "{html}");
        assert!(html.contains("<strong>bold</strong>"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("<a href=\"https://e.com\">ok</a>"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(!html.contains("data:image"), "{html}");
    }

    #[test]
    fn relative_times_and_timers() {
        assert_eq!(relative(0, 3 * 86_400), "3 days ago");
        assert_eq!(relative(7200, 0), "in 2 hours");
        assert_eq!(relative(0, 30), "just now");
        assert!(timer("2020-01-01T00:00:00Z", 1_700_000_000).contains(">Expired<"));
        let t = date_time("2020-01-01T00:00:00Z", 1_577_836_800 + 120);
        assert!(t.contains("title=\"2020-01-01 00:00:00 UTC\"") && t.contains("2 minutes ago"), "{t}");
    }
}
