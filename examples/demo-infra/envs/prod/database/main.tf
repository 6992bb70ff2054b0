terraform {
  required_providers {
    null = {
      source  = "hashicorp/null"
      version = "~> 2.1"
    }
  }
}

variable "admin_password" {
  type      = string
  sensitive = true
  default   = "change-me-in-a-secret-store"
}

resource "null_resource" "primary" {
  triggers = {
    engine   = "postgres"
    version  = "15"
    size     = "db.r6g.large"
    password = var.admin_password
  }
}

output "endpoint" {
  value = "prod-db.internal:5432"
}
