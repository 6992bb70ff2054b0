//! `sluice events list`: the operator's view of webhook deliveries — above all the dead letters,
//! events set aside after their attempts were used up (see `Store::claim_event`). Read-only.

use std::process::ExitCode;

use super::audit::open_existing;
use super::ports::store::{EventRow, EventState, Store};
use crate::config::Settings;
use crate::core::event::Event;

/// What to list.
#[derive(Debug, Clone)]
pub struct ListOptions {
    /// Only deliveries in this state.
    pub state: Option<EventState>,
    pub limit: u32,
    /// JSON lines instead of a table.
    pub json: bool,
}

/// The repository and PR an event is about (`acme/infra#7`), or `-`.
pub fn target(row: &EventRow) -> String {
    match &row.event {
        Some(Event::PullRequest { repo, pr, .. }) => format!("{}#{}", repo.name, pr.number.get()),
        Some(Event::Comment { repo, pr, .. } | Event::Review { repo, pr, .. }) => {
            format!("{}#{}", repo.name, pr.get())
        }
        _ => "-".to_string(),
    }
}

/// One event as the API and `--json` show it.
pub fn to_json(row: &EventRow) -> serde_json::Value {
    let mut v = serde_json::to_value(row).unwrap_or_default();
    v["target"] = target(row).into();
    v
}

pub async fn list(settings: &Settings, opts: ListOptions) -> anyhow::Result<ExitCode> {
    let store = open_existing(settings).await?;
    let rows = store.list_events(opts.state, opts.limit).await?;
    if rows.is_empty() {
        eprintln!(
            "sluice: no {}events",
            opts.state
                .map(|s| format!("{} ", s.as_str()))
                .unwrap_or_default()
        );
    }
    for row in &rows {
        if opts.json {
            println!("{}", to_json(row));
        } else {
            println!(
                "{}\t{}\t{}\t{}\tattempts={}\t{}\t{}",
                crate::core::audit::format_time(row.received_at),
                row.delivery_id,
                row.kind,
                row.state.as_str(),
                row.attempts,
                target(row),
                row.error.as_deref().unwrap_or("").replace('\n', " ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
