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
    /// systemd OnCalendar= value [default: converted from [schedule] cron; a cron that
    /// restricts both the day of month and the day of week (cron runs on either) has no
    /// OnCalendar form and needs this].
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

/// One OnCalendar component from the values cron allows (ascending, within `min..=max`): `*`
/// for all; `a/s` for every `s`th (s > 1) value from `a` to the end (systemd's repetition), unless
/// `repeat` is off (weekdays have no repetition); else runs `a..b` and single values, by comma.
fn component(values: &[u32], min: u32, max: u32, repeat: bool, name: impl Fn(u32) -> String) -> String {
    if values.len() as u32 == max - min + 1 {
        return "*".into();
    }
    if let [a, b, c, ..] = values {
        let step = b - a;
        let progression = step > 1 && c - b == step && values.windows(2).all(|w| w[1] - w[0] == step);
        if repeat && progression && values[values.len() - 1] + step > max {
            return format!("{a}/{step}");
        }
    }
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &v in values {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == v => *end = v,
            _ => runs.push((v, v)),
        }
    }
    let runs: Vec<String> =
        runs.into_iter().map(|(a, b)| if a == b { name(a) } else { format!("{}..{}", name(a), name(b)) }).collect();
    runs.join(",")
}

/// systemd's `OnCalendar` (UTC) for a parsed cron schedule: the same minutes, from
/// [`crate::schedule::Cron`], the one cron parser. Cron's "day of month OR day of week" when
/// both are restricted has no OnCalendar form (systemd requires both), and neither has a
/// schedule that never fires: errors asking for --on-calendar.
pub fn on_calendar(cron: &crate::schedule::Cron, text: &str) -> Result<String> {
    let f = cron.fields();
    if f.days_of_month_restricted && f.weekdays_restricted {
        bail!(
            "{text:?} restricts both day of month and day of week (cron runs on either; OnCalendar needs both): pass --on-calendar"
        );
    }
    // Any five years hold every date a schedule can name (29 February included).
    let reference = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    if cron.next_after(reference).is_none() {
        bail!("{text:?} never fires (no month has that day): fix [schedule] cron or pass --on-calendar");
    }
    let num = |v: u32| v.to_string();
    let dow = if f.weekdays_restricted {
        format!("{} ", component(&f.weekdays, 0, 6, false, |d| DAYS[d as usize].to_string()))
    } else {
        String::new()
    };
    Ok(format!(
        "{dow}*-{}-{} {}:{}:00 UTC",
        component(&f.months, 1, 12, true, num),
        component(&f.days_of_month, 1, 31, true, num),
        component(&f.hours, 0, 23, true, num),
        component(&f.minutes, 0, 59, true, num)
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
        (None, Some(c)) => on_calendar(&crate::schedule::Cron::parse(c).context("[schedule] cron")?, c)?,
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
        return Ok(crate::exit::OK);
    }
    for (p, text) in [(&svc_path, &service), (&timer_path, &timer)] {
        std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?;
        println!("wrote {}", p.display());
    }
    println!("enable it with:  systemctl daemon-reload && systemctl enable --now {}.timer", args.name);
    println!("check it with:   systemctl list-timers {}.timer; packer status", args.name);
    Ok(crate::exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Cron;
    use chrono::{DateTime, Utc};

    fn convert(expr: &str) -> Result<String> {
        on_calendar(&Cron::parse(expr)?, expr)
    }

    /// Cron expressions and the OnCalendar each becomes (the first ones as install-timer has
    /// always written them: the Debian package's units and scripts/test-deb.sh pin that text).
    const TABLE: &[(&str, &str)] = &[
        ("0 2 * * *", "*-*-* 2:0:00 UTC"),
        ("30 3 * * *", "*-*-* 3:30:00 UTC"),
        ("*/15 * * * *", "*-*-* *:0/15:00 UTC"),
        ("30 4 1 * *", "*-*-1 4:30:00 UTC"),
        ("0 3 * * mon-fri", "Mon..Fri *-*-* 3:0:00 UTC"),
        ("0 3 * * 0,6", "Sun,Sat *-*-* 3:0:00 UTC"),
        ("0 3 * * 7", "Sun *-*-* 3:0:00 UTC"),
        ("0 3 * * 5-7", "Sun,Fri..Sat *-*-* 3:0:00 UTC"),
        ("0 1-10/2 * * *", "*-*-* 1,3,5,7,9:0:00 UTC"),
        ("5-59/20 * * * *", "*-*-* *:5/20:00 UTC"),
        ("0,30 8-18 * * *", "*-*-* 8..18:0,30:00 UTC"),
        ("0 12 * feb mon-fri", "Mon..Fri *-2-* 12:0:00 UTC"),
        ("0 0 */2 jan-mar,dec *", "*-1..3,12-1/2 0:0:00 UTC"),
        ("0 0 29 2 *", "*-2-29 0:0:00 UTC"),
        ("15 14 1,15 * *", "*-*-1,15 14:15:00 UTC"),
        ("* * * * *", "*-*-* *:*:00 UTC"),
    ];

    /// The console's unit runs `serve` on the given configuration and restarts on failure.
    #[test]
    fn serve_unit_runs_serve() {
        let u = serve_unit(Path::new("/usr/bin/packer"), Path::new("/etc/packer/packer.toml"));
        assert!(u.contains("ExecStart=/usr/bin/packer --config /etc/packer/packer.toml serve\n"), "{u}");
        assert!(u.contains("Restart=on-failure") && u.contains("WantedBy=multi-user.target"));
    }

    #[test]
    fn cron_to_on_calendar_table() {
        for (expr, want) in TABLE {
            assert_eq!(convert(expr).unwrap(), *want, "{expr}");
        }
    }

    /// What OnCalendar cannot say is an error naming the expression and what to do.
    #[test]
    fn inexpressible_cron_is_a_clear_error() {
        for (expr, needle) in [
            ("0 3 15 * fri", "both day of month and day of week"),
            ("0 6 1-7 * mon", "both day of month and day of week"),
            ("0 0 31 2 *", "never fires"),
            ("0 0 30 feb *", "never fires"),
        ] {
            let e = format!("{:#}", convert(expr).unwrap_err());
            assert!(e.contains(needle) && e.contains(expr) && e.contains("--on-calendar"), "{expr}: {e}");
        }
        // Not cron at all: the parser's own error.
        assert!(format!("{:#}", convert("0 2 * *").unwrap_err()).contains("5 fields"));
    }

    /// systemd itself (`systemd-analyze calendar`, when installed) fires every converted
    /// expression at the very minutes the cron parser's `next_after` gives.
    #[test]
    fn systemd_agrees_with_the_cron_parser() {
        if restorer::sys::which("systemd-analyze").is_none() {
            eprintln!("systemd-analyze not installed: comparison with systemd skipped");
            return;
        }
        let base = "2027-03-01T00:00:30Z";
        for (expr, spec) in TABLE {
            let out = std::process::Command::new("systemd-analyze")
                .args(["calendar", "--iterations=6", "--base-time=2027-03-01 00:00:30 UTC", spec])
                .env("TZ", "UTC")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{spec}: {text}{}", String::from_utf8_lossy(&out.stderr));
            let systemd: Vec<DateTime<Utc>> = text
                .lines()
                .filter(|l| l.contains("Next elapse:") || l.contains("Iter. #"))
                .map(|l| {
                    let t = l.split_once(": ").unwrap().1.trim();
                    // "Mon 2027-03-01 03:00:00 UTC"
                    let t = t.split_once(' ').unwrap().1.trim_end_matches(" UTC");
                    chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").unwrap().and_utc()
                })
                .collect();
            let cron = Cron::parse(expr).unwrap();
            let mut at = DateTime::parse_from_rfc3339(base).unwrap().with_timezone(&Utc);
            let mut ours = Vec::new();
            for _ in 0..systemd.len() {
                at = cron.next_after(at).unwrap();
                ours.push(at);
            }
            assert_eq!(systemd.len(), 6, "{spec}: {text}");
            assert_eq!(ours, systemd, "{expr} as {spec}");
        }
    }
}
