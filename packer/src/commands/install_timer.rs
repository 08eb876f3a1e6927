//! `packer install-timer`: a systemd service + timer pair running one scheduled cycle.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::Config;

/// `packer install-timer`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print the two units; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Where to write them.
    #[arg(long, value_name = "DIR", default_value = "/etc/systemd/system")]
    pub unit_dir: PathBuf,
    /// systemd OnCalendar= value [default: converted from [schedule] cron].
    #[arg(long, value_name = "SPEC")]
    pub on_calendar: Option<String>,
    /// Base name of the units.
    #[arg(long, default_value = "n8n-backup")]
    pub name: String,
    /// For scripts/build-deb.sh: the units the Debian package ships, which run /usr/bin/packer
    /// on /etc/packer/packer.toml on the schedule of `packer init`'s template (--config unused).
    #[arg(long, hide = true)]
    pub for_package: bool,
    /// Write NAME-console.service instead: `packer serve` as a service ([serve] in the
    /// configuration: listen, password_hash or the token file, TLS), restarted on failure.
    /// Enable it with `systemctl enable --now NAME-console.service`.
    #[arg(long, conflicts_with_all = ["on_calendar", "for_package"])]
    pub serve: bool,
}

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

fn field(f: &str, what: &str, start: u32) -> Result<String> {
    let conv = |part: &str| -> Result<String> {
        if part == "*" {
            return Ok("*".into());
        }
        if let Some(step) = part.strip_prefix("*/") {
            return Ok(format!("{start}/{step}"));
        }
        if part.contains('/') {
            bail!("{what}: {part:?} (a range with a step) has no OnCalendar equivalent");
        }
        Ok(part.replace('-', ".."))
    };
    Ok(f.split(',').map(conv).collect::<Result<Vec<_>>>()?.join(","))
}

/// Converts a 5-field cron expression to systemd's OnCalendar (UTC). Cron's "day of month OR
/// day of week" when both are set has no equivalent: that is an error asking for --on-calendar.
pub fn on_calendar(cron: &str) -> Result<String> {
    crate::schedule::Cron::parse(cron)?;
    let f: Vec<&str> = cron.split_whitespace().collect();
    if f[2] != "*" && f[4] != "*" {
        bail!("{cron:?} restricts both day of month and day of week (cron runs on either): pass --on-calendar");
    }
    if f.iter().any(|p| p.chars().any(|c| c.is_ascii_alphabetic()))
        && f[4].chars().all(|c| !c.is_ascii_digit())
        && f[3] != "*"
    {
        bail!("{cron:?}: month names are not converted: pass --on-calendar");
    }
    let dow = if f[4] == "*" {
        String::new()
    } else {
        let conv = |p: &str| -> Result<String> {
            let one = |v: &str| -> Result<&str> {
                let n: usize =
                    v.parse().or_else(|_| DAYS.iter().position(|d| d.eq_ignore_ascii_case(v)).context("day"))?;
                Ok(DAYS[n % 7])
            };
            match p.split_once('-') {
                Some((a, b)) => Ok(format!("{}..{}", one(a)?, one(b)?)),
                None => Ok(one(p)?.to_string()),
            }
        };
        format!(
            "{} ",
            f[4].split(',').map(conv).collect::<Result<Vec<_>>>().context("day of week: pass --on-calendar")?.join(",")
        )
    };
    Ok(format!(
        "{dow}*-{}-{} {}:{}:00 UTC",
        field(f[3], "month", 1)?,
        field(f[2], "day of month", 1)?,
        field(f[1], "hour", 0)?,
        field(f[0], "minute", 0)?
    ))
}

/// The service and the timer: one scheduled cycle of `EXE --config CONFIG daemon --once` on
/// `on_calendar`, `jitter_secs` of random delay, `cron` named in the timer's description.
/// What `install-timer` writes and what the Debian package ships.
pub fn units(exe: &Path, config: &Path, on_calendar: &str, jitter_secs: i64, cron: Option<&str>) -> (String, String) {
    let service = format!(
        "[Unit]\nDescription=n8n_backup: one scheduled backup cycle (create, ship, verify, prune)\nWants=network-online.target\nAfter=network-online.target postgresql.service\n\n\
         [Service]\nType=oneshot\nExecStart={} --config {} daemon --once\nNice=10\nIOSchedulingClass=best-effort\nIOSchedulingPriority=7\n",
        exe.display(),
        config.display()
    );
    let timer = format!(
        "[Unit]\nDescription=n8n_backup schedule ({})\n\n[Timer]\nOnCalendar={on_calendar}\nRandomizedDelaySec={jitter_secs}\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n",
        cron.unwrap_or("--on-calendar")
    );
    (service, timer)
}

/// The console's service: `EXE --config CONFIG serve`, started at boot and after a failure. It
/// runs as root like the backup it can start (it reads what the backup reads); UMask 0077 keeps
/// the token file and bundles it writes private.
pub fn serve_unit(exe: &Path, config: &Path) -> String {
    format!(
        "[Unit]\nDescription=n8n_backup web console (packer serve)\nWants=network-online.target\nAfter=network-online.target\n\n\
         [Service]\nType=simple\nExecStart={} --config {} serve\nRestart=on-failure\nRestartSec=5\nUMask=0077\n\n\
         [Install]\nWantedBy=multi-user.target\n",
        exe.display(),
        config.display()
    )
}

fn run_serve(args: &Args, config: &Path) -> Result<i32> {
    // Parsed here so a mistake in [serve] shows now, not when systemd starts it.
    Config::load(config)?;
    let exe = std::env::current_exe().context("locating packer")?;
    let config = std::fs::canonicalize(config).with_context(|| format!("resolving {}", config.display()))?;
    let unit = serve_unit(&exe, &config);
    let path = args.unit_dir.join(format!("{}-console.service", args.name));
    if args.dry_run {
        println!("# {}\n{unit}", path.display());
        return Ok(0);
    }
    std::fs::write(&path, unit).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    println!("enable it with:  systemctl daemon-reload && systemctl enable --now {}-console.service", args.name);
    println!("then, from your machine: ssh -L 8480:127.0.0.1:8480 THIS-HOST and open http://127.0.0.1:8480/");
    Ok(0)
}

/// Runs the command.
pub fn run(args: Args, config: &Path) -> Result<i32> {
    if args.serve {
        return run_serve(&args, config);
    }
    let (cfg, exe, config) = if args.for_package {
        let cfg = Config::parse(crate::config::TEMPLATE, Path::new("/etc/packer"), "packer init's template")?;
        (cfg, PathBuf::from("/usr/bin/packer"), PathBuf::from(super::SYSTEM_CONFIG))
    } else {
        let cfg = Config::load(config)?;
        let exe = std::env::current_exe().context("locating packer")?;
        let config = std::fs::canonicalize(config).with_context(|| format!("resolving {}", config.display()))?;
        (cfg, exe, config)
    };
    let spec = match (&args.on_calendar, &cfg.schedule.cron) {
        (Some(s), _) => s.clone(),
        (None, Some(c)) => on_calendar(c)?,
        (None, None) => bail!("[schedule] cron is not set; set it or pass --on-calendar"),
    };
    let jitter = cfg
        .schedule
        .jitter
        .as_deref()
        .map(crate::units::parse_duration)
        .transpose()?
        .map(|d| d.num_seconds())
        .unwrap_or(0);
    let (service, timer) = units(&exe, &config, &spec, jitter, cfg.schedule.cron.as_deref());
    let (svc_path, timer_path) =
        (args.unit_dir.join(format!("{}.service", args.name)), args.unit_dir.join(format!("{}.timer", args.name)));
    if args.dry_run {
        println!("# {}\n{service}\n# {}\n{timer}", svc_path.display(), timer_path.display());
        return Ok(0);
    }
    for (p, text) in [(&svc_path, &service), (&timer_path, &timer)] {
        std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?;
        println!("wrote {}", p.display());
    }
    println!("enable it with:  systemctl daemon-reload && systemctl enable --now {}.timer", args.name);
    println!("check it with:   systemctl list-timers {}.timer; packer status", args.name);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The console's unit runs `serve` on the given configuration and restarts on failure.
    #[test]
    fn serve_unit_runs_serve() {
        let u = serve_unit(Path::new("/usr/bin/packer"), Path::new("/etc/packer/packer.toml"));
        assert!(u.contains("ExecStart=/usr/bin/packer --config /etc/packer/packer.toml serve\n"), "{u}");
        assert!(u.contains("Restart=on-failure") && u.contains("WantedBy=multi-user.target"));
    }

    #[test]
    fn cron_to_on_calendar() {
        assert_eq!(on_calendar("0 2 * * *").unwrap(), "*-*-* 2:0:00 UTC");
        assert_eq!(on_calendar("*/15 * * * *").unwrap(), "*-*-* *:0/15:00 UTC");
        assert_eq!(on_calendar("30 4 1 * *").unwrap(), "*-*-1 4:30:00 UTC");
        assert_eq!(on_calendar("0 3 * * mon-fri").unwrap(), "Mon..Fri *-*-* 3:0:00 UTC");
        assert_eq!(on_calendar("0 3 * * 0,6").unwrap(), "Sun,Sat *-*-* 3:0:00 UTC");
        assert!(on_calendar("0 3 15 * fri").is_err());
        assert!(on_calendar("0 1-10/2 * * *").is_err());
    }
}
