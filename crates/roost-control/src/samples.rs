//! The metrics sampler: every 10 s it reads each running instance's counters, records a
//! sample (kept a day), folds them into 5-minute samples (kept 30 days), and exports the
//! latest values as Prometheus gauges.

use std::time::{Duration, Instant};

use roost_api::instances::{InstanceStats, InstanceStatus, MetricPoint, MetricSeries};
use roost_store::instances::SampleRow;
use roost_store::{now_ms, to_time};

use crate::tasks::{BackgroundTask, TaskSpec};
use crate::{Control, Error, Principal, Result};

const FINE: i64 = 10;
const COARSE: i64 = 300;
const FINE_KEEP_MS: i64 = 24 * 3600 * 1000;
const COARSE_KEEP_MS: i64 = 30 * 24 * 3600 * 1000;

/// Instance metrics every 10 s.
pub(crate) const INSTANCE_METRICS: TaskSpec = TaskSpec {
    name: "instance_metrics",
    description: "Samples every running instance's CPU, memory, processes and network counters (kept a day), \
                  folds them into 5-minute samples (kept 30 days) and exports them to /metrics",
    period: Duration::from_secs(FINE as u64),
};

pub(crate) struct InstanceMetrics {
    control: Control,
    /// The 5-minute window last folded.
    last_fold: i64,
}

impl InstanceMetrics {
    pub(crate) fn new(control: Control) -> InstanceMetrics {
        InstanceMetrics { control, last_fold: now_ms() / (COARSE * 1000) }
    }
}

impl BackgroundTask for InstanceMetrics {
    async fn activate(&mut self) -> Result<serde_json::Value> {
        let sampled = self.control.sample_all().await?;
        let window = now_ms() / (COARSE * 1000);
        let folded = window != self.last_fold;
        if folded {
            self.control.fold(self.last_fold * COARSE * 1000, window * COARSE * 1000).await;
            self.last_fold = window;
        }
        Ok(serde_json::json!({ "sampled": sampled, "folded": folded }))
    }
}

impl Control {
    /// Records a sample of each running instance; returns how many.
    async fn sample_all(&self) -> Result<usize> {
        let node = self.node()?;
        let rows = self.store().all_instances().await?;
        let now = now_ms();
        let mut sampled = 0;
        for row in rows.iter().filter(|r| r.status() == InstanceStatus::Running) {
            let Ok(driver) = node.driver_for(&row.kind) else { continue };
            let Ok(stats) = driver.stats(&row.id).await else { continue };
            let cpu_percent = {
                let mut last = self.compute().last_cpu.lock().expect("last_cpu");
                let percent = match last.get(&row.id) {
                    Some((ns, at)) if stats.cpu_usage_ns >= *ns => {
                        let wall = at.elapsed().as_nanos().max(1) as f64;
                        (stats.cpu_usage_ns - ns) as f64 / wall * 100.0
                    }
                    _ => 0.0,
                };
                last.insert(row.id.clone(), (stats.cpu_usage_ns, Instant::now()));
                percent
            };
            let labels = Self::metric_labels(row);
            let l: Vec<(&'static str, String)> = labels.into_iter().collect();
            metrics::gauge!("roost_instance_cpu_percent", &l).set(cpu_percent);
            metrics::gauge!("roost_instance_memory_bytes", &l).set(stats.memory_bytes as f64);
            metrics::gauge!("roost_instance_pids", &l).set(stats.pids as f64);
            metrics::gauge!("roost_instance_network_receive_bytes", &l).set(stats.net_rx_bytes as f64);
            metrics::gauge!("roost_instance_network_transmit_bytes", &l).set(stats.net_tx_bytes as f64);
            let latest = api_stats(&row.id, now, cpu_percent, &stats);
            self.compute().latest.lock().expect("latest").insert(row.id.clone(), latest);
            let sample = SampleRow {
                instance_id: row.id.clone(),
                resolution: FINE,
                time: now - now % (FINE * 1000),
                cpu_percent,
                memory_bytes: stats.memory_bytes as i64,
                pids: stats.pids as i64,
                net_rx_bytes: stats.net_rx_bytes as i64,
                net_tx_bytes: stats.net_tx_bytes as i64,
            };
            let write = async {
                let mut tx = self.store().write().await?;
                roost_store::instances::insert_sample(tx.conn(), &sample).await?;
                tx.commit().await
            };
            match write.await {
                Ok(()) => sampled += 1,
                Err(e) => tracing::debug!(instance = %row.id, error = %e, "could not record a sample"),
            }
        }
        metrics::gauge!("roost_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        Ok(sampled)
    }

    /// Averages the fine samples of `[from, to)` into one coarse sample per instance and
    /// prunes what is past retention.
    async fn fold(&self, from: i64, to: i64) {
        let Ok(rows) = self.store().all_instances().await else { return };
        let result = async {
            let mut tx = self.store().write().await?;
            for row in &rows {
                let samples = self.store().samples(&row.id, FINE, from).await?;
                let window: Vec<_> = samples.iter().filter(|s| s.time < to).collect();
                let Some(last) = window.last() else { continue };
                let n = window.len() as f64;
                let coarse = SampleRow {
                    instance_id: row.id.clone(),
                    resolution: COARSE,
                    time: from,
                    cpu_percent: window.iter().map(|s| s.cpu_percent).sum::<f64>() / n,
                    memory_bytes: (window.iter().map(|s| s.memory_bytes as f64).sum::<f64>() / n) as i64,
                    pids: window.iter().map(|s| s.pids).max().unwrap_or(0),
                    net_rx_bytes: last.net_rx_bytes,
                    net_tx_bytes: last.net_tx_bytes,
                };
                roost_store::instances::insert_sample(tx.conn(), &coarse).await?;
            }
            let now = now_ms();
            roost_store::instances::prune_samples(tx.conn(), FINE, now - FINE_KEEP_MS).await?;
            roost_store::instances::prune_samples(tx.conn(), COARSE, now - COARSE_KEEP_MS).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not fold metric samples");
        }
    }

    pub(crate) fn forget_samples(&self, id: &str) {
        self.compute().last_cpu.lock().expect("last_cpu").remove(id);
        self.compute().latest.lock().expect("latest").remove(id);
    }

    /// Current resource use: the counters now, the CPU percentage of the last interval.
    pub async fn instance_stats(&self, p: &Principal, key: &str, project: Option<&str>) -> Result<InstanceStats> {
        let row = self.instance_row(p, key, project).await?;
        if row.status() != InstanceStatus::Running {
            return Err(Error::conflict(format!("instance '{}' is {}, not running", row.name, row.status().as_str())));
        }
        let driver = self.node()?.driver_for(&row.kind)?;
        let stats = driver.stats(&row.id).await.map_err(crate::images::node_error)?;
        // Two readings 250 ms apart when the sampler has none yet.
        let cpu_percent = self.compute().latest.lock().expect("latest").get(&row.id).map(|s| s.cpu_percent);
        let cpu_percent = match cpu_percent {
            Some(c) => c,
            None => {
                let start = Instant::now();
                tokio::time::sleep(Duration::from_millis(250)).await;
                let again = driver.stats(&row.id).await.map_err(crate::images::node_error)?;
                again.cpu_usage_ns.saturating_sub(stats.cpu_usage_ns) as f64 / start.elapsed().as_nanos().max(1) as f64
                    * 100.0
            }
        };
        Ok(api_stats(&row.id, now_ms(), cpu_percent, &stats))
    }

    /// The recorded series over `period` (`5m`, `1h`, `1d`: 10 s points; `7d`, `30d`:
    /// 5 min points).
    pub async fn instance_metrics(
        &self,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        period: &str,
    ) -> Result<MetricSeries> {
        let row = self.instance_row(p, key, project).await?;
        let span = humantime::parse_duration(period)
            .ok()
            .filter(|d| *d >= Duration::from_secs(60) && *d <= Duration::from_secs(30 * 86400))
            .ok_or_else(|| Error::invalid(format!("period: '{period}' is not a duration from 1m to 30d, like 1h")))?;
        let resolution = if span <= Duration::from_secs(86400) { FINE } else { COARSE };
        let since = now_ms() - span.as_millis() as i64;
        let samples = self.store().samples(&row.id, resolution, since).await?;
        Ok(MetricSeries {
            instance_id: row.id,
            period: period.to_string(),
            resolution_secs: resolution as u64,
            points: samples
                .into_iter()
                .map(|s| MetricPoint {
                    time: to_time(s.time),
                    cpu_percent: s.cpu_percent,
                    memory_bytes: s.memory_bytes as u64,
                    pids: s.pids as u64,
                    net_rx_bytes: s.net_rx_bytes as u64,
                    net_tx_bytes: s.net_tx_bytes as u64,
                })
                .collect(),
        })
    }
}

/// The API view of the driver's counters at `time`.
fn api_stats(id: &str, time: i64, cpu_percent: f64, stats: &roost_node::Stats) -> InstanceStats {
    InstanceStats {
        instance_id: id.to_string(),
        time: Some(to_time(time)),
        cpu_percent,
        cpu_usage_ns: stats.cpu_usage_ns,
        memory_bytes: stats.memory_bytes,
        memory_limit: stats.memory_limit,
        pids: stats.pids,
        net_rx_bytes: stats.net_rx_bytes,
        net_tx_bytes: stats.net_tx_bytes,
    }
}
