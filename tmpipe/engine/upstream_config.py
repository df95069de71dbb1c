"""The boundary to upstream TradeMaster: pinned commit, checkout checks and config mapping.

The parts of the upstream backend that run no TradeMaster process and need no torch (only
``git`` to check the checkout), so they are tested on their own.
The pin must equal ``vendor/trademaster.toml``; a test keeps the two in step.
"""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from tmpipe.engine.environment import cost_rate
from tmpipe.errors import UpstreamError

if TYPE_CHECKING:
    from tmpipe.config.sections import EngineConfig, TrademasterConfig

PINNED_COMMIT = "c1c4838b518a85ecec6d4ded40be8815ade5f41d"
ENTRY_POINT = "tools/algorithmic_trading/train.py"
UNMODIFIED_PATHS = ("tools/algorithmic_trading/*.py", "trademaster/*.py")  # git pathspecs, recursive
# TradeMaster's algorithmic-trading observation columns, in its order (tech-major windows).
TECH_INDICATORS = (
    "high", "low", "open", "close", "adjcp", "zopen", "zhigh", "zlow", "zadjcp", "zclose",
    "zd_5", "zd_10", "zd_15", "zd_20", "zd_25", "zd_30",
)
MAX_VOLUME = 1  # upstream trades whole units: action 0 sells 1, 1 holds, 2 buys 1
HORIZON_LEN = 128  # env steps explored between network updates (upstream's BTC config)
# Our keys that upstream's DeepScalper has no counterpart for; reported in every result.
UNMAPPED_KEYS = {
    "epsilon_start": "upstream explores at one fixed rate (act.explore_rate = epsilon_end)",
    "early_stopping_patience": "upstream always runs every epoch",
    "volatility_aux_weight": "upstream's DeepScalper QNet has no volatility head",
    "switch_penalty": "upstream's reward has no turnover penalty",
    "reward_scale": "upstream's rewards are price changes times units held (its agent.reward_scale stays 1)",
    "max_position": "upstream trades 1 unit per step (max_volume=1), not a fraction of equity",
    "slippage_pct": "added to transaction_cost_pct (upstream has one cost rate)",
}


def forward_num_day(trademaster: TrademasterConfig) -> int:
    """Upstream's hindsight-reward horizon; it never trades a split's last this-many bars."""
    return trademaster.hindsight_horizon


def runtime_paths(trademaster: TrademasterConfig) -> tuple[Path, Path]:
    """The checkout and interpreter from ``trademaster.upstream``, both checked to exist."""
    home, python = trademaster.upstream.home, trademaster.upstream.python
    if not home or not python:
        raise UpstreamError("backend 'upstream' needs trademaster.upstream.home (a TradeMaster checkout) "
                            "and trademaster.upstream.python (its interpreter); see vendor/README.md")
    home_path, python_path = Path(home).expanduser(), Path(python).expanduser()
    if not (home_path / ENTRY_POINT).is_file():
        raise UpstreamError(f"trademaster.upstream.home={home_path} is not a TradeMaster checkout (no {ENTRY_POINT})")
    if not python_path.is_file() or not os.access(python_path, os.X_OK):
        raise UpstreamError(f"trademaster.upstream.python={python_path} is not an executable interpreter")
    return home_path, python_path


def _git(home: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(home), *args], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UpstreamError(f"cannot run git in {home}: {exc}") from exc
    if done.returncode != 0:
        raise UpstreamError(f"git {' '.join(args)} failed in {home}: {done.stderr.strip()}")
    return done.stdout.strip()


def verify_checkout(home: Path, pinned: str = PINNED_COMMIT) -> str:
    """The checkout's commit, after checking it is the pinned one with no local changes to its Python code.

    Only code is checked: a snapshot may lack upstream's large data files and notebooks.
    """
    commit = _git(home, "rev-parse", "HEAD")
    if commit != pinned:
        raise UpstreamError(f"TradeMaster checkout {home} is at commit {commit}, but tmpipe supports only "
                            f"{pinned} (vendor/trademaster.toml); run: git -C {home} checkout {pinned}")
    changed = _git(home, "status", "--porcelain", "--", *UNMODIFIED_PATHS)
    if changed:
        raise UpstreamError(f"TradeMaster checkout {home} has local changes inside the supported boundary "
                            f"({', '.join(UNMODIFIED_PATHS)}):\n{changed}")
    return commit


def write_split_csvs(splits: dict, data_dir: Path) -> dict[str, Path]:
    """One CSV per split in TradeMaster's layout (leading index column, its column names)."""
    from tmpipe.engine.data import iso

    data_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, split in splits.items():
        frame = split.bars.to_frame()
        frame["date"] = [iso(d) for d in frame["date"]]
        path = data_dir / f"{name}.csv"
        frame[["tic", "date", *TECH_INDICATORS]].to_csv(path)
        paths[name] = path
    return paths


def build_upstream_config(config: EngineConfig, *, symbol: str, split_paths: dict[str, Path], work_dir: Path,
                          threads: int) -> dict:
    """Our engine config -> a TradeMaster config dict (written as JSON for mmcv.Config: the subprocess boundary).

    Costs and cash go into ``environment.dataset``: upstream's environment reads them with
    get_attr(self.dataset, ...) and its Dataset object never copies them from ``data``, so
    keys placed in ``data`` would be ignored. A dict under ``environment.dataset`` takes
    precedence over the built Dataset (build_from_cfg uses setdefault for default_args).
    """
    hyper, lookback = config.trademaster, config.data.lookback
    if not hyper.allow_short:
        raise UpstreamError("upstream DeepScalper always allows short positions; set trademaster.allow_short "
                            "to true or use backend 'builtin'")
    paths = {name: str(Path(p).resolve()) for name, p in split_paths.items()}
    horizon = forward_num_day(hyper)
    env_dataset = {
        "train_path": paths["train"], "valid_path": paths["valid"], "test_path": paths["test"],
        "tech_indicator_list": list(TECH_INDICATORS), "backward_num_day": lookback,
        "forward_num_day": horizon, "future_weights": float(hyper.hindsight_weight), "max_volume": MAX_VOLUME,
        "initial_amount": float(hyper.initial_cash), "transaction_cost_pct": cost_rate(hyper),
    }
    hidden = hyper.hidden_size
    batch = hyper.batch_size
    return {
        "task_name": "algorithmic_trading", "dataset_name": symbol, "net_name": "deepscalper",
        "agent_name": "deepscalper", "optimizer_name": "adam", "loss_name": "mse",
        "work_dir": str(Path(work_dir).resolve()),
        "data": {
            "type": "AlgorithmicTradingDataset", "data_path": str(Path(paths["train"]).parent),
            "train_path": paths["train"], "valid_path": paths["valid"], "test_path": paths["test"],
            "test_dynamic_path": paths["test"], "test_dynamic": "-1",
            "tech_indicator_list": list(TECH_INDICATORS), "backward_num_day": lookback,
            "forward_num_day": horizon,
        },
        "environment": {"type": "AlgorithmicTradingEnvironment", "dataset": env_dataset},
        "transition": {"type": "Transition"},
        "agent": {
            "type": "AlgorithmicTradingDQN", "max_step": 12345, "reward_scale": 1, "repeat_times": 1,
            "gamma": float(hyper.gamma), "batch_size": batch, "clip_grad_norm": 3.0,
            "soft_update_tau": float(hyper.target_update_tau), "state_value_tau": 0.005,
        },
        "trainer": {
            "type": "AlgorithmicTradingTrainer", "epochs": hyper.epochs,
            "work_dir": str(Path(work_dir).resolve()), "seeds_list": [hyper.seed],
            "batch_size": batch, "horizon_len": HORIZON_LEN, "buffer_size": hyper.replay_size,
            "num_threads": int(threads), "if_remove": False, "if_discrete": True, "if_off_policy": True,
            "if_keep_save": True, "if_over_write": False, "if_save_buffer": False,
        },
        "loss": {"type": "MSELoss"},
        "optimizer": {"type": "Adam", "lr": float(hyper.learning_rate)},
        "act": {"type": "QNet", "state_dim": len(TECH_INDICATORS) * lookback + 2, "action_dim": 2 * MAX_VOLUME + 1,
                "dims": [hidden, max(1, hidden // 2)], "explore_rate": float(hyper.epsilon_end)},
        "cri": None,
    }


def with_test_path(upstream_config: dict, path: Path) -> dict:
    """The same config backtesting another split: upstream's 'test' task reads only test_path."""
    out = copy.deepcopy(upstream_config)
    out["environment"]["dataset"]["test_path"] = str(Path(path).resolve())
    return out
