//! The PostgreSQL store's physical limit: the same event rows inserted
//! straight into a copy of the store's schema on the same server, through
//! one connection, one transaction per batch (as clawd commits one request),
//! once with multi-row `INSERT` and once with `COPY` (binary).

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context, bail};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, Statement};

/// The store's schema, applied in a schema of its own.
const SCHEMA: &str = include_str!("../../daemon/src/store/postgres/migrations/0001_schema.sql");

/// PostgreSQL takes at most 65535 parameters a statement: a batch of
/// more rows than this goes in as several statements of one transaction.
const ROWS_PER_STATEMENT: usize = 10_000;

/// Rows per second, each way.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    pub insert: f64,
    pub copy: f64,
}

/// Connects, with the connection driven by a task of its own.
async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .context("cannot connect to PostgreSQL for the raw insert rate")?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("claw-bench: raw PostgreSQL connection: {e}");
        }
    });
    Ok(client)
}

/// The server's durability settings, as the report gives them beside the
/// figures (a server with `fsync = off` measures something else).
pub async fn settings(url: &str) -> anyhow::Result<String> {
    let client = connect(url).await?;
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('fsync'), \
             current_setting('synchronous_commit'), current_setting('full_page_writes'), \
             current_setting('shared_buffers')",
            &[],
        )
        .await?;
    let get = |i: usize| row.get::<_, String>(i);
    Ok(format!(
        "PostgreSQL {}: fsync={} synchronous_commit={} full_page_writes={} shared_buffers={}",
        get(0),
        get(1),
        get(2),
        get(3),
        get(4)
    ))
}

/// Inserts `total` rows of `event_bytes` spread over `runs` runs, `batch`
/// a transaction, once each way, into a fresh schema that is dropped
/// after.
pub async fn insert_rates(
    url: &str,
    total: u64,
    batch: usize,
    event_bytes: usize,
    runs: usize,
) -> anyhow::Result<Rates> {
    let mut client = connect(url).await?;
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).map_err(|e| anyhow::anyhow!("no random schema name: {e}"))?;
    let schema = format!("claw_bench_raw_{}", hex::encode(id));
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; SET search_path = {schema}"
        ))
        .await
        .context("cannot create a schema for the raw insert rate")?;
    let measured = measure(&mut client, total, batch, event_bytes, runs).await;
    // Left behind only if the connection broke.
    let dropped = client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await;
    let rates = measured?;
    dropped.with_context(|| format!("cannot drop the schema {schema}"))?;
    Ok(rates)
}

/// The rows of one batch: the same for both ways.
struct Rows {
    run_ids: Vec<String>,
    data: String,
    per_run: u64,
    batch: u64,
}

impl Rows {
    /// (run, first sequence, end) of every batch, in order.
    fn batches(&self) -> impl Iterator<Item = (&str, u64, u64)> + '_ {
        self.run_ids.iter().flat_map(move |run| {
            (1..=self.per_run)
                .step_by(usize::try_from(self.batch).unwrap_or(usize::MAX))
                .map(move |first| {
                    (
                        run.as_str(),
                        first,
                        (first + self.batch).min(self.per_run + 1),
                    )
                })
        })
    }

    fn count(&self) -> u64 {
        self.per_run * self.run_ids.len() as u64
    }
}

async fn measure(
    client: &mut Client,
    total: u64,
    batch: usize,
    event_bytes: usize,
    runs: usize,
) -> anyhow::Result<Rates> {
    client
        .batch_execute(SCHEMA)
        .await
        .context("applying the store's schema")?;
    let rows = Rows {
        run_ids: (0..runs.max(1)).map(|i| format!("raw-run-{i}")).collect(),
        // As raw.rs: the same size as claw-bench's events.
        data: format!("{:020} {}", 0, "x".repeat(event_bytes.saturating_sub(21))),
        per_run: total / runs.max(1) as u64,
        batch: batch.max(1) as u64,
    };
    for id in &rows.run_ids {
        client
            .execute(
                "INSERT INTO runs (id, status, capability_token_hash, created_at) \
                 VALUES ($1, 'running', 'x', 0)",
                &[id],
            )
            .await?;
    }
    // Both ways start from an empty table and fresh statistics.
    let insert = by_insert(client, &rows).await?;
    client.batch_execute("TRUNCATE events; ANALYZE").await?;
    let copy = by_copy(client, &rows).await?;
    let stored: i64 = client
        .query_one("SELECT count(*) FROM events", &[])
        .await?
        .get(0);
    if u64::try_from(stored).ok() != Some(rows.count()) {
        bail!("COPY stored {stored} rows of {}", rows.count());
    }
    Ok(Rates { insert, copy })
}

/// The statement inserting `n` rows, `(run_id, type, data, timestamp,
/// sequence)` each.
fn insert_sql(n: usize) -> String {
    let mut sql =
        String::from("INSERT INTO events (run_id, type, data, timestamp, sequence) VALUES ");
    for i in 0..n {
        let p = i * 5;
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "(${},${},${},${},${})",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5
        ));
    }
    sql
}

async fn by_insert(client: &mut Client, rows: &Rows) -> anyhow::Result<f64> {
    // Prepared once per size (the last batch of a run may be shorter).
    let mut statements: HashMap<usize, Statement> = HashMap::new();
    let kind = "stdout";
    let timestamp = 0i64;
    let started = Instant::now();
    let mut inserted = 0u64;
    for (run, first, end) in rows.batches() {
        let sequences: Vec<i64> = (first..end)
            .map(|s| i64::try_from(s).unwrap_or(i64::MAX))
            .collect();
        let tx = client.transaction().await?;
        for chunk in sequences.chunks(ROWS_PER_STATEMENT) {
            let statement = match statements.get(&chunk.len()) {
                Some(s) => s.clone(),
                None => {
                    let s = tx.prepare(&insert_sql(chunk.len())).await?;
                    statements.insert(chunk.len(), s.clone());
                    s
                }
            };
            let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(chunk.len() * 5);
            for sequence in chunk {
                params.extend([
                    &run as &(dyn ToSql + Sync),
                    &kind,
                    &rows.data,
                    &timestamp,
                    sequence,
                ]);
            }
            inserted += tx.execute(&statement, &params).await?;
        }
        tx.commit().await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    if inserted != rows.count() {
        bail!("INSERT stored {inserted} rows of {}", rows.count());
    }
    Ok(inserted as f64 / seconds)
}

async fn by_copy(client: &mut Client, rows: &Rows) -> anyhow::Result<f64> {
    let statement = client
        .prepare("COPY events (run_id, type, data, timestamp, sequence) FROM STDIN (FORMAT binary)")
        .await?;
    let types = [Type::TEXT, Type::TEXT, Type::TEXT, Type::INT8, Type::INT8];
    let timestamp = 0i64;
    let started = Instant::now();
    let mut copied = 0u64;
    for (run, first, end) in rows.batches() {
        let tx = client.transaction().await?;
        let sink = tx.copy_in(&statement).await?;
        let writer = BinaryCopyInWriter::new(sink, &types);
        let mut writer = std::pin::pin!(writer);
        for sequence in first..end {
            let sequence = i64::try_from(sequence).unwrap_or(i64::MAX);
            writer
                .as_mut()
                .write(&[&run, &"stdout", &rows.data, &timestamp, &sequence])
                .await?;
        }
        copied += writer.finish().await?;
        tx.commit().await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    if copied != rows.count() {
        bail!("COPY stored {copied} rows of {}", rows.count());
    }
    Ok(copied as f64 / seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_every_sequence_of_every_run_once() {
        let rows = Rows {
            run_ids: vec!["a".into(), "b".into()],
            data: String::new(),
            per_run: 7,
            batch: 3,
        };
        let batches: Vec<_> = rows.batches().collect();
        assert_eq!(
            batches,
            [
                ("a", 1, 4),
                ("a", 4, 7),
                ("a", 7, 8),
                ("b", 1, 4),
                ("b", 4, 7),
                ("b", 7, 8)
            ]
        );
        assert_eq!(rows.count(), 14);
    }

    #[test]
    fn insert_statement_numbers_five_parameters_a_row() {
        assert_eq!(
            insert_sql(2),
            "INSERT INTO events (run_id, type, data, timestamp, sequence) VALUES \
             ($1,$2,$3,$4,$5),($6,$7,$8,$9,$10)"
        );
    }
}
