//! `admin-cli`: the operator's tool for users, tasks, simulations, clusters, migrations and SQL.

mod cli;
mod commands;
mod output;

use anyhow::Result;
use cli::{Cli, Command};
use commands::Ctx;
use db::enums::Role;
use db::DbError;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse_args(); // exits with 2 on bad usage
    db::config::logging::init(cli.log.log_format, "off"); // quiet unless RUST_LOG asks
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let result = runtime.block_on(run(cli, &mut out));
    let flushed = out.flush();
    match result.and(flushed.map_err(Into::into)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed pipe (e.g. `| head`) is not an error worth reporting.
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::BrokenPipe {
                    return ExitCode::SUCCESS;
                }
            }
            eprintln!("error: {}", describe(&e));
            ExitCode::from(1)
        }
    }
}

/// One line for the operator: the error, plus a hint where there is an obvious next step.
fn describe(e: &anyhow::Error) -> String {
    let mut msg = format!("{e:#}");
    if let Some(db) = e.downcast_ref::<DbError>() {
        match db {
            DbError::Connect { .. } => msg.push_str(
                "\nhint: is PostgreSQL running, and does the database exist? \
                 Set DATABASE_URL (or DB_HOST, DB_PORT, DB_USER, DB_PASSWORD, DB_NAME); \
                 `admin-cli db-url` shows what is used.",
            ),
            DbError::NotMigrated { .. } => {}
            DbError::UnknownMigrations { .. } => {}
            _ => {}
        }
    }
    msg
}

async fn run(cli: Cli, out: &mut dyn Write) -> Result<()> {
    // `db-url` prints the settings as given; every connection carries the tool's name.
    let given = cli.db.config()?;
    let mut ctx = Ctx {
        config: given.with_application_name("admin-cli"),
        json: cli.json,
        out,
    };
    match cli.command {
        Command::ListUsers { verbose } => commands::users::list(&mut ctx, verbose).await,
        Command::AddUser {
            name,
            password,
            admin,
        } => {
            commands::users::add(
                &mut ctx,
                &name,
                password.password,
                password.password_stdin,
                admin,
            )
            .await
        }
        Command::UpdateUser {
            name,
            auth_provider,
            password,
            no_password,
            admin,
            no_admin,
        } => {
            let role = match (admin, no_admin) {
                (true, _) => Some(Role::Admin),
                (_, true) => Some(Role::User),
                _ => None,
            };
            commands::users::update(
                &mut ctx,
                &name,
                auth_provider,
                commands::users::UpdateRequest {
                    password: password.password,
                    password_stdin: password.password_stdin,
                    no_password,
                    role,
                },
            )
            .await
        }
        Command::RenameUser {
            old,
            new,
            auth_provider,
        } => commands::users::rename(&mut ctx, &old, &new, auth_provider).await,
        Command::RemoveUser {
            name,
            auth_provider,
            cascade,
        } => commands::users::remove(&mut ctx, &name, auth_provider, cascade).await,
        Command::ListTasks {
            simulation,
            owner,
            state,
            limit,
        } => {
            commands::tasks::list(
                &mut ctx,
                simulation,
                db::tasks::TaskFilter {
                    simulation_id: None,
                    username: owner.user,
                    auth_provider: owner.auth_provider,
                    state,
                    limit,
                },
            )
            .await
        }
        Command::RemoveTask {
            simulation,
            task_index,
        } => commands::tasks::remove(&mut ctx, simulation, task_index).await,
        Command::RetryTask {
            simulation,
            task_index,
        } => commands::tasks::retry(&mut ctx, simulation, task_index).await,
        Command::ListSimulations {
            verbose,
            owner,
            state,
            limit,
        } => {
            commands::simulations::list(
                &mut ctx,
                db::simulations::SimulationFilter {
                    username: owner.user,
                    auth_provider: owner.auth_provider,
                    state,
                    limit,
                },
                verbose,
            )
            .await
        }
        Command::RemoveSimulation { simulation } => {
            commands::simulations::remove(&mut ctx, simulation).await
        }
        Command::Cleanup {
            older_than,
            state,
            owner,
            dry_run,
            batch_size,
        } => {
            commands::cleanup::run(
                &mut ctx,
                db::simulations::CleanupFilter {
                    older_than,
                    states: state,
                    username: owner.user,
                    auth_provider: owner.auth_provider,
                },
                dry_run,
                batch_size,
            )
            .await
        }
        Command::Backup {
            out,
            force,
            compress,
        } => commands::backup::backup(&mut ctx, &out, force, compress).await,
        Command::VerifyBackup { file } => commands::verify_backup::verify(&mut ctx, &file).await,
        Command::AddCluster(args) => commands::clusters::add(&mut ctx, args).await,
        Command::UpdateCluster(args) => commands::clusters::update(&mut ctx, args).await,
        Command::ListClusters => commands::clusters::list(&mut ctx).await,
        Command::RemoveCluster { name } => commands::clusters::remove(&mut ctx, &name).await,
        Command::Migrate(cmd) => commands::migrate::run(&mut ctx, cmd).await,
        Command::SchemaDiagram { markdown } => {
            commands::schema_diagram::run(&mut ctx, markdown).await
        }
        Command::Sql { command, file } => commands::sql::run(&mut ctx, command, file).await,
        Command::DbUrl { show_password } => {
            let url = if show_password {
                given.url_with_password().to_string()
            } else {
                given.redacted_url()
            };
            writeln!(ctx.out, "{url}")?;
            Ok(())
        }
    }
}
