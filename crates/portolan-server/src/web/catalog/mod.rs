//! The catalog: the list of blueprints, and one blueprint's entities as a table whose view
//! (filter, search, sort, columns, group-by, page) lives in the query string ([`view`]). The
//! page's saved initial filter is in [`initial_filter`], the table's CSV/JSON export in
//! [`export`].

pub(super) mod export;
pub(super) mod initial_filter;
mod view;

use axum::extract::{Path, RawQuery, State};
use minijinja::Value as Mj;
use portolan_core::Blueprint;
use portolan_core::export::cell_text;
use serde::Serialize;
use serde_json::Value;

use self::initial_filter::{describe_filter, initial_rules};
use self::view::{Next, OPERATORS, Rule, View, all_columns, column_value, store_sorts, view_page};
use super::form::query_form;
use super::respond::{chrome, now_secs, page};
use super::session::WebUser;
use super::{Chrome, WebError, WebResult, format, urlencode};
use crate::state::AppState;

/// The list of blueprints.
#[derive(Serialize)]
struct Index<'a> {
    chrome: Chrome,
    title: &'static str,
    blueprints: Vec<BlueprintRef<'a>>,
}

/// A blueprint as pages name and link it.
#[derive(Serialize)]
pub(super) struct BlueprintRef<'a> {
    pub identifier: &'a str,
    pub title: &'a str,
    pub description: Option<&'a str>,
}

impl<'a> BlueprintRef<'a> {
    pub(super) fn of(b: &'a Blueprint) -> Self {
        BlueprintRef { identifier: &b.identifier, title: &b.title, description: b.description.as_deref() }
    }
}

pub async fn catalog_index(State(state): State<AppState>, user: WebUser) -> WebResult {
    let bps = state.blueprints(&user.org).await?;
    let mut blueprints: Vec<BlueprintRef> = bps.values().map(BlueprintRef::of).collect();
    blueprints.sort_by(|a, b| a.title.cmp(b.title));
    page(&state, "catalog_index.html", Index { chrome: chrome(&state, &user), title: "Catalog", blueprints })
}

/// One blueprint's table (`catalog.html`, which includes `catalog_table.html`).
#[derive(Serialize)]
struct Catalog<'a> {
    chrome: Chrome,
    title: &'a str,
    bp: BlueprintRef<'a>,
    columns: Vec<Column>,
    hidden_columns: Vec<HiddenColumn>,
    groups: Vec<Group>,
    /// Why the view shows no rows (a bad filter or cursor).
    error: Option<String>,
    filterable: Vec<ColumnName>,
    operators: &'static [&'static str],
    view: ViewState<'a>,
    next: Option<String>,
    first: Option<String>,
    /// Sorted by a computed column: within this page only.
    page_sorted: bool,
    ungroup: String,
    csv_url: String,
    json_url: String,
    row_count: usize,
    /// The saved initial filter, when this view is it.
    initial: Option<InitialFilter>,
    has_initial: bool,
    can_save: bool,
    initial_action: String,
    /// The blueprint's CREATE self-service actions.
    actions: Vec<super::actions::ActionRef>,
}

/// A shown column: its header, and links that sort, move or hide it.
#[derive(Debug, Serialize, PartialEq, Eq)]
struct Column {
    id: String,
    title: String,
    sort: String,
    /// Sorting by it sorts only this page (computed columns and relations).
    page_sort: bool,
    /// `asc`, `desc`, or empty when the view is not sorted by it.
    sorted: &'static str,
    left: Option<String>,
    right: Option<String>,
    hide: Option<String>,
}

/// A column not shown, with the link that adds it.
#[derive(Debug, Serialize, PartialEq, Eq)]
struct HiddenColumn {
    id: String,
    title: String,
    show: String,
}

/// A column filters can name.
#[derive(Debug, Serialize, PartialEq, Eq)]
struct ColumnName {
    id: String,
    title: String,
}

/// The rows of one group (all the page's rows when the view is not grouped: `key` none), each
/// row its cells as safe HTML.
#[derive(Serialize)]
struct Group {
    key: Option<String>,
    count: usize,
    rows: Vec<Vec<Mj>>,
}

/// The view as the filter form shows it.
#[derive(Serialize)]
struct ViewState<'a> {
    q: Option<&'a str>,
    group: Option<&'a str>,
    cols: String,
    filters: &'a [Rule],
    sort: Option<&'a str>,
    dir: &'static str,
    limit: u32,
}

#[derive(Serialize)]
struct InitialFilter {
    /// The filter in words.
    text: String,
    /// The link to the same view without it.
    clear: String,
}

/// The shown columns of `view`, with the links that sort, move and hide each.
fn columns(bp: &Blueprint, view: &View) -> Vec<Column> {
    let id = bp.identifier.as_str();
    let with_cols = |cols: &[String]| view.link(id, &[("cols", Some(cols.join(","))), ("after", None)]);
    view.cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let moved = |j: usize| {
                let mut cols = view.cols.clone();
                cols.swap(i, j);
                with_cols(&cols)
            };
            let hidden: Vec<String> = view.cols.iter().filter(|x| *x != c).cloned().collect();
            let sorted_here = view.sort.as_deref() == Some(c.as_str());
            let dir = (sorted_here && !view.desc).then(|| "desc".to_string());
            Column {
                id: c.clone(),
                title: format::column_title(bp, c),
                sort: view.link(id, &[("sort", Some(c.clone())), ("dir", dir), ("after", None), ("o", None)]),
                page_sort: !store_sorts(bp, c),
                sorted: match (sorted_here, view.desc) {
                    (false, _) => "",
                    (true, false) => "asc",
                    (true, true) => "desc",
                },
                left: (i > 0).then(|| moved(i - 1)),
                right: (i + 1 < view.cols.len()).then(|| moved(i + 1)),
                hide: (view.cols.len() > 1).then(|| view.link(id, &[("cols", Some(hidden.join(",")))])),
            }
        })
        .collect()
}

/// The columns `view` does not show, each with the link that adds it at the end.
fn hidden_columns(bp: &Blueprint, view: &View) -> Vec<HiddenColumn> {
    all_columns(bp)
        .into_iter()
        .filter(|c| !view.cols.contains(c))
        .map(|c| {
            let mut with = view.cols.clone();
            with.push(c.clone());
            let show = view.link(&bp.identifier, &[("cols", Some(with.join(",")))]);
            HiddenColumn { title: format::column_title(bp, &c), id: c, show }
        })
        .collect()
}

/// The columns a filter rule can name: stored properties, relations, identifier and title.
fn filterable(bp: &Blueprint) -> Vec<ColumnName> {
    all_columns(bp)
        .into_iter()
        .filter(|c| !c.starts_with('$') || c == "$identifier" || c == "$title")
        .filter(|c| !bp.mirror_properties.contains_key(c) && !bp.calculation_properties.contains_key(c))
        .map(|c| ColumnName { title: format::column_title(bp, &c), id: c })
        .collect()
}

/// The rows of a page grouped by the text of column `by`, groups in the order their first row
/// comes (an empty value is the group `(empty)`); not grouped, one group of every row with no
/// key. Group-by works on the rows of this page.
fn group_rows(rows: Vec<Value>, by: Option<&str>) -> Vec<(Option<String>, Vec<Value>)> {
    let Some(g) = by else { return vec![(None, rows)] };
    let mut groups: Vec<(Option<String>, Vec<Value>)> = Vec::new();
    for e in rows {
        let text = cell_text(&column_value(&e, g));
        let key = if text.is_empty() { "(empty)".to_string() } else { text };
        match groups.iter_mut().find(|(k, _)| k.as_deref() == Some(key.as_str())) {
            Some((_, members)) => members.push(e),
            None => groups.push((Some(key), vec![e])),
        }
    }
    groups
}

/// A cell of the table as safe HTML: links for the identifier and relations, dates relative to
/// `now`, values formatted by their property.
fn cell(bp: &Blueprint, e: &Value, col: &str, now: i64) -> String {
    let v = column_value(e, col);
    let id = e["identifier"].as_str().unwrap_or_default();
    match col {
        "$identifier" => format::entity_link(&bp.identifier, id),
        "$updatedAt" | "$createdAt" => v.as_str().map(|s| format::date_time(s, now)).unwrap_or_default(),
        c if bp.relations.contains_key(c) => {
            let target = &bp.relations[c].target;
            let ids: Vec<String> = match &v {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
                _ => vec![],
            };
            ids.iter().map(|i| format::entity_link(target, i)).collect::<Vec<_>>().join(", ")
        }
        c => format::cell_html(&v, bp.schema.properties.get(c), now),
    }
}

pub async fn catalog(
    State(state): State<AppState>,
    user: WebUser,
    Path(bp_id): Path<String>,
    RawQuery(q): RawQuery,
) -> WebResult {
    let bps = state.blueprints(&user.org).await?;
    let bp = bps.get(&bp_id).ok_or_else(|| WebError::NotFound(format!("There is no blueprint \"{bp_id}\".")))?;
    let form = query_form(&q);
    let mut view = View::parse(&form, bp);
    // The saved initial filter applies when the query string names no filter at all (`nf=1`,
    // or an empty `q`/`fp` from the filter form, is an explicit "no filter").
    let saved = state.store.initial_filter(&user.org, &bp_id).await?.map(|f| initial_rules(&f.filter));
    let explicit = form.0.iter().any(|(k, _)| matches!(k.as_str(), "q" | "fp" | "fo" | "fv" | "nf"));
    if let Some((sq, rules)) = &saved
        && !explicit
    {
        (view.q, view.filters) = (sq.clone(), rules.clone());
    }
    view.has_initial = saved.is_some();
    let id = bp.identifier.as_str();
    let unfiltered = [("q", None), ("fp", None), ("fo", None), ("fv", None), ("after", None), ("o", None)];
    let initial = saved.as_ref().filter(|(sq, rules)| *sq == view.q && *rules == view.filters).map(|(sq, rules)| {
        InitialFilter { text: describe_filter(bp, sq.as_deref(), rules), clear: view.link(id, &unfiltered) }
    });
    let now = now_secs(&state);
    let (rows, next, error) = match view_page(&state, &user, bp, &view).await? {
        Ok((rows, next)) => (rows, next, None),
        Err(e) => (vec![], None, Some(e)),
    };
    let row_count = rows.len();
    let groups = group_rows(rows, view.group.as_deref())
        .into_iter()
        .map(|(key, members)| Group {
            key,
            count: members.len(),
            rows: members
                .iter()
                .map(|e| view.cols.iter().map(|c| Mj::from_safe_string(cell(bp, e, c, now))).collect())
                .collect(),
        })
        .collect();
    let export_url = |fmt: &str| {
        let l = view.link(id, &[]);
        let qs = l.split_once('?').map(|x| x.1).unwrap_or("");
        format!("/ui/catalog/{}/export?format={fmt}&{qs}", urlencode(id))
    };
    let ctx = Catalog {
        chrome: chrome(&state, &user),
        title: &bp.title,
        bp: BlueprintRef::of(bp),
        columns: columns(bp, &view),
        hidden_columns: hidden_columns(bp, &view),
        groups,
        error,
        filterable: filterable(bp),
        operators: OPERATORS,
        view: ViewState {
            q: view.q.as_deref(),
            group: view.group.as_deref(),
            cols: view.cols.join(","),
            filters: &view.filters,
            sort: view.sort.as_deref(),
            dir: if view.desc { "desc" } else { "asc" },
            limit: view.limit,
        },
        next: next.map(|n| match n {
            Next::Cursor(c) => view.link(id, &[("after", Some(c))]),
            Next::Offset(o) => view.link(id, &[("o", Some(o.to_string()))]),
        }),
        first: (view.after.is_some() || view.offset > 0).then(|| view.link(id, &[("after", None), ("o", None)])),
        page_sorted: view.sort.as_deref().is_some_and(|s| !store_sorts(bp, s)),
        ungroup: view.link(id, &[("group", None)]),
        csv_url: export_url("csv"),
        json_url: export_url("json"),
        row_count,
        initial,
        has_initial: saved.is_some(),
        can_save: user.is_admin() && (view.q.is_some() || !view.filters.is_empty()),
        initial_action: format!("/ui/catalog/{}/initial-filter", urlencode(id)),
        actions: super::actions::create_actions(&state, &user.org, &user.principal, id).await?,
    };
    page(&state, "catalog.html", ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::form::{Form, parse_form};
    use serde_json::json;

    fn service() -> Blueprint {
        serde_json::from_value(json!({
            "identifier": "svc", "title": "Service",
            "schema": {"properties": {"lang": {"type": "string", "title": "Language"}, "size": {"type": "number"}}},
            "relations": {"owner": {"target": "team", "title": "Owner"}},
            "mirrorProperties": {"ownerName": {"path": "owner.$title"}}
        }))
        .unwrap()
    }

    fn view(qs: &str) -> View {
        View::parse(&Form(parse_form(qs)), &service())
    }

    #[test]
    fn columns_link_sorting_moving_and_hiding() {
        let bp = service();
        let v = view("cols=$identifier,lang,owner&sort=lang");
        let cols = columns(&bp, &v);
        assert_eq!(cols.iter().map(|c| c.title.as_str()).collect::<Vec<_>>(), ["Identifier", "Language", "Owner"]);
        let lang = &cols[1];
        assert_eq!(lang.sorted, "asc");
        assert!(lang.sort.contains("sort=lang") && lang.sort.contains("dir=desc"), "{}", lang.sort);
        assert_eq!(lang.left.as_deref(), Some("/ui/catalog/svc?sort=lang&cols=lang%2C%24identifier%2Cowner"));
        assert!(lang.right.as_deref().unwrap().contains("cols=%24identifier%2Cowner%2Clang"));
        assert!(lang.hide.as_deref().unwrap().ends_with("cols=%24identifier%2Cowner"));
        assert!(!lang.page_sort, "a stored property sorts in the store");
        assert!(cols[2].page_sort, "a relation sorts within the page");
        assert_eq!(cols[0].left, None);
        assert_eq!(cols[2].right, None);
        // One column left: it cannot be hidden.
        assert_eq!(columns(&bp, &view("cols=lang"))[0].hide, None);
        // Sorted descending: the header's link sorts ascending again.
        let desc = columns(&bp, &view("cols=lang&sort=lang&dir=desc"));
        assert_eq!(desc[0].sorted, "desc");
        assert!(!desc[0].sort.contains("dir="), "{}", desc[0].sort);
    }

    #[test]
    fn hidden_and_filterable_columns() {
        let bp = service();
        let hidden = hidden_columns(&bp, &view("cols=$identifier,lang"));
        let ids: Vec<&str> = hidden.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["$title", "size", "owner", "ownerName", "$team", "$updatedAt"]);
        assert!(hidden[0].show.contains("cols=%24identifier%2Clang%2C%24title"), "{}", hidden[0].show);
        let names: Vec<String> = filterable(&bp).into_iter().map(|c| c.id).collect();
        assert_eq!(names, ["$identifier", "$title", "lang", "size", "owner"]);
    }

    #[test]
    fn rows_group_by_the_text_of_a_column_in_first_seen_order() {
        let rows = vec![
            json!({"identifier": "a", "properties": {"lang": "rust"}}),
            json!({"identifier": "b", "properties": {}}),
            json!({"identifier": "c", "properties": {"lang": "go"}}),
            json!({"identifier": "d", "properties": {"lang": "rust"}}),
        ];
        let groups = group_rows(rows.clone(), Some("lang"));
        let shape: Vec<(Option<&str>, Vec<&str>)> = groups
            .iter()
            .map(|(k, m)| (k.as_deref(), m.iter().map(|e| e["identifier"].as_str().unwrap()).collect()))
            .collect();
        assert_eq!(shape, [(Some("rust"), vec!["a", "d"]), (Some("(empty)"), vec!["b"]), (Some("go"), vec!["c"])]);
        let all = group_rows(rows, None);
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].0.as_deref(), all[0].1.len()), (None, 4));
    }
}
