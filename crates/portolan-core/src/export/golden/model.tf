resource "port_blueprint" "domain" {
  identifier = "domain"
  title      = "Domain"
  properties = {
    string_props = {
      owner = {
        title  = "Owner"
        format = "email"
      }
    }
  }
}

resource "port_blueprint" "service" {
  identifier  = "service"
  title       = "Service"
  icon        = "Microservice"
  description = "A deployable \"unit\" costing $${var.x}"
  properties = {
    string_props = {
      language = {
        required = true
        enum     = ["go", "rust"]
        enum_colors = {
          go   = "blue"
          rust = "red"
        }
      }
      readme = {
        format     = "markdown"
        max_length = 10000
      }
    }
    number_props = {
      cpu = {
        maximum = 64
        minimum = 0
      }
    }
    boolean_props = {
      public = {
        default = false
      }
    }
    array_props = {
      tags = {
        string_items = {}
      }
    }
    object_props = {
      meta = {
        default = jsonencode({
          a = 1
        })
      }
    }
  }
  relations = {
    domain = {
      title    = "Domain"
      target   = "domain"
      required = false
      many     = false
    }
    deps = {
      target   = "service"
      required = false
      many     = true
    }
  }
  mirror_properties = {
    domainOwner = {
      path = "domain.owner"
    }
  }
  calculation_properties = {
    docs = {
      calculation = "'https://docs/' + .identifier"
      type        = "string"
      format      = "url"
    }
  }
}

resource "port_entity" "domain_payments" {
  identifier = "payments"
  title      = "Payments"
  blueprint  = port_blueprint.domain.identifier
  properties = {
    string_props = {
      owner = "ana@example.com"
    }
  }
}

resource "port_entity" "service_cart" {
  identifier = "cart"
  title      = "Cart \"v2\""
  blueprint  = port_blueprint.service.identifier
  teams      = ["core"]
  properties = {
    string_props = {
      language = "go"
      readme   = "# Cart\nline two with %%{ and $${x}"
    }
    number_props = {
      cpu = 4.5
    }
    boolean_props = {
      public = true
    }
    array_props = {
      string_items = {
        tags = ["a", "b,c"]
      }
    }
    object_props = {
      meta = jsonencode({
        nested = {
          x = [1, 2]
        }
      })
    }
  }
  relations = {
    single_relations = {
      domain = "payments"
    }
    many_relations = {
      deps = ["1st-dep", "auth"]
    }
  }
}

resource "port_entity" "service_1st-dep" {
  identifier = "1st-dep"
  blueprint  = port_blueprint.service.identifier
  properties = {
    string_props = {
      language = "rust"
    }
  }
}
