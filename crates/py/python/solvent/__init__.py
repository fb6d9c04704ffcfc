"""solvent: a streaming solvency engine for crypto derivatives, from Python.

``Engine`` applies events (JSON lines) and returns their effects as dicts, with every amount
as ``decimal.Decimal``; ``stress`` runs the stress lab and returns its JSON report. See
docs/python.md in the solvent repository.
"""

from ._solvent import (
    DEFAULT_CONFIG_TOML,
    MAX_LINE_BYTES,
    ConfigError,
    Engine,
    EngineError,
    InternalError,
    SolventError,
    StressError,
    stress,
)

__all__ = [
    "DEFAULT_CONFIG_TOML",
    "MAX_LINE_BYTES",
    "ConfigError",
    "Engine",
    "EngineError",
    "InternalError",
    "SolventError",
    "StressError",
    "stress",
]
