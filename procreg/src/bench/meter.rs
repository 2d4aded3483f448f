//! What one bench operation costs, sampled before and after a phase: CPU
//! time per role (the restate-server processes, the endpoint's runtime,
//! everything else in this process: the clients) from `/proc`, and the
//! engine's own counts (invocations, journal entries by kind, log records)
//! from each server's Prometheus metrics.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::unistd::{sysconf, SysconfVar};
use prometheus_parse::{Scrape, Value};

use restate_process_registry_testkit::local_server::LocalRestate;

use crate::common::{CliResult, Context, Load};

/// Thread name of the endpoint's runtime (a thread's `comm` keeps 15 bytes).
pub const ENDPOINT_THREADS: &str = "procreg-endpt";

/// Counter key of invocation attempts started (a resumption is one more).
const INVOCATIONS: &str = "invocations";
/// Counter key of records appended to the log.
const LOG_RECORDS: &str = "log records";
/// Prefix of the counter keys of journal entries, by kind.
const ENTRY: &str = "entry ";
/// How often [`Meter::settle`] looks at the servers' CPU.
const SETTLE_TICK: Duration = Duration::from_millis(250);

/// Where the costs are read from.
pub struct Meter {
    server_pids: Vec<u32>,
    metrics_urls: Vec<String>,
    http: reqwest::Client,
}

/// CPU time by role.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub server: Duration,
    pub endpoint: Duration,
    pub client: Duration,
}

/// Cumulative CPU time and engine counters at one instant.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    cpu: Cpu,
    counters: BTreeMap<String, f64>,
}

/// The cost of one operation: a phase's differences divided by its ops.
#[derive(Debug, Clone)]
pub struct OpCost {
    /// CPU per operation.
    pub cpu: Cpu,
    counters: BTreeMap<String, f64>,
}

impl Meter {
    /// Meters these running servers.
    pub fn on(servers: &[&LocalRestate]) -> CliResult<Self> {
        let pids = servers.iter().filter_map(|server| server.pid()).collect();
        let urls: Vec<String> = servers.iter().map(|server| server.fabric_url()).collect();
        Self::new(pids, &urls)
    }

    /// Meters servers with these process ids and metrics URLs (a node's
    /// fabric address serves `/metrics`).
    fn new(server_pids: Vec<u32>, fabric_urls: &[String]) -> CliResult<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .context("building the metrics client")?;
        let metrics_urls = fabric_urls
            .iter()
            .map(|url| format!("{}/metrics", url.trim_end_matches('/')))
            .collect();
        Ok(Self {
            server_pids,
            metrics_urls,
            http,
        })
    }

    /// Waits until the servers are at rest (under a twentieth of a core
    /// over one tick: flushes and compactions done), at most `limit`.
    pub async fn settle(&self, limit: Duration) {
        let started = Instant::now();
        let mut then = self.server_cpu();
        while started.elapsed() < limit {
            tokio::time::sleep(SETTLE_TICK).await;
            let now = self.server_cpu();
            if now.saturating_sub(then) < SETTLE_TICK / 20 {
                return;
            }
            then = now;
        }
    }

    /// CPU time of every server thread so far.
    fn server_cpu(&self) -> Duration {
        self.server_pids
            .iter()
            .map(|pid| threads_cpu(&Path::new("/proc").join(pid.to_string()), |_| true))
            .sum()
    }

    /// Runs `phase` and answers its load with what one of its calls cost.
    pub async fn measure(
        &self,
        phase: impl Future<Output = CliResult<Load>>,
    ) -> CliResult<(Load, OpCost)> {
        let before = self.sample().await?;
        let load = phase.await?;
        let cost = self.sample().await?.cost_since(&before, load.ops());
        Ok((load, cost))
    }

    /// CPU times and counters now.
    pub async fn sample(&self) -> CliResult<Sample> {
        let mut counters = BTreeMap::new();
        for url in &self.metrics_urls {
            let text = self
                .http
                .get(url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .with_context(|| format!("reading {url}"))?
                .text()
                .await
                .with_context(|| format!("reading {url}"))?;
            add_counters(&text, &mut counters).with_context(|| format!("reading {url}"))?;
        }
        let mut cpu = Cpu {
            server: self.server_cpu(),
            ..Cpu::default()
        };
        let own = Path::new("/proc/self");
        cpu.endpoint = threads_cpu(own, |name| name == ENDPOINT_THREADS);
        cpu.client = threads_cpu(own, |name| name != ENDPOINT_THREADS);
        Ok(Sample { cpu, counters })
    }
}

impl Sample {
    /// What each of `ops` operations cost between `before` and this sample.
    pub fn cost_since(&self, before: &Sample, ops: usize) -> OpCost {
        let n = ops.max(1) as u32;
        let per_op = |now: Duration, then: Duration| now.saturating_sub(then) / n;
        let cpu = Cpu {
            server: per_op(self.cpu.server, before.cpu.server),
            endpoint: per_op(self.cpu.endpoint, before.cpu.endpoint),
            client: per_op(self.cpu.client, before.cpu.client),
        };
        let counters = self
            .counters
            .iter()
            .map(|(key, now)| {
                let then = before.counters.get(key).copied().unwrap_or(0.0);
                (key.clone(), (now - then) / f64::from(n))
            })
            .filter(|(_, delta)| *delta > 0.0)
            .collect();
        OpCost { cpu, counters }
    }
}

impl OpCost {
    /// Invocation attempts the engine started per operation.
    pub fn invocations(&self) -> f64 {
        self.counter(INVOCATIONS)
    }

    /// Records appended to the log per operation.
    pub fn log_records(&self) -> f64 {
        self.counter(LOG_RECORDS)
    }

    /// Journal entries per operation, commands and completions alike.
    pub fn journal_entries(&self) -> f64 {
        self.entries().fold(0.0, |sum, (_, n)| sum + n)
    }

    /// Results the server sent back to the endpoint per operation (journal
    /// completions and notifications): an upper bound on the round trips,
    /// since results asked for together come back in one.
    pub fn completions(&self) -> f64 {
        self.entries()
            .filter(|(kind, _)| !kind.starts_with("Command/"))
            .fold(0.0, |sum, (_, n)| sum + n)
    }

    /// Journal entries per operation by kind (`Command/GetLazyState`, …).
    pub fn entries(&self) -> impl Iterator<Item = (&str, f64)> {
        self.counters
            .iter()
            .filter_map(|(key, n)| key.strip_prefix(ENTRY).map(|kind| (kind, *n)))
    }

    fn counter(&self, key: &str) -> f64 {
        self.counters.get(key).copied().unwrap_or(0.0)
    }
}

/// Prints what one operation of each phase cost (CPU by process, the
/// engine's work) and answers the summary figures of the phases whose
/// name is one word (`append_server_cpu_us`, `append_journal_entries`, …).
pub fn print_costs(costs: &[(&str, OpCost)], concurrency: usize) -> Vec<(String, String)> {
    println!(
        "\nper operation at concurrency {concurrency}: CPU time by process (restate-server, the \
         endpoint, the bench's clients) and the engine's work (from restate-server's metrics)"
    );
    println!(
        "{:<17} {:>9} {:>11} {:>9} {:>9} {:>11} {:>8} {:>11} {:>11}",
        "operation",
        "server µs",
        "endpoint µs",
        "client µs",
        "total µs",
        "invocations",
        "journal",
        "completions",
        "log records"
    );
    let mut summary = Vec::new();
    for (name, cost) in costs {
        let Cpu {
            server,
            endpoint,
            client,
        } = cost.cpu;
        println!(
            "{:<17} {:>9.0} {:>11.0} {:>9.0} {:>9.0} {:>11.2} {:>8.2} {:>11.2} {:>11.2}",
            name,
            micros(server),
            micros(endpoint),
            micros(client),
            micros(server + endpoint + client),
            cost.invocations(),
            cost.journal_entries(),
            cost.completions(),
            cost.log_records(),
        );
        if name.contains(' ') {
            continue;
        }
        let figures = [
            ("server_cpu_us", format!("{:.0}", micros(server))),
            ("endpoint_cpu_us", format!("{:.0}", micros(endpoint))),
            ("client_cpu_us", format!("{:.0}", micros(client))),
            ("journal_entries", format!("{:.2}", cost.journal_entries())),
            ("completions", format!("{:.2}", cost.completions())),
        ];
        summary.extend(
            figures
                .into_iter()
                .map(|(key, value)| (format!("{name}_{key}"), value)),
        );
    }
    println!("journal entries per operation, by kind:");
    for (name, cost) in costs {
        let kinds: Vec<String> = cost
            .entries()
            .map(|(kind, n)| format!("{kind} {n:.2}"))
            .collect();
        println!("  {name:<17} {}", kinds.join(", "));
    }
    summary
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// Adds the counters the bench reads from one Prometheus text page.
fn add_counters(text: &str, counters: &mut BTreeMap<String, f64>) -> CliResult<()> {
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let page = Scrape::parse(lines).context("parsing a Prometheus metrics page")?;
    for sample in page.samples {
        let value = match sample.value {
            Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value) => value,
            Value::Histogram(_) | Value::Summary(_) => continue,
        };
        let key = match sample.metric.as_str() {
            "restate_usage_leader_journal_entry_count_total" => sample
                .labels
                .get("entry")
                .map(|kind| format!("{ENTRY}{kind}")),
            "restate_invoker_invocation_tasks_total" => {
                (sample.labels.get("status") == Some("started")).then(|| INVOCATIONS.to_owned())
            }
            "restate_bifrost_replicatedloglet_enqueued_records_total" => {
                Some(LOG_RECORDS.to_owned())
            }
            _ => None,
        };
        if let Some(key) = key {
            *counters.entry(key).or_default() += value;
        }
    }
    Ok(())
}

/// CPU time of the threads under `process` (a `/proc` entry) whose name
/// passes `keep`; threads that ended are not counted.
fn threads_cpu(process: &Path, keep: impl Fn(&str) -> bool) -> Duration {
    let Ok(tasks) = std::fs::read_dir(process.join("task")) else {
        return Duration::ZERO;
    };
    tasks
        .flatten()
        .map(|task| task.path())
        .filter(|task| {
            std::fs::read_to_string(task.join("comm")).is_ok_and(|name| keep(name.trim_end()))
        })
        .filter_map(|task| thread_cpu(&task))
        .sum()
}

/// One thread's CPU time: the scheduler's nanosecond count when the kernel
/// shows it, else user plus system ticks (`sysconf(_SC_CLK_TCK)` a second).
fn thread_cpu(task: &Path) -> Option<Duration> {
    if let Ok(sched) = std::fs::read_to_string(task.join("sched")) {
        let ms = sched
            .lines()
            .find(|line| line.starts_with("se.sum_exec_runtime"))
            .and_then(|line| line.rsplit(':').next())
            .and_then(|value| value.trim().parse::<f64>().ok());
        if let Some(ms) = ms {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    let stat = std::fs::read_to_string(task.join("stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / ticks_per_second()?))
}

/// The kernel's clock ticks per second, in which `/proc` counts CPU time.
fn ticks_per_second() -> Option<f64> {
    let ticks = sysconf(SysconfVar::CLK_TCK).ok()??;
    (ticks > 0).then_some(ticks as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_counters_it_needs() {
        let page = "# TYPE x counter\n\
            restate_usage_leader_journal_entry_count_total{node=\"a\",entry=\"Command/Input\"} 5\n\
            restate_usage_leader_journal_entry_count_total{node=\"b\",entry=\"Command/Input\"} 2\n\
            restate_usage_leader_journal_entry_count_total{entry=\"Completion/GetLazyState\"} 3\n\
            restate_invoker_invocation_tasks_total{status=\"completed\",partition_id=\"1\"} 4\n\
            restate_invoker_invocation_tasks_total{status=\"started\",partition_id=\"1\"} 9\n\
            restate_bifrost_replicatedloglet_enqueued_records_total{node=\"a\"} 11\n\
            unrelated_total 1\n";
        let mut counters = BTreeMap::new();
        add_counters(page, &mut counters).expect("a well-formed page");
        let before = Sample::default();
        let after = Sample {
            cpu: Cpu::default(),
            counters,
        };
        let cost = after.cost_since(&before, 1);
        assert_eq!(cost.invocations(), 9.0);
        assert_eq!(cost.log_records(), 11.0);
        assert_eq!(cost.journal_entries(), 10.0);
        assert_eq!(cost.completions(), 3.0);
        let kinds: Vec<_> = cost.entries().collect();
        assert_eq!(
            kinds,
            vec![("Command/Input", 7.0), ("Completion/GetLazyState", 3.0)]
        );
    }

    #[test]
    fn ticks_come_from_the_kernel() {
        assert!(ticks_per_second().is_some_and(|ticks| ticks >= 1.0));
    }

    #[test]
    fn this_process_has_cpu_time() {
        let spent: u64 = (0..2_000_000u64).map(std::hint::black_box).sum();
        assert!(spent > 0);
        assert!(threads_cpu(Path::new("/proc/self"), |_| true) > Duration::ZERO);
    }
}
