//! What a reader of a pull request sees of its plans: the one summary comment Sluice edits in
//! place on every plan run (`<!-- sluice:sticky pr=N -->`), followed by its live follow-up
//! comments (details that did not fit, `<!-- sluice:detail slot=K pr=N … -->`, in slot order;
//! slots marked superseded are left out). Tests that wait for a plan read this text, not
//! per-run comments.

use sluice::core::review::marker::{Marker, MarkerKind};

use crate::server::{Harness, REPO};

impl Harness {
    /// PR `n`'s summary comment and its live follow-ups, joined by blank lines; `None` before
    /// the first plan run is reported.
    pub fn plan_text(&self, n: u64) -> Option<String> {
        let comments = self.fake.bot_comments(REPO, n);
        let ours = |body: &String| Marker::parse(body).filter(|m| m.pr == n && !m.superseded);
        let summary = comments
            .iter()
            .find(|c| ours(c).is_some_and(|m| m.kind == MarkerKind::Sticky))?;
        let mut follow_ups: Vec<(u32, &String)> = comments
            .iter()
            .filter_map(|c| match ours(c)?.kind {
                MarkerKind::Detail { slot } => Some((slot, c)),
                _ => None,
            })
            .collect();
        follow_ups.sort_by_key(|(slot, _)| *slot);
        let mut text = summary.clone();
        for (_, body) in follow_ups {
            text.push_str("\n\n");
            text.push_str(body);
        }
        Some(text)
    }

    /// Waits until PR `n`'s plan text satisfies `pred`; returns it.
    pub async fn wait_plan(&self, n: u64, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait(what, || self.plan_text(n).filter(|t| pred(t)))
            .await
    }

    /// How many plan runs PR `n`'s summary reports: the newest on top plus the earlier ones
    /// listed in its history fold (`Earlier runs (k)`); 0 before the first.
    pub fn plan_runs(&self, n: u64) -> usize {
        let Some(text) = self.plan_text(n) else {
            return 0;
        };
        let earlier = text
            .split_once("<summary>Earlier runs (")
            .and_then(|(_, rest)| rest.split_once(')'))
            .map_or(0, |(k, _)| k.parse().expect("a count of earlier runs"));
        1 + earlier
    }

    /// Waits until PR `n`'s summary reports `runs` plan runs; returns its plan text.
    pub async fn wait_plan_runs(&self, n: u64, runs: usize) -> String {
        self.wait(&format!("{runs} plan runs in #{n}'s summary"), || {
            (self.plan_runs(n) == runs)
                .then(|| self.plan_text(n))
                .flatten()
        })
        .await
    }
}
