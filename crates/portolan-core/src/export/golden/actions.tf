
resource "port_action" "scaffold_service" {
  identifier  = "scaffold_service"
  title       = "Scaffold a service"
  icon        = "Microservice"
  description = "Creates a repo costing $${var.x}"
  self_service_trigger = {
    operation               = "CREATE"
    blueprint_identifier    = port_blueprint.service.identifier
    action_card_button_text = "Create"
    user_properties = {
      string_props = {
        name = {
          title      = "Name"
          required   = true
          pattern    = "^[a-z-]+$"
          max_length = 32
        }
        language = {
          required = true
          enum     = ["go", "rust"]
          default  = "go"
        }
        sdk = {
          enum_jq_query = "[\"1.22\"]"
          depends_on    = ["language"]
        }
        domain = {
          format    = "entity"
          blueprint = port_blueprint.domain.identifier
          dataset = {
            combinator = "and"
            rules = [
              {
                property = "$team"
                operator = "containsAny"
                value = {
                  jq_query = "[.user.teams[].name]"
                }
              },
            ]
          }
          sort = {
            property = "$title"
            order    = "ASC"
          }
        }
      }
      number_props = {
        replicas = {
          minimum = 1
          maximum = 9
          default = 2
        }
      }
      boolean_props = {
        public = {
          default          = false
          visible_jq_query = ".form.language == \"go\""
        }
      }
      object_props = {
        config = {
          default = jsonencode({
            a = 1
          })
          encryption = "aes256-gcm"
        }
      }
      array_props = {
        deps = {
          max_items = 3
          string_items = {
            format    = "entity"
            blueprint = port_blueprint.service.identifier
            default   = ["auth"]
          }
        }
      }
    }
    order_properties = ["name", "language", "sdk", "domain", "replicas", "public", "config", "deps"]
  }
  webhook_method = {
    url    = "https://backend.example.com/scaffold"
    agent  = "false"
    method = "POST"
    headers = {
      RUN_ID = "{{ .run.id }}"
    }
    body = jsonencode({
      "{{ spreadValue() }}" = "{{ .inputs }}"
      runId                 = "{{ .run.id }}"
    })
  }
  required_approval           = "ANY"
  approval_email_notification = {}
  publish                     = true
}

resource "port_action" "expire_env" {
  identifier = "expire_env"
  title      = "Expire environments"
  automation_trigger = {
    timer_property_expired_event = {
      blueprint_identifier = port_blueprint.service.identifier
      property_identifier  = "ttl"
    }
    jq_condition = {
      expressions = [".diff.after.properties.public"]
      combinator  = "and"
    }
  }
  upsert_entity_method = {
    blueprint_identifier = port_blueprint.domain.identifier
    title                = "Expired"
    mapping = {
      identifier = "{{ .event.context.entityIdentifier }}"
      teams      = ["core"]
      properties = jsonencode({
        owner = "{{ .trigger.by.user.email }}"
      })
    }
  }
  publish = false
}
