//! NATS JetStream as the journal, hot replicas and leadership by a lease (`docs/scale-out.md`).
//!
//! With `--nats URL` the node keeps no local journal: the sequence of events is a JetStream
//! stream whose sequence number *is* the event seq (stream seq N = event seq N, one message per
//! event, payload = the event's JSON line exactly as received, the same bytes the local journal
//! stores). The leader publishes each event with `Nats-Msg-Id` = `seq-blake3(line)` and
//! `Nats-Expected-Last-Sequence` = seq − 1, so two sequencers can never interleave: whichever
//! publishes second at a seq is refused by the server. A client is answered only after the
//! publish acknowledgement. Every node (leader or replica) applies the stream in order, so every
//! node has the same state hash at every seq; replicas serve reads and take over sequencing when
//! the leader's lease in the JetStream key-value store lapses.
//!
//! Local snapshots stay per node (data directory): a restart loads the newest and consumes the
//! stream from the next seq.

mod replica;

use crate::datadir::DataDir;
use crate::error::NodeError;
use crate::sequencer::{self, SequencerHandle, Shared};
use crate::settings::ServerSection;
use crate::stream::EffectHub;
use async_nats::jetstream::{self, kv, stream};
use solvent_core::{Config, Engine};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Default stream name (the key-value bucket of the lease is `<stream>-lease`).
pub const DEFAULT_STREAM: &str = "SOLVENT";
/// Default lease: a leader that stops renewing is replaced after about this long.
pub const DEFAULT_LEASE_MS: u64 = 3_000;
/// Key of the lease in the bucket.
pub const LEASE_KEY: &str = "leader";
/// The stream's de-duplication window (`Nats-Msg-Id`); beyond it, consumers are idempotent by
/// stream sequence (a message at a seq already applied is skipped).
pub const DUPLICATE_WINDOW_SECS: u64 = 120;
/// Most publishes in flight before the leader waits for their acknowledgements.
pub const PUBLISH_WINDOW_MESSAGES: usize = 1_024;
/// Gauge: 1 while this node holds the lease and sequences, 0 while it follows.
pub const JETSTREAM_LEADER: &str = "solvent_jetstream_leader";
/// Counter: times the leader stepped down after a publish the stream refused.
pub const JETSTREAM_STEP_DOWNS_TOTAL: &str = "solvent_jetstream_step_downs_total";
/// How long a start waits to catch up with the stream (and, without `--follow`, for the lease).
pub const START_TIMEOUT_SECS: u64 = 120;

/// Command-line options of the JetStream journal (part of `serve`'s options).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ClusterArgs {
    /// Use the NATS JetStream server at URL as the journal (instead of the local journal).
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    /// Hot replica: follow the stream, serve reads, take over sequencing when the lease lapses.
    #[arg(long, requires = "nats")]
    pub follow: bool,
    /// Stream name (several independent venues can share one NATS server).
    #[arg(long, default_value = DEFAULT_STREAM, requires = "nats")]
    pub stream: String,
    /// Leader lease in ms: fail-over takes about this long after the leader dies.
    #[arg(long, default_value_t = DEFAULT_LEASE_MS, requires = "nats")]
    pub lease_ms: u64,
    /// Stream (and lease bucket) replicas on a NATS cluster (1 on a single server).
    #[arg(long, default_value_t = 1, requires = "nats")]
    pub stream_replicas: usize,
    /// Name of this node in the lease (default: host name and process id).
    #[arg(long, requires = "nats")]
    pub node_id: Option<String>,
}

impl ClusterArgs {
    /// The JetStream options, when `--nats` is given.
    pub fn options(&self) -> Option<JetStreamOptions> {
        let url = self.nats.clone()?;
        Some(JetStreamOptions {
            url,
            follow: self.follow,
            stream: self.stream.clone(),
            lease_ms: self.lease_ms,
            stream_replicas: self.stream_replicas,
            node_id: self.node_id.clone().unwrap_or_else(default_node_id),
        })
    }
}

fn default_node_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    format!("{}-{}", if host.is_empty() { "node" } else { &host }, std::process::id())
}

/// How a node uses JetStream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JetStreamOptions {
    pub url: String,
    /// A replica (waits for the lease); otherwise the node must win the lease at start.
    pub follow: bool,
    pub stream: String,
    pub lease_ms: u64,
    pub stream_replicas: usize,
    pub node_id: String,
}

impl JetStreamOptions {
    pub fn new(url: impl Into<String>, node_id: impl Into<String>) -> JetStreamOptions {
        JetStreamOptions {
            url: url.into(),
            follow: false,
            stream: DEFAULT_STREAM.into(),
            lease_ms: DEFAULT_LEASE_MS,
            stream_replicas: 1,
            node_id: node_id.into(),
        }
    }

    pub fn subject(&self) -> String {
        format!("{}.events", self.stream.to_ascii_lowercase())
    }

    fn validate(&self) -> Result<(), NodeError> {
        let name_ok = !self.stream.is_empty()
            && self.stream.len() <= 64
            && self.stream.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(NodeError::Other(format!("--stream {:?}: 1 to 64 letters, digits, '-' or '_'", self.stream)));
        }
        if !(200..=600_000).contains(&self.lease_ms) {
            return Err(NodeError::Other(format!("--lease-ms {}: must be in [200, 600000]", self.lease_ms)));
        }
        if !(1..=5).contains(&self.stream_replicas) {
            return Err(NodeError::Other(format!("--stream-replicas {}: must be 1 to 5", self.stream_replicas)));
        }
        Ok(())
    }
}

/// `Nats-Msg-Id` of the event `line` at `seq`: the seq and the first 16 bytes of its BLAKE3.
pub fn message_id(seq: u64, line: &[u8]) -> String {
    let hash = blake3::hash(line);
    format!("{seq}-{}", hex::encode(&hash.as_bytes()[..16]))
}

/// The stream, the lease bucket and the publishing context of one node.
#[derive(Clone)]
pub struct Log {
    pub context: jetstream::Context,
    pub stream: stream::Stream,
    pub lease: kv::Store,
    /// The lease bucket's age limit: how long an unrenewed lease lives.
    pub lease_duration: Duration,
    pub subject: String,
}

fn nats_error(what: &str) -> impl FnOnce(&dyn std::fmt::Display) -> NodeError + '_ {
    move |e| NodeError::Other(format!("NATS: {what}: {e}"))
}

/// Connect and make sure the stream and the lease bucket exist. The stream's description
/// records the hash of the empty engine under the node's configuration, and a node whose
/// configuration differs is refused (every node must apply the same events the same way).
pub async fn open_log(options: &JetStreamOptions, genesis_hash: &str) -> Result<Log, NodeError> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .name(&options.node_id)
        .connect(options.url.as_str())
        .await
        .map_err(|e| nats_error("cannot connect")(&e))?;
    let context = jetstream::ContextBuilder::new().timeout(Duration::from_secs(5)).build(client);
    let description = format!("solvent events; engine genesis {genesis_hash}");
    let config = stream::Config {
        name: options.stream.clone(),
        description: Some(description.clone()),
        subjects: vec![options.subject()],
        storage: stream::StorageType::File,
        num_replicas: options.stream_replicas,
        max_message_size: solvent_core::event::MAX_LINE_BYTES as i32,
        duplicate_window: Duration::from_secs(DUPLICATE_WINDOW_SECS),
        deny_delete: true,
        deny_purge: true,
        ..Default::default()
    };
    let mut stream =
        context.get_or_create_stream(config).await.map_err(|e| nats_error("cannot open the stream")(&e))?;
    let info = stream.info().await.map_err(|e| nats_error("stream info")(&e))?;
    if info.config.description.as_deref() != Some(description.as_str()) {
        return Err(NodeError::Other(format!(
            "stream {} was written under another engine configuration ({:?}; this node: {description:?}): start \
             every node with the same --config",
            options.stream, info.config.description
        )));
    }
    let (lease, lease_duration) = open_lease_bucket(&context, options).await?;
    Ok(Log { context, stream, lease, lease_duration, subject: options.subject() })
}

/// The lease bucket `<stream>-lease` (created when missing) and its age limit, the lease.
async fn open_lease_bucket(
    context: &jetstream::Context,
    options: &JetStreamOptions,
) -> Result<(kv::Store, Duration), NodeError> {
    let bucket = format!("{}-lease", options.stream);
    // The bucket's stream is made here with the key-value conventions rather than through
    // `create_key_value`, whose account query does not parse a 2.9 server's answer.
    let bucket_stream = stream::Config {
        name: format!("KV_{bucket}"),
        description: Some("solvent leader lease".into()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age: Duration::from_millis(options.lease_ms),
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: options.stream_replicas,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    };
    let mut lease_stream = context
        .get_or_create_stream(bucket_stream)
        .await
        .map_err(|e| nats_error("cannot open the lease bucket")(&e))?;
    // The bucket's age limit is the lease, whatever this node's --lease-ms: renewing on another
    // cadence than the bucket expires would make leadership flap.
    let lease_max_age = lease_stream.info().await.map_err(|e| nats_error("lease bucket info")(&e))?.config.max_age;
    if lease_max_age != Duration::from_millis(options.lease_ms) {
        tracing::warn!(
            bucket_ms = lease_max_age.as_millis() as u64,
            lease_ms = options.lease_ms,
            "the lease bucket exists with another lease; using the bucket's"
        );
    }
    if lease_max_age.is_zero() {
        return Err(NodeError::Other(format!("lease bucket {bucket} has no age limit: it cannot hold a lease")));
    }
    let lease =
        context.get_key_value(bucket.as_str()).await.map_err(|e| nats_error("cannot open the lease bucket")(&e))?;
    Ok((lease, lease_max_age))
}

/// What [`start`] hands to the server: the shared state, the submission handle and the thread.
pub struct Started {
    pub shared: Arc<Shared>,
    pub handle: SequencerHandle,
    pub thread: JoinHandle<()>,
}

/// Load the newest local snapshot, connect, and start the replica thread; returns once the node
/// has caught up with the stream (and, without `--follow`, holds the lease).
pub fn start(
    options: &JetStreamOptions,
    data_dir: &DataDir,
    config: &Config,
    section: &ServerSection,
) -> Result<Started, NodeError> {
    options.validate()?;
    let removed = crate::snapshot::remove_temp_files(&data_dir.layout.snapshots)?;
    if removed > 0 {
        tracing::info!(removed, "removed temporary files of an interrupted snapshot write");
    }
    let (snapshot_seq, engine) = match crate::snapshot::load_newest_valid(&data_dir.layout.snapshots, u64::MAX)? {
        Some(loaded) => (loaded.seq, loaded.engine),
        None => (0, Engine::new(config)),
    };
    let genesis = Engine::new(config).state_hash();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("solvent-nats")
        .build()
        .map_err(|e| NodeError::io("cannot start the NATS runtime", e))?;
    let log = runtime.block_on(open_log(options, &genesis))?;
    let shared = Arc::new(Shared {
        view: crate::view::ViewCell::new(engine.clone()),
        hub: EffectHub::new(snapshot_seq, section.stream_ring_effects),
        head_seq: AtomicU64::new(snapshot_seq),
        snapshot_seq: Arc::new(AtomicU64::new(snapshot_seq)),
        journal_failure: Mutex::new(None),
        sequencer_died: tokio::sync::Notify::new(),
    });
    let (handle, receiver) = sequencer::channel(section.queue_requests);
    let worker = crate::worker::Worker::start(data_dir.layout.snapshots.clone(), shared.snapshot_seq.clone())
        .map_err(|e| NodeError::io("cannot start the worker thread", e))?;
    let (ready, started) = std::sync::mpsc::sync_channel(1);
    let parts = replica::Parts {
        options: options.clone(),
        log,
        engine,
        snapshot_seq,
        shared: shared.clone(),
        receiver,
        section: section.clone(),
        snapshot_dir: data_dir.layout.snapshots.clone(),
        worker,
        ready,
    };
    let thread = std::thread::Builder::new()
        .name("solvent-replica".into())
        .spawn(move || runtime.block_on(replica::Replica::new(parts).run()))
        .map_err(|e| NodeError::io("cannot start the replica thread", e))?;
    match started.recv_timeout(Duration::from_secs(START_TIMEOUT_SECS)) {
        Ok(Ok(())) => Ok(Started { shared, handle, thread }),
        Ok(Err(reason)) => Err(NodeError::Other(reason)),
        Err(_) => Err(NodeError::Other(format!(
            "JetStream node did not catch up with stream {} within {START_TIMEOUT_SECS} s",
            options.stream
        ))),
    }
}

/// Every event line of `stream` on the server at `url`, in stream order (line i = seq i + 1);
/// for audits, tests and `solvent replay` of a cluster's history.
pub fn export_stream(url: &str, stream: &str) -> Result<Vec<Vec<u8>>, NodeError> {
    use futures_util::StreamExt;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| NodeError::io("cannot start the NATS runtime", e))?;
    runtime.block_on(async {
        let client = async_nats::connect(url).await.map_err(|e| nats_error("cannot connect")(&e))?;
        let context = jetstream::new(client);
        let stream = context.get_stream(stream).await.map_err(|e| nats_error("no such stream")(&e))?;
        let last = stream.get_info().await.map_err(|e| nats_error("stream info")(&e))?.state.last_sequence;
        let mut lines = Vec::with_capacity(last.min(1 << 20) as usize);
        if last == 0 {
            return Ok(lines);
        }
        let config = async_nats::jetstream::consumer::pull::OrderedConfig::default();
        let consumer = stream.create_consumer(config).await.map_err(|e| nats_error("consumer")(&e))?;
        let mut messages = consumer.messages().await.map_err(|e| nats_error("consumer")(&e))?;
        while (lines.len() as u64) < last {
            let next = tokio::time::timeout(Duration::from_secs(10), messages.next()).await;
            let message = next
                .map_err(|_| NodeError::Other(format!("stream export stalled at seq {}", lines.len())))?
                .ok_or_else(|| NodeError::Other("the consumer ended".into()))?
                .map_err(|e| nats_error("consumer")(&e))?;
            let seq = message.info().map_err(|e| nats_error("message info")(&*e))?.stream_sequence;
            if seq != lines.len() as u64 + 1 {
                return Err(NodeError::Other(format!("stream gap: message {seq} after {}", lines.len())));
            }
            lines.push(message.message.payload.to_vec());
        }
        Ok(lines)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        cluster: ClusterArgs,
    }

    #[test]
    fn message_ids_follow_seq_and_line() {
        let line = br#"{"type":"clock","ts":1}"#;
        assert_eq!(message_id(7, line), message_id(7, line));
        assert_ne!(message_id(7, line), message_id(8, line));
        assert_ne!(message_id(7, line), message_id(7, br#"{"type":"clock","ts":2}"#));
        let id = message_id(7, line);
        assert!(id.starts_with("7-") && id.len() == 2 + 32, "{id}");
    }

    #[test]
    fn flags_and_their_limits() {
        assert_eq!(Args::try_parse_from(["x"]).unwrap().cluster.options(), None);
        assert!(Args::try_parse_from(["x", "--follow"]).is_err(), "--follow needs --nats");
        let parsed = Args::try_parse_from(["x", "--nats", "nats://127.0.0.1:4222", "--follow", "--node-id", "a"]);
        let options = parsed.unwrap().cluster.options().unwrap();
        assert_eq!((options.follow, options.stream.as_str(), options.lease_ms), (true, DEFAULT_STREAM, 3_000));
        assert_eq!(options.subject(), "solvent.events");
        assert_eq!(options.validate().map_err(|e| e.to_string()), Ok(()));
        let bad = |f: fn(&mut JetStreamOptions)| {
            let mut o = options.clone();
            f(&mut o);
            o.validate().is_err()
        };
        assert!(bad(|o| o.stream = "a.b".into()));
        assert!(bad(|o| o.stream = String::new()));
        assert!(bad(|o| o.lease_ms = 100));
        assert!(bad(|o| o.stream_replicas = 0));
    }
}
