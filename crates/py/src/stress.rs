//! `solvent.stress(options)`: the stress lab (`solvent_stress::run`) with the options of
//! `solvent stress`, named as its flags (`--fund-oi-fraction` is `fund_oi_fraction` or
//! `"fund-oi-fraction"`), with the same defaults. Returns the JSON report as Python objects.

use crate::{guarded, StressError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyString};
use solvent_stress::predictive::PredictiveSettings;
use solvent_stress::predictor::PredictorOptions;
use solvent_stress::{PopulationSource, ScenarioSelection, StressOptions};
use std::path::PathBuf;

/// Every option `solvent stress` takes, except where the report goes (`json`, `html`).
const OPTIONS: &[&str] = &[
    "config",
    "accounts",
    "state",
    "paths",
    "seed",
    "scenarios",
    "scenario",
    "frontier",
    "calm_k",
    "storm_k",
    "predictor_paths",
    "cascade_fall",
    "predictor_horizon_steps",
    "no_raise_drawdown",
    "maker_response",
    "horizon_s",
    "step_s",
    "v0",
    "historical_stride_min",
    "depth_oi_multiple",
    "impact_y",
    "backstop_oi_fraction",
    "fund_oi_fraction",
    "oracle_sources",
    "threads",
];

fn stress_error(py: Python<'_>, kind: &str, option: Option<&str>, message: String) -> PyErr {
    let error = StressError::new_err(message.clone());
    let value = error.value(py);
    let attached = value
        .setattr("kind", kind)
        .and_then(|_| value.setattr("option", option))
        .and_then(|_| value.setattr("message", message));
    match attached {
        Ok(()) => error,
        Err(other) => other,
    }
}

fn invalid(py: Python<'_>, name: &str, reason: &str) -> PyErr {
    stress_error(py, "invalid_option", Some(name), format!("invalid option `{name}`: {reason}"))
}

/// The stable kind of a stress lab error (the variant's name in snake_case).
fn kind_of(error: &solvent_stress::StressError) -> &'static str {
    use solvent_stress::StressError as E;
    match error {
        E::InvalidOption { .. } => "invalid_option",
        E::Config { .. } => "config",
        E::StateIo { .. } => "state_io",
        E::StateJson { .. } => "state_json",
        E::StateInvalid { .. } => "state_invalid",
        E::Population(_) => "population",
        E::Model(_) => "model",
        E::EngineRejected { .. } => "engine_rejected",
        E::Write { .. } => "write",
        E::ScenarioIo { .. } => "scenario_io",
        E::ScenarioFile { .. } => "scenario_file",
        E::Predictor(_) => "predictor",
        E::ThreadPool(_) => "thread_pool",
    }
}

/// The options dict, keys normalized (`-` to `_`), unknown keys refused.
struct Options<'py> {
    py: Python<'py>,
    dict: Bound<'py, PyDict>,
}

impl<'py> Options<'py> {
    fn new(py: Python<'py>, given: Option<&Bound<'py, PyDict>>) -> PyResult<Self> {
        let dict = PyDict::new(py);
        if let Some(given) = given {
            for (key, value) in given.iter() {
                let key: String = key.extract().map_err(|_| invalid(py, "options", "option names are strings"))?;
                let name = key.trim_start_matches("--").replace('-', "_");
                if !OPTIONS.contains(&name.as_str()) {
                    return Err(invalid(py, &key, &format!("unknown option; the options are {}", OPTIONS.join(", "))));
                }
                if dict.contains(&name)? {
                    return Err(invalid(py, &key, "given twice"));
                }
                if !value.is_none() {
                    dict.set_item(name, value)?;
                }
            }
        }
        Ok(Options { py, dict })
    }

    fn get(&self, name: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.dict.get_item(name)
    }

    fn int<T: for<'a> FromPyObject<'a>>(&self, name: &str, default: T) -> PyResult<T> {
        match self.get(name)? {
            None => Ok(default),
            Some(value) if value.is_instance_of::<PyBool>() => Err(invalid(self.py, name, "must be an integer")),
            Some(value) => {
                value.extract().map_err(|_| invalid(self.py, name, "must be a non-negative integer in range"))
            }
        }
    }

    fn float(&self, name: &str, default: f64) -> PyResult<f64> {
        match self.get(name)? {
            None => Ok(default),
            Some(value) if value.is_instance_of::<PyBool>() => Err(invalid(self.py, name, "must be a number")),
            Some(value) => value.extract().map_err(|_| invalid(self.py, name, "must be a number")),
        }
    }

    fn path(&self, name: &str) -> PyResult<Option<PathBuf>> {
        match self.get(name)? {
            None => Ok(None),
            Some(value) => value.extract().map(Some).map_err(|_| invalid(self.py, name, "must be a path")),
        }
    }

    /// A list, or a comma-separated string as the CLI takes it.
    fn list(&self, name: &str) -> PyResult<Option<Vec<Bound<'py, PyAny>>>> {
        match self.get(name)? {
            None => Ok(None),
            Some(value) => {
                if let Ok(text) = value.downcast::<PyString>() {
                    let text = text.to_cow()?;
                    let parts = text.split(',').map(|p| PyString::new(self.py, p.trim()).into_any());
                    return Ok(Some(parts.collect()));
                }
                let list = value.downcast::<PyList>().map(|l| l.iter().collect::<Vec<_>>());
                let items = match list {
                    Ok(items) => items,
                    Err(_) => value
                        .try_iter()
                        .and_then(|iter| iter.collect::<PyResult<Vec<_>>>())
                        .map_err(|_| invalid(self.py, name, "must be a list or a comma-separated string"))?,
                };
                Ok(Some(items))
            }
        }
    }
}

/// The options of `solvent stress` from a dict of its flags, with the CLI's defaults.
fn stress_options(py: Python<'_>, given: Option<&Bound<'_, PyDict>>) -> PyResult<(StressOptions, Option<usize>)> {
    let o = Options::new(py, given)?;
    let state = o.path("state")?;
    if state.is_some() && o.get("accounts")?.is_some() {
        return Err(invalid(py, "accounts", "cannot be used with `state` (the population comes from the state file)"));
    }
    let population = match state {
        Some(path) => PopulationSource::StateFile(path),
        None => PopulationSource::Synthetic { accounts: o.int("accounts", 2_000usize)? },
    };
    let scenario_file = o.path("scenario")?;
    let sets: Vec<String> = match o.list("scenarios")? {
        Some(items) => {
            let mut sets = Vec::new();
            for item in items {
                let name: String = item.extract().map_err(|_| invalid(py, "scenarios", "names are strings"))?;
                let name = name.replace('_', "-");
                if !["historical", "shocks", "monte-carlo"].contains(&name.as_str()) {
                    return Err(invalid(
                        py,
                        "scenarios",
                        &format!("unknown scenario set {name:?}; the sets are historical, shocks, monte-carlo"),
                    ));
                }
                sets.push(name);
            }
            sets
        }
        None if scenario_file.is_some() => Vec::new(),
        None => vec!["historical".into(), "shocks".into(), "monte-carlo".into()],
    };
    let frontier = match o.list("frontier")? {
        None => StressOptions::default().frontier,
        Some(items) => {
            let mut ks = Vec::new();
            for item in items {
                let k: f64 = match item.downcast::<PyString>() {
                    Ok(text) => {
                        text.to_cow()?.parse().map_err(|_| invalid(py, "frontier", "multipliers are numbers"))?
                    }
                    Err(_) => item.extract().map_err(|_| invalid(py, "frontier", "multipliers are numbers"))?,
                };
                ks.push(k);
            }
            ks
        }
    };
    let defaults = PredictiveSettings::default();
    let predictive = PredictiveSettings {
        calm_k: o.float("calm_k", defaults.calm_k)?,
        storm_k: o.float("storm_k", defaults.storm_k)?,
        maker_response: o.float("maker_response", 0.0)?,
        no_raise_drawdown: o.float("no_raise_drawdown", defaults.no_raise_drawdown)?,
        ..defaults
    };
    let v0 = match o.get("v0")? {
        None => None,
        Some(_) => Some(o.float("v0", 0.0)?),
    };
    let threads = match o.get("threads")? {
        None => None,
        Some(_) => Some(o.int("threads", 1usize)?),
    };
    if threads == Some(0) {
        return Err(invalid(py, "threads", "must be at least 1"));
    }
    let options = StressOptions {
        seed: o.int("seed", 1u64)?,
        population,
        config: o.path("config")?,
        scenarios: ScenarioSelection {
            historical: sets.iter().any(|s| s == "historical"),
            shocks: sets.iter().any(|s| s == "shocks"),
            monte_carlo: sets.iter().any(|s| s == "monte-carlo"),
        },
        scenario_file,
        predictor: PredictorOptions {
            paths: o.int("predictor_paths", 0usize)?,
            fall: o.float("cascade_fall", 0.02)?,
            horizon_steps: o.int("predictor_horizon_steps", 30usize)?,
            ..Default::default()
        },
        frontier,
        predictive,
        paths: o.int("paths", 10_000usize)?,
        mc_horizon_s: o.int("horizon_s", 21_600u64)?,
        mc_step_s: o.int("step_s", 60u64)?,
        mc_v0_annual_var: v0,
        historical_stride_min: o.int("historical_stride_min", 1usize)?,
        depth_oi_multiple_per_day: o.float("depth_oi_multiple", 10.0)?,
        impact_y: o.float("impact_y", 1.0)?,
        backstop_oi_fraction_per_min: o.float("backstop_oi_fraction", 0.02)?,
        insurance_fund_oi_fraction: o.float("fund_oi_fraction", 0.01)?,
        oracle_sources: o.int("oracle_sources", 1usize)?,
        ..StressOptions::default()
    };
    Ok((options, threads))
}

/// Run the stress lab: `options` is a dict of the flags of `solvent stress` (`accounts`,
/// `paths`, `seed`, `scenarios`, `scenario`, `frontier`, ...; the CLI's defaults where absent)
/// and the result is its JSON report (`solvent stress --json FILE`) as Python objects: the same
/// figures, floats where the report has floats. Refused options raise `StressError` with
/// `.kind == "invalid_option"` and `.option` naming it.
#[pyfunction]
#[pyo3(signature = (options=None))]
pub fn stress<'py>(py: Python<'py>, options: Option<&Bound<'py, PyDict>>) -> PyResult<Bound<'py, PyAny>> {
    let (options, threads) = stress_options(py, options)?;
    let outcome = py.allow_threads(|| {
        guarded(|| {
            let progress = |_done: u64, _total: u64| {};
            match threads {
                Some(n) => solvent_stress::run_on_threads(&options, n, &progress),
                None => solvent_stress::run(&options, &progress),
            }
            .map(|report| report.to_json())
        })
    })?;
    let json = match outcome {
        Ok(json) => json,
        Err(error) => {
            let option = match &error {
                solvent_stress::StressError::InvalidOption { name, .. } => Some(*name),
                _ => None,
            };
            return Err(stress_error(py, kind_of(&error), option, error.to_string()));
        }
    };
    py.import("json")?.call_method1("loads", (json,))
}
