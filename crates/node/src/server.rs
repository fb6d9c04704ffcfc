//! Putting the node together: data directory, recovery, sequencer and worker threads, the tokio
//! runtime with the HTTP server, the clock ticker and (with `--demo`) the simulated feed.

use crate::auth::Authenticator;
use crate::datadir::DataDir;
use crate::error::NodeError;
use crate::http::{self, AppState};
use crate::journal::{JournalFs, OsFs};
use crate::recovery;
use crate::sequencer::{self, Sequencer, SequencerHandle, Shared};
use crate::settings::NodeSettings;
use crate::stream::EffectHub;
use crate::view::ViewCell;
use crate::worker::Worker;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;

/// Everything needed to start a server.
pub struct StartOptions {
    pub data_dir: PathBuf,
    /// Text of the engine config (`--config`); `None`: the data directory's, or the default.
    pub engine_config_text: Option<String>,
    pub settings: NodeSettings,
    pub fs: Arc<dyn JournalFs>,
    /// Stop on Ctrl-C / SIGTERM (the binary); tests stop with [`RunningServer::shutdown`].
    pub handle_signals: bool,
    /// Run the built-in simulated feed (`--demo`).
    pub demo: Option<crate::demo::DemoOptions>,
    /// NATS JetStream as the journal instead of the local one (`--nats`).
    pub jetstream: Option<crate::jetstream::JetStreamOptions>,
}

impl StartOptions {
    pub fn new(data_dir: PathBuf, settings: NodeSettings) -> StartOptions {
        StartOptions {
            data_dir,
            engine_config_text: None,
            settings,
            fs: Arc::new(OsFs),
            handle_signals: false,
            demo: None,
            jetstream: None,
        }
    }
}

/// A started server. Dropping it stops the server in the background, as
/// [`RunningServer::shutdown`] does without waiting.
pub struct RunningServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), NodeError>>>,
    shared: Arc<Shared>,
    /// The signer's progress (`[server.signing]`), `None` when the server does not sign.
    signed_seq: Option<Arc<AtomicU64>>,
}

impl RunningServer {
    /// Recover, start the threads, bind the listener and serve.
    pub fn start(options: StartOptions) -> Result<RunningServer, NodeError> {
        let _ = crate::telemetry::metrics_handle();
        let data_dir = DataDir::open(&options.data_dir)?;
        let (config, _) = data_dir.engine_config(options.engine_config_text.as_deref())?;
        let section = options.settings.server.clone();
        let keys = crate::signer::SignerKeys::load(&section.signing)?;
        if keys.is_some() && options.jetstream.is_some() {
            return Err(NodeError::Other(
                "[server.signing] follows the local journal; with --nats, sign the exported stream offline \
                 (solvent export-stream, then solvent sign)"
                    .into(),
            ));
        }
        let (shared, handle, sequencer_thread) = match &options.jetstream {
            None => local_journal(&data_dir, &config, &options, &section)?,
            Some(js) => {
                let started = crate::jetstream::start(js, &data_dir, &config, &section)?;
                (started.shared, started.handle, started.thread)
            }
        };
        let signer = match keys {
            Some(keys) => Some(crate::signer::Signer::start(&data_dir.layout, &config, keys, shared.clone())?),
            None => None,
        };
        let signed_seq = signer.as_ref().map(crate::signer::Signer::signed_seq_cell);
        let listener = std::net::TcpListener::bind(options.settings.listen)
            .map_err(|source| NodeError::Listen { addr: options.settings.listen.to_string(), source })?;
        listener.set_nonblocking(true).map_err(|e| NodeError::io("listener", e))?;
        let addr = listener.local_addr().map_err(|e| NodeError::io("listener", e))?;
        let (stopping_sender, stopping) = tokio::sync::watch::channel(false);
        let auth =
            Authenticator::new(options.settings.tokens.clone(), section.rate_limit_per_sec, section.rate_limit_burst);
        let app = Arc::new(AppState {
            sequencer: handle.clone(),
            shared: shared.clone(),
            auth,
            settings: section,
            config: Arc::new(config),
            data_dir: options.data_dir.clone(),
            stopping,
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("solvent-http")
            .build()
            .map_err(|e| NodeError::io("cannot start the async runtime", e))?;
        let (stop, stopped) = oneshot::channel();
        let handle_signals = options.handle_signals;
        let context =
            ServeContext { app, handle, listener, stopped, stopping_sender, handle_signals, demo: options.demo };
        let thread = std::thread::Builder::new()
            .name("solvent-runtime".into())
            .spawn(move || {
                let result = runtime.block_on(serve(context));
                let _ = sequencer_thread.join();
                if let Some(signer) = signer {
                    signer.finish(); // signs up to the sequencer's last event first
                }
                drop(data_dir);
                result
            })
            .map_err(|e| NodeError::io("cannot start the runtime thread", e))?;
        tracing::info!(%addr, "listening");
        Ok(RunningServer { addr, stop: Some(stop), thread: Some(thread), shared, signed_seq })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sequence number of the last durable, applied event.
    pub fn head_seq(&self) -> u64 {
        self.shared.head_seq.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The last event whose effects are signed and durable in `signed-effects.jsonl`, when the
    /// server signs orders.
    pub fn signed_seq(&self) -> Option<u64> {
        self.signed_seq.as_ref().map(|seq| seq.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// The state hash of the published read view (the head once the sequencer is idle).
    pub fn state_hash(&self) -> String {
        self.shared.view.load().state_hash().to_string()
    }

    /// Stop gracefully: stop accepting, finish pending submissions, write a final snapshot.
    pub fn shutdown(mut self) -> Result<(), NodeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.wait()
    }

    /// Wait until the server stops (by a signal when `handle_signals`).
    pub fn wait(mut self) -> Result<(), NodeError> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(NodeError::Other("the server thread panicked".into())),
            None => Ok(()),
        }
    }
}

/// Recover from the local journal and start the sequencer on it.
fn local_journal(
    data_dir: &DataDir,
    config: &solvent_core::Config,
    options: &StartOptions,
    section: &crate::settings::ServerSection,
) -> Result<(Arc<Shared>, SequencerHandle, JoinHandle<()>), NodeError> {
    let recovered = recovery::recover(&data_dir.layout, config, options.fs.clone(), section.segment_bytes)?;
    let shared = Arc::new(Shared {
        view: ViewCell::new(recovered.engine.clone()),
        hub: EffectHub::new(recovered.last_seq, section.stream_ring_effects),
        head_seq: AtomicU64::new(recovered.last_seq),
        snapshot_seq: Arc::new(AtomicU64::new(recovered.snapshot_seq)),
        journal_failure: Mutex::new(None),
        sequencer_died: tokio::sync::Notify::new(),
    });
    let (handle, thread) = spawn_sequencer(recovered.journal, recovered.engine, &shared, data_dir, section)?;
    Ok((shared, handle, thread))
}

/// Start the worker and the sequencer threads.
fn spawn_sequencer(
    journal: crate::journal::JournalWriter,
    engine: solvent_core::Engine,
    shared: &Arc<Shared>,
    data_dir: &DataDir,
    section: &crate::settings::ServerSection,
) -> Result<(SequencerHandle, JoinHandle<()>), NodeError> {
    let snapshots = data_dir.layout.snapshots.clone();
    let worker = Worker::start(snapshots.clone(), shared.snapshot_seq.clone())
        .map_err(|e| NodeError::io("cannot start the worker thread", e))?;
    let (handle, receiver) = sequencer::channel(section.queue_requests);
    let sequencer = Sequencer::new(receiver, engine, shared.clone(), journal, section.clone(), snapshots, worker);
    let thread = std::thread::Builder::new()
        .name("solvent-sequencer".into())
        .spawn(move || sequencer.run())
        .map_err(|e| NodeError::io("cannot start the sequencer thread", e))?;
    Ok((handle, thread))
}

struct ServeContext {
    app: http::App,
    handle: SequencerHandle,
    listener: std::net::TcpListener,
    stopped: oneshot::Receiver<()>,
    stopping_sender: tokio::sync::watch::Sender<bool>,
    handle_signals: bool,
    demo: Option<crate::demo::DemoOptions>,
}

async fn serve(context: ServeContext) -> Result<(), NodeError> {
    let ServeContext { app, handle, listener, stopped, stopping_sender, handle_signals, demo } = context;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| NodeError::io("listener", e))?;
    // Answers go out at once: with Nagle's algorithm a small answer can wait for the client's
    // delayed ACK of the previous one (tens of milliseconds on a keep-alive connection).
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream: &mut tokio::net::TcpStream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
        }
    });
    let clock_ms = app.settings.clock_interval_ms;
    let mut background = tokio::task::JoinSet::new();
    if clock_ms > 0 {
        let ticker = handle.clone();
        background.spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(clock_ms));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                interval.tick().await;
                ticker.clock_tick();
            }
        });
    }
    let advisor = app.settings.advisor.clone();
    if advisor.policy != crate::advisor::AdvisorPolicy::Static {
        background.spawn(crate::advisor::run(advisor, handle.clone(), app.shared.clone(), app.config.clone()));
    }
    if let Some(options) = demo {
        background.spawn(crate::demo::run(options, handle.clone(), app.shared.clone()));
    }
    let shared = app.shared.clone();
    let router = http::router(app);
    let died = shared.clone();
    let shutdown = async move {
        tokio::select! {
            _ = stop_signal(stopped, handle_signals) => {}
            _ = died.sequencer_died.notified() => {}
        }
        let _ = stopping_sender.send(true);
    };
    let result = axum::serve(listener, router).with_graceful_shutdown(shutdown).await;
    background.abort_all();
    handle.shutdown().await;
    result.map_err(|e| NodeError::io("http server", e))?;
    match shared.journal_failure() {
        Some(reason) if reason.contains("sequencer thread panicked") => Err(NodeError::Other(reason)),
        _ => Ok(()),
    }
}

/// Resolves on an explicit stop, or on Ctrl-C / SIGTERM when `handle_signals`.
async fn stop_signal(stopped: oneshot::Receiver<()>, handle_signals: bool) {
    if !handle_signals {
        let _ = stopped.await;
        return;
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let sigterm = async {
        match terminate.as_mut() {
            Some(signal) => {
                signal.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = stopped => {}
        _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: shutting down"),
        _ = sigterm => tracing::info!("SIGTERM: shutting down"),
    }
}
