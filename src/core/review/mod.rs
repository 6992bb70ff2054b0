//! Plans where reviewers read (PRODUCT.md §9, §17): the pure decisions behind the PR review
//! whose line comments sit on the `.tf` code that destroys or replaces, the one sticky summary
//! comment per PR, the check runs per project with their annotations and buttons, and the
//! budget that paces every GitHub write.
//!
//! Everything here is pure: file contents, diffs, plans and the time come in as arguments;
//! GitHub request bodies (in GitHub's REST field names) and decisions come out. Nothing here
//! talks to GitHub or the store; the app sends what these functions build.
//!
//! The flow for one push: [`locate::module_dirs`] says which module dirs to read →
//! [`locate::locate`] maps each planned address to its blocks → [`patch::PrDiff`] says which
//! lines the PR shows → [`pr_review::build_review`] builds the review →
//! [`sticky::render_sticky`] the summary comment → [`checks`] the check runs → every request
//! goes through [`budget::WriteBudget`].

pub mod address;
pub mod budget;
pub mod checks;
pub mod consequence;
pub mod locate;
pub mod marker;
pub mod material;
pub mod patch;
pub mod permission;
pub mod pr_review;
pub mod sticky;
pub mod surface;
