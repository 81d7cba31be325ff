//! Command-line flags and environment variables of the runner.

use crate::auth::{Subject, DEFAULT_TTL_SECS};
use std::path::PathBuf;

pub const HELP: &str = "\
orders-local: runs the whole orders-cqrs system on this machine (no Docker, no AWS account).
Start it with scripts/run-local, which builds the functions first.

Usage: orders-local [OPTIONS]
       orders-local mint-token (--customer ID | --staff) [--ttl SECS] [--state-dir DIR]

Options:
  --port N                  HTTP API port [env LOCAL_API_PORT; default 3000]
  --pg-port N               port of the local PostgreSQL [env LOCAL_PG_PORT; default 5433]
  --moto-port N             port of the local moto server [env LOCAL_MOTO_PORT; default 5000]
  --state-dir DIR           database cluster, logs and generated files
                            [env LOCAL_STATE_DIR; default <repo>/.local]
  --fresh                   delete the local database first (start with no orders)
  --visibility-timeout SECS use this SQS visibility timeout instead of the template's
                            [env LOCAL_SQS_VISIBILITY_TIMEOUT] (failed records come back sooner)
  --concurrency N           most execution environments (processes) per function at once, as
                            Lambda scales out under concurrent requests [env LOCAL_CONCURRENCY;
                            default 4]
  --managed-instances       run the functions the template lists in Metadata.ManagedInstances as
                            Lambda Managed Instances do: each process gets
                            AWS_LAMBDA_MAX_CONCURRENCY and that many invocations at once
                            [env LOCAL_MANAGED_INSTANCES=1]
  --template FILE           the SAM template [default <repo>/template.yaml]
  --bin-dir DIR             where the function binaries are [default <repo>/target/debug]
  --stack-name NAME         prefix of local resource names [env LOCAL_STACK_NAME; default orders-local]
  --real-aws                no moto: the functions use real AWS with your credentials, and the
                            resource variables (ORDERS_TABLE, ...) from the environment
                            [env LOCAL_REAL_AWS=1]; no queue polling, no re-projection
  --no-iam                  do not enforce IAM: every function calls moto as one all-powerful
                            principal [env LOCAL_NO_IAM=1] (by default each function runs under
                            its template role and moto checks every call; see docs/LOCAL.md)
  -h, --help                this text

When template.yaml gives the HTTP API a JWT authorizer, the runner checks tokens as API Gateway
does, against a local issuer and a development key in <state-dir>/auth/ (`mint-token --help`).

Existing services instead of local ones:
  DB_HOST (with DB_PORT, DB_NAME, DB_USER, DB_PASSWORD, DB_SSLMODE)  use that PostgreSQL
  AWS_ENDPOINT_URL                                                   use that moto (or emulator)
  Any variable a function declares in template.yaml (LOG_LEVEL, ORDERS_TABLE, ...), when set,
  overrides the local value.
";

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub root: PathBuf,
    pub api_port: u16,
    pub pg_port: u16,
    pub moto_port: u16,
    pub state_dir: PathBuf,
    pub fresh: bool,
    pub visibility_timeout: Option<u32>,
    /// Most execution environments per function at once.
    pub concurrency: usize,
    /// Functions of `Metadata.ManagedInstances` run several invocations per process.
    pub managed_instances: bool,
    pub template: PathBuf,
    pub bin_dir: PathBuf,
    pub stack_name: String,
    pub real_aws: bool,
    /// Each function under its template role, with moto's IAM enforcement on.
    pub iam: bool,
}

pub const MINT_HELP: &str = "\
orders-local mint-token: prints a JWT the local runner accepts (signed by the development key in
<state-dir>/auth/, which is generated if there is none yet), for curl -H \"authorization: Bearer ...\".

Usage: orders-local mint-token (--customer ID | --staff) [OPTIONS]

Options:
  --customer ID     a customer's token (sub = ID, scope orders/customer)
  --staff           a staff token (sub staff-local, scope orders/admin)
  --ttl SECS        lifetime [default 3600]
  --state-dir DIR   where the key is [env LOCAL_STATE_DIR; default <repo>/.local]
  -h, --help        this text
";

/// What `orders-local mint-token` was asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct MintOptions {
    pub subject: Subject,
    pub ttl_secs: u64,
    pub state_dir: PathBuf,
}

/// The outcome of reading the command line.
#[derive(Debug)]
pub enum Parsed {
    Run(Box<Options>),
    Help,
    MintToken(MintOptions),
    MintHelp,
}

fn number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{name}: {value:?} is not a valid number"))
}

/// Reads `args` (without the program name), with `env` for defaults; `root` is the repository.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
    root: PathBuf,
) -> Result<Parsed, String> {
    let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let mut args = args.into_iter().peekable();
    if args.peek().map(String::as_str) == Some("mint-token") {
        args.next();
        let state_dir = env("LOCAL_STATE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".local"));
        return parse_mint(args, state_dir);
    }
    let mut options = Options {
        api_port: env("LOCAL_API_PORT")
            .map(|v| number("LOCAL_API_PORT", &v))
            .transpose()?
            .unwrap_or(3000),
        pg_port: env("LOCAL_PG_PORT")
            .map(|v| number("LOCAL_PG_PORT", &v))
            .transpose()?
            .unwrap_or(5433),
        moto_port: env("LOCAL_MOTO_PORT")
            .map(|v| number("LOCAL_MOTO_PORT", &v))
            .transpose()?
            .unwrap_or(5000),
        state_dir: env("LOCAL_STATE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".local")),
        fresh: false,
        visibility_timeout: env("LOCAL_SQS_VISIBILITY_TIMEOUT")
            .map(|v| number("LOCAL_SQS_VISIBILITY_TIMEOUT", &v))
            .transpose()?,
        concurrency: env("LOCAL_CONCURRENCY")
            .map(|v| number("LOCAL_CONCURRENCY", &v))
            .transpose()?
            .unwrap_or(4),
        managed_instances: env("LOCAL_MANAGED_INSTANCES")
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true")),
        template: root.join("template.yaml"),
        bin_dir: root.join("target/debug"),
        stack_name: env("LOCAL_STACK_NAME").unwrap_or_else(|| "orders-local".into()),
        real_aws: env("LOCAL_REAL_AWS").is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true")),
        iam: !env("LOCAL_NO_IAM").is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true")),
        root,
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = flag_of(&arg);
        let mut value = || value_of(&flag, &inline, &mut args);
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--fresh" => options.fresh = true,
            "--real-aws" => options.real_aws = true,
            "--no-iam" => options.iam = false,
            "--managed-instances" => options.managed_instances = true,
            "--port" => options.api_port = number("--port", &value()?)?,
            "--pg-port" => options.pg_port = number("--pg-port", &value()?)?,
            "--moto-port" => options.moto_port = number("--moto-port", &value()?)?,
            "--state-dir" => options.state_dir = PathBuf::from(value()?),
            "--visibility-timeout" => {
                options.visibility_timeout = Some(number("--visibility-timeout", &value()?)?)
            }
            "--concurrency" => options.concurrency = number("--concurrency", &value()?)?,
            "--template" => options.template = PathBuf::from(value()?),
            "--bin-dir" => options.bin_dir = PathBuf::from(value()?),
            "--stack-name" => options.stack_name = value()?,
            other => return Err(format!("unknown option {other} (see --help)")),
        }
    }
    if options.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    for path in [
        &mut options.state_dir,
        &mut options.template,
        &mut options.bin_dir,
    ] {
        if path.is_relative() {
            *path = cwd.join(&*path);
        }
    }
    Ok(Parsed::Run(Box::new(options)))
}

/// The value of `flag`: given inline (`--flag=value`) or as the next argument.
fn value_of(
    flag: &str,
    inline: &Option<String>,
    args: &mut impl Iterator<Item = String>,
) -> Result<String, String> {
    inline
        .clone()
        .or_else(|| args.next())
        .ok_or_else(|| format!("{flag} needs a value"))
}

/// Splits `--flag=value`.
fn flag_of(arg: &str) -> (String, Option<String>) {
    match arg.split_once('=') {
        Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
        _ => (arg.to_string(), None),
    }
}

fn parse_mint(
    mut args: impl Iterator<Item = String>,
    mut state_dir: PathBuf,
) -> Result<Parsed, String> {
    let mut subject = None;
    let mut ttl_secs = DEFAULT_TTL_SECS;
    while let Some(arg) = args.next() {
        let (flag, inline) = flag_of(&arg);
        let mut value = || value_of(&flag, &inline, &mut args);
        let chosen = match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::MintHelp),
            "--customer" => {
                let id = value()?;
                if id.trim().is_empty() {
                    return Err("--customer needs a customer id".into());
                }
                Some(Subject::Customer(id))
            }
            "--staff" => Some(Subject::Staff),
            "--ttl" => {
                ttl_secs = number("--ttl", &value()?)?;
                None
            }
            "--state-dir" => {
                state_dir = PathBuf::from(value()?);
                None
            }
            other => return Err(format!("mint-token: unknown option {other} (see --help)")),
        };
        if let Some(chosen) = chosen {
            if subject.is_some() {
                return Err("mint-token: give one of --customer ID or --staff".into());
            }
            subject = Some(chosen);
        }
    }
    let subject = subject.ok_or("mint-token: give --customer ID or --staff (see --help)")?;
    if ttl_secs == 0 {
        return Err("--ttl must be at least 1".into());
    }
    if state_dir.is_relative() {
        state_dir = std::env::current_dir().unwrap_or_default().join(state_dir);
    }
    Ok(Parsed::MintToken(MintOptions {
        subject,
        ttl_secs,
        state_dir,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Options, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match parse(
            args.iter().map(|s| s.to_string()),
            |name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            PathBuf::from("/repo"),
        )? {
            Parsed::Run(options) => Ok(*options),
            Parsed::Help => Err("help".into()),
            other => Err(format!("{other:?}")),
        }
    }

    fn mint(args: &[&str], env: &[(&str, &str)]) -> Result<MintOptions, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match parse(
            std::iter::once("mint-token")
                .chain(args.iter().copied())
                .map(str::to_string),
            |name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            PathBuf::from("/repo"),
        )? {
            Parsed::MintToken(options) => Ok(options),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn mint_token() {
        let o = mint(&["--customer", "cust-1001"], &[]).unwrap();
        assert_eq!(o.subject, Subject::Customer("cust-1001".into()));
        assert_eq!(o.ttl_secs, 3600);
        assert_eq!(o.state_dir, PathBuf::from("/repo/.local"));
        let o = mint(&["--staff", "--ttl=60"], &[("LOCAL_STATE_DIR", "/s")]).unwrap();
        assert_eq!((o.subject, o.ttl_secs), (Subject::Staff, 60));
        assert_eq!(o.state_dir, PathBuf::from("/s"));
        let o = mint(
            &["--staff", "--state-dir", "/t"],
            &[("LOCAL_STATE_DIR", "/s")],
        )
        .unwrap();
        assert_eq!(o.state_dir, PathBuf::from("/t"));
        assert!(mint(&[], &[])
            .unwrap_err()
            .contains("--customer ID or --staff"));
        assert!(mint(&["--staff", "--customer", "c"], &[]).is_err());
        assert!(mint(&["--customer"], &[])
            .unwrap_err()
            .contains("needs a value"));
        assert!(mint(&["--customer", ""], &[]).is_err());
        assert!(mint(&["--staff", "--ttl", "0"], &[]).is_err());
        assert!(mint(&["--staff", "--port", "1"], &[]).is_err());
        assert!(mint(&["--help"], &[]).unwrap_err().contains("MintHelp"));
    }

    #[test]
    fn defaults() {
        let o = run(&[], &[]).unwrap();
        assert_eq!((o.api_port, o.pg_port, o.moto_port), (3000, 5433, 5000));
        assert_eq!(o.state_dir, PathBuf::from("/repo/.local"));
        assert_eq!(o.template, PathBuf::from("/repo/template.yaml"));
        assert_eq!(o.bin_dir, PathBuf::from("/repo/target/debug"));
        assert_eq!(o.stack_name, "orders-local");
        assert!(!o.fresh);
        assert_eq!(o.visibility_timeout, None);
        assert!(!o.real_aws);
        assert_eq!(o.concurrency, 4);
        assert!(!o.managed_instances, "Lambda unless asked");
    }

    #[test]
    fn managed_instances() {
        assert!(
            run(&["--managed-instances"], &[])
                .unwrap()
                .managed_instances
        );
        assert!(
            run(&[], &[("LOCAL_MANAGED_INSTANCES", "1")])
                .unwrap()
                .managed_instances
        );
    }

    #[test]
    fn concurrency() {
        assert_eq!(run(&["--concurrency", "16"], &[]).unwrap().concurrency, 16);
        assert_eq!(
            run(&[], &[("LOCAL_CONCURRENCY", "2")]).unwrap().concurrency,
            2
        );
        assert!(run(&["--concurrency", "0"], &[]).is_err());
        assert!(run(&["--concurrency", "many"], &[]).is_err());
    }

    #[test]
    fn flags_beat_environment() {
        let env = [
            ("LOCAL_API_PORT", "4000"),
            ("LOCAL_PG_PORT", "6000"),
            ("LOCAL_STATE_DIR", "/s"),
        ];
        let o = run(&[], &env).unwrap();
        assert_eq!((o.api_port, o.pg_port), (4000, 6000));
        assert_eq!(o.state_dir, PathBuf::from("/s"));
        let o = run(
            &[
                "--port",
                "4001",
                "--pg-port=6001",
                "--fresh",
                "--visibility-timeout",
                "2",
                "--state-dir",
                "/t",
            ],
            &env,
        )
        .unwrap();
        assert_eq!((o.api_port, o.pg_port), (4001, 6001));
        assert!(o.fresh);
        assert_eq!(o.visibility_timeout, Some(2));
        assert_eq!(o.state_dir, PathBuf::from("/t"));
        assert!(run(&["--real-aws"], &[]).unwrap().real_aws);
        assert!(run(&[], &[("LOCAL_REAL_AWS", "1")]).unwrap().real_aws);
        assert!(run(&[], &[]).unwrap().iam);
        assert!(!run(&["--no-iam"], &[]).unwrap().iam);
        assert!(!run(&[], &[("LOCAL_NO_IAM", "1")]).unwrap().iam);
    }

    #[test]
    fn mistakes_are_reported() {
        assert!(run(&["--port"], &[]).unwrap_err().contains("needs a value"));
        assert!(run(&["--port", "x"], &[])
            .unwrap_err()
            .contains("not a valid number"));
        assert!(run(&["--bogus"], &[])
            .unwrap_err()
            .contains("unknown option"));
        assert!(run(&[], &[("LOCAL_API_PORT", "99999")]).is_err());
        assert_eq!(run(&["--help"], &[]).unwrap_err(), "help");
    }
}
