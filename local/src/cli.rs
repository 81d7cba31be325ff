//! Command-line flags and environment variables of the runner.

use std::path::PathBuf;

pub const HELP: &str = "\
orders-local: runs the whole orders-cqrs system on this machine (no Docker, no AWS account).
Start it with scripts/run-local, which builds the functions first.

Usage: orders-local [OPTIONS]

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
  --template FILE           the SAM template [default <repo>/template.yaml]
  --bin-dir DIR             where the function binaries are [default <repo>/target/debug]
  --stack-name NAME         prefix of local resource names [env LOCAL_STACK_NAME; default orders-local]
  --real-aws                no moto: the functions use real AWS with your credentials, and the
                            resource variables (ORDERS_TABLE, ...) from the environment
                            [env LOCAL_REAL_AWS=1]; no queue polling, no re-projection
  -h, --help                this text

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
    pub template: PathBuf,
    pub bin_dir: PathBuf,
    pub stack_name: String,
    pub real_aws: bool,
}

/// The outcome of reading the command line.
#[derive(Debug)]
pub enum Parsed {
    Run(Box<Options>),
    Help,
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
        template: root.join("template.yaml"),
        bin_dir: root.join("target/debug"),
        stack_name: env("LOCAL_STACK_NAME").unwrap_or_else(|| "orders-local".into()),
        real_aws: env("LOCAL_REAL_AWS").is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true")),
        root,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--fresh" => options.fresh = true,
            "--real-aws" => options.real_aws = true,
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
        }
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
