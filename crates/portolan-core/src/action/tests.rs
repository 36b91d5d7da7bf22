use super::*;
use serde_json::json;

fn example() -> Value {
    json!({
      "identifier": "scaffold_service",
      "title": "Scaffold a service",
      "icon": "Microservice",
      "description": "Creates a repo from a template",
      "trigger": {
        "type": "self-service",
        "operation": "CREATE",
        "blueprintIdentifier": "service",
        "actionCardButtonText": "Create",
        "executeActionButtonText": "Go",
        "userInputs": {
          "properties": {
            "name":     {"type":"string","title":"Name","pattern":"^[a-z-]+$","maxLength":32},
            "language": {"type":"string","title":"Language","enum":["go","rust"],"default":"go"},
            "sdk":      {"type":"string","enum":{"jqQuery":"if .form.language == \"go\" then [\"1.22\"] else [\"1.80\"] end"},
                         "dependsOn":["language"]},
            "domain":   {"type":"string","format":"entity","blueprint":"domain",
                         "dataset":{"combinator":"and","rules":[{"property":"$team","operator":"containsAny",
                                    "value":{"jqQuery":"[.user.teams[].name]"}}]},
                         "sort":{"property":"$title","order":"ASC"}},
            "token":    {"type":"string","encryption":"aes256-gcm"},
            "notes":    {"type":"string","format":"multi-line","visible":{"jqQuery":".form.language == \"rust\""}}
          },
          "required": ["name","language"],
          "order": ["name","language","sdk","domain","token","notes"],
          "titles": {"advanced": {"title":"Advanced","description":"Optional settings"}}
        }
      },
      "invocationMethod": {
        "type": "WEBHOOK",
        "url": "https://backend.example.com/scaffold",
        "agent": false,
        "synchronized": false,
        "method": "POST",
        "headers": {"RUN_ID": "{{ .run.id }}"},
        "body": {"{{ spreadValue() }}": "{{ .inputs }}", "port_context": {"runId": "{{ .run.id }}",
                 "user": "{{ .trigger.by.user.email }}"}}
      },
      "requiredApproval": false,
      "approvalNotification": {"type": "email"},
      "publish": true,
      "allowAnyoneToViewRuns": true
    })
}

#[test]
fn reference_example_is_valid() {
    check_action(&example()).unwrap();
}
