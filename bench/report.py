"""Renders a bench/run.sh results file as the markdown table of bench/README.md."""
import json
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]


def find(backend, like=None, **kw):
    """The row of `backend` with `kw`, of the same build and round as `like` (compare.sh)."""
    for r in rows:
        same = like is None or (r.get("build"), r.get("round")) == (like.get("build"), like.get("round"))
        if same and r.get("backend") == backend and all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


# compare.sh labels each line with its build and round: then they lead the row.
tag = lambda r: f"{r['build']} r{r['round']} (load {r['loadavg']}) | " if "build" in r else ""
compare = any("build" in r for r in rows)
print(("| build | " if compare else "| ") + "backend | measure | load | achieved/s | p50 ms | p99 ms | p99.9 ms | vs floor |")
print(("| --- " if compare else "") + "| --- | --- | --- | --- | --- | --- | --- | --- |")
for r in rows:
    b = r.get("backend", "")
    kind = r["bench"]
    if kind == "floor":
        print(f"| {tag(r)}{b} | store insert_call (DB floor) | {r['concurrency']} writers | {r['achieved_per_s']:.0f} | {r['p50_ms']} | {r['p99_ms']} | {r['p999_ms']} | |")
    elif kind == "http":
        load = f"{r['offered_per_s']}/s offered" if r.get("offered_per_s") else f"saturation, {r['concurrency']} in flight"
        ratio = ""
        floor = find(b, r, bench="http", route="health", mode=r["mode"], offered_per_s=r.get("offered_per_s"), concurrency=r.get("concurrency"), accounts=r.get("accounts"))
        if r["route"] != "health" and floor and floor["achieved_per_s"]:
            ratio = f"{r['achieved_per_s'] / floor['achieved_per_s']:.2f} of /health"
        dbf = find(b, r, bench="floor")
        if r["route"] == "createCall" and r["mode"] == "saturation" and dbf:
            ratio += f"; {r['achieved_per_s'] / dbf['achieved_per_s']:.2f} of DB floor"
        kinds = ", ".join(f"{n} {k}" for k, n in r.get("error_kinds", {}).items())
        errs = f" ({r['errors']} errors{': ' + kinds if kinds else ''}, {r['dropped']} dropped)" if r["errors"] or r["dropped"] else ""
        if r.get("accounts"):
            errs += f", {r['accounts']} accounts"
        print(f"| {tag(r)}{b} | {r['route']}{errs} | {load} | {r['achieved_per_s']:.0f} | {r['p50_ms']} | {r['p99_ms']} | {r['p999_ms']} | {ratio} |")
    elif kind == "ring":
        fa = r["from_answer"]
        print(f"| {b} | createCall → incomingCall ({r['no_pop_up']} lost, {r['pop_up_before_answer']} before the answer) | {r['calls_per_s']} calls/s | | {r['p50_ms']} (answer→: {fa['p50_ms']}) | {r['p99_ms']} (answer→: {fa['p99_ms']}) | {r['p999_ms']} | |")
    elif kind == "idle sockets":
        print(f"| {b} | idle authenticated sockets held | {r['open']} open, {r['server_fds']} server fds | | | | | {r['kib_per_socket']} KiB each; 100k ≈ {r['projected_100k_mib']} MiB |")
    elif kind == "fanout":
        print(f"| {b} | notifications delivered ({r['connected']} users connected) | {r['calls']} calls × 32 messages | {r['delivered_per_s']:.0f} | | | | {r['delivered_per_server_cpu_sec']} per server CPU-second |")

# The SFU benchmark (bench/sfu.sh): callhub and Janus on the same streams, and the
# ratio of their forwarded datagrams per server CPU-second in the same round.
sfu = [r for r in rows if r.get("bench") == "sfu"]
if sfu:
    if len(sfu) < len(rows):
        print()
    print("| server | N | round | peers connected | pairs without video | datagrams received/s | per server CPU-s | server CPU-s | generator CPU-s | Mbit/s | video loss | frames per receiver (min–max) | min per pair | KiB per participant | callhub/Janus | load avg |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in sfu:
        other = next((o for o in sfu if o["server"] == "janus" and o["participants"] == r["participants"] and o.get("round") == r.get("round")), None)
        ratio = ""
        if r["server"] == "callhub" and other and other.get("datagrams_per_server_cpu_sec") and r.get("datagrams_per_server_cpu_sec"):
            ratio = f"{r['datagrams_per_server_cpu_sec'] / other['datagrams_per_server_cpu_sec']:.2f}"
        conn = "" if r["connected"] else " (not all connected)"
        print(f"| {r['server']}{conn} | {r['participants']} | {r.get('round', '')} | {r.get('peers_connected')} of {r.get('peers')} | {r.get('pairs_without_video')} | {r['datagrams_per_s']:.0f} | {r['datagrams_per_server_cpu_sec']} | {r['server_cpu_secs']} | {r['generator_cpu_secs']} | {r['udp_mbit_per_s']} | {r['video_loss'] * 100:.2f}% | {r['frames_per_receiver_min']}–{r['frames_per_receiver_max']} | {r['frames_per_pair_min']} | {r['kib_per_participant']} | {ratio} | {r['loadavg']} |")
