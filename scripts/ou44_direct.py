"""A first look at the OU44 heating data straight from the CSVs (pandas only, not the pipeline),
to compare with what ``vigie heating`` finds after ``vigie replay ou44``.

    python scripts/ou44_direct.py [DATA_DIR] [--tz Europe/Copenhagen] [--open-pct 10] [--base-c 18]

Per room and local day: hours the radiator valve was open (≥ ``--open-pct`` %) while the room was
empty (PIR 0 and camera head count 0; and, as the replay publishes occupancy, PIR 0 alone), the
energy estimate Σ valve/100 × radiator_w × Δt (Δt = 1 min), and the outdoor daily mean and heating
degree-days HDD = max(0, base − daily mean) (spec: base 18 °C). The valve column's scale (byte
0–255 or %) is decided from its values (``vigie.simulators.ou44.detect_valve_scale``). Prints
Markdown: docs/ou44-direct.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from vigie.simulators.ou44 import ValveScale, byte_grid_share, detect_valve_scale

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "ou44-heating"


def read(data_dir: Path, name: str) -> pd.DataFrame:
    frame = pd.read_csv(data_dir / f"df_{name}.csv")
    frame.index = pd.to_datetime(frame.pop("datetime"), format="%Y-%m-%d %H:%M:%S").dt.tz_localize("UTC")
    return frame


def statics(data_dir: Path, name: str) -> dict[str, float]:
    return {k: float(v) for k, v in (line.split() for line in (data_dir / name).read_text().splitlines() if line)}


def fmt(x: float | None, nd: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{nd}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", nargs="?", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--tz", default="Europe/Copenhagen", help="zone of the local days (Odense)")
    ap.add_argument("--open-pct", type=float, default=10.0, help="valve %% from which a radiator counts as open")
    ap.add_argument("--base-c", type=float, default=18.0, help="HDD base temperature, °C")
    a = ap.parse_args()

    hpos, pir, occ, tamb = (read(a.data_dir, n) for n in ("hpos", "pir", "occ", "tamb"))
    radiator_w = statics(a.data_dir, "radiators.txt")
    minutes = len(hpos)
    step_h = 1 / 60
    day = hpos.index.tz_convert(a.tz).date

    out = print
    out("# OU44 heating: direct from the CSV\n")
    out("Produced by `python scripts/ou44_direct.py ../shared/data/ou44-heating > docs/ou44-direct.md` "
        "with pandas on the files of `shared/data/ou44-heating` (SDU CFEI mshoot, BSD 3-Clause; SOURCE.md), "
        "not through MQTT/InfluxDB/analytics. The pipeline's results, compared with these numbers: "
        "[ou44-report.md](ou44-report.md).\n")
    out("## Direct from the CSV\n")
    out(f"- Data: {minutes} minutes per room, {hpos.index[0]:%Y-%m-%d %H:%M} … {hpos.index[-1]:%Y-%m-%d %H:%M} UTC "
        "(times read as UTC: no DST gap on 2017-03-26). Days below are local days in "
        f"{a.tz} (same offsets as the service's default Europe/Paris); the first local day has 23 h of data "
        "(from 01:00), the last one (2017-04-05) only 00:00–01:59.")
    scales = {}
    for room in hpos.columns:
        v = hpos[room].to_numpy()
        scales[room] = detect_valve_scale(v, f"df_hpos.csv column {room}")
        out(f"- Valve `{room}`: {v.min():g}–{v.max():g}, {'whole numbers' if (v % 1 == 0).all() else 'fractional'}, "
            f"{100 * byte_grid_share(v):.1f} % of values on the 100·k/255 grid → **{scales[room]}**"
            f"{' (÷ 2.55 → %)' if scales[room] is ValveScale.BYTE else ''}. Radiator {radiator_w[room]:g} W.")
    low = {room: float(np.mean((hpos[room] * (100 / 255) if scales[room] is ValveScale.BYTE else hpos[room]) < 4))
           for room in hpos.columns}
    out(f"- Open = valve ≥ {a.open_pct:g} % (this page's choice). The valves never close fully (minimum 1/255 = "
        "0.39 %), so \"open at all\" would be every minute; below 4 %: "
        + ", ".join(f"{100 * v:.0f} % of the minutes of {r}" for r, v in low.items())
        + ". The energy estimate needs no threshold.")
    out("- Empty = PIR 0 **and** camera head count 0 (\"both\"); \"PIR 0\" = the PIR alone, which is the "
        "occupancy `vigie replay ou44` publishes by default (the camera count sticks at 1–3 persons for "
        "hours with PIR 0 and CO2 at its empty level: a counter residual). Compare the pipeline's "
        "unoccupied-heating hours with the PIR-0 columns.")
    out(f"- Energy = Σ valve/100 × radiator W × 1 min (a proxy: valve position × nominal capacity, not "
        f"metered heat). HDD = max(0, {a.base_c:g} − daily mean outdoor temperature), "
        "mean over the minutes present that day.\n")

    day_mean = tamb["weather"].groupby(day).mean()
    day_n = tamb["weather"].groupby(day).size()
    hdd = (a.base_c - day_mean).clip(lower=0)
    # Local days the data cover whole (a DST day has 23 h): the totals to compare with daily results.
    length = {d: (pd.Timestamp(d, tz=a.tz) + pd.DateOffset(days=1) - pd.Timestamp(d, tz=a.tz)) / pd.Timedelta(minutes=1)
              for d in day_n.index}
    full = [d for d in day_n.index if day_n[d] == length[d]]
    totals = []
    for room in hpos.columns:
        pct = hpos[room] * (100 / 255) if scales[room] is ValveScale.BYTE else hpos[room]
        cam = occ[room[1:] if room[1:] in occ.columns else room]
        empty_both = (pir[room] == 0) & (cam == 0)
        empty_pir = pir[room] == 0
        is_open = pct >= a.open_pct
        kwh = pct / 100 * radiator_w[room] / 60 / 1000
        f = pd.DataFrame({"open_h": is_open * step_h, "open_empty_h": (is_open & empty_both) * step_h,
                          "open_pirempty_h": (is_open & empty_pir) * step_h, "kwh": kwh,
                          "kwh_empty": kwh * empty_both, "kwh_pirempty": kwh * empty_pir,
                          "empty_h": empty_both * step_h, "pirempty_h": empty_pir * step_h})
        g = f.groupby(day).sum()
        out(f"### Room {room} (radiator {radiator_w[room]:g} W, valve {scales[room]})\n")
        out("| local day | hours of data | empty h (both / PIR 0) | valve open h | open & empty h (both) "
            "| open & empty h (PIR 0) | kWh | kWh while empty (both / PIR 0) | HDD | kWh/HDD |")
        out("|---|---|---|---|---|---|---|---|---|---|")
        for d, row in g.iterrows():
            per = row.kwh / hdd[d] if hdd[d] > 0 else None
            out(f"| {d} | {day_n[d] / 60:.0f} | {row.empty_h:.1f} / {row.pirempty_h:.1f} | {row.open_h:.1f} "
                f"| {row.open_empty_h:.1f} | {row.open_pirempty_h:.1f} | {row.kwh:.2f} "
                f"| {row.kwh_empty:.2f} / {row.kwh_pirempty:.2f} | {hdd[d]:.2f} | {fmt(per, 2)} |")
        s = g.sum()
        out(f"| **all minutes** | {minutes / 60:.0f} | {s.empty_h:.1f} / {s.pirempty_h:.1f} | {s.open_h:.1f} "
            f"| {s.open_empty_h:.1f} | {s.open_pirempty_h:.1f} | {s.kwh:.2f} "
            f"| {s.kwh_empty:.2f} / {s.kwh_pirempty:.2f} | – | – |")
        sf, hf = g.loc[full].sum(), hdd[full].sum()
        out(f"| **full days** {full[0]}…{full[-1]} | {day_n[full].sum() / 60:.0f} | {sf.empty_h:.1f} / "
            f"{sf.pirempty_h:.1f} | {sf.open_h:.1f} | {sf.open_empty_h:.1f} | {sf.open_pirempty_h:.1f} | {sf.kwh:.2f} "
            f"| {sf.kwh_empty:.2f} / {sf.kwh_pirempty:.2f} | {hf:.2f} | {sf.kwh / hf:.2f} |\n")
        totals.append((room, s, sf))

    out("### Outdoor temperature (df_tamb) per local day\n")
    out("| local day | minutes | mean °C | min °C | max °C | HDD (base 18) |")
    out("|---|---|---|---|---|---|")
    mn, mx = tamb["weather"].groupby(day).min(), tamb["weather"].groupby(day).max()
    for d in day_mean.index:
        out(f"| {d} | {day_n[d]} | {day_mean[d]:.2f} | {mn[d]:.1f} | {mx[d]:.1f} | {hdd[d]:.2f} |")
    out(f"| **all minutes** | {minutes} | {tamb['weather'].mean():.2f} | {tamb['weather'].min():.1f} "
        f"| {tamb['weather'].max():.1f} | – |")
    out(f"| **full days** {full[0]}…{full[-1]} | {day_n[full].sum()} | {day_mean[full].mean():.2f} | "
        f"{mn[full].min():.1f} | {mx[full].max():.1f} | {hdd[full].sum():.2f} |\n")

    out("### Summary\n")
    hf = hdd[full].sum()
    for room, s, sf in totals:
        out(f"- {room}: valve open ≥ {a.open_pct:g} % for {s.open_h:.1f} h, of which {s.open_empty_h:.1f} h with "
            f"the room empty (PIR and camera 0) and {s.open_pirempty_h:.1f} h with PIR 0; energy estimate "
            f"{s.kwh:.1f} kWh, {s.kwh_empty:.1f} kWh ({100 * s.kwh_empty / s.kwh:.0f} %) while empty (both) and "
            f"{s.kwh_pirempty:.1f} kWh ({100 * s.kwh_pirempty / s.kwh:.0f} %) with PIR 0 (all minutes); "
            f"{sf.kwh:.1f} kWh / {hf:.2f} HDD = {sf.kwh / hf:.2f} kWh per HDD over the {len(full)} full days.")
    out(f"- Outdoor: mean {tamb['weather'].mean():.2f} °C over all minutes; {hf:.2f} HDD (base {a.base_c:g}) "
        f"over the {len(full)} full local days ({(hdd[full] > 0).sum()} with HDD > 0).\n")


if __name__ == "__main__":
    main()
