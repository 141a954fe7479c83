//! Where a data-parallel run's replicas live: the devices of this node and,
//! for multi-node runs, the node's place in the cluster (`--nodes`,
//! `--node-rank`, `--orchestrator`, `--node-address`).
//!
//! Every replica is a burn-collective *peer*; peer ids are global ranks
//! (`node_rank × devices_per_node + local index`), so rank 0 is the first
//! device of node 0, the only replica that logs, evaluates and checkpoints.
//! Across nodes, burn-collective's global orchestrator introduces the nodes to
//! each other and the gradients travel over its websocket data service: no
//! protocol of ours is involved.

use std::time::Duration;

use anyhow::{bail, ensure};
use burn::prelude::Backend;

/// How this process takes part in a (possibly multi-node) run.
///
/// ```
/// use crosskd_trainer::train::parallel_cluster::ClusterConfig;
/// // Node 1 of 2; node 0 (10.0.0.1) hosts the orchestrator on port 7800.
/// let c = ClusterConfig {
///     nodes: 2,
///     node_rank: 1,
///     orchestrator: Some("10.0.0.1:7800".into()),
///     node_address: Some("10.0.0.2:7801".into()),
///     ..ClusterConfig::default()
/// };
/// c.validate().unwrap();
/// assert_eq!(c.orchestrator_url().unwrap(), "ws://10.0.0.1:7800");
/// assert_eq!(c.data_service_port().unwrap(), 7801);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Number of nodes (processes, usually one per machine) in the run.
    pub nodes: usize,
    /// This node's rank, `0..nodes`; node 0 logs, evaluates and checkpoints.
    pub node_rank: usize,
    /// `host:port` (or `ws://host:port`) of burn-collective's global orchestrator.
    pub orchestrator: Option<String>,
    /// `host:port` at which the *other* nodes reach this one; the port is
    /// where this node serves gradient slices to its peers.
    pub node_address: Option<String>,
    /// Host the orchestrator in this process, on the `--orchestrator` port.
    pub serve_orchestrator: bool,
    /// How long to wait for every peer (and node) to join before giving up.
    pub join_timeout: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            nodes: 1,
            node_rank: 0,
            orchestrator: None,
            node_address: None,
            serve_orchestrator: false,
            join_timeout: Duration::from_secs(120),
        }
    }
}

/// `host:port` → `ws://host:port` (burn-communication's address form).
fn ws_url(addr: &str) -> String {
    if addr.contains("://") {
        addr.to_string()
    } else {
        format!("ws://{addr}")
    }
}

/// The port of a `host:port` / `ws://host:port` address.
fn port_of(flag: &str, addr: &str) -> anyhow::Result<u16> {
    let rest = addr.rsplit("://").next().unwrap_or(addr);
    let port = rest.rsplit(':').next().filter(|_| rest.contains(':'));
    match port.and_then(|p| p.trim_end_matches('/').parse::<u16>().ok()) {
        Some(p) if p > 0 => Ok(p),
        _ => {
            bail!("{flag} {addr}: expected HOST:PORT with a port in 1..=65535 (e.g. 10.0.0.1:7800)")
        }
    }
}

impl ClusterConfig {
    /// Whether more than one node takes part.
    pub fn is_multi_node(&self) -> bool {
        self.nodes > 1
    }

    /// Check the flags fit together; the error names the flag to fix.
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(
            self.nodes >= 1,
            "--nodes {}: must be at least 1",
            self.nodes
        );
        ensure!(
            self.node_rank < self.nodes,
            "--node-rank {} with --nodes {}: the rank must be in 0..{}",
            self.node_rank,
            self.nodes,
            self.nodes
        );
        if !self.is_multi_node() {
            ensure!(
                !self.serve_orchestrator && self.node_address.is_none(),
                "--serve-orchestrator/--node-address are multi-node flags: add --nodes N (N > 1) or drop them"
            );
            return Ok(());
        }
        let Some(orch) = &self.orchestrator else {
            bail!("--nodes {} needs --orchestrator HOST:PORT (the orchestrator's address, the same on every node)", self.nodes);
        };
        port_of("--orchestrator", orch)?;
        let Some(node) = &self.node_address else {
            bail!(
                "--nodes {} needs --node-address HOST:PORT (where the other nodes reach this one)",
                self.nodes
            );
        };
        port_of("--node-address", node)?;
        ensure!(
            !self.serve_orchestrator || self.node_rank == 0,
            "--serve-orchestrator is for node 0 only (this is --node-rank {})",
            self.node_rank
        );
        Ok(())
    }

    /// The orchestrator's websocket URL.
    pub fn orchestrator_url(&self) -> Option<String> {
        self.orchestrator.as_deref().map(ws_url)
    }

    /// The port this node serves tensor data on (from `--node-address`).
    pub fn data_service_port(&self) -> anyhow::Result<u16> {
        match &self.node_address {
            Some(a) => port_of("--node-address", a),
            None => bail!("--node-address is not set"),
        }
    }

    /// The orchestrator's port (from `--orchestrator`).
    pub fn orchestrator_port(&self) -> anyhow::Result<u16> {
        match &self.orchestrator {
            Some(a) => port_of("--orchestrator", a),
            None => bail!("--orchestrator is not set"),
        }
    }
}

/// Replica counts and this node's place among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct World {
    /// Nodes in the run.
    pub nodes: usize,
    /// This node's rank.
    pub node_rank: usize,
    /// Devices (replicas) on every node.
    pub local: usize,
}

impl World {
    /// Total replicas: the effective batch is `size() × data.batch_size` images.
    pub fn size(&self) -> usize {
        self.nodes * self.local
    }

    /// Global rank of local replica `i`.
    pub fn global_rank(&self, i: usize) -> usize {
        self.node_rank * self.local + i
    }

    /// Whether this node holds rank 0 (logs, evaluates, checkpoints).
    pub fn is_main_node(&self) -> bool {
        self.node_rank == 0
    }
}

/// The devices of this node and the cluster around it.
#[derive(Debug, Clone)]
pub struct Placement<B: Backend> {
    /// One replica per device; the first is this node's main replica.
    pub devices: Vec<B::Device>,
    /// Multi-node settings (the default is a single node).
    pub cluster: ClusterConfig,
}

impl<B: Backend> Placement<B> {
    /// One device, one node: plain single-device training.
    pub fn single(device: B::Device) -> Self {
        Self {
            devices: vec![device],
            cluster: ClusterConfig::default(),
        }
    }

    /// The replica counts; every node must name the same number of devices.
    pub fn world(&self) -> World {
        World {
            nodes: self.cluster.nodes,
            node_rank: self.cluster.node_rank,
            local: self.devices.len(),
        }
    }
}

/// burn-collective glue: registration, orchestrator and shutdown, each bounded
/// by a timeout so an unreachable orchestrator or a missing peer is an error,
/// not a hang.
#[cfg(feature = "collective")]
pub mod collective {
    use std::sync::mpsc;
    use std::time::Duration;

    use anyhow::{anyhow, Context};
    use burn::prelude::Backend;
    use burn_collective::{AllReduceStrategy, CollectiveConfig, PeerId};

    use super::{ClusterConfig, World};

    /// Run a blocking burn-collective call on a helper thread and wait at most
    /// `timeout`: burn-collective itself retries forever (e.g. while the
    /// orchestrator is unreachable). On timeout the helper thread is left
    /// blocked; the caller reports the error and the process exits.
    pub fn with_timeout<T: Send + 'static>(
        timeout: Duration,
        what: impl FnOnce() -> String,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("crosskd-collective".into())
            .spawn(move || {
                let _ = tx.send(f());
            })
            .context("spawning a collective helper thread")?;
        rx.recv_timeout(timeout)
            .map_err(|_| anyhow!("{} did not complete within {} s", what(), timeout.as_secs()))
    }

    /// The collective configuration shared by every peer of this node.
    pub fn config(cluster: &ClusterConfig, world: World) -> anyhow::Result<CollectiveConfig> {
        // Tree reduce locally and ring across nodes (burn-collective's advice).
        let mut c = CollectiveConfig::default()
            .with_num_devices(world.local)
            .with_local_all_reduce_strategy(AllReduceStrategy::Tree(2));
        if cluster.is_multi_node() {
            let orch = cluster.orchestrator_url().context("--orchestrator")?;
            let node = super::ws_url(cluster.node_address.as_deref().context("--node-address")?);
            c = c
                .with_num_nodes(cluster.nodes as u32)
                .with_global_address(orch.parse().map_err(|e: String| anyhow!(e))?)
                .with_node_address(node.parse().map_err(|e: String| anyhow!(e))?)
                .with_data_service_port(cluster.data_service_port()?)
                .with_global_all_reduce_strategy(AllReduceStrategy::Tree(2));
        }
        Ok(c)
    }

    /// Join the collective as `peer`; waits until every local peer (and, for
    /// multi-node runs, every node) has joined.
    pub fn register<B: Backend>(
        peer: usize,
        device: B::Device,
        config: CollectiveConfig,
        cluster: &ClusterConfig,
    ) -> anyhow::Result<()> {
        let timeout = cluster.join_timeout;
        let multi = cluster.is_multi_node();
        let orch = cluster.orchestrator.clone().unwrap_or_default();
        let nodes = cluster.nodes;
        with_timeout(
            timeout,
            || {
                if multi {
                    format!("joining the {nodes}-node run through the orchestrator at {orch} (is it running, reachable from here, and did every node start with the same --nodes?)")
                } else {
                    "registering the local devices with burn-collective".into()
                }
            },
            move || burn_collective::register::<B>(PeerId::from(peer), device, config),
        )?
        .map_err(|e| anyhow!("burn-collective register of rank {peer}: {e:?}"))
    }

    /// Leave the collective; a failure only warns (training is already done).
    pub fn finish<B: Backend>(peer: usize) {
        let r = with_timeout(
            Duration::from_secs(20),
            || format!("leaving the collective (rank {peer})"),
            move || burn_collective::finish_collective::<B>(PeerId::from(peer)),
        );
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: rank {peer}: leaving the collective: {e:?}"),
            Err(e) => eprintln!("warning: {e}"),
        }
    }

    /// Host burn-collective's global orchestrator on `port` in a background
    /// thread for the rest of the process.
    pub fn serve_orchestrator(port: u16) -> anyhow::Result<()> {
        // burn-collective only logs a failed bind: probe the port first so a
        // busy port is a clear error.
        std::net::TcpListener::bind(("0.0.0.0", port)).with_context(|| {
            format!("--serve-orchestrator: cannot listen on port {port}; pick a free port in --orchestrator")
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("starting the orchestrator's async runtime")?;
        std::thread::Builder::new()
            .name("crosskd-orchestrator".into())
            .spawn(move || runtime.block_on(burn_collective::start_global_orchestrator(port)))
            .context("spawning the orchestrator thread")?;
        eprintln!("orchestrator: listening on port {port}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn multi(rank: usize) -> ClusterConfig {
        ClusterConfig {
            nodes: 2,
            node_rank: rank,
            orchestrator: Some("127.0.0.1:7800".into()),
            node_address: Some("ws://127.0.0.1:7801".into()),
            ..ClusterConfig::default()
        }
    }

    #[test]
    fn single_node_is_valid_by_default() {
        ClusterConfig::default().validate().unwrap();
    }

    #[test]
    fn flags_are_checked_with_actionable_errors() {
        let mut c = multi(2);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--node-rank 2"));
        c = multi(0);
        c.orchestrator = None;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--orchestrator"));
        c = multi(0);
        c.node_address = Some("10.0.0.2".into());
        assert!(c.validate().unwrap_err().to_string().contains("HOST:PORT"));
        c = multi(1);
        c.serve_orchestrator = true;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("node 0 only"));
        c = ClusterConfig {
            serve_orchestrator: true,
            ..ClusterConfig::default()
        };
        assert!(c.validate().is_err());
        multi(1).validate().unwrap();
    }

    #[test]
    fn addresses_get_the_websocket_scheme() {
        let c = multi(0);
        assert_eq!(c.orchestrator_url().unwrap(), "ws://127.0.0.1:7800");
        assert_eq!(c.orchestrator_port().unwrap(), 7800);
        assert_eq!(c.data_service_port().unwrap(), 7801);
    }

    #[test]
    fn global_ranks_are_node_major() {
        let w = World {
            nodes: 2,
            node_rank: 1,
            local: 4,
        };
        assert_eq!(w.size(), 8);
        assert_eq!(w.global_rank(0), 4);
        assert!(!w.is_main_node());
    }
}
