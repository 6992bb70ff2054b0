terraform {
  required_providers {
    null = {
      source  = "hashicorp/null"
      version = "~> 2.1"
    }
  }
}

module "naming" {
  source      = "../../../modules/naming"
  environment = "prod"
  component   = "network"
}

resource "null_resource" "vpc" {
  triggers = {
    name = "${module.naming.prefix}-vpc"
    cidr = "10.10.0.0/16"
  }
}

resource "null_resource" "subnet" {
  count = 2
  triggers = {
    name = "${module.naming.prefix}-subnet-${count.index}"
    cidr = "10.10.${count.index}.0/24"
  }
}
