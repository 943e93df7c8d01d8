"""Point reads of several stores side by side: each lookup runs on every store, in random order, in one process.

For stores built from the same export (``bench_ingest.py``'s items: keys ``key_of(i)``, one ``email`` per item),
prints per store the p50/p99 of ``get`` over random keys and the p50/p90 of ``find email=…`` over random
values, each with its process CPU at p50 (the CPU holds where a shared box's load moves the wall time).
Interleaving the stores lookup by lookup keeps a load that changes during the run from favouring one.

    .venv/bin/python bench/bench_read_stores.py --items 1000000 STORE_A STORE_B …
"""

from __future__ import annotations

import argparse
import random
import resource
import time

from bench_store import key_of

from dynadex.store import Store


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def q(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("stores", nargs="+")
    ap.add_argument("--items", type=int, required=True)
    ap.add_argument("--table", default="Bench")
    ap.add_argument("--gets", type=int, default=400)
    ap.add_argument("--find-every", type=int, default=5, help="one find per this many gets")
    a = ap.parse_args()
    opened = {s: Store(s) for s in a.stores}
    res = {s: {"get": [], "get_cpu": [], "find": [], "find_cpu": []} for s in a.stores}
    rnd = random.Random(11)
    for st in opened.values():  # every store's files opened once before timing
        st.get(a.table, key_of(1))
        st.find(a.table, "email=user1@example.com")
    for i in range(a.gets):
        key, value = key_of(rnd.randrange(a.items)), f"user{rnd.randrange(a.items)}@example.com"
        order = list(opened.items())
        rnd.shuffle(order)
        for s, st in order:
            c, t = cpu(), time.perf_counter()
            assert st.get(a.table, key) is not None
            res[s]["get"].append((time.perf_counter() - t) * 1e3)
            res[s]["get_cpu"].append((cpu() - c) * 1e3)
            if i % a.find_every == 0:
                c, t = cpu(), time.perf_counter()
                assert len(st.find(a.table, f"email={value}")) == 1
                res[s]["find"].append((time.perf_counter() - t) * 1e3)
                res[s]["find_cpu"].append((cpu() - c) * 1e3)
    for s in a.stores:
        d = res[s]
        print(f"{s}: get p50 {q(d['get'], .5):.1f} p99 {q(d['get'], .99):.1f} ms (CPU p50 {q(d['get_cpu'], .5):.1f} "
              f"ms); find ({len(d['find'])} values) p50 {q(d['find'], .5):.1f} p90 {q(d['find'], .9):.1f} ms "
              f"(CPU p50 {q(d['find_cpu'], .5):.1f} ms)")


if __name__ == "__main__":
    main()
