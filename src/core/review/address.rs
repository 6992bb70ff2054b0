//! Terraform resource addresses (`module.net["eu"].aws_subnet.a[0]`, `data.aws_ami.ubuntu`) read
//! into their steps: the module calls that lead to the resource, with their instance keys, and
//! the resource's mode, type, name and instance key.
//!
//! This module owns the address grammar only (as terraform prints it in
//! `resource_changes[].address`; see
//! <https://developer.hashicorp.com/terraform/cli/state/resource-addressing>). It does not look
//! at files or plans. Parsing is linear in the address and total: anything else is an
//! [`AddressError`], never a panic.

use std::fmt;

use crate::core::plan::ResourceMode;

/// Addresses longer than this (bytes) are refused: terraform's are a few hundred at most, and
/// every consumer then works on bounded text.
pub const MAX_ADDRESS_LEN: usize = 4_096;

/// A parsed resource instance address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The module calls from the root, outermost first; empty for a root-module resource.
    pub modules: Vec<ModuleStep>,
    pub mode: ResourceMode,
    /// e.g. `aws_db_instance`.
    pub resource_type: String,
    /// e.g. `main`.
    pub name: String,
    /// `count` index or `for_each` key of the resource itself.
    pub key: Option<InstanceKey>,
}

/// One `module.NAME[KEY]` step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleStep {
    pub name: String,
    pub key: Option<InstanceKey>,
}

/// An instance key: `[0]` (from `count`) or `["eu-west-1"]` (from `for_each`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InstanceKey {
    Index(u64),
    Key(String),
}

impl fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstanceKey::Index(i) => write!(f, "[{i}]"),
            InstanceKey::Key(k) => {
                f.write_str("[\"")?;
                for c in k.chars() {
                    match c {
                        '"' => f.write_str("\\\"")?,
                        '\\' => f.write_str("\\\\")?,
                        '\n' => f.write_str("\\n")?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("\"]")
            }
        }
    }
}

/// Why an address could not be read; the message names the byte offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address is longer than {MAX_ADDRESS_LEN} bytes")]
    TooLong,
    #[error("address `{address}` is not a resource address: {why} at byte {at}")]
    Invalid {
        address: String,
        why: &'static str,
        at: usize,
    },
}

impl Address {
    /// The call names of the module path: `["app", "dns"]` for `module.app.module.dns.x.y`.
    pub fn module_names(&self) -> Vec<&str> {
        self.modules.iter().map(|m| m.name.as_str()).collect()
    }

    /// The address of the block in its module, as it is written in configuration:
    /// `aws_db_instance.main`, `data.aws_ami.ubuntu` (no module path, no instance key).
    pub fn block_address(&self) -> String {
        match self.mode {
            ResourceMode::Data => format!("data.{}.{}", self.resource_type, self.name),
            _ => format!("{}.{}", self.resource_type, self.name),
        }
    }

    /// The block's `resource`/`data` keyword.
    pub fn block_keyword(&self) -> &'static str {
        match self.mode {
            ResourceMode::Data => "data",
            ResourceMode::Managed => "resource",
            // Ephemeral resources (terraform ≥ 1.10) are `ephemeral` blocks.
            ResourceMode::Other => "ephemeral",
        }
    }
}

/// Reads an address as terraform prints it.
pub fn parse_address(address: &str) -> Result<Address, AddressError> {
    if address.len() > MAX_ADDRESS_LEN {
        return Err(AddressError::TooLong);
    }
    let mut p = Parser { s: address, pos: 0 };
    let mut modules = Vec::new();
    loop {
        let start = p.pos;
        let word = p.ident()?;
        match word {
            "module" => {
                p.dot()?;
                let name = p.ident()?.to_string();
                let key = p.key()?;
                modules.push(ModuleStep { name, key });
                p.dot()?;
            }
            "data" | "ephemeral" => {
                p.dot()?;
                let mode = if word == "data" {
                    ResourceMode::Data
                } else {
                    ResourceMode::Other
                };
                return p.resource(modules, mode);
            }
            _ => {
                p.pos = start;
                return p.resource(modules, ResourceMode::Managed);
            }
        }
    }
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, why: &'static str) -> AddressError {
        AddressError::Invalid {
            address: self.s.to_string(),
            why,
            at: self.pos,
        }
    }

    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    /// An HCL identifier: a letter or `_`, then letters, digits, `_` and `-`.
    fn ident(&mut self) -> Result<&'a str, AddressError> {
        let rest = self.rest();
        let len = rest
            .char_indices()
            .find(|&(i, c)| {
                !(c.is_alphanumeric() || c == '_' || (i > 0 && c == '-'))
                    || (i == 0 && c.is_ascii_digit())
            })
            .map_or(rest.len(), |(i, _)| i);
        if len == 0 {
            return Err(self.err("expected a name"));
        }
        self.pos += len;
        Ok(&rest[..len])
    }

    fn dot(&mut self) -> Result<(), AddressError> {
        if self.rest().starts_with('.') {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err("expected `.`"))
        }
    }

    fn resource(
        mut self,
        modules: Vec<ModuleStep>,
        mode: ResourceMode,
    ) -> Result<Address, AddressError> {
        let resource_type = self.ident()?.to_string();
        self.dot()?;
        let name = self.ident()?.to_string();
        let key = self.key()?;
        if !self.rest().is_empty() {
            return Err(self.err("unexpected text after the resource name"));
        }
        Ok(Address {
            modules,
            mode,
            resource_type,
            name,
            key,
        })
    }

    /// `[0]`, `["key"]`, or nothing.
    fn key(&mut self) -> Result<Option<InstanceKey>, AddressError> {
        if !self.rest().starts_with('[') {
            return Ok(None);
        }
        self.pos += 1;
        let key = if self.rest().starts_with('"') {
            self.pos += 1;
            let mut out = String::new();
            let mut chars = self.rest().char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err(self.err("unterminated key string")),
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => out.push('\n'),
                        Some((_, 't')) => out.push('\t'),
                        Some((_, 'r')) => out.push('\r'),
                        Some((_, c)) => out.push(c),
                        None => return Err(self.err("unterminated key string")),
                    },
                    Some((_, c)) => out.push(c),
                }
            };
            self.pos += end + 1;
            InstanceKey::Key(out)
        } else {
            let rest = self.rest();
            let len = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let index = rest[..len]
                .parse()
                .map_err(|_| self.err("expected a number or a quoted key"))?;
            self.pos += len;
            InstanceKey::Index(index)
        };
        if !self.rest().starts_with(']') {
            return Err(self.err("expected `]`"));
        }
        self.pos += 1;
        Ok(Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str) -> String {
        match parse_address(input) {
            Ok(a) => {
                let modules: Vec<String> = a
                    .modules
                    .iter()
                    .map(|m| match &m.key {
                        Some(k) => format!("{}{k}", m.name),
                        None => m.name.clone(),
                    })
                    .collect();
                format!(
                    "modules={modules:?} {} {} key={}",
                    a.block_keyword(),
                    a.block_address(),
                    a.key.map_or("-".to_string(), |k| k.to_string())
                )
            }
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn addresses_as_terraform_prints_them() {
        let table = [
            (
                "aws_db_instance.main",
                "modules=[] resource aws_db_instance.main key=-",
            ),
            (
                "null_resource.old[1]",
                "modules=[] resource null_resource.old key=[1]",
            ),
            (
                r#"null_resource.each["blue"]"#,
                r#"modules=[] resource null_resource.each key=["blue"]"#,
            ),
            (
                "data.null_data_source.computed",
                "modules=[] data data.null_data_source.computed key=-",
            ),
            (
                "module.app.module.dns.null_resource.record",
                r#"modules=["app", "dns"] resource null_resource.record key=-"#,
            ),
            (
                r#"module.buckets["logs"].null_resource.bucket"#,
                r#"modules=["buckets[\"logs\"]"] resource null_resource.bucket key=-"#,
            ),
            (
                r#"module.a[2].module.b["x.y]"].data.aws_ami.u[0]"#,
                r#"modules=["a[2]", "b[\"x.y]\"]"] data data.aws_ami.u key=[0]"#,
            ),
            (
                r#"aws_s3_bucket.empty_value["x`y"]"#,
                r#"modules=[] resource aws_s3_bucket.empty_value key=["x`y"]"#,
            ),
            (
                r#"a.b["q\"uote\\d"]"#,
                r#"modules=[] resource a.b key=["q\"uote\\d"]"#,
            ),
            (
                "my-type.my-name",
                "modules=[] resource my-type.my-name key=-",
            ),
            // A resource type called `module` is no module call.
            (
                "ephemeral.random_password.db",
                "modules=[] ephemeral random_password.db key=-",
            ),
            // Errors say where.
            (
                "aws_instance",
                "address `aws_instance` is not a resource address: expected `.` at byte 12",
            ),
            (
                "module.x",
                "address `module.x` is not a resource address: expected `.` at byte 8",
            ),
            (
                "a.b[",
                "address `a.b[` is not a resource address: expected a number or a quoted key at byte 4",
            ),
            (
                r#"a.b["x"#,
                r#"address `a.b["x` is not a resource address: unterminated key string at byte 5"#,
            ),
            (
                "a.b[1]x",
                "address `a.b[1]x` is not a resource address: unexpected text after the resource name at byte 6",
            ),
            (
                "a.b (deposed)",
                "address `a.b (deposed)` is not a resource address: unexpected text after the resource name at byte 3",
            ),
            (
                "",
                "address `` is not a resource address: expected a name at byte 0",
            ),
            (
                "1a.b",
                "address `1a.b` is not a resource address: expected a name at byte 0",
            ),
            (
                "a.b[99999999999999999999999]",
                "address `a.b[99999999999999999999999]` is not a resource address: expected a number or a quoted key at byte 4",
            ),
        ];
        for (input, want) in table {
            assert_eq!(check(input), want, "input: {input}");
        }
        assert_eq!(
            parse_address(&"a".repeat(MAX_ADDRESS_LEN + 1)),
            Err(AddressError::TooLong)
        );
    }

    #[test]
    fn every_fixture_address_parses() {
        for json in [
            include_str!("../../../tests/fixtures/plans/module_replace.json"),
            include_str!("../../../tests/fixtures/plans/mixed.json"),
            include_str!("../../../tests/fixtures/plans/aws_db.json"),
            include_str!("../../../tests/fixtures/plans/buckets.json"),
            include_str!("../../../tests/fixtures/plans/future.json"),
        ] {
            let plan = crate::core::plan::parse_plan_json(json.as_bytes()).unwrap();
            for rc in &plan.resource_changes {
                let a = parse_address(&rc.address).unwrap();
                assert_eq!(a.resource_type, rc.resource_type, "{}", rc.address);
                assert_eq!(a.name, rc.name, "{}", rc.address);
            }
        }
    }
}
