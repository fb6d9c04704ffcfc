//! Python bindings of solvent (`import solvent`): the engine and the stress lab, for notebooks.
//!
//! Everything runs through the Rust code paths the `solvent` binary runs: lines are parsed and
//! applied by `Engine::apply_parsed`, files are read with the CLI's bounded line reader, effects
//! and the state dump are the core's own types serialized with serde (into Python objects
//! instead of JSON, amounts as `decimal.Decimal`), and `stress` calls `solvent_stress::run`.
//! No engine logic lives here. `docs/python.md` is the reference.

#[path = "../../cli/src/lines.rs"]
#[allow(dead_code)]
mod lines;
mod stress;
mod topy;

use pyo3::exceptions::{PyException, PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use solvent_core::event::{ParsedLine, MAX_LINE_BYTES};
use solvent_core::{Config, ConfigError as CoreConfigError, Effect, Engine as CoreEngine, Error};
use std::collections::BTreeMap;
use std::io::BufReader;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

pyo3::create_exception!(solvent, SolventError, PyException, "Base class of every solvent error.");
pyo3::create_exception!(
    solvent,
    EngineError,
    SolventError,
    "The engine refused an event: `.kind` is the stable error kind (`insufficient_margin`, ...), \
     `.message` the engine's message, `.seq` and `.ts` locate it, `.effect` is the refusal as an effect dict."
);
pyo3::create_exception!(
    solvent,
    ConfigError,
    SolventError,
    "A configuration was refused: `.problems` lists every problem found, one string each."
);
pyo3::create_exception!(
    solvent,
    StressError,
    SolventError,
    "The stress lab refused its options or failed: `.kind` names the failure, `.message` says why."
);
pyo3::create_exception!(
    solvent,
    InternalError,
    SolventError,
    "A bug in solvent (a Rust panic), caught at the boundary; the engine that raised it is no longer usable."
);

/// The `decimal.Decimal` class.
fn decimal_class(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static DECIMAL: GILOnceCell<Py<PyAny>> = GILOnceCell::new();
    DECIMAL
        .get_or_try_init(py, || Ok::<_, PyErr>(py.import("decimal")?.getattr("Decimal")?.unbind()))
        .map(|class| class.bind(py))
}

/// An effect as a dict: `type`, `seq`, `ts`, then the fields of its kind (the JSON of
/// `solvent replay`, amounts as `Decimal`).
fn effect_dict<'py>(py: Python<'py>, effect: &Effect) -> PyResult<Bound<'py, PyDict>> {
    let decimal = decimal_class(py)?;
    let body = topy::to_py(py, decimal, &effect.kind)?;
    let body = body.downcast::<PyDict>().map_err(|_| PyTypeError::new_err("an effect kind is not a mapping"))?;
    let dict = PyDict::new(py);
    dict.set_item("type", effect.type_name())?;
    dict.set_item("seq", effect.seq)?;
    dict.set_item("ts", effect.ts)?;
    for (key, value) in body.iter() {
        if key.extract::<String>().ok().as_deref() != Some("type") {
            dict.set_item(key, value)?;
        }
    }
    Ok(dict)
}

fn effects_list<'py>(py: Python<'py>, effects: &[Effect]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for effect in effects {
        list.append(effect_dict(py, effect)?)?;
    }
    Ok(list)
}

/// The Python exception of a refused event.
fn engine_error(py: Python<'_>, effect: &Effect) -> PyErr {
    let kind = effect.rejection_kind().unwrap_or("unknown").to_string();
    let message = match &effect.kind {
        solvent_core::EffectKind::Rejected { message, .. }
        | solvent_core::EffectKind::OracleRejected { message, .. } => message.clone(),
        _ => kind.clone(),
    };
    let error = EngineError::new_err(format!("{kind}: {message}"));
    let attach = || -> PyResult<()> {
        let value = error.value(py);
        value.setattr("kind", &kind)?;
        value.setattr("message", &message)?;
        value.setattr("seq", effect.seq)?;
        value.setattr("ts", effect.ts)?;
        value.setattr("effect", effect_dict(py, effect)?)?;
        Ok(())
    };
    match attach() {
        Ok(()) => error,
        Err(other) => other,
    }
}

fn config_error(py: Python<'_>, message: String, problems: Vec<String>) -> PyErr {
    let error = ConfigError::new_err(message);
    match error.value(py).setattr("problems", problems) {
        Ok(()) => error,
        Err(other) => other,
    }
}

/// `Config::from_toml`, with its problems as a `ConfigError`.
fn parse_config(py: Python<'_>, text: &str, origin: &str) -> PyResult<Config> {
    Config::from_toml(text).map_err(|error| {
        let problems = match &error {
            CoreConfigError::Problems(problems) => problems.clone(),
            other => vec![other.to_string()],
        };
        config_error(py, format!("{origin}: {error}"), problems)
    })
}

/// `None`: the embedded default; a `str` holding TOML (it has a newline, `=` or `[`); else a
/// path (`str` or `os.PathLike`) of a TOML file.
fn load_config(py: Python<'_>, config: Option<&Bound<'_, PyAny>>) -> PyResult<Config> {
    let Some(config) = config.filter(|c| !c.is_none()) else {
        return Ok(Config::embedded_default());
    };
    if let Ok(text) = config.downcast::<PyString>() {
        let text = text.to_cow()?;
        if text.contains(['\n', '=', '[']) {
            return parse_config(py, &text, "config");
        }
    }
    let path: PathBuf = config
        .extract()
        .map_err(|_| PyTypeError::new_err("config must be None, a TOML string, or a path to a TOML file"))?;
    let text = std::fs::read_to_string(&path).map_err(|e| {
        config_error(py, format!("cannot read config {}: {e}", path.display()), vec![format!("cannot read: {e}")])
    })?;
    parse_config(py, &text, &path.display().to_string())
}

/// Run `f`, turning a Rust panic into `InternalError` (nothing unwinds into Python).
fn guarded<T>(f: impl FnOnce() -> T) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        InternalError::new_err(format!("internal error in solvent (please report): {what}"))
    })
}

/// Counts of one `replay` (the CLI's summary line).
#[derive(Default)]
struct Summary {
    lines: u64,
    events: u64,
    rejected: u64,
    effects: u64,
    rejected_by_kind: BTreeMap<String, u64>,
}

/// The solvency engine: events in (JSON lines), effects out.
///
/// `Engine(config=None)`: `config` is `None` (the embedded default configuration), a TOML
/// string, or the path of a TOML file. Each line applied, blank or not, takes the next sequence
/// number (1, 2, ...), as each line of a file does in `solvent replay`, so applying a file's
/// lines one by one gives the same effects and state hash as replaying it.
#[pyclass(module = "solvent")]
struct Engine {
    engine: CoreEngine,
    /// Lines applied so far (the last sequence number given).
    lines: u64,
    /// A panic was caught inside the engine: its state cannot be trusted.
    poisoned: bool,
}

impl Engine {
    fn check(&self) -> PyResult<()> {
        match self.poisoned {
            true => {
                Err(InternalError::new_err("this engine raised an internal error earlier and can no longer be used"))
            }
            false => Ok(()),
        }
    }

    /// Run `f` on the engine with panics caught; a panic poisons the engine.
    fn run<T>(&mut self, f: impl FnOnce(&mut CoreEngine, &mut u64) -> T) -> PyResult<T> {
        self.check()?;
        let (engine, lines) = (&mut self.engine, &mut self.lines);
        let result = guarded(move || f(engine, lines));
        self.poisoned = result.is_err();
        result
    }
}

fn line_bytes(line: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let mut bytes: Vec<u8> = if let Ok(text) = line.downcast::<PyString>() {
        text.to_cow()?.as_bytes().to_vec()
    } else if let Ok(bytes) = line.downcast::<PyBytes>() {
        bytes.as_bytes().to_vec()
    } else if line.downcast::<PyDict>().is_ok() {
        // A dict is sent as the JSON line `json.dumps` makes, Decimals as decimal strings.
        let json = line.py().import("json")?;
        let kwargs = PyDict::new(line.py());
        kwargs.set_item("default", line.py().get_type::<PyString>())?;
        kwargs.set_item("separators", (",", ":"))?;
        json.call_method("dumps", (line,), Some(&kwargs))?.extract::<String>()?.into_bytes()
    } else {
        return Err(PyTypeError::new_err("an event is a JSON line (str or bytes) or a dict"));
    };
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    if memchr::memchr(b'\n', &bytes).is_some() {
        return Err(PyValueError::new_err(
            "apply takes one event line (no newline inside); use replay(path) for a file",
        ));
    }
    Ok(bytes)
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (config=None))]
    fn new(py: Python<'_>, config: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let config = load_config(py, config)?;
        let engine = guarded(|| CoreEngine::new(&config))?;
        Ok(Engine { engine, lines: 0, poisoned: false })
    }

    /// Apply one event (a JSON line as `str` or `bytes`, or a dict) and return its effects as a
    /// list of dicts. A refused event raises `EngineError` (`.kind`, `.message`) and changes
    /// nothing; with `raise_on_reject=False` the refusal is returned as its `rejected` (or
    /// `oracle_rejected`) effect instead, as `solvent replay` prints it.
    #[pyo3(signature = (line, *, raise_on_reject=true))]
    fn apply<'py>(
        &mut self,
        py: Python<'py>,
        line: &Bound<'py, PyAny>,
        raise_on_reject: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let bytes = line_bytes(line)?;
        let effects = self.run(|engine, lines| {
            *lines += 1;
            let mut effects = Vec::new();
            engine.apply_parsed(*lines, &ParsedLine::parse(&bytes), &mut effects);
            effects
        })?;
        if raise_on_reject {
            if let Some(refusal) = effects.iter().find(|e| e.rejection_kind().is_some()) {
                return Err(engine_error(py, refusal));
            }
        }
        effects_list(py, &effects)
    }

    /// Apply every line of a JSON Lines file (`solvent replay --events PATH`), continuing this
    /// engine's sequence numbers. Refusals do not raise: they are effects, as in the CLI.
    /// Returns a dict: `effects` (the list of effect dicts), `lines`, `events` (non-blank
    /// lines), `rejected`, `rejected_by_kind` (counts by error kind), `effect_count` and
    /// `state_hash` (after the file).
    fn replay<'py>(&mut self, py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyDict>> {
        let file = std::fs::File::open(&path)
            .map_err(|e| PyOSError::new_err(format!("cannot open events {}: {e}", path.display())))?;
        self.check()?;
        let engine = &mut self.engine;
        let lines = &mut self.lines;
        let outcome = py.allow_threads(|| {
            guarded(|| {
                let mut reader = lines::LineReader::new(BufReader::with_capacity(1 << 16, file), MAX_LINE_BYTES);
                let mut summary = Summary::default();
                let mut effects = Vec::new();
                loop {
                    let line = match reader.next_line() {
                        Ok(Some(line)) => line,
                        Ok(None) => break,
                        Err(e) => return Err(format!("reading events {}: {e}", path.display())),
                    };
                    *lines += 1;
                    summary.lines += 1;
                    let before = effects.len();
                    match line {
                        lines::Line::Text(bytes) => {
                            let parsed = ParsedLine::parse(bytes);
                            summary.events += u64::from(!parsed.is_blank());
                            engine.apply_parsed(*lines, &parsed, &mut effects);
                        }
                        lines::Line::TooLong => {
                            summary.events += 1;
                            let error = Error::LineTooLong { max_bytes: MAX_LINE_BYTES };
                            effects.push(Effect::rejected(*lines, engine.last_ts(), &error));
                        }
                    }
                    for effect in &effects[before..] {
                        if let Some(kind) = effect.rejection_kind() {
                            summary.rejected += 1;
                            *summary.rejected_by_kind.entry(kind.to_string()).or_default() += 1;
                        }
                    }
                }
                summary.effects = effects.len() as u64;
                Ok((summary, effects, engine.state_hash()))
            })
        });
        let (summary, effects, hash) = match outcome {
            Ok(result) => result.map_err(PyOSError::new_err)?,
            Err(panic) => {
                self.poisoned = true;
                return Err(panic);
            }
        };
        let dict = PyDict::new(py);
        dict.set_item("effects", effects_list(py, &effects)?)?;
        dict.set_item("lines", summary.lines)?;
        dict.set_item("events", summary.events)?;
        dict.set_item("rejected", summary.rejected)?;
        dict.set_item("rejected_by_kind", summary.rejected_by_kind)?;
        dict.set_item("effect_count", summary.effects)?;
        dict.set_item("state_hash", hash)?;
        Ok(dict)
    }

    /// The state dump as a dict: the content of `solvent replay --state-out`, amounts as `Decimal`.
    fn dump<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let dump = self.run(|engine, _| engine.dump())?;
        topy::to_py(py, decimal_class(py)?, &dump)
    }

    /// The state hash (64 hex digits), as `solvent replay` reports it.
    fn state_hash(&mut self) -> PyResult<String> {
        self.run(|engine, _| engine.state_hash())
    }

    /// Sequence number of the last line applied (0 before any).
    #[getter]
    fn seq(&self) -> u64 {
        self.lines
    }

    /// The engine clock: `ts` (milliseconds) of the last clock-advancing event accepted.
    #[getter]
    fn ts(&self) -> u64 {
        self.engine.last_ts()
    }

    fn __repr__(&self) -> String {
        format!(
            "<solvent.Engine seq={} ts={} accounts={}>",
            self.lines,
            self.engine.last_ts(),
            self.engine.accounts().len()
        )
    }
}

#[pymodule]
fn _solvent(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Engine>()?;
    m.add_function(wrap_pyfunction!(stress::stress, m)?)?;
    m.add("SolventError", py.get_type::<SolventError>())?;
    m.add("EngineError", py.get_type::<EngineError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("StressError", py.get_type::<StressError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    m.add("DEFAULT_CONFIG_TOML", solvent_core::DEFAULT_CONFIG_TOML)?;
    m.add("MAX_LINE_BYTES", MAX_LINE_BYTES)?;
    Ok(())
}
