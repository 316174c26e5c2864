"""Benchmark: our vectorised implied-vol solver vs vollib's scalar Let's-Be-Rational, same run.

    uv run python benchmarks/iv_solver.py [--n 1000000] [--vollib-n 20000] \
        [--out benchmarks/results/iv_solver.json]

Generates n mixed contracts (seeded), times ``implied_vol`` on all of them (best of --repeats,
single thread), times ``vollib.black.implied_volatility.implied_volatility`` in a Python loop
on a subsample, and reports rates, speed-up and accuracy (ours vs truth, ours vs vollib).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported

import argparse  # noqa: E402
import contextlib  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from pipeline.quant.black_scholes import black_price, black_vega  # noqa: E402
from pipeline.quant.implied_vol import REASONS, implied_vol  # noqa: E402

MIN_REL_VEGA = 1e-6  # vega / (D max(F, K)): below it sigma is not determined by the price


def make_contracts(n: int, seed: int) -> dict[str, np.ndarray]:
    """Mixed book: calls/puts, T from 1 day to 2y, vols 5%..100%, strikes spread over ~+-3 sd."""
    rng = np.random.default_rng(seed)
    forward = 100.0 * np.exp(rng.normal(0.0, 0.25, n))
    t = np.exp(rng.uniform(np.log(1.0 / 365.0), np.log(2.0), n))
    sigma = rng.uniform(0.05, 1.0, n)
    z = np.clip(rng.normal(0.0, 1.2, n), -4.0, 4.0)  # log-moneyness in standard deviations
    strike = np.round(forward * np.exp(z * sigma * np.sqrt(t)), 2).clip(0.01)
    rate = rng.uniform(0.0, 0.06, n)
    discount = np.exp(-rate * t)
    is_call = rng.random(n) < 0.5
    price = black_price(forward, strike, t, discount, sigma, is_call)
    return dict(
        price=price,
        forward=forward,
        strike=strike,
        t=t,
        rate=rate,
        discount=discount,
        is_call=is_call,
        sigma=sigma,
    )


def time_ours(c: dict[str, np.ndarray], repeats: int):
    args = (c["price"], c["forward"], c["strike"], c["t"], c["discount"], c["is_call"])
    implied_vol(*(a[:1000] for a in args))  # warm-up (imports, allocator)
    wall, cpu, res = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        res = implied_vol(*args)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return res, min(wall), min(cpu)


def time_vollib(c: dict[str, np.ndarray], idx: np.ndarray):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import vollib
        from vollib.black.implied_volatility import implied_volatility

    out = np.full(idx.size, np.nan)
    cols = [c[k][idx].tolist() for k in ("price", "forward", "strike", "rate", "t")]
    flags = ["c" if x else "p" for x in c["is_call"][idx]]
    t0 = time.perf_counter()
    for j, (p, f, k, r, t) in enumerate(zip(*cols, strict=True)):
        with contextlib.suppress(Exception):  # PriceIsBelowIntrinsic / PriceIsAboveMaximum
            out[j] = implied_volatility(p, f, k, r, t, flags[j])
    try:
        version = importlib.metadata.version("vollib")
    except importlib.metadata.PackageNotFoundError:
        version = getattr(vollib, "__version__", "unknown")
    return out, time.perf_counter() - t0, version


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--vollib-n", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/iv_solver.json"))
    args = ap.parse_args(argv)

    c = make_contracts(args.n, args.seed)
    res, wall, cpu = time_ours(c, args.repeats)
    rate = args.n / wall

    rel_vega = black_vega(c["forward"], c["strike"], c["t"], c["discount"], c["sigma"])
    rel_vega /= c["discount"] * np.maximum(c["forward"], c["strike"])
    ok = res.reason == "ok"
    priced = rel_vega > MIN_REL_VEGA
    err_truth = np.abs(res.iv - c["sigma"])

    sub = np.random.default_rng(args.seed + 1).choice(
        args.n, size=min(args.vollib_n, args.n), replace=False
    )
    v_iv, v_time, v_version = time_vollib(c, sub)
    v_rate = sub.size / v_time
    both = ok[sub] & np.isfinite(v_iv) & priced[sub]
    err_vollib = np.abs(res.iv[sub] - v_iv)[both]
    err_vollib_truth = np.abs(v_iv - c["sigma"][sub])[both]

    report = {
        "n_contracts": args.n,
        "seed": args.seed,
        "ours": {
            "best_wall_s": wall,
            "best_cpu_s": cpu,
            "contracts_per_s": rate,
            "repeats": args.repeats,
            "reasons": {r: int((res.reason == r).sum()) for r in REASONS},
            "max_abs_err_vs_truth_nonnegligible_vega": float(err_truth[priced & ok].max()),
            "max_abs_err_vs_truth_all_ok": float(err_truth[ok].max()),
            "share_nonnegligible_vega": float(priced.mean()),
            "unsolved_with_nonnegligible_vega": int((priced & ~ok).sum()),
        },
        "vollib": {
            "function": "vollib.black.implied_volatility.implied_volatility (scalar, Python loop)",
            "version": v_version,
            "n_subsample": int(sub.size),
            "wall_s": v_time,
            "contracts_per_s": v_rate,
            "max_abs_err_vs_truth_nonnegligible_vega": float(err_vollib_truth.max()),
            "n_compared": int(both.sum()),
        },
        "speedup": rate / v_rate,
        "max_abs_diff_ours_vs_vollib": float(err_vollib.max()),
        "criterion_rel_vega": MIN_REL_VEGA,
        "machine": {
            "platform": platform.platform(),
            "processor": _cpu_model(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "threads": os.environ["OMP_NUM_THREADS"],
        },
    }
    _print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return report


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _print_table(r: dict) -> None:
    o, v = r["ours"], r["vollib"]
    print(
        f"Implied vol, {r['n_contracts']:,} mixed contracts, 1 thread ({r['machine']['processor']})\n"
    )
    print("| solver | contracts | time (s) | contracts/s | max abs err vs truth* |")
    print("|---|---:|---:|---:|---:|")
    print(
        f"| ours (`implied_vol`, best of {o['repeats']}) | {r['n_contracts']:,} | {o['best_wall_s']:.3f} "
        f"| {o['contracts_per_s']:,.0f} | {o['max_abs_err_vs_truth_nonnegligible_vega']:.2e} |"
    )
    print(
        f"| vollib scalar loop | {v['n_subsample']:,} | {v['wall_s']:.3f} | {v['contracts_per_s']:,.0f} "
        f"| {v['max_abs_err_vs_truth_nonnegligible_vega']:.2e} |"
    )
    print(
        f"\nspeed-up: {r['speedup']:,.0f}x; max |ours - vollib| on the subsample: {r['max_abs_diff_ours_vs_vollib']:.2e}"
    )
    print(
        f"ours, all 'ok' contracts incl. negligible vega: max |err| {o['max_abs_err_vs_truth_all_ok']:.2e}"
    )
    print(f"reasons: {o['reasons']}")
    print(
        f"*where vega / (D max(F, K)) > {r['criterion_rel_vega']:g} ({o['share_nonnegligible_vega']:.2%} of contracts)"
    )


if __name__ == "__main__":
    main()
