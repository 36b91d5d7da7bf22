//! Permission pages (port-api.md §8.3–8.5): who may read and change a blueprint's entities, who
//! may run an action and approve its runs, who may see and change a page. Each page shows the
//! grants in force (Port's defaults when none were set) as a form: roles as checkboxes, teams
//! as a list to pick from, people as e-mails one per line, `ownedByTeam` where it applies and an
//! action's contextual policy as JSON. Saving sends the whole form as the API's `PATCH` body
//! through the same service functions (`ops::*::patch_permissions`), so the checks and the
//! audit record are the API's; a refused save shows the form as it was posted, each message
//! beside the grant it is about.
//!
//! Who may change them is the route table's rule for the `PATCH`: a blueprint's moderators
//! (and admins) for blueprints, admins for actions and pages. Everyone signed in sees a
//! blueprint's and an action's permissions (the API's `GET` is open to members too); a page's
//! are for admins.

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::routing::{MethodRouter, get};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::form::{Form, signed_form};
use super::respond::{FieldMessage, api_errors, caller, chrome, page_with, require_admin, see_other};
use super::session::WebUser;
use super::{Chrome, WebError, WebResult, urlencode};
use crate::error::ApiResult;
use crate::ops;
use crate::state::AppState;

/// What a grant of this page takes besides roles, users and teams.
#[derive(Clone, Copy)]
struct Shape {
    /// `ownedByTeam` (blueprint grants, an action's `execute`).
    owned: bool,
    /// A contextual `policy` (action grants).
    policy: bool,
}

const PLAIN: Shape = Shape { owned: false, policy: false };
const OWNED: Shape = Shape { owned: true, policy: false };

/// One grant as the form shows it.
#[derive(Serialize)]
struct GrantView {
    /// The grant's path in the `PATCH` body (`entities.read`, `execute`, …): the form's field
    /// prefix and where the API's messages about it point.
    key: String,
    label: String,
    help: &'static str,
    roles: Vec<Choice>,
    teams: Vec<Choice>,
    /// One e-mail per line.
    users: String,
    /// `None`: the grant has no `ownedByTeam`.
    owned_by_team: Option<bool>,
    /// `None`: the grant has no policy; empty: none set.
    policy: Option<String>,
    errors: Vec<FieldMessage>,
}

#[derive(Serialize)]
struct Choice {
    name: String,
    on: bool,
}

#[derive(Serialize)]
struct PermissionsPage {
    chrome: Chrome,
    title: String,
    #[serde(flatten)]
    frame: Frame,
    grants: Vec<GrantView>,
    /// Per-property and per-relation grants (blueprints only), shown folded.
    granular: Vec<GrantView>,
    /// Unfold them: one of them has a message.
    granular_open: bool,
    error: Option<String>,
    /// Messages that belong to no grant of the form.
    errors: Vec<FieldMessage>,
    saved: bool,
}

/// Everything a permission page needs besides its grants.
#[derive(Serialize)]
struct Frame {
    heading: String,
    intro: &'static str,
    back_href: String,
    back_text: String,
    action: String,
    editable: bool,
    /// Who may change these, when the reader may not.
    who_changes: &'static str,
}

impl Frame {
    /// The permissions of `noun` `title`, whose own page is `base` (the form posts to
    /// `{base}/permissions`).
    fn new(noun: &str, title: &str, base: String, intro: &'static str, who_changes: &'static str) -> Frame {
        Frame {
            heading: format!("Permissions of {title}"),
            intro,
            back_text: format!("{noun} {title}"),
            action: format!("{base}/permissions"),
            back_href: base,
            editable: false,
            who_changes,
        }
    }
}

/// A grant of `doc` (the stored document's or the posted body's JSON at `key`) as the form
/// shows it. `roles` are offered besides any role the grant already names.
fn grant_view(
    key: &str,
    label: String,
    help: &'static str,
    g: &Value,
    roles: &[String],
    teams: &[String],
    shape: Shape,
) -> GrantView {
    let names = |k: &str| -> Vec<String> {
        g.get(k).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
    };
    let (given_roles, given_teams) = (names("roles"), names("teams"));
    let mut role_names: Vec<String> = roles.to_vec();
    role_names.extend(given_roles.iter().filter(|r| !roles.contains(r)).cloned());
    let mut team_names: Vec<String> = teams.to_vec();
    team_names.extend(given_teams.iter().filter(|t| !teams.contains(t)).cloned());
    let policy = shape.policy.then(|| match g.get("policy") {
        // A refused form shows the text as it was posted.
        Some(Value::String(text)) => text.clone(),
        Some(p) if !p.is_null() => serde_json::to_string_pretty(p).unwrap_or_default(),
        _ => String::new(),
    });
    GrantView {
        key: key.to_string(),
        label,
        help,
        roles: role_names.into_iter().map(|name| Choice { on: given_roles.contains(&name), name }).collect(),
        teams: team_names.into_iter().map(|name| Choice { on: given_teams.contains(&name), name }).collect(),
        users: names("users").join("\n"),
        owned_by_team: shape.owned.then(|| g.get("ownedByTeam").and_then(Value::as_bool).unwrap_or(false)),
        policy,
        errors: Vec::new(),
    }
}

/// The grant posted under `key`, as the API's JSON. A policy that is not JSON is a message at
/// `{key}.policy`.
fn posted_grant(form: &Form, key: &str, shape: Shape) -> Result<Value, FieldMessage> {
    let users: Vec<String> = form
        .get(&format!("{key}.users"))
        .unwrap_or_default()
        .split(['\n', ',', ' '])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let mut g = json!({
        "roles": form.all(&format!("{key}.roles")),
        "users": users,
        "teams": form.all(&format!("{key}.teams")),
    });
    if shape.owned {
        g["ownedByTeam"] = json!(form.get(&format!("{key}.ownedByTeam")).is_some());
    }
    if shape.policy {
        let text = form.get(&format!("{key}.policy")).unwrap_or_default().trim();
        g["policy"] = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(text).map_err(|e| {
                FieldMessage::new(format!("{key}.policy"), format!("is not JSON ({e}); leave it empty for no policy"))
            })?
        };
    }
    Ok(g)
}

/// `value` at the dotted `key` of `doc` (`entities.updateProperties.lang`), `Null` when absent.
fn at<'a>(doc: &'a Value, key: &str) -> &'a Value {
    key.split('.').try_fold(doc, |v, k| v.get(k)).unwrap_or(&Value::Null)
}

/// Set `value` at the dotted `key` of `doc`, making the objects on the way (what is in the way
/// and not an object is replaced).
fn put(doc: &mut Value, key: &str, value: Value) {
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let Value::Object(obj) = doc else { return };
    match key.split_once('.') {
        None => {
            obj.insert(key.to_string(), value);
        }
        Some((first, rest)) => put(obj.entry(first.to_string()).or_insert(Value::Null), rest, value),
    }
}

/// Give each grant the messages about it (`{key}` or `{key}.…`); the rest stay page-wide.
fn place_errors(grants: &mut [&mut GrantView], errors: Vec<FieldMessage>) -> Vec<FieldMessage> {
    let mut rest = Vec::new();
    for e in errors {
        let owner = grants.iter_mut().find(|g| {
            e.path == g.key || e.path.strip_prefix(g.key.as_str()).is_some_and(|r| r.starts_with(['.', '[']))
        });
        match owner {
            Some(g) => g.errors.push(e),
            None => rest.push(e),
        }
    }
    rest
}

/// One grant of a page: its key in the body, label, help and shape.
struct Slot {
    key: String,
    label: String,
    help: &'static str,
    shape: Shape,
}

impl Slot {
    fn new(key: impl Into<String>, label: impl Into<String>, help: &'static str, shape: Shape) -> Slot {
        Slot { key: key.into(), label: label.into(), help, shape }
    }
}

/// The `PATCH` body of the posted form: every slot's grant; a granular slot only when it grants
/// something or one is stored (so that emptying it takes effect).
fn posted_body(form: &Form, slots: (&[Slot], &[Slot]), stored: &Value) -> Result<Value, Vec<FieldMessage>> {
    let mut body = json!({});
    let mut errs = Vec::new();
    for (s, granular) in slots.0.iter().map(|s| (s, false)).chain(slots.1.iter().map(|s| (s, true))) {
        match posted_grant(form, &s.key, s.shape) {
            Ok(g) => {
                let grants_something =
                    ["roles", "users", "teams"].iter().any(|k| g[*k].as_array().is_some_and(|a| !a.is_empty()))
                        || g["ownedByTeam"] == json!(true);
                if !granular || grants_something || !at(stored, &s.key).is_null() {
                    put(&mut body, &s.key, g);
                }
            }
            Err(e) => errs.push(e),
        }
    }
    if errs.is_empty() { Ok(body) } else { Err(errs) }
}

/// The organization's team names, sorted.
async fn team_names(state: &AppState, u: &WebUser) -> WebResult<Vec<String>> {
    let mut t: Vec<String> = state.store.list_teams(&u.org).await?.into_iter().map(|t| t.name).collect();
    t.sort();
    Ok(t)
}

/// A permission page: its frame, its grants, the roles it offers and the document in force.
struct Resource<'a> {
    state: &'a AppState,
    frame: Frame,
    /// The grants shown open, and the per-property and per-relation ones shown folded.
    slots: (Vec<Slot>, Vec<Slot>),
    roles: Vec<String>,
    stored: Value,
}

impl Resource<'_> {
    /// Render the page: `doc` is what the form shows (stored or posted), `failure` the refused
    /// save's status, summary and messages.
    async fn render(
        self,
        u: &WebUser,
        doc: &Value,
        failure: Option<(StatusCode, String, Vec<FieldMessage>)>,
        saved: bool,
    ) -> WebResult {
        let teams = team_names(self.state, u).await?;
        let view =
            |s: &Slot| grant_view(&s.key, s.label.clone(), s.help, at(doc, &s.key), &self.roles, &teams, s.shape);
        let mut grants: Vec<GrantView> = self.slots.0.iter().map(view).collect();
        let mut granular: Vec<GrantView> = self.slots.1.iter().map(view).collect();
        let (status, error, errors) = match failure {
            Some((status, msg, errs)) => {
                let mut all: Vec<&mut GrantView> = grants.iter_mut().chain(granular.iter_mut()).collect();
                (status, Some(msg), place_errors(&mut all, errs))
            }
            None => (StatusCode::OK, None, Vec::new()),
        };
        let ctx = PermissionsPage {
            chrome: chrome(self.state, u),
            title: self.frame.heading.clone(),
            frame: self.frame,
            grants,
            granular_open: granular.iter().any(|g| !g.errors.is_empty()),
            granular,
            error,
            errors,
            saved,
        };
        page_with(self.state, status, "permissions.html", ctx)
    }

    async fn show(self, u: &WebUser, saved: bool) -> WebResult {
        let stored = self.stored.clone();
        self.render(u, &stored, None, saved).await
    }

    /// Save the posted form through `save`; on success back to the page (`?saved=1`), else the
    /// form as it was posted (nothing typed is lost) with the messages.
    async fn save<F, Fut>(self, u: &WebUser, form: &Form, save: F) -> WebResult
    where
        F: FnOnce(Value) -> Fut,
        Fut: std::future::Future<Output = ApiResult<()>>,
    {
        let failure = match posted_body(form, (&self.slots.0[..], &self.slots.1[..]), &self.stored) {
            Ok(body) => match save(body).await {
                Ok(()) => return Ok(see_other(&format!("{}?saved=1", self.frame.action))),
                Err(e) => {
                    let (msg, errs) = api_errors(&e);
                    (e.code.status(), msg, errs)
                }
            },
            Err(errs) => (StatusCode::UNPROCESSABLE_ENTITY, "The permissions were not saved.".to_string(), errs),
        };
        let mut shown = json!({});
        for s in self.slots.0.iter().chain(&self.slots.1) {
            let mut g = posted_grant(form, &s.key, Shape { policy: false, ..s.shape }).unwrap_or_default();
            if s.shape.policy {
                g["policy"] = json!(form.get(&format!("{}.policy", s.key)).unwrap_or_default());
            }
            put(&mut shown, &s.key, g);
        }
        self.render(u, &shown, Some(failure), false).await
    }
}

// ----- blueprints -----

const BLUEPRINT_INTRO: &str = "Who may read, create, change and delete this blueprint's entities. Admins and the \
     blueprint's moderators may always do everything; \"Owned by team\" admits the members of an entity's own teams \
     (its team). The change permission applies to every property and relation; the per-property and per-relation \
     grants below admit more people to change just that one.";

async fn blueprint_resource<'a>(state: &'a AppState, u: &WebUser, bp: &str) -> WebResult<Resource<'a>> {
    let blueprints = state.blueprints(&u.org).await?;
    let b = blueprints.get(bp).ok_or_else(|| WebError::NotFound(format!("There is no blueprint \"{bp}\".")))?;
    let perms = crate::access::permissions(state, &u.org, bp).await?;
    let ops = [
        ("read", "Read", "See its entities anywhere: catalog, search, counts, exports."),
        ("register", "Create", "Create entities (and set every property while creating)."),
        ("update", "Change", "Change any property or relation of its entities."),
        ("unregister", "Delete", "Delete its entities."),
    ];
    let main = ops.iter().map(|(k, label, help)| Slot::new(format!("entities.{k}"), *label, help, OWNED)).collect();
    let mut granular: Vec<Slot> = (b.schema.properties.keys())
        .map(|p| Slot::new(format!("entities.updateProperties.{p}"), format!("Change property {p}"), "", OWNED))
        .collect();
    granular.extend(
        (b.relations.keys())
            .map(|r| Slot::new(format!("entities.updateRelations.{r}"), format!("Change relation {r}"), "", OWNED)),
    );
    let base = format!("/ui/builder/{}", urlencode(bp));
    let who = "Only admins and this blueprint's moderators change these.";
    Ok(Resource {
        state,
        frame: Frame {
            editable: caller(u).principal.moderates(bp),
            ..Frame::new("Blueprint", &b.title, base, BLUEPRINT_INTRO, who)
        },
        slots: (main, granular),
        roles: vec!["Admin".into(), "Member".into(), format!("{bp}-moderator")],
        stored: perms.to_json(),
    })
}

// ----- actions -----

const ACTION_INTRO: &str = "Who may run this action and who approves its runs. Without a policy, the roles, people \
     and teams listed decide; with one, they decide who sees the action and the policy decides (execute: its \
     conditions are true; approve: its conditions give the approvers' e-mails). A policy is JSON: {\"queries\": \
     {name: search query}, \"conditions\": [jq]}.";

async fn action_resource<'a>(state: &'a AppState, u: &WebUser, id: &str) -> WebResult<Resource<'a>> {
    let a = state
        .store
        .get_action(&u.org, id)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("There is no action \"{id}\".")))?;
    let perms = ops::action::permissions(state, &u.org, id).await?;
    let mut roles = vec!["Admin".to_string(), "Member".to_string()];
    if let Some(bp) = a.data["trigger"]["blueprintIdentifier"].as_str() {
        roles.push(format!("{bp}-moderator"));
    }
    let title = a.data["title"].as_str().unwrap_or(&a.identifier).to_string();
    let base = format!("/ui/self-service/{}", urlencode(id));
    Ok(Resource {
        state,
        frame: Frame {
            editable: u.is_admin(),
            ..Frame::new("Action", &title, base, ACTION_INTRO, "Only admins change who may run and approve actions.")
        },
        slots: (
            vec![
                Slot::new(
                    "execute",
                    "Execute",
                    "Run the action (day-2 and delete actions: on entities they own, with \"Owned by team\").",
                    Shape { owned: true, policy: true },
                ),
                Slot::new(
                    "approve",
                    "Approve",
                    "Approve or decline runs waiting for approval.",
                    Shape { owned: false, policy: true },
                ),
            ],
            vec![],
        ),
        roles,
        stored: perms.to_json(),
    })
}

// ----- pages -----

const PAGE_INTRO: &str = "Who may see this page and who may change it (its widgets and layout). Admins always may.";

async fn page_resource<'a>(state: &'a AppState, u: &WebUser, id: &str) -> WebResult<Resource<'a>> {
    require_admin(u, "see and change who may see pages")?;
    let p = state
        .store
        .get_page(&u.org, id)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("There is no page \"{id}\".")))?;
    let perms = ops::page::permissions(state, &u.org, id).await?;
    let title = p.data["title"].as_str().unwrap_or(&p.identifier).to_string();
    let base = format!("/ui/dashboards/{}", urlencode(id));
    Ok(Resource {
        state,
        frame: Frame {
            editable: true,
            ..Frame::new("Page", &title, base, PAGE_INTRO, "Only admins change who may see and change pages.")
        },
        slots: (
            vec![
                Slot::new("read", "See", "Open the page.", PLAIN),
                Slot::new("update", "Change", "Change its widgets.", PLAIN),
            ],
            vec![],
        ),
        roles: vec!["Admin".into(), "Member".into()],
        stored: perms.to_json(),
    })
}

// ----- the routes -----

/// What a permission page is about.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Blueprint,
    Action,
    Page,
}

async fn resource<'a>(kind: Kind, state: &'a AppState, u: &WebUser, id: &str) -> WebResult<Resource<'a>> {
    match kind {
        Kind::Blueprint => blueprint_resource(state, u, id).await,
        Kind::Action => action_resource(state, u, id).await,
        Kind::Page => page_resource(state, u, id).await,
    }
}

async fn show(kind: Kind, state: AppState, user: WebUser, id: String, q: Option<String>) -> WebResult {
    let saved = super::form::query_form(&q).get("saved").is_some();
    resource(kind, &state, &user, &id).await?.show(&user, saved).await
}

/// Save the posted form as the API's `PATCH` of the resource's permissions; those who may not
/// change them get a 403 saying who may.
async fn save(kind: Kind, state: AppState, user: WebUser, id: String, req: Request) -> WebResult {
    let (_, form) = signed_form(&user, req).await?;
    let r = resource(kind, &state, &user, &id).await?;
    if !r.frame.editable {
        return Err(WebError::Forbidden(r.frame.who_changes.to_string()));
    }
    let (st, actor) = (&state, caller(&user));
    r.save(&user, &form, |body| async move {
        match kind {
            Kind::Blueprint => ops::blueprint::patch_permissions(st, &actor, &id, &body).await.map(|_| ()),
            Kind::Action => ops::action::patch_permissions(st, &actor, &id, &body).await.map(|_| ()),
            Kind::Page => ops::page::patch_permissions(st, &actor, &id, &body).await.map(|_| ()),
        }
    })
    .await
}

/// The GET and POST of a permission page: `/ui/builder/{bp}/permissions` (blueprints),
/// `/ui/self-service/{action}/permissions` (actions), `/ui/dashboards/{id}/permissions` (pages).
pub(super) fn routes(kind: Kind) -> MethodRouter<AppState> {
    get(move |State(s): State<AppState>, u: WebUser, Path(id): Path<String>, q: RawQuery| show(kind, s, u, id, q.0))
        .post(move |State(s): State<AppState>, u: WebUser, Path(id): Path<String>, req: Request| {
            save(kind, s, u, id, req)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::form::parse_form;

    #[test]
    fn a_posted_grant_is_the_apis_json() {
        let form = Form(parse_form(
            "execute.roles=Member&execute.roles=Admin&execute.teams=ops&execute.users=a%40x.io%0D%0Ab%40x.io+&execute.ownedByTeam=on&execute.policy=",
        ));
        let g = posted_grant(&form, "execute", Shape { owned: true, policy: true }).unwrap();
        assert_eq!(
            g,
            json!({"roles": ["Member", "Admin"], "users": ["a@x.io", "b@x.io"], "teams": ["ops"],
                   "ownedByTeam": true, "policy": null})
        );
        let plain = posted_grant(&form, "execute", PLAIN).unwrap();
        assert_eq!(plain.get("ownedByTeam"), None, "pages have no ownedByTeam");
        let bad = Form(parse_form("approve.policy=%7Bnope"));
        let e = posted_grant(&bad, "approve", Shape { owned: false, policy: true }).unwrap_err();
        assert_eq!(e.path, "approve.policy");
        assert!(e.message.starts_with("is not JSON"), "{}", e.message);
    }

    #[test]
    fn granular_grants_are_sent_only_when_they_grant_or_were_set() {
        let slot = |k: &str| Slot { key: k.into(), label: k.into(), help: "", shape: OWNED };
        let main = [slot("entities.read")];
        let granular = [
            slot("entities.updateProperties.a"),
            slot("entities.updateProperties.b"),
            slot("entities.updateRelations.c"),
        ];
        let stored = json!({"entities": {"updateProperties": {"b": {"roles": ["Member"]}}}});
        let form = Form(parse_form("entities.read.roles=Admin&entities.updateRelations.c.teams=ops"));
        let body = posted_body(&form, (&main, &granular), &stored).unwrap();
        let empty = json!({"roles": [], "users": [], "teams": [], "ownedByTeam": false});
        assert_eq!(
            body,
            json!({"entities": {
                "read": {"roles": ["Admin"], "users": [], "teams": [], "ownedByTeam": false},
                "updateProperties": {"b": empty},
                "updateRelations": {"c": {"roles": [], "users": [], "teams": ["ops"], "ownedByTeam": false}},
            }})
        );
    }

    #[test]
    fn messages_go_to_the_grant_they_name() {
        let g = |k: &str| grant_view(k, k.into(), "", &Value::Null, &[], &[], PLAIN);
        let (mut read, mut read_only) = (g("entities.read"), g("entities.readonly"));
        let rest = place_errors(
            &mut [&mut read, &mut read_only],
            vec![
                FieldMessage::new("entities.read.teams[0]", "no team"),
                FieldMessage::new("entities.readonly", "x"),
                FieldMessage::new("entities", "y"),
            ],
        );
        assert_eq!(read.errors, [FieldMessage::new("entities.read.teams[0]", "no team")]);
        assert_eq!(read_only.errors.len(), 1, "a prefix of another key is not that key");
        assert_eq!(rest, [FieldMessage::new("entities", "y")]);
    }

    #[test]
    fn a_grants_own_roles_and_teams_are_offered_beside_the_usual_ones() {
        let g = json!({"roles": ["svc-moderator"], "teams": ["gone"], "users": ["a@x.io"], "ownedByTeam": true});
        let v = grant_view("k", "K".into(), "", &g, &["Admin".into()], &["ops".into()], OWNED);
        let roles: Vec<(&str, bool)> = v.roles.iter().map(|c| (c.name.as_str(), c.on)).collect();
        assert_eq!(roles, [("Admin", false), ("svc-moderator", true)]);
        let teams: Vec<(&str, bool)> = v.teams.iter().map(|c| (c.name.as_str(), c.on)).collect();
        assert_eq!(teams, [("ops", false), ("gone", true)]);
        assert_eq!((v.users.as_str(), v.owned_by_team, v.policy), ("a@x.io", Some(true), None));
    }
}
