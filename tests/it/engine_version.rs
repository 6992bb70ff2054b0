//! Engine versions on the pure core (`core::engine_version`): constraint resolution with
//! go-version semantics (`~>`, pre-releases), the HashiCorp and OpenTofu mirror layouts,
//! `SHA256SUMS` parsing and verification.

use sluice::core::engine_version::{
    Constraint, MirrorLayout, ResolveError, Sha256Sums, Version, required_versions, resolve_version,
};
use sluice::core::types::Engine;

fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}

#[test]
fn constraints_match_as_go_version_does() {
    // (constraint, version, matches)
    let table: &[(&str, &str, bool)] = &[
        ("1.5.7", "1.5.7", true),
        ("= 1.5.7", "1.5.8", false),
        ("v1.5.7", "1.5.7", true),
        ("!= 1.5.7", "1.5.8", true),
        (">= 1.5, < 2.0", "1.9.8", true),
        (">= 1.5, < 2.0", "2.0.0", false),
        ("> 1.5.0", "1.5.0", false),
        ("<= 1.5", "1.5.0", true),
        ("~> 1.5", "1.9.8", true),
        ("~> 1.5", "2.0.0", false),
        ("~> 1.5", "1.4.9", false),
        ("~> 1.5.2", "1.5.9", true),
        ("~> 1.5.2", "1.6.0", false),
        ("~> 1.5.2", "1.5.1", false),
        ("~> 1", "3.0.0", true),
        // Pre-releases: a constraint without one never matches a pre-release.
        (">= 1.5", "1.6.0-beta1", false),
        ("~> 1.6", "1.6.0-rc1", false),
        // One with a pre-release matches pre-releases of the same version only.
        (">= 1.6.0-alpha1", "1.6.0-beta1", true),
        (">= 1.6.0-alpha1", "1.7.0-beta1", false),
        (">= 1.6.0-alpha1", "1.6.0", true),
        ("= 1.6.0-rc1", "1.6.0-rc1", true),
        ("~> 1.6.0-beta1", "1.6.0-rc1", true),
        ("~> 1.6.0-beta1", "1.6.1", false),
    ];
    for (c, ver, want) in table {
        let got = Constraint::parse(c).unwrap().matches(&v(ver));
        assert_eq!(got, *want, "`{c}` vs {ver}");
    }
}

#[test]
fn versions_order_with_pre_releases_before_their_release() {
    let mut list: Vec<Version> = [
        "1.6.0",
        "1.6.0-rc1",
        "1.6.0-beta2",
        "1.6.0-beta10",
        "1.5.7",
        "1.10.0",
    ]
    .iter()
    .map(|s| v(s))
    .collect();
    list.sort();
    let shown: Vec<String> = list.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        // go-version (and SemVer) compare alphanumeric pre-release parts as text.
        [
            "1.5.7",
            "1.6.0-beta10",
            "1.6.0-beta2",
            "1.6.0-rc1",
            "1.6.0",
            "1.10.0"
        ]
    );
}

#[test]
fn bad_versions_and_constraints_are_refused_with_a_sentence() {
    for bad in ["", "1.2.3.4", "one", "1..2", "1.2.3-", "1.2.3-be ta"] {
        assert!(Version::parse(bad).is_err(), "{bad:?}");
    }
    for bad in [">= 1.5,", "~>", ">= x"] {
        assert!(Constraint::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn resolution_picks_the_newest_matching_release() {
    let available: Vec<Version> = ["1.5.7", "1.6.2", "1.7.0-beta1", "1.6.6", "1.0.3"]
        .iter()
        .map(|s| v(s))
        .collect();
    let resolve = |pin: Option<&str>, req: &[&str]| {
        let req: Vec<String> = req.iter().map(|s| s.to_string()).collect();
        resolve_version(Engine::Terraform, pin, &req, &available).map(|v| v.to_string())
    };
    assert_eq!(resolve(None, &[]).unwrap(), "1.6.6");
    assert_eq!(resolve(None, &["~> 1.5.0"]).unwrap(), "1.5.7");
    assert_eq!(resolve(None, &[">= 1.0", "< 1.6"]).unwrap(), "1.5.7");
    assert_eq!(resolve(None, &[">= 1.7.0-alpha1"]).unwrap(), "1.7.0-beta1");
    // A pin wins (even if not cached: the adapter downloads it), unless it contradicts.
    assert_eq!(resolve(Some("v1.8.3"), &[">= 1.5"]).unwrap(), "1.8.3");
    let e = resolve(Some("1.4.0"), &[">= 1.5"]).unwrap_err();
    assert!(e.to_string().contains("does not satisfy"), "{e}");
    let e = resolve(None, &["~> 2.0"]).unwrap_err();
    assert!(matches!(e, ResolveError::NoMatch { .. }));
    insta::assert_snapshot!(e.to_string(), @"no available terraform version satisfies `~> 2.0`; available: 1.7.0-beta1, 1.6.6, 1.6.2, 1.5.7, 1.0.3");
    let none = resolve_version(Engine::Opentofu, None, &[], &[]).unwrap_err();
    insta::assert_snapshot!(none.to_string(), @"no available tofu version satisfies any release; available: none");
}

#[test]
fn mirror_layouts_of_hashicorp_and_opentofu() {
    let ver = v("1.8.3");
    let h = MirrorLayout::for_engine(Engine::Terraform);
    let t = MirrorLayout::for_engine(Engine::Opentofu);
    let urls = format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n{} {}",
        h.archive_url(h.default_base(), &ver, "linux", "amd64"),
        h.sums_url("http://127.0.0.1:8080/mirror/", &ver),
        h.signature_url(h.default_base(), &ver),
        t.archive_url(t.default_base(), &ver, "linux", "arm64"),
        t.sums_url(t.default_base(), &ver),
        t.signature_url("http://127.0.0.1:8080/tofu", &ver),
        h.binary_name(),
        t.binary_name(),
    );
    insta::assert_snapshot!(urls, @"
    https://releases.hashicorp.com/terraform/1.8.3/terraform_1.8.3_linux_amd64.zip
    http://127.0.0.1:8080/mirror/terraform/1.8.3/terraform_1.8.3_SHA256SUMS
    https://releases.hashicorp.com/terraform/1.8.3/terraform_1.8.3_SHA256SUMS.sig
    https://github.com/opentofu/opentofu/releases/download/v1.8.3/tofu_1.8.3_linux_arm64.zip
    https://github.com/opentofu/opentofu/releases/download/v1.8.3/tofu_1.8.3_SHA256SUMS
    http://127.0.0.1:8080/tofu/v1.8.3/tofu_1.8.3_SHA256SUMS.gpgsig
    terraform tofu
    ");
}

#[test]
fn sha256sums_are_parsed_and_verified() {
    let a = "a".repeat(64);
    let b = "B".repeat(64);
    let text =
        format!("{a}  terraform_1.8.3_linux_amd64.zip\n\n{b} *terraform_1.8.3_darwin_arm64.zip\n");
    let sums = Sha256Sums::parse(&text).unwrap();
    assert_eq!(sums.entries.len(), 2);
    assert_eq!(
        sums.digest_of("terraform_1.8.3_darwin_arm64.zip"),
        Some("b".repeat(64).as_str())
    );
    sums.verify("terraform_1.8.3_linux_amd64.zip", &"A".repeat(64))
        .unwrap();
    let wrong = sums
        .verify("terraform_1.8.3_linux_amd64.zip", &"c".repeat(64))
        .unwrap_err();
    assert!(wrong.contains("lists"), "{wrong}");
    let missing = sums
        .verify("terraform_1.8.3_linux_386.zip", &a)
        .unwrap_err();
    assert!(missing.contains("not listed"), "{missing}");

    for (bad, why) in [
        (format!("{a} one-space.zip"), "line 1"),
        (format!("{}  short.zip", "a".repeat(63)), "line 1"),
        (format!("{a}  ok.zip\n{a}  ../escape.zip"), "line 2"),
        (format!("{a}  dup.zip\n{b}  dup.zip"), "twice"),
        (format!("{}  x.zip", "g".repeat(64)), "line 1"),
    ] {
        let e = Sha256Sums::parse(&bad).unwrap_err();
        assert!(e.contains(why), "{bad:?}: {e}");
    }
}

#[test]
fn required_version_is_read_from_terraform_blocks_only() {
    let limits = sluice::core::hcl_scan::HclLimits {
        max_bytes: 1 << 20,
        max_depth: 100,
    };
    let text = "terraform {\n  required_version = \">= 1.0, < 2.0\"\n  required_providers {}\n}\n\
                terraform {\n  required_version = \"~> 1.0.0\"\n}\n\
                locals {\n  required_version = \"9\"\n}\n\
                resource \"x\" \"y\" {\n  required_version = \"8\"\n}\n";
    assert_eq!(
        required_versions(text, &limits),
        vec![">= 1.0, < 2.0".to_string(), "~> 1.0.0".to_string()]
    );
    // Computed, broken or over the limits: nothing (terraform reports its own error).
    let computed = "terraform {\n  required_version = var.v\n}\n";
    assert!(required_versions(computed, &limits).is_empty());
    let broken = "terraform {\n  required_version = \"1\"\n";
    assert!(required_versions(broken, &limits).is_empty());
    let deep = format!(
        "terraform {{\n  required_version = \"1\"\n}}\nlocals {{\n  x = {}{}\n}}\n",
        "[".repeat(500),
        "]".repeat(500)
    );
    assert!(required_versions(&deep, &limits).is_empty());
}
