//! Identities of a drift: the [`Fingerprint`] (which resources and attributes diverge) and the
//! [`ValuesDigest`] (what a report shows about them).
//!
//! The same drift seen again by a later check has the same fingerprint, whatever order the
//! plans list things in, so it is the same drift object (one issue, edited) and not a new one.
//! Values are deliberately not part of it: a drifted attribute whose live value moves again is
//! still the same drift. The values digest is what an acceptance is bound to (see
//! `lifecycle`), so a drift accepted for one value is re-opened when the value changes.
//!
//! **Fingerprint encoding** (stable; stored, compared across versions of Sluice):
//!
//! ```text
//! item        = compact JSON array: ["<address>"] for a whole-object finding (create, delete,
//!               forget, move/import only), ["<address>", <path>] per changed attribute
//!               otherwise, where <path> is a JSON array of keys (strings) and indexes (integers)
//! fingerprint = lowercase_hex( SHA-256( join("\n", sorted(unique(items))) ) )
//! ```
//!
//! Items are sorted by their UTF-8 bytes. JSON strings are escaped as `serde_json` does
//! (non-ASCII as UTF-8). The class of a finding is not part of an item.
//!
//! **Values digest**: `lowercase_hex(SHA-256(compact JSON of the findings))` as serialized by
//! `Classification` (classes, addresses, actions, paths, shown before/after values, upgrades,
//! notes), in the classification's order. Shown values are already redacted, and sensitive
//! values are only `(sensitive value)`, so neither digest depends on a secret.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::classify::{AttrPath, Finding};
use crate::core::types::InvalidValue;

/// The identity of a set of (resource address, attribute path): 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of `(address, paths)` pairs; an empty `paths` means the whole object.
    /// Order and duplicates do not matter.
    pub fn of<'a, I, P>(entries: I) -> Fingerprint
    where
        I: IntoIterator<Item = (&'a str, P)>,
        P: IntoIterator<Item = &'a AttrPath>,
    {
        let mut items: Vec<String> = Vec::new();
        for (address, paths) in entries {
            let mut any = false;
            for path in paths {
                any = true;
                items.push(
                    serde_json::to_string(&(address, path))
                        .expect("strings and paths always serialize"),
                );
            }
            if !any {
                items.push(serde_json::to_string(&[address]).expect("strings always serialize"));
            }
        }
        items.sort();
        items.dedup();
        let mut h = Sha256::new();
        h.update(items.join("\n").as_bytes());
        Fingerprint(hex::encode(h.finalize()))
    }

    /// Reads a stored fingerprint back.
    pub fn parse(s: &str) -> Result<Fingerprint, InvalidValue> {
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Fingerprint(s.to_string()))
        } else {
            Err(InvalidValue(format!(
                "`{s}` is not a drift fingerprint (64 lowercase hex digits)"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 digits, for people.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Fingerprint {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Fingerprint::parse(&s)
    }
}

impl From<Fingerprint> for String {
    fn from(f: Fingerprint) -> String {
        f.0
    }
}

/// A digest of everything a report shows about a drift (see the module docs): 64 lowercase hex
/// digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ValuesDigest(String);

impl ValuesDigest {
    pub fn of(findings: &[Finding]) -> ValuesDigest {
        let json = serde_json::to_vec(findings).expect("findings always serialize");
        ValuesDigest(hex::encode(Sha256::digest(&json)))
    }

    pub fn parse(s: &str) -> Result<ValuesDigest, InvalidValue> {
        Fingerprint::parse(s)
            .map(|f| ValuesDigest(f.0))
            .map_err(|_| InvalidValue(format!("`{s}` is not a values digest")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ValuesDigest {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ValuesDigest::parse(&s)
    }
}

impl From<ValuesDigest> for String {
    fn from(d: ValuesDigest) -> String {
        d.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::drift::classify::PathStep;

    fn path(steps: &[&str]) -> AttrPath {
        AttrPath(
            steps
                .iter()
                .map(|s| match s.parse::<u64>() {
                    Ok(n) => PathStep::Index(n),
                    Err(_) => PathStep::Key(s.to_string()),
                })
                .collect(),
        )
    }

    #[test]
    fn order_and_duplicates_do_not_matter() {
        let a = path(&["triggers", "%"]);
        let b = path(&["ingress", "0", "cidr_blocks"]);
        let one = Fingerprint::of([("x.a", vec![&a, &b]), ("x.b", vec![])]);
        let two = Fingerprint::of([("x.b", vec![]), ("x.a", vec![&b, &a, &b])]);
        let three = Fingerprint::of([("x.b", vec![]), ("x.a", vec![&b]), ("x.a", vec![&a])]);
        assert_eq!(one, two);
        assert_eq!(one, three);
    }

    #[test]
    fn what_changes_the_fingerprint() {
        let a = path(&["triggers", "%"]);
        let base = Fingerprint::of([("x.a", vec![&a])]);
        let cases = [
            Fingerprint::of([("x.b", vec![&a])]),
            Fingerprint::of([("x.a", vec![])]),
            Fingerprint::of([("x.a", vec![&path(&["triggers"])])]),
            // An index is not the key "0".
            Fingerprint::of([("x.a", vec![&AttrPath(vec![PathStep::Key("0".into())])])]),
            Fingerprint::of([("x.a", vec![&AttrPath(vec![PathStep::Index(0)])])]),
            Fingerprint::of([("x.a", vec![&a]), ("x.c", vec![])]),
        ];
        for (i, c) in cases.iter().enumerate() {
            assert_ne!(&base, c, "case {i}");
        }
        // Distinct items: every case differs from every other.
        for i in 0..cases.len() {
            for j in i + 1..cases.len() {
                assert_ne!(cases[i], cases[j], "{i} vs {j}");
            }
        }
    }

    /// The documented encoding, recomputed by hand.
    #[test]
    fn encoding_is_as_documented() {
        let a = path(&["triggers", "%"]);
        let got = Fingerprint::of([("null_resource.b", vec![]), ("null_resource.a", vec![&a])]);
        let text = "[\"null_resource.a\",[\"triggers\",\"%\"]]\n[\"null_resource.b\"]";
        assert_eq!(got.as_str(), hex::encode(Sha256::digest(text.as_bytes())));
        assert_eq!(Fingerprint::parse(got.as_str()).unwrap(), got);
        assert_eq!(got.short().len(), 12);
        assert!(Fingerprint::parse("ABC").is_err());
        assert!(Fingerprint::parse(&"A".repeat(64)).is_err());
        let json = serde_json::to_string(&got).unwrap();
        assert_eq!(serde_json::from_str::<Fingerprint>(&json).unwrap(), got);
    }
}
