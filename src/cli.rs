//! The command line: arguments are parsed by clap (raw), validated into settings and options,
//! and dispatched. Human output goes to stderr, data (comments, exports) to stdout.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::app::audit::AuditTask;
use crate::app::locks_cli::LocksTask;
use crate::app::preview::{Format, PreviewOptions, PreviewResult};
use crate::app::project_run::Runner;
use crate::config::{Overrides, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about = "Pull-request bot that gates Terraform/OpenTofu changes through Git"
)]
pub struct Cli {
    /// Settings file (TOML or YAML); also SLUICE_CONFIG.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format: human on a terminal, JSON otherwise (auto), or forced.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Auto,
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: webhooks, API, job workers (default 127.0.0.1:4141).
    Serve {
        /// Address to listen on; also SLUICE_LISTEN.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Data directory (store, mirrors, job dirs); also SLUICE_DATA_DIR.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// DEVELOPMENT ONLY: accept webhooks without verifying their signature.
        #[arg(long)]
        insecure_no_webhook_secret: bool,
        /// DEVELOPMENT ONLY: serve the web UI without login (everyone is an admin).
        #[arg(long)]
        insecure_ui_no_auth: bool,
    },
    /// Run the PR pipeline locally on a git checkout and print the comment Sluice would post.
    Preview {
        /// Base ref (default: origin/HEAD, origin/main, main, origin/master, master).
        #[arg(long)]
        base: Option<String>,
        /// Head ref (default: HEAD).
        #[arg(long)]
        head: Option<String>,
        /// Plans run at once.
        #[arg(long, short = 'j', default_value_t = 2)]
        jobs: usize,
        /// Plan every project, not only those the change affects.
        #[arg(long)]
        all: bool,
        /// Output: the PR comment markdown, or plain text for a terminal.
        #[arg(long, value_enum, default_value_t = PreviewFormat::Markdown)]
        format: PreviewFormat,
        /// Keep job directories (checkouts, plan files) for inspection.
        #[arg(long)]
        keep_job_dirs: bool,
        /// Path of the repository.
        #[arg(default_value = ".")]
        path: PathBuf,
    },
    /// Repository configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The audit log: export, verify, show.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Locks held by pull requests.
    #[command(subcommand)]
    Locks(LocksCommand),
    /// Webhook events: pending, handled, and those set aside (dead letters).
    #[command(subcommand)]
    Events(EventsCommand),
    /// Drift: whether the live infrastructure still matches Git.
    #[command(subcommand)]
    Drift(DriftCommand),
    /// Moving from Atlantis: what Sluice does with an atlantis.yaml.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Open a pull request reverting merged pull request N (as `sluice rollback` commented on
    /// it does), with the server's settings and GitHub credentials. The revert is planned and
    /// gated like any pull request. Exit 0: opened or already open; 1: refused or conflicting.
    Rollback(RollbackArgs),
    /// Sync status per project: synced, drifted, out_of_sync, check_failed, unknown, stale;
    /// drift and its acceptance, last applied commit, next check.
    Status {
        #[arg(long)]
        repo: Option<String>,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `sluice rollback`'s arguments.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The repository, OWNER/NAME.
    #[arg(long)]
    repo: String,
    /// The merged pull request.
    #[arg(long)]
    pr: u64,
    /// Who asks (audited; needs write permission on the repository); defaults to $USER.
    #[arg(long)]
    by: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Explain an atlantis.yaml: each project, workflow and policy set, what is not supported
    /// and why, and the equivalent sluice.yaml. Exit 0: Sluice runs it as it is; 1: it would be
    /// refused.
    Atlantis {
        /// The server's Atlantis repos.yaml, to check the file against its rules.
        #[arg(long, value_name = "FILE")]
        repos_yaml: Option<PathBuf>,
        /// The repository (OWNER/NAME) whose repos.yaml rules apply.
        #[arg(long, value_name = "OWNER/NAME")]
        repo: Option<String>,
        /// The atlantis.yaml, or the repository directory holding it.
        #[arg(default_value = ".")]
        path: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum DriftCommand {
    /// Check a local checkout for drift (refresh-only plan + plan per project) and print the
    /// report. Exit 0: in sync; 3: drifted or out of sync; 1: a check failed.
    Check {
        /// Only this project.
        #[arg(long, short = 'p')]
        project: Option<String>,
        /// The commit to check (default: HEAD).
        #[arg(long = "ref", value_name = "REF")]
        git_ref: Option<String>,
        /// Checks run at once.
        #[arg(long, short = 'j', default_value_t = 2)]
        jobs: usize,
        /// Path of the repository.
        #[arg(default_value = ".")]
        path: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List events, newest first.
    List {
        /// Only the events set aside after their attempts were used up (same as `--state dead`).
        #[arg(long, conflicts_with = "state")]
        dead: bool,
        /// Only events in this state.
        #[arg(long, value_parser = ["pending", "done", "dead"])]
        state: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PreviewFormat {
    Markdown,
    Terminal,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a repository's sluice.yaml / atlantis.yaml and policy files.
    Check {
        #[arg(default_value = ".")]
        path: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Stream entries as JSON lines or CSV.
    Export {
        /// Entries at or after this time (RFC 3339 or a date, e.g. 2026-01-01).
        #[arg(long)]
        since: Option<String>,
        /// Entries before this time.
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        repo: Option<String>,
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Recompute the hash chain; report the first bad entry.
    Verify {
        /// A previously recorded `SEQ:HASH` that must still be in the log (detects truncation).
        #[arg(long)]
        anchor: Option<String>,
    },
    /// Everything recorded for one commit: plans, approvals, policy decisions, applies.
    Show {
        #[arg(long)]
        commit: String,
        #[arg(long)]
        repo: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum LocksCommand {
    /// List locks.
    List {
        #[arg(long)]
        repo: Option<String>,
    },
    /// Release one lock (audited; the holding PR is told).
    Release {
        #[arg(long)]
        repo: String,
        #[arg(long)]
        dir: String,
        #[arg(long, default_value = "default")]
        workspace: String,
        /// Who is releasing it (recorded in the audit log); defaults to $USER.
        #[arg(long)]
        by: Option<String>,
    },
}

impl AuditCommand {
    /// The validated arguments, as the app takes them.
    fn lower(self) -> AuditTask {
        match self {
            AuditCommand::Export {
                since,
                until,
                repo,
                format,
                output,
            } => AuditTask::Export {
                since,
                until,
                repo,
                format: match format {
                    ExportFormat::Jsonl => crate::app::audit::ExportFormat::Jsonl,
                    ExportFormat::Csv => crate::app::audit::ExportFormat::Csv,
                },
                output,
            },
            AuditCommand::Verify { anchor } => AuditTask::Verify { anchor },
            AuditCommand::Show { commit, repo } => AuditTask::Show { commit, repo },
        }
    }
}

impl LocksCommand {
    /// The validated arguments, as the app takes them.
    fn lower(self) -> LocksTask {
        match self {
            LocksCommand::List { repo } => LocksTask::List { repo },
            LocksCommand::Release {
                repo,
                dir,
                workspace,
                by,
            } => LocksTask::Release {
                repo,
                dir,
                workspace,
                by,
            },
        }
    }
}

fn init_tracing(format: LogFormat, server: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let default = if server { "info" } else { "warn" };
    let filter = EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Human => false,
        LogFormat::Auto => server && !std::io::stderr().is_terminal(),
    };
    // Every line passes through the redactor of the secrets the settings name (set once the
    // runner is built from them): no secret reaches the log, encoded or not.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::adapters::log::RedactingWriter::stderr());
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Runs a parsed command line; the exit code says how it went.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let server = matches!(cli.command, Command::Serve { .. });
    init_tracing(cli.log_format, server);
    let mut overrides = Overrides {
        config_file: cli.config.clone(),
        ..Overrides::default()
    };
    match cli.command {
        Command::Serve {
            listen,
            data_dir,
            insecure_no_webhook_secret,
            insecure_ui_no_auth,
        } => {
            overrides.listen = listen;
            overrides.data_dir = data_dir;
            overrides.insecure_no_webhook_secret = insecure_no_webhook_secret;
            overrides.insecure_ui_no_auth = insecure_ui_no_auth;
            let settings = Settings::load(&overrides)?;
            runtime()?.block_on(async {
                let listener = tokio::net::TcpListener::bind(settings.listen)
                    .await
                    .with_context(|| format!("listening on {}", settings.listen))?;
                crate::app::server::serve(settings, listener, shutdown_signal()).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { repo, json } => {
            let settings = Settings::load(&overrides)?;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            runtime()?.block_on(crate::app::drift_cli::status(
                &settings,
                repo.as_deref(),
                json,
                &mut out,
            ))
        }
        Command::Drift(DriftCommand::Check {
            project,
            git_ref,
            jobs,
            path,
        }) => {
            let mut settings = Settings::load(&overrides)?;
            let _scratch = local_scratch(&mut settings)?;
            let runner = Arc::new(Runner::from_settings(&settings)?);
            let opts = crate::app::drift_cli::DriftCheckOptions {
                path,
                project,
                git_ref,
                jobs,
                limits: settings.limits,
            };
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let result =
                runtime()?.block_on(crate::app::drift_cli::check(runner, &opts, &mut out))?;
            use crate::app::drift_cli::DriftCheckResult;
            Ok(match result {
                DriftCheckResult::InSync => ExitCode::SUCCESS,
                DriftCheckResult::Drifted => ExitCode::from(3),
                DriftCheckResult::Failed => ExitCode::from(1),
            })
        }
        Command::Preview {
            base,
            head,
            jobs,
            all,
            format,
            keep_job_dirs,
            path,
        } => {
            let mut settings = Settings::load(&overrides)?;
            let _scratch = local_scratch(&mut settings)?;
            let runner = Arc::new(Runner::from_settings(&settings)?);
            if !runner.sandbox.is_isolated() {
                eprintln!(
                    "sluice: WARNING: runner profile is not isolated ({})",
                    runner.sandbox.description()
                );
            }
            let opts = PreviewOptions {
                path,
                base,
                head,
                jobs,
                all,
                format: match format {
                    PreviewFormat::Markdown => Format::Markdown,
                    PreviewFormat::Terminal => Format::Terminal,
                },
                bot_name: settings.bot_name.clone(),
                keep_job_dirs,
                color: std::io::IsTerminal::is_terminal(&std::io::stdout()),
                limits: settings.limits,
                host_paths: crate::app::layout::host_paths(&settings, &runner),
            };
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let result =
                runtime()?.block_on(crate::app::preview::preview(runner, &opts, &mut out))?;
            Ok(match result {
                PreviewResult::AllPlanned => ExitCode::SUCCESS,
                PreviewResult::SomeFailed => ExitCode::from(1),
                PreviewResult::ConfigRejected => ExitCode::from(1),
            })
        }
        Command::Config(ConfigCommand::Check { path }) => {
            let report = crate::app::config_check::check(&path)?;
            let mut err = std::io::stderr().lock();
            write!(err, "{}", report.text)?;
            Ok(if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Migrate(cmd) => migrate(cmd),
        Command::Rollback(args) => rollback(&overrides, args),
        Command::Audit(cmd) => {
            let settings = Settings::load(&overrides)?;
            runtime()?.block_on(crate::app::audit::run(&settings, cmd.lower()))
        }
        Command::Locks(cmd) => {
            let settings = Settings::load(&overrides)?;
            runtime()?.block_on(crate::app::locks_cli::run(&settings, cmd.lower()))
        }
        Command::Events(EventsCommand::List {
            dead,
            state,
            limit,
            json,
        }) => {
            let settings = Settings::load(&overrides)?;
            let state = if dead {
                Some(crate::app::ports::store::EventState::Dead)
            } else {
                state
                    .as_deref()
                    .and_then(crate::app::ports::store::EventState::parse)
            };
            let opts = crate::app::events_cli::ListOptions { state, limit, json };
            runtime()?.block_on(crate::app::events_cli::list(&settings, opts))
        }
    }
}

/// `sluice rollback`: the revert pull request's outcome on stdout.
fn rollback(overrides: &Overrides, args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let RollbackArgs { repo, pr, by } = args;
    let opts = crate::app::rollback_cli::RollbackOptions { repo, pr, by };
    let settings = Settings::load(overrides)?;
    runtime()?.block_on(crate::app::rollback_cli::run(&settings, opts))
}

/// `sluice migrate atlantis`: the explanation on stdout; exit 1 when Sluice would refuse the file.
fn migrate(cmd: MigrateCommand) -> anyhow::Result<ExitCode> {
    let MigrateCommand::Atlantis {
        repos_yaml,
        repo,
        path,
    } = cmd;
    let opts = crate::app::migrate_cli::MigrateOptions {
        path,
        repos_yaml,
        repo,
    };
    let report = crate::app::migrate_cli::migrate_atlantis(&opts)?;
    std::io::stdout().lock().write_all(report.text.as_bytes())?;
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Temp dirs that stand in for the data dir and the jobs dir of a local command when none is
/// configured; removed when dropped.
type Scratch = Option<(tempfile::TempDir, Option<tempfile::TempDir>)>;

/// Without a configured data dir, a local command's job dirs go to a throw-away temp dir (and
/// the jobs to another: never inside the data dir).
fn local_scratch(settings: &mut Settings) -> anyhow::Result<Scratch> {
    if settings.data_dir_configured() {
        return Ok(None);
    }
    let t = tempfile::Builder::new()
        .prefix("sluice-preview-")
        .tempdir()?;
    settings.data_dir = t.path().to_path_buf();
    let jobs = match settings.runner.jobs_dir {
        Some(_) => None,
        None => {
            let j = tempfile::Builder::new()
                .prefix("sluice-preview-jobs-")
                .tempdir()?;
            settings.runner.jobs_dir = Some(j.path().to_path_buf());
            Some(j)
        }
    };
    Ok(Some((t, jobs)))
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
