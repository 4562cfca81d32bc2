"""Predictive maintenance from machine sensor data (after the AI4I 2020 dataset): label 1 = machine failure; or,
with ``target``, the remaining useful life of the tool (a regression) or the failure type (multiclass).

Features (all numeric; units in the names):

- ``machine_type``: product quality variant, ordinal integer code 0 = L (50% of rows), 1 = M (30%),
  2 = H (20%).
- ``air_temperature_k``: ambient air temperature, K, ~N(300, 2) clipped to 295-305.
- ``process_temperature_k``: process temperature, K, air + 10 K + N(0, 1).
- ``temperature_difference_k``: derived, process minus air temperature, K.
- ``rotational_speed_rpm``: spindle speed, rpm, 1168 + Gamma(4.3, 87) (mean ~1540, right-skewed).
- ``torque_nm``: torque, Nm, from a mechanical power ~N(6500 W, 1050 W) at that speed (so torque and
  speed are strongly negatively correlated, ~12-75 Nm).
- ``power_w``: derived, torque times angular speed, W.
- ``tool_wear_min``: minutes the current tool has been in use, 0 to its end of life (200-240 min).
- ``vibration_rms_mm_s``: spindle vibration velocity, RMS, mm/s; rises with tool wear and with torque
  above 40 Nm, and jumps by ~1.5 mm/s when a worn tool is at the end of its life (chatter).

Failure modes, each decided on the true (noise-free) values, label = any of them (~3.5% of rows):

- TWF tool wear failure: each tool has an end of life ~U(200, 240) min; rows are drawn with wear up to
  one minute past it, and the tool fails when wear exceeds it (~0.45%).
- HDF heat dissipation failure: process - air temperature < 8.6 K and speed < 1380 rpm (~1.4%).
- PWF power failure: power < 3500 W or > 9000 W (~1.1%).
- OSF overstrain failure: tool wear x torque > 11 000 (L), 12 000 (M), 13 000 (H) min·Nm (~0.7%).
- RNF random failure: 0.1% of rows regardless of the process.

The observed sensors are the true values plus Gaussian measurement noise times ``noise`` (default 1.0;
sd at 1.0: 0.2 K per temperature, 10 rpm, 1 Nm, 2 min of wear, 0.3 mm/s), so a larger ``noise`` blurs
the rules and 0 leaves only rounding. The derived columns are computed from the observed sensors.

Missing values (NaN), completely at random, rates times ``missing_scale`` (0 disables):
``vibration_rms_mm_s`` 5% (sensor dropout); ``process_temperature_k`` 2%, and on exactly those rows
``temperature_difference_k`` too (it is derived from it). No other column is ever missing.

Targets (``target``, the ``label`` column; the features are the same rows for every target):

- ``failure`` (default): 1 when any failure mode happened, else 0.
- ``rul``: the tool's remaining useful life in minutes, end of life minus true wear, at least 0 (a float; 0-241
  min, mean ~110). Only wear and vibration tell it, and the tool's own end of life is unknown to the sensors, so a
  good model's error is ~11 min.
- ``failure_type``: the first failure mode that happened, in the order of the list above, as a string:
  ``none`` (~96.5%), ``tool_wear``, ``heat_dissipation``, ``power``, ``overstrain``, ``random`` (FAILURE_TYPES).

Parameters: ``noise`` (default 1.0, >= 0), ``missing_scale`` (default 1.0, >= 0), ``target`` (default
``failure``; ``rul``, ``failure_type``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.datagen import apply_missing, check_common

MACHINE_TYPES: tuple[str, ...] = ("L", "M", "H")
_TYPE_SHARE = np.array([0.5, 0.3, 0.2])
_OVERSTRAIN_LIMIT_MIN_NM = np.array([11_000.0, 12_000.0, 13_000.0])
RANDOM_FAILURE_RATE = 0.001

# vibration_rms_mm_s is drawn independently; process_temperature_k's mask is copied to the difference.
MISSING_RATES: dict[str, float] = {"vibration_rms_mm_s": 0.05, "process_temperature_k": 0.02}
NAN_COLUMNS: tuple[str, ...] = ("vibration_rms_mm_s", "process_temperature_k", "temperature_difference_k")

FEATURES: tuple[str, ...] = (
    "machine_type",
    "air_temperature_k",
    "process_temperature_k",
    "temperature_difference_k",
    "rotational_speed_rpm",
    "torque_nm",
    "power_w",
    "tool_wear_min",
    "vibration_rms_mm_s",
)

_RPM_TO_RAD_S = 2.0 * np.pi / 60.0

TARGETS: tuple[str, ...] = ("failure", "rul", "failure_type")
FAILURE_TYPES: tuple[str, ...] = ("none", "tool_wear", "heat_dissipation", "power", "overstrain", "random")


def generate(
    n_rows: int, seed: int, *, noise: float = 1.0, missing_scale: float = 1.0, target: str = "failure"
) -> pd.DataFrame:
    """`n_rows` machine readings (columns FEATURES + "label"), deterministic for `seed`; the label is `target`."""
    check_common(n_rows, seed, missing_scale)
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    rng = np.random.default_rng(seed)
    n = n_rows

    machine_type = rng.choice(3, size=n, p=_TYPE_SHARE)
    air = np.clip(rng.normal(300.0, 2.0, n), 295.0, 305.0)
    process = air + 10.0 + rng.normal(0.0, 1.0, n)
    rpm = 1168.0 + rng.gamma(4.3, 87.0, n)
    power = rng.normal(6500.0, 1050.0, n)
    torque = np.clip(power, 500.0, None) / (rpm * _RPM_TO_RAD_S)
    power = torque * rpm * _RPM_TO_RAD_S
    tool_life = rng.uniform(200.0, 240.0, n)
    wear = rng.uniform(0.0, 1.0, n) * (tool_life + 1.0)

    twf = wear > tool_life
    hdf = (process - air < 8.6) & (rpm < 1380.0)
    pwf = (power < 3500.0) | (power > 9000.0)
    osf = wear * torque > _OVERSTRAIN_LIMIT_MIN_NM[machine_type]
    rnf = rng.random(n) < RANDOM_FAILURE_RATE
    label = (twf | hdf | pwf | osf | rnf).astype(np.int64)

    vibration = (
        1.2 + 0.008 * wear + 0.04 * np.maximum(torque - 40.0, 0.0) + 1.5 * twf + np.abs(rng.normal(0.0, 0.25, n))
    )

    def observe(true: np.ndarray, sd: float, decimals: int) -> np.ndarray:
        return np.round(true + noise * rng.normal(0.0, sd, n), decimals)

    air_obs = observe(air, 0.2, 1)
    process_obs = observe(process, 0.2, 1)
    rpm_obs = observe(rpm, 10.0, 0)
    torque_obs = np.clip(observe(torque, 1.0, 1), 0.1, None)
    wear_obs = np.clip(observe(wear, 2.0, 0), 0.0, None)
    vibration_obs = np.clip(observe(vibration, 0.3, 2), 0.05, None)

    frame = pd.DataFrame(
        {
            "machine_type": machine_type.astype(np.int64),
            "air_temperature_k": air_obs,
            "process_temperature_k": process_obs,
            "temperature_difference_k": np.round(process_obs - air_obs, 1),
            "rotational_speed_rpm": rpm_obs,
            "torque_nm": torque_obs,
            "power_w": np.round(torque_obs * rpm_obs * _RPM_TO_RAD_S, 0),
            "tool_wear_min": wear_obs,
            "vibration_rms_mm_s": vibration_obs,
        }
    )
    apply_missing(frame, MISSING_RATES, missing_scale, rng)
    frame.loc[frame["process_temperature_k"].isna(), "temperature_difference_k"] = np.nan
    if target == "rul":
        frame["label"] = np.round(np.maximum(tool_life - wear, 0.0), 2)
    elif target == "failure_type":
        # the first mode that happened (np.select takes the first true condition)
        kinds = np.select([twf, hdf, pwf, osf, rnf], list(FAILURE_TYPES[1:]), default=FAILURE_TYPES[0])
        frame["label"] = kinds.astype(object)
    else:
        frame["label"] = label
    return frame
