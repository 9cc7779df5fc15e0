//! What a benchmark run measured: a human summary and one JSON line.

use serde::Serialize;

#[derive(Debug, Default, Serialize)]
pub struct Latency {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn from_nanos(mut samples: Vec<u64>) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples[i.min(samples.len() - 1)] as f64 / 1e6
        };
        Some(Self {
            samples: samples.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        })
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub runners: usize,
    pub batch: usize,
    pub subscribers_per_run: usize,
    pub event_bytes: usize,
    /// `stdout` or `tool-result`.
    pub event_type: String,
    /// The runners asked `GET /api/health` instead of sending events.
    pub https_floor: bool,
    pub events_sent: u64,
    pub seconds: f64,
    pub events_per_sec: f64,
    pub requests_per_sec: f64,
    pub latency: Option<Latency>,
    /// Runner request round trips (send to answer).
    pub request_latency: Option<Latency>,
    /// `POST /api/runs/{id}/prompts` to the agent reading the prompt
    /// (--prompt-latency).
    pub prompt_latency: Option<Latency>,
    /// `POST /api/approvals/{id}/decision` to the agent reading the answer
    /// (--decision-latency).
    pub decision_latency: Option<Latency>,
    /// Start to READY=1 of the spawned clawd.
    pub ready_ms: Option<f64>,
    /// Pages of 1000 events of --page-run, over HTTPS.
    pub page_latency: Option<Latency>,
    /// Duration of `clawctl prune` run during the load (--prune).
    pub prune_secs: Option<f64>,
    pub pruned_events: Option<u64>,
    /// Requests that failed after retries.
    pub errors: u64,
    /// Events sent but not stored, or not delivered to a subscriber.
    pub lost: u64,
    /// Events stored or delivered more than once.
    pub duplicated: u64,
    pub daemon_rss_kib: Option<u64>,
    /// Highest resident memory sampled (every 100 ms) while sending.
    pub daemon_rss_peak_kib: Option<u64>,
    /// Daemon CPU time over wall time while sending (1.0 = one core busy).
    pub daemon_cpu_share: Option<f64>,
    /// The load generator's own CPU time over wall time: on the same cores,
    /// what it takes from the daemon.
    pub bench_cpu_share: Option<f64>,
    /// Store writes (requests) folded into each durable commit while sending.
    pub writes_per_commit: Option<f64>,
    pub raw_sqlite_events_per_sec: Option<f64>,
    pub ratio_to_raw: Option<f64>,
    // The PostgreSQL figures are left out of the JSON line unless clawd
    // stored there: the line of a SQLite run stays as it was.
    /// The server clawd stored in and its durability settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres: Option<String>,
    /// Raw multi-row INSERT and COPY on that server (--raw-postgres).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_postgres_insert_events_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_postgres_copy_events_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_raw_postgres_insert: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_raw_postgres_copy: Option<f64>,
    /// The PostgreSQL server's CPU time over wall time while sending
    /// (--spawn-postgres): on the same two cores as clawd.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres_cpu_share: Option<f64>,
    // Two instances behind HAProxy (--instances 2); left out otherwise.
    /// clawd instances on the one database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<usize>,
    /// Where the runners sent: `HAProxy` or `instance A`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runners_to: Option<String>,
    /// Where the subscribers followed: `instance B`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribers_to: Option<String>,
    /// Store writes (requests) each instance made while sending, A first:
    /// how the proxy spread the runners.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_writes_per_instance: Option<Vec<u64>>,
    /// HAProxy's CPU time over wall time while sending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub haproxy_cpu_share: Option<f64>,
}

impl Report {
    pub fn print_summary(&self) {
        if let (Some(instances), Some(runners)) = (self.instances, &self.runners_to) {
            let browsers = self
                .subscribers_to
                .as_ref()
                .map(|to| format!(", subscribers on {to}"))
                .unwrap_or_default();
            println!(
                "{instances} clawd instances on one PostgreSQL database behind HAProxy: \
                 runners to {runners}{browsers}"
            );
        }
        if self.https_floor {
            println!(
                "{} runners asking GET /api/health (--https-floor): {:.0} requests/s",
                self.runners, self.requests_per_sec
            );
        }
        if let Some(l) = &self.prompt_latency {
            println!(
                "prompt -> agent stdin over {} prompts: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                l.samples, l.p50_ms, l.p99_ms, l.max_ms
            );
        } else if let Some(l) = &self.decision_latency {
            println!(
                "decision -> agent stdin over {} approvals: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                l.samples, l.p50_ms, l.p99_ms, l.max_ms
            );
        } else {
            println!(
                "{} runners x batch {} ({} B {} events), {} subscriber(s) per run",
                self.runners,
                self.batch,
                self.event_bytes,
                self.event_type,
                self.subscribers_per_run
            );
            println!(
                "sent {} events in {:.2} s: {:.0} events/s, {:.0} requests/s",
                self.events_sent, self.seconds, self.events_per_sec, self.requests_per_sec
            );
        }
        if let Some(l) = &self.latency {
            println!(
                "event -> WebSocket latency over {} samples: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                l.samples, l.p50_ms, l.p99_ms, l.max_ms
            );
        }
        if let Some(l) = &self.request_latency {
            println!(
                "request round trip: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                l.p50_ms, l.p99_ms, l.max_ms
            );
        }
        if let Some(ms) = self.ready_ms {
            println!("clawd start to READY=1: {ms:.1} ms");
        }
        if let Some(l) = &self.page_latency {
            println!(
                "a page of 1000 events over {} requests: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                l.samples, l.p50_ms, l.p99_ms, l.max_ms
            );
        }
        if let Some(secs) = self.prune_secs {
            println!(
                "clawctl prune during the load removed {} events in {secs:.2} s",
                self.pruned_events.unwrap_or(0)
            );
        }
        if let (Some(raw), Some(ratio)) = (self.raw_sqlite_events_per_sec, self.ratio_to_raw) {
            println!(
                "raw SQLite, same rows and batch: {raw:.0} events/s; clawd reached {:.0}% of it",
                ratio * 100.0
            );
        }
        if let Some(server) = &self.postgres {
            println!("clawd stored in {server}");
        }
        if let (Some(insert), Some(copy), Some(of_insert), Some(of_copy)) = (
            self.raw_postgres_insert_events_per_sec,
            self.raw_postgres_copy_events_per_sec,
            self.ratio_to_raw_postgres_insert,
            self.ratio_to_raw_postgres_copy,
        ) {
            println!(
                "raw PostgreSQL, same rows and batch, one connection: multi-row INSERT \
                 {insert:.0} events/s, COPY {copy:.0} events/s; clawd reached {:.0}% and {:.0}% \
                 of them",
                of_insert * 100.0,
                of_copy * 100.0
            );
        }
        for (who, share) in [
            (
                if self.instances.is_some() {
                    "clawd (both instances)"
                } else {
                    "clawd"
                },
                self.daemon_cpu_share,
            ),
            ("claw-bench", self.bench_cpu_share),
            ("PostgreSQL", self.postgres_cpu_share),
            ("HAProxy", self.haproxy_cpu_share),
        ] {
            if let Some(share) = share.filter(|_| self.requests_per_sec > 0.0) {
                let per_request = share / self.requests_per_sec * 1e6;
                println!(
                    "{who} CPU while sending: {:.0}% of one core, {per_request:.0} µs per request",
                    share * 100.0
                );
            }
        }
        if let Some(w) = self.writes_per_commit {
            println!("store group commit: {w:.1} writes per commit");
        }
        if let Some(writes) = &self.store_writes_per_instance {
            let each: Vec<String> = writes.iter().map(u64::to_string).collect();
            println!("store writes per instance (A first): {}", each.join(", "));
        }
        if let Some(rss) = self.daemon_rss_kib {
            println!("clawd resident memory: {:.1} MiB", rss as f64 / 1024.0);
        }
        if let Some(peak) = self.daemon_rss_peak_kib {
            println!(
                "clawd resident memory, peak while sending: {:.1} MiB",
                peak as f64 / 1024.0
            );
        }
        println!(
            "errors {}, lost {}, duplicated {}",
            self.errors, self.lost, self.duplicated
        );
    }
}
