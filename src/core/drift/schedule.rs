//! Drift-check schedules: standard 5-field cron expressions (UTC), when a check is next due,
//! deterministic jitter, and the `drift: { schedule, enabled }` setting.
//!
//! Parsing and evaluation are croner's (a maintained crate that reads the 5-field syntax with
//! Vixie cron's day-of-month/day-of-week "or" rule, names like `MON`/`JAN`, lists, ranges and
//! steps). This module adds what a config check needs: which field is wrong, a hint, schedules
//! that can never run refused up front, and no seconds field (Sluice checks are per minute at
//! most). Nicknames `@hourly`, `@daily`/`@midnight`, `@weekly`, `@monthly`, `@yearly`/`@annually`
//! are accepted and mean their usual 5-field expressions.
//!
//! **Jitter.** 500 projects on `0 */6 * * *` must not start in the same second. Each project
//! gets a fixed offset added to every scheduled time: the first 8 bytes (big-endian) of
//! `SHA-256("sluice-drift-jitter\0" + lowercase("owner/repo") + "\0" + project name)`, modulo
//! the bound in seconds. The bound is [`Jitter::percent`] of the schedule's shortest interval,
//! at most [`Jitter::max`]. The offset depends on nothing else, so it survives restarts and
//! never makes a project skip or repeat a run.
//!
//! Pure: `now` is always an argument. Times are UTC.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, TimeZone, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::core::diag::Diagnostic;
use crate::core::types::{ProjectName, RepoName};

/// The fields, in order, as errors name them, with their ranges.
const FIELDS: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 (0 and 7 are Sunday) or SUN-SAT"),
];

const NICKNAMES: [(&str, &str); 8] = [
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@reboot", ""),
];

/// The server's default schedule when neither `sluice.yaml` nor the server config names one.
pub const DEFAULT_SCHEDULE: &str = "0 */6 * * *";

/// A parsed, validated cron schedule. Serialized as its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// As written (trimmed).
    text: String,
    cron: Cron,
    /// The shortest gap between two consecutive runs.
    interval: Duration,
}

// Two schedules are equal when their text is; the parsed form follows from it.
impl Eq for Schedule {}

/// Why a schedule was refused. `offset` is the character offset inside the value where the
/// offending field starts, so the config layer can point at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ScheduleError {
    pub message: String,
    pub hint: Option<String>,
    pub offset: usize,
}

impl ScheduleError {
    fn new(message: impl Into<String>, hint: impl Into<String>, offset: usize) -> Self {
        ScheduleError {
            message: message.into(),
            hint: Some(hint.into()),
            offset,
        }
    }

    /// The diagnostic for a value that starts at `file:line:column` (1-based; the column of the
    /// value's first character, after any opening quote).
    pub fn diagnostic(&self, file: &str, line: usize, column: usize) -> Diagnostic {
        let column = if line == 0 { 0 } else { column + self.offset };
        let d = Diagnostic::error(file, line, column, self.message.clone());
        match &self.hint {
            Some(h) => d.with_hint(h.clone()),
            None => d,
        }
    }
}

const EXAMPLES: &str = "e.g. `0 */6 * * *` (every 6 hours), `*/30 * * * *` (every 30 minutes), \
                        `0 7 * * 1-5` (07:00 UTC on weekdays)";

/// Validates a `drift.schedule` value and returns the typed schedule; what the config layer
/// calls for the string it read.
pub fn validate_schedule(value: &str) -> Result<Schedule, ScheduleError> {
    Schedule::parse(value)
}

impl Schedule {
    /// Parses a 5-field cron expression (or a nickname). Times are UTC.
    pub fn parse(value: &str) -> Result<Schedule, ScheduleError> {
        let text = value.trim();
        let lead = value.chars().count() - value.trim_start().chars().count();
        if text.is_empty() {
            return Err(ScheduleError::new(
                "the drift schedule is empty",
                format!(
                    "give a 5-field cron expression (minute hour day-of-month month day-of-week), {EXAMPLES}"
                ),
                0,
            ));
        }
        let expanded = if text.starts_with('@') {
            match NICKNAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(text)) {
                Some((_, "")) => {
                    return Err(ScheduleError::new(
                        format!("`{text}` is not a schedule Sluice can run"),
                        format!("drift checks need a time; {EXAMPLES}"),
                        lead,
                    ));
                }
                Some((_, expr)) => (*expr).to_string(),
                None => {
                    let names: Vec<&str> = NICKNAMES[..7].iter().map(|(n, _)| *n).collect();
                    return Err(ScheduleError::new(
                        format!("unknown schedule nickname `{text}`"),
                        format!(
                            "use one of {}, or a 5-field cron expression",
                            names.join(", ")
                        ),
                        lead,
                    ));
                }
            }
        } else {
            text.to_string()
        };

        // Fields and where each starts (in characters, within `value`).
        let mut fields: Vec<(usize, &str)> = Vec::new();
        let mut start = None;
        for (i, (ci, c)) in expanded.char_indices().enumerate() {
            match (c.is_whitespace(), start) {
                (false, None) => start = Some((i, ci)),
                (true, Some((si, sci))) => {
                    fields.push((si, &expanded[sci..ci]));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some((si, sci)) = start {
            fields.push((si, &expanded[sci..]));
        }
        let at = |i: usize| {
            if text.starts_with('@') {
                lead
            } else {
                lead + fields[i].0
            }
        };
        if fields.len() != 5 {
            let hint = match fields.len() {
                6 | 7 => "Sluice schedules have no seconds (or year) field: drop it, and give \
                          minute hour day-of-month month day-of-week"
                    .to_string(),
                _ => format!("give minute hour day-of-month month day-of-week, {EXAMPLES}"),
            };
            return Err(ScheduleError::new(
                format!(
                    "a drift schedule has 5 fields, but `{text}` has {}",
                    fields.len()
                ),
                hint,
                lead,
            ));
        }

        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        // Find the first field that is wrong on its own, so the error can name it.
        for (i, (_, field)) in fields.iter().enumerate() {
            let mut probe = ["*"; 5];
            probe[i] = field;
            if let Err(e) = parser.parse(&probe.join(" ")) {
                let (name, range) = FIELDS[i];
                return Err(ScheduleError::new(
                    format!(
                        "the {name} field `{field}` is not valid ({})",
                        croner_reason(&e)
                    ),
                    format!(
                        "{name} values are {range}; combine them as lists `1,15`, ranges `1-5` \
                         and steps `*/15`"
                    ),
                    at(i),
                ));
            }
        }
        let cron = parser.parse(&expanded).map_err(|e| {
            ScheduleError::new(
                format!(
                    "`{text}` is not a valid cron expression ({})",
                    croner_reason(&e)
                ),
                EXAMPLES,
                lead,
            )
        })?;

        let interval = shortest_interval(&cron).ok_or_else(|| {
            ScheduleError::new(
                format!("`{text}` never runs (no date matches it, e.g. February 30)"),
                format!("check the day-of-month and month fields; {EXAMPLES}"),
                at(2),
            )
        })?;
        Ok(Schedule {
            text: text.to_string(),
            cron,
            interval,
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The shortest gap between two consecutive runs (e.g. 6 h for `0 */6 * * *`, 24 h for
    /// `0 7 * * 1-5`).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The first run strictly after `after`. `None` only past the year 5000.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }

    /// The schedule in English, e.g. "At minute 0 past every 6th hour" (from croner).
    pub fn describe(&self) -> String {
        self.cron.describe()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Schedule::parse(s)
    }
}

impl Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Schedule::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// croner's messages, without their type prefixes.
fn croner_reason(e: &croner::errors::CronError) -> String {
    use croner::errors::CronError as E;
    match e {
        E::InvalidPattern(m) | E::IllegalCharacters(m) | E::ComponentError(m) => m.clone(),
        other => other.to_string(),
    }
}

/// The shortest gap between consecutive runs among the first 500 after a fixed reference time
/// (and at most 10 years on): enough to see every shape of a 5-field schedule, including
/// leap days. `None` when it never runs.
fn shortest_interval(cron: &Cron) -> Option<Duration> {
    let reference = Utc.with_ymd_and_hms(2001, 1, 1, 0, 0, 0).single()?;
    let horizon = reference + Duration::days(366 * 10);
    let mut prev = cron.find_next_occurrence(&reference, true).ok()?;
    if prev > horizon {
        return None;
    }
    let mut best: Option<Duration> = None;
    for _ in 0..500 {
        let Ok(next) = cron.find_next_occurrence(&prev, false) else {
            break;
        };
        if next > horizon {
            break;
        }
        let gap = next - prev;
        best = Some(best.map_or(gap, |b| b.min(gap)));
        prev = next;
    }
    // A schedule with a single run in ten years (none that 5 fields can express) counts as
    // running every ten years.
    Some(best.unwrap_or(horizon - reference))
}

/// How far checks are spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jitter {
    /// Offsets stay below this percentage of the schedule's shortest interval (0-100).
    pub percent: u32,
    /// …and below this.
    #[serde(with = "duration_seconds")]
    pub max: Duration,
}

impl Default for Jitter {
    /// Half the interval, at most 30 minutes: 500 projects on one schedule start about 3.6 s
    /// apart, and none runs more than 30 minutes after its scheduled time.
    fn default() -> Self {
        Jitter {
            percent: 50,
            max: Duration::minutes(30),
        }
    }
}

impl Jitter {
    /// No spreading.
    pub fn none() -> Self {
        Jitter {
            percent: 0,
            max: Duration::zero(),
        }
    }

    /// The offset of one project (see the module docs), in whole seconds, in
    /// `[0, bound)` where `bound = min(interval × percent / 100, max)`.
    pub fn offset(&self, repo: &RepoName, project: &ProjectName, schedule: &Schedule) -> Duration {
        let by_interval = schedule.interval().num_seconds().max(0) as u64
            * u64::from(self.percent.min(100))
            / 100;
        let bound = by_interval.min(self.max.num_seconds().max(0) as u64);
        if bound == 0 {
            return Duration::zero();
        }
        let mut h = Sha256::new();
        h.update(b"sluice-drift-jitter\0");
        h.update(repo.full().to_ascii_lowercase().as_bytes());
        h.update(b"\0");
        h.update(project.as_str().as_bytes());
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        let secs = u64::from_be_bytes(first) % bound;
        Duration::seconds(secs as i64)
    }
}

/// When the next check of a project is due: the first scheduled time plus `offset` strictly
/// after `after` (pass the last check's time, or `now` for the first one). `None` only past
/// the year 5000.
pub fn next_due(
    schedule: &Schedule,
    offset: Duration,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    schedule.next_after(after - offset).map(|t| t + offset)
}

/// When a project whose last check finished at `last_check` becomes `stale`: the second due
/// time after it. So a project is stale when two scheduled checks in a row have passed
/// without any check finishing: for a regular schedule, when its last check is older than
/// twice the interval; for an irregular one (`0 7 * * 1-5`) the weekend gap does not count.
pub fn stale_at(
    schedule: &Schedule,
    offset: Duration,
    last_check: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let first = next_due(schedule, offset, last_check)?;
    next_due(schedule, offset, first)
}

/// `drift:` in `sluice.yaml` (per project), as the config layer will read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftSettings {
    /// `false` turns scheduled checks off for the project (it is then never `stale`).
    pub enabled: bool,
    /// `None`: the server's default.
    pub schedule: Option<Schedule>,
}

impl Eq for DriftSettings {}

impl Default for DriftSettings {
    fn default() -> Self {
        DriftSettings {
            enabled: true,
            schedule: None,
        }
    }
}

impl DriftSettings {
    /// The schedule that applies, or `None` when drift checks are off for the project.
    pub fn effective<'a>(&'a self, server_default: &'a Schedule) -> Option<&'a Schedule> {
        self.enabled
            .then(|| self.schedule.as_ref().unwrap_or(server_default))
    }
}

mod duration_seconds {
    use chrono::Duration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.num_seconds())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::seconds(i64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn err(value: &str) -> String {
        let e = Schedule::parse(value).unwrap_err();
        format!("{}", e.diagnostic("sluice.yaml", 4, 15))
    }

    #[test]
    fn standard_expressions_parse() {
        let cases = [
            (
                "* * * * *",
                "2027-01-01T10:00:30Z",
                "2027-01-01T10:01:00Z",
                60,
            ),
            (
                "0 */6 * * *",
                "2027-01-01T10:00:00Z",
                "2027-01-01T12:00:00Z",
                6 * 3600,
            ),
            (
                "*/15 9-17 * * 1-5",
                "2027-01-01T17:50:00Z",
                "2027-01-04T09:00:00Z",
                900,
            ),
            (
                "0 7 * * MON-FRI",
                "2027-01-01T08:00:00Z",
                "2027-01-04T07:00:00Z",
                86_400,
            ),
            (
                "30 2 1,15 * *",
                "2027-01-02T00:00:00Z",
                "2027-01-15T02:30:00Z",
                14 * 86_400,
            ),
            (
                "0 0 * JAN,jul *",
                "2027-02-01T00:00:00Z",
                "2027-07-01T00:00:00Z",
                86_400,
            ),
            (
                "0 0 * * 7",
                "2027-01-01T00:00:00Z",
                "2027-01-03T00:00:00Z",
                7 * 86_400,
            ),
            (
                "  @daily ",
                "2027-01-01T00:00:00Z",
                "2027-01-02T00:00:00Z",
                86_400,
            ),
            (
                "@hourly",
                "2027-01-01T00:00:00Z",
                "2027-01-01T01:00:00Z",
                3600,
            ),
            (
                "0 0 29 2 *",
                "2027-01-01T00:00:00Z",
                "2028-02-29T00:00:00Z",
                4 * 365 * 86_400 + 86_400,
            ),
            // Vixie cron: day-of-month OR day-of-week when both are restricted.
            (
                "0 0 13 * 5",
                "2027-01-01T00:00:00Z",
                "2027-01-08T00:00:00Z",
                86_400,
            ),
        ];
        for (expr, from, want, interval) in cases {
            let s = Schedule::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            assert_eq!(s.next_after(at(from)), Some(at(want)), "{expr}");
            assert_eq!(s.interval().num_seconds(), interval, "{expr}");
            assert_eq!(s.as_str(), expr.trim());
        }
    }

    #[test]
    fn bad_schedules_say_which_field_and_what_to_do() {
        insta::assert_snapshot!(err(""), @r"
        sluice.yaml:4:15: error: the drift schedule is empty
          hint: give a 5-field cron expression (minute hour day-of-month month day-of-week), e.g. `0 */6 * * *` (every 6 hours), `*/30 * * * *` (every 30 minutes), `0 7 * * 1-5` (07:00 UTC on weekdays)
        ");
        insta::assert_snapshot!(err("0 */6 * *"), @r"
        sluice.yaml:4:15: error: a drift schedule has 5 fields, but `0 */6 * *` has 4
          hint: give minute hour day-of-month month day-of-week, e.g. `0 */6 * * *` (every 6 hours), `*/30 * * * *` (every 30 minutes), `0 7 * * 1-5` (07:00 UTC on weekdays)
        ");
        insta::assert_snapshot!(err("0 0 */6 * * *"), @r"
        sluice.yaml:4:15: error: a drift schedule has 5 fields, but `0 0 */6 * * *` has 6
          hint: Sluice schedules have no seconds (or year) field: drop it, and give minute hour day-of-month month day-of-week
        ");
        insta::assert_snapshot!(err("0 25 * * *"), @r#"
        sluice.yaml:4:17: error: the hour field `25` is not valid (Number out of bounds.)
          hint: hour values are 0-23; combine them as lists `1,15`, ranges `1-5` and steps `*/15`
        "#);
        insta::assert_snapshot!(err("61 * * * *"), @r#"
        sluice.yaml:4:15: error: the minute field `61` is not valid (Number out of bounds.)
          hint: minute values are 0-59; combine them as lists `1,15`, ranges `1-5` and steps `*/15`
        "#);
        insta::assert_snapshot!(err("0 0 * 13 *"), @r#"
        sluice.yaml:4:21: error: the month field `13` is not valid (Number out of bounds.)
          hint: month values are 1-12 or JAN-DEC; combine them as lists `1,15`, ranges `1-5` and steps `*/15`
        "#);
        insta::assert_snapshot!(err("0 0 * * funday"), @r#"
        sluice.yaml:4:23: error: the day-of-week field `funday` is not valid (CronPattern contains illegal character 'F' in part 'FUNDAY')
          hint: day-of-week values are 0-7 (0 and 7 are Sunday) or SUN-SAT; combine them as lists `1,15`, ranges `1-5` and steps `*/15`
        "#);
        insta::assert_snapshot!(err("*/0 * * * *"), @r#"
        sluice.yaml:4:15: error: the minute field `*/0` is not valid (Step cannot be zero.)
          hint: minute values are 0-59; combine them as lists `1,15`, ranges `1-5` and steps `*/15`
        "#);
        insta::assert_snapshot!(err("0 0 31 2 *"), @r#"
        sluice.yaml:4:19: error: `0 0 31 2 *` never runs (no date matches it, e.g. February 30)
          hint: check the day-of-month and month fields; e.g. `0 */6 * * *` (every 6 hours), `*/30 * * * *` (every 30 minutes), `0 7 * * 1-5` (07:00 UTC on weekdays)
        "#);
        insta::assert_snapshot!(err("@reboot"), @r#"
        sluice.yaml:4:15: error: `@reboot` is not a schedule Sluice can run
          hint: drift checks need a time; e.g. `0 */6 * * *` (every 6 hours), `*/30 * * * *` (every 30 minutes), `0 7 * * 1-5` (07:00 UTC on weekdays)
        "#);
        insta::assert_snapshot!(err("@fortnightly"), @r#"
        sluice.yaml:4:15: error: unknown schedule nickname `@fortnightly`
          hint: use one of @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually, or a 5-field cron expression
        "#);
        insta::assert_snapshot!(err("every 6 hours"), @r#"
        sluice.yaml:4:15: error: a drift schedule has 5 fields, but `every 6 hours` has 3
          hint: give minute hour day-of-month month day-of-week, e.g. `0 */6 * * *` (every 6 hours), `*/30 * * * *` (every 30 minutes), `0 7 * * 1-5` (07:00 UTC on weekdays)
        "#);
    }

    #[test]
    fn next_due_and_stale_with_an_offset() {
        let s = Schedule::parse("0 */6 * * *").unwrap();
        let off = Duration::seconds(754);
        assert_eq!(
            next_due(&s, off, at("2027-01-01T00:00:00Z")),
            Some(at("2027-01-01T00:12:34Z"))
        );
        // Exactly at a due time: the next one.
        assert_eq!(
            next_due(&s, off, at("2027-01-01T00:12:34Z")),
            Some(at("2027-01-01T06:12:34Z"))
        );
        assert_eq!(
            next_due(&s, off, at("2027-01-01T06:00:00Z")),
            Some(at("2027-01-01T06:12:34Z"))
        );
        // Checked at 00:13 (just after its 00:12:34 run): stale from 12:12:34 on.
        assert_eq!(
            stale_at(&s, off, at("2027-01-01T00:13:00Z")),
            Some(at("2027-01-01T12:12:34Z"))
        );
        // Weekday schedule: Friday's check is not stale over the weekend.
        let w = Schedule::parse("0 7 * * 1-5").unwrap();
        assert_eq!(
            stale_at(&w, Duration::zero(), at("2027-01-01T07:05:00Z")),
            Some(at("2027-01-05T07:00:00Z"))
        );
    }

    #[test]
    fn jitter_spreads_500_projects_deterministically() {
        let repo = RepoName::parse("acme/infra").unwrap();
        let s = Schedule::parse("0 */6 * * *").unwrap();
        let j = Jitter::default();
        let offsets: Vec<i64> = (0..500)
            .map(|i| {
                let p = ProjectName::new(&format!("svc-{i:03}")).unwrap();
                j.offset(&repo, &p, &s).num_seconds()
            })
            .collect();
        // Bounded: half of 6 h is 3 h, the maximum 30 minutes wins.
        assert!(offsets.iter().all(|o| (0..1800).contains(o)));
        // Spread: no second holds more than a few starts, and the window is used end to end.
        let mut per_second = std::collections::BTreeMap::new();
        for o in &offsets {
            *per_second.entry(*o).or_insert(0) += 1;
        }
        let busiest = per_second.values().max().copied().unwrap();
        assert!(busiest <= 4, "{busiest} projects start in the same second");
        let per_minute: Vec<usize> = (0..30)
            .map(|m| offsets.iter().filter(|o| **o / 60 == m).count())
            .collect();
        assert!(
            per_minute.iter().all(|n| (5..=35).contains(n)),
            "{per_minute:?}"
        );
        // Deterministic, and the repository name compares case-insensitively.
        let p = ProjectName::new("svc-007").unwrap();
        let upper = RepoName::parse("ACME/Infra").unwrap();
        assert_eq!(j.offset(&upper, &p, &s).num_seconds(), offsets[7]);
        // Every minute: at most half a minute.
        let m = Schedule::parse("* * * * *").unwrap();
        assert!(j.offset(&repo, &p, &m).num_seconds() < 30);
        assert_eq!(Jitter::none().offset(&repo, &p, &s), Duration::zero());
    }

    #[test]
    fn settings() {
        let server = Schedule::parse(DEFAULT_SCHEDULE).unwrap();
        let own = Schedule::parse("*/10 * * * *").unwrap();
        let on = DriftSettings::default();
        assert_eq!(on.effective(&server), Some(&server));
        let custom = DriftSettings {
            enabled: true,
            schedule: Some(own.clone()),
        };
        assert_eq!(custom.effective(&server), Some(&own));
        let off = DriftSettings {
            enabled: false,
            schedule: Some(own),
        };
        assert_eq!(off.effective(&server), None);
        let json = serde_json::to_string(&custom).unwrap();
        assert_eq!(json, r#"{"enabled":true,"schedule":"*/10 * * * *"}"#);
        assert_eq!(
            serde_json::from_str::<DriftSettings>(&json).unwrap(),
            custom
        );
        assert!(
            serde_json::from_str::<DriftSettings>(r#"{"enabled":true,"schedule":"nope"}"#).is_err()
        );
    }
}
