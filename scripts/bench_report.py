#!/usr/bin/env python3
"""bench_report.py RESULTS.tsv OUT.json: the table and JSON of a scripts/bench.sh run.

Reads the raw results bench.sh recorded (one tab-separated record a line: tput, pps, rtt,
summary, note, problem, row) and the run's settings from BENCH_* environment variables, prints
the table (every row against OpenVPN-UDP of the same run) and writes the same figures as JSON.
"""
import json, os, re, statistics, sys

res_path, json_path = sys.argv[1], sys.argv[2]
env = os.environ
hz = float(env["BENCH_CLK_TCK"])
rows, labels = [], {}
tput, pps, rtt, notes, problems, summaries = {}, {}, {}, {}, {}, {}

def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except Exception:
        return None

for line in open(res_path):
    f = line.rstrip("\n").split("\t")
    kind, row = f[0], f[1]
    if kind == "row":
        rows.append(row)
        labels[row] = f[2]
    elif kind == "tput":
        d, cpu = load(f[3]), f[4]
        run = {"round": int(f[2])}
        if d and "error" not in d and "sum_received" in d.get("end", {}):
            r = d["end"]["sum_received"]
            run["mbit_s"] = r["bits_per_second"] / 1e6
            run["mbit"] = r["bytes"] * 8 / 1e6
            run["retransmits"] = d["end"].get("sum_sent", {}).get("retransmits")
        elif d and "error" in d:
            run["error"] = d["error"]
        if cpu != "NA":
            run["tunnel_cpu_s"] = int(cpu) / hz
            if run.get("mbit") and int(cpu) > 0:
                run["mbit_per_cpu_s"] = run["mbit"] / (int(cpu) / hz)
        tput.setdefault(row, []).append(run)
    elif kind == "pps":
        d, cpu = load(f[3]), f[4]
        run = {"round": int(f[2])}
        if d and "error" not in d and "sum_received" in d.get("end", {}):
            r = d["end"]["sum_received"]
            run["packets_sent"] = d["end"]["sum_sent"]["packets"]
            run["packets_received"] = r["packets"] - r["lost_packets"]
            run["seconds"] = r["seconds"]
        elif d and "error" in d:
            run["error"] = d["error"]
        if cpu != "NA":
            run["tunnel_cpu_s"] = int(cpu) / hz
            if run.get("packets_received"):
                run["cpu_us_per_packet"] = run["tunnel_cpu_s"] * 1e6 / run["packets_received"]
        pps.setdefault(row, []).append(run)
    elif kind == "rtt":
        try:
            times = [float(x) for x in re.findall(r"time=([\d.]+) ms", open(f[3]).read())]
        except Exception:
            times = []
        rtt.setdefault(row, []).append(times)
    elif kind == "note":
        notes.setdefault(row, []).append(f[2])
    elif kind == "problem":
        problems.setdefault(row, []).append(f[2])
    elif kind == "summary":
        summaries.setdefault(row, []).append({"round": int(f[2]), "end": f[3], "line": f[4]})

def stats(values):
    v = [x for x in values if x is not None]
    if not v:
        return None
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}

def pct(v, p):
    v = sorted(v)
    if not v:
        return None
    k = (len(v) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)

out_rows = []
for row in rows:
    pings = [t for times in rtt.get(row, []) for t in times]
    sent = len(rtt.get(row, [])) * int(env["BENCH_PINGS"])
    r = {
        "id": row, "label": labels[row],
        "throughput_mbit_s": stats([x.get("mbit_s") for x in tput.get(row, [])]),
        "mbit_per_tunnel_cpu_s": stats([x.get("mbit_per_cpu_s") for x in tput.get(row, [])]),
        "cpu_us_per_packet": stats([x.get("cpu_us_per_packet") for x in pps.get(row, [])]),
        "udp_loss_pct": stats([100.0 * (1 - x["packets_received"] / x["packets_sent"])
                               for x in pps.get(row, []) if x.get("packets_sent")]),
        "rtt_ms": {"median": statistics.median(pings), "p99": pct(pings, 99), "n": len(pings),
                   "lost": sent - len(pings)} if pings else None,
        "tcp_runs": tput.get(row, []), "udp_runs": pps.get(row, []),
        "notes": notes.get(row, []), "problems": problems.get(row, []),
        "moontun_exit_summaries": summaries.get(row, []),
    }
    out_rows.append(r)

base = next((r for r in out_rows if r["id"] == "ovpn-udp"), None)
def med(r, k):
    return r[k]["median"] if r and r.get(k) else None
for r in out_rows:
    ratio = {}
    for k, name in (("throughput_mbit_s", "throughput"), ("mbit_per_tunnel_cpu_s", "mbit_per_cpu_s"),
                    ("cpu_us_per_packet", "cpu_us_per_packet")):
        a, b = med(r, k), med(base, k)
        ratio[name] = a / b if a is not None and b else None
    a, b = med(r, "rtt_ms"), med(base, "rtt_ms")
    ratio["rtt_median_delta_ms"] = a - b if a is not None and b is not None else None
    r["vs_openvpn_udp"] = ratio

def fmt(x, spec, dash="-"):
    return dash if x is None else format(x, spec)

hdr = ("%-27s %21s %6s %9s %6s %8s %6s %15s %8s" %
       ("row", "Mbit/s med [min-max]", "xOVPN", "Mbit/CPUs", "xOVPN", "us/pkt", "xOVPN",
        "RTT med/p99 ms", "dRTT ms"))
lines = [hdr, "-" * len(hdr)]
for r in out_rows:
    t, c, p, q, v = (r["throughput_mbit_s"], r["mbit_per_tunnel_cpu_s"], r["cpu_us_per_packet"],
                     r["rtt_ms"], r["vs_openvpn_udp"])
    ts = "%.0f [%.0f-%.0f]" % (t["median"], t["min"], t["max"]) if t else "-"
    if not t and not p and not q:
        ts = "(not measured)"
    lines.append("%-27s %21s %6s %9s %6s %8s %6s %15s %8s" % (
        r["label"], ts, fmt(v["throughput"], ".2f"), fmt(med(r, "mbit_per_tunnel_cpu_s"), ".0f"),
        fmt(v["mbit_per_cpu_s"], ".2f"), fmt(med(r, "cpu_us_per_packet"), ".2f"),
        fmt(v["cpu_us_per_packet"], ".2f"),
        "%.3f/%.3f" % (q["median"], q["p99"]) if q else "-",
        fmt(v["rtt_median_delta_ms"], "+.3f")))
table = "\n".join(lines)

footnotes = []
for r in out_rows:
    for n in r["notes"]:
        footnotes.append("%s: %s" % (r["label"], n))
for r in out_rows:
    loss = r["udp_loss_pct"]
    if loss and loss["median"] > 2:
        footnotes.append("%s: the %s pps UDP test lost %.1f%% (median; %.1f-%.1f): us/pkt counts the "
                         "packets received only" % (r["label"], env["BENCH_PPS"], loss["median"],
                                                    loss["min"], loss["max"]))
for r in out_rows:
    for n in r["problems"]:
        footnotes.append("PROBLEM %s: %s" % (r["label"], n))

hook = open(env["BENCH_HOOK_FILE"]).read()
doc = {
    "date": env["BENCH_DATE"], "mode": env["BENCH_MODE"],
    "machine": {"cpu": env["BENCH_CPU"], "nproc": int(env["BENCH_NPROC"]), "kernel": env["BENCH_KERNEL"]},
    "versions": env["BENCH_VERSIONS"],
    "parameters": {"rounds": int(env["BENCH_ROUNDS"]), "iperf3_seconds": int(env["BENCH_DUR"]),
                   "udp_pps": int(env["BENCH_PPS"]), "udp_payload_bytes": int(env["BENCH_PKT_LEN"]),
                   "pings": int(env["BENCH_PINGS"]), "ping_interval_s": 0.01,
                   "tunnel_mtu": int(env["BENCH_TUN_MTU"]), "underlay_mtu": 1500,
                   "openvpn_flags": env["BENCH_OVPN_FLAGS"], "clk_tck": hz,
                   "baseline": "ovpn-udp (ratios: row / OpenVPN-UDP; RTT: row - OpenVPN-UDP)"},
    "rows": out_rows,
    "table": table, "notes": footnotes,
    "bench_hook": {"packets_per_run": int(env["BENCH_HOOK_N"]), "output": hook},
    "elapsed_s_before_report": int(env["BENCH_ELAPSED"]),
}
with open(json_path, "w") as f:
    json.dump(doc, f, indent=2)

print("date:    %s" % env["BENCH_DATE"])
print("machine: %s, nproc %s, kernel %s" % (env["BENCH_CPU"], env["BENCH_NPROC"], env["BENCH_KERNEL"]))
print("         %s" % env["BENCH_VERSIONS"])
print("mode:    %s, %s round(s), iperf3 -t %s; %s pps x %s B UDP; %s pings at 10 ms; tunnel MTU %s" % (
    env["BENCH_MODE"], env["BENCH_ROUNDS"], env["BENCH_DUR"], env["BENCH_PPS"], env["BENCH_PKT_LEN"],
    env["BENCH_PINGS"], env["BENCH_TUN_MTU"]))
print()
print(table)
print()
print("xOVPN: ratio to OpenVPN-UDP in this run (us/pkt: lower is better); dRTT: median RTT minus")
print("OpenVPN-UDP's. Mbit/CPUs = Mbit received / tunnel CPU seconds (both ends). us/pkt = tunnel")
print("CPU per packet received at %s pps. Medians over the rounds; RTT pooled over the rounds." % env["BENCH_PPS"])
for n in footnotes:
    print("  - " + n)
print()
print("bench_hook (ns per packet in the Lua hook, -n %s):" % env["BENCH_HOOK_N"])
print(hook.rstrip())
