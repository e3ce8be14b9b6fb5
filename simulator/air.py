"""Street air-quality model: traffic-shaped NO2/PM from Aberdeen hourly profiles plus weather."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime

from sensors.catalogue import AIR_QUALITY
from simulator.profiles import air_sites, sds011_log_sd
from simulator.weather import AR1, ambient_mean

AIR_METRICS = ("pm2_5", "pm10", "no2", "o3", "temperature", "humidity")


@dataclass(frozen=True, slots=True)
class AirParams:
    """Per-monitor parameters: which reference site it resembles and how much busier it is."""

    site: str
    scale: float  # multiplies the site's NO2/PM means (street canyon vs. open road)
    pm_ratio: float  # typical PM2.5 / PM10, kept within 0.4-0.7
    o3_background: float  # ug/m3 ozone with no NO2 titration
    temp_offset: float  # Cel, siting (sun, walls)

    @staticmethod
    def draw(rng: random.Random) -> AirParams:
        """Random but plausible parameters for one monitor."""
        site = air_sites()[rng.randrange(len(air_sites()))]
        return AirParams(
            site=site.name,
            scale=round(rng.uniform(0.7, 1.4), 3),
            pm_ratio=round(
                min(max(site.pm25_pm10_ratio + rng.uniform(-0.08, 0.08), 0.42), 0.68), 3
            ),
            o3_background=round(rng.uniform(50.0, 70.0), 1),
            temp_offset=round(rng.uniform(-0.5, 1.0), 2),
        )


def _clip(metric: str, value: float, digits: int) -> float:
    m = AIR_QUALITY.metrics[metric]
    return float(round(min(max(value, m.low), m.high), digits))


class AirModel:
    """Stateful generator for one monitor; call :meth:`values` with non-decreasing times."""

    def __init__(self, params: AirParams, council: str, rng: random.Random) -> None:
        self.p = params
        self.council = council
        self.rng = rng
        self.site = next(s for s in air_sites() if s.name == params.site)
        sd, rho = self.site.log_sd, self.site.ar1_hourly
        self.no2 = AR1(rng, sd["no2"], rho["no2"])
        self.pm = AR1(rng, sd["pm10"], rho["pm10"])
        self.ratio = AR1(rng, 0.06, 0.9)
        self.o3 = AR1(rng, 0.2, 0.9)
        self.temp = AR1(rng, 1.5, 0.95)
        self.rh = AR1(rng, 6.0, 0.9)
        self.white_pm10, self.white_pm25 = sds011_log_sd()

    def values(self, t: datetime) -> dict[str, float]:
        """All six metrics at ``t`` in canonical units, inside the catalogue ranges."""
        rng, p, site = self.rng, self.p, self.site
        ts = t.timestamp()
        sd = site.log_sd
        no2 = p.scale * site.mean("no2", t) * math.exp(self.no2.at(rng, ts) - sd["no2"] ** 2 / 2)
        pm_weather = math.exp(self.pm.at(rng, ts) - sd["pm10"] ** 2 / 2)
        pm10 = p.scale * site.mean("pm10", t) * pm_weather
        pm10 *= math.exp(rng.gauss(0.0, self.white_pm10 / 2))
        ratio = min(max(p.pm_ratio + self.ratio.at(rng, ts), 0.4), 0.7)
        pm25 = pm10 * ratio * math.exp(rng.gauss(0.0, self.white_pm25 / 4))
        pm25 = min(max(pm25, 0.4 * pm10), 0.7 * pm10)
        # Ozone is titrated by traffic NO: it falls where and when NO2 rises.
        o3 = p.o3_background * math.exp(self.o3.at(rng, ts) - 0.02) - 0.45 * no2
        t_mean = ambient_mean(t, self.council)
        temp = t_mean + p.temp_offset + self.temp.at(rng, ts)
        rh = 80.0 - 2.5 * (temp - t_mean) + self.rh.at(rng, ts)
        return {
            "pm2_5": _clip("pm2_5", pm25, 2),
            "pm10": _clip("pm10", pm10, 2),
            "no2": _clip("no2", no2, 1),
            "o3": _clip("o3", max(o3, 1.0 + rng.random()), 1),
            "temperature": _clip("temperature", temp, 2),
            "humidity": _clip("humidity", min(rh, 99.0 + rng.random()), 1),
        }
