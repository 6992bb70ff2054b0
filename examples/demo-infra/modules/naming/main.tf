# Shared naming and tagging conventions.
terraform {
  required_providers {
    null = {
      source  = "hashicorp/null"
      version = "~> 2.1"
    }
  }
}

variable "environment" {
  type = string
}

variable "component" {
  type = string
}

locals {
  prefix = "${var.environment}-${var.component}"
}

resource "null_resource" "label" {
  triggers = {
    name  = local.prefix
    owner = "platform-team"
  }
}

output "prefix" {
  value = local.prefix
}
