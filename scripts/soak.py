#!/usr/bin/env python3
"""Soak test: driftgauge under mixed load for a while, reporting RSS over time, errors, and
lost samples and webhooks (both must be zero).

Load, all on loopback:
  - push: batches of feature values and accuracy readings (2 client threads);
  - remote write: a real Prometheus scrapes a fixture exporter whose value moves, and
    remote-writes it into driftgauge;
  - scrapes: driftgauge scrapes Prometheus's own /metrics;
  - reloads: SIGHUP every 20 s (alternating two rule files);
  - a flapping webhook receiver: 500 for 10 s, then 200 for 10 s, and so on.

Usage: scripts/soak.py [--minutes 30] [--binary target/release/driftgauge]
Needs: python3, prometheus (Debian package) on PATH. Prints a report at the end and exits
non-zero when a sample or a webhook was lost, or a request failed unexpectedly.
"""
import argparse, json, os, random, signal, socket, subprocess, sys, tempfile, threading, time
import http.server, urllib.request, urllib.error

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()

def post(url, body, timeout=10):
    req = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()

def metric(text, name, **labels):
    total = None
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
    return total

def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

class Hook(http.server.BaseHTTPRequestHandler):
    keys = set(); attempts = 0; lock = threading.Lock(); started = time.time()
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        up = int((time.time() - Hook.started) / 10) % 2 == 1
        with Hook.lock:
            Hook.attempts += 1
            if up:
                Hook.keys.add(self.headers["Idempotency-Key"])
        self.send_response(200 if up else 500); self.end_headers()
    def log_message(self, *a): pass

class Exporter(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        v = 0.9 if int(time.time() / 40) % 2 == 0 else 0.3
        body = f"# TYPE model_accuracy gauge\nmodel_accuracy{{model=\"rw\"}} {v}\n".encode()
        self.send_response(200); self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass

RULES_A = """groups:
  - name: features
    interval: 2s
    rules:
      - name: amount_drift
        detector: ks
        series: 'feature_value{feature="amount"}'
        reference: {first: 2000}
        current: {last: 1000}
        min_samples: 200
        alpha: 0.01
        statistic: 0.1
        webhooks: [retrain]
  - name: quality
    interval: 1s
    rules:
      - name: accuracy
        detector: ema
        series: model_accuracy
        smoothing: 0.3
        below: 0.6
        warning_below: 0.8
        webhooks: [retrain]
      - name: goroutines
        detector: ema
        series: 'go_goroutines{job="prometheus"}'
        smoothing: 0.5
        above: 100000
"""
RULES_B = RULES_A.replace("alpha: 0.01", "alpha: 0.01\n        keep_firing_for: 0s")

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--binary", default="target/release/driftgauge")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    work = tempfile.mkdtemp(prefix="driftgauge-soak-")
    hook_port, exp_port, prom_port, dg_port = free_port(), free_port(), free_port(), free_port()
    for handler, port in [(Hook, hook_port), (Exporter, exp_port)]:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    os.makedirs(f"{work}/rules")
    open(f"{work}/rules/r.yml", "w").write(RULES_A)
    open(f"{work}/driftgauge.yml", "w").write(f"""rule_files: ["rules/*.yml"]
webhooks:
  retrain:
    url: http://127.0.0.1:{hook_port}/retrain
    min_backoff: 200ms
    max_backoff: 2s
    send_resolved: true
scrape_configs:
  - job_name: prometheus
    scrape_interval: 5s
    static_configs:
      - targets: ["127.0.0.1:{prom_port}"]
""")
    open(f"{work}/prometheus.yml", "w").write(f"""global: {{scrape_interval: 2s}}
scrape_configs:
  - job_name: model-server
    static_configs:
      - targets: ["127.0.0.1:{exp_port}"]
remote_write:
  - url: http://127.0.0.1:{dg_port}/api/v1/write
    write_relabel_configs:
      - {{source_labels: [__name__], regex: model_accuracy, action: keep}}
    queue_config: {{batch_send_deadline: 1s}}
""")
    prom = subprocess.Popen(["prometheus", f"--config.file={work}/prometheus.yml", f"--storage.tsdb.path={work}/prom",
                             f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = open(f"{work}/driftgauge.log", "w")
    dg = subprocess.Popen([binary, "serve", f"--config.file={work}/driftgauge.yml", f"--web.listen-address=127.0.0.1:{dg_port}",
                           f"--storage.path={work}/data", "--log.format=json"], stdout=log, stderr=log)
    base = f"http://127.0.0.1:{dg_port}"
    for _ in range(100):
        try:
            if get(base + "/-/ready") : break
        except Exception: time.sleep(0.1)
    deadline = time.time() + args.minutes * 60
    accepted = [0, 0]; errors = []; lock = threading.Lock()

    def pusher(i):
        rng = random.Random(i)
        while time.time() < deadline:
            shift = 0.0 if int(time.time() / 60) % 2 == 0 else 1.0
            samples = [{"metric": "feature_value", "labels": {"feature": "amount", "model": f"m{k}"},
                        "values": [rng.gauss(shift, 1) for _ in range(200)]} for k in range(5)]
            samples.append({"metric": "model_accuracy", "labels": {"model": f"push{i}"}, "value": rng.uniform(0.5, 1.0)})
            status, text = post(base + "/api/v1/samples", json.dumps({"samples": samples}))
            with lock:
                if status == 200:
                    accepted[i] += json.loads(text)["accepted"]
                else:
                    errors.append(f"push {status}: {text[:200]}")
            time.sleep(0.05)

    threads = [threading.Thread(target=pusher, args=(i,)) for i in range(2)]
    for t in threads: t.start()
    report = []; next_reload = time.time() + 20; flip = False; start = time.time()
    while time.time() < deadline:
        time.sleep(min(30, max(0, deadline - time.time())))
        if time.time() >= next_reload:
            flip = not flip
            open(f"{work}/rules/r.yml", "w").write(RULES_B if flip else RULES_A)
            dg.send_signal(signal.SIGHUP); next_reload = time.time() + 20
        try:
            m = get(base + "/metrics")
        except Exception as e:
            errors.append(f"metrics: {e}"); continue
        row = (round((time.time() - start) / 60, 1), rss_kib(dg.pid) // 1024, metric(m, "driftgauge_samples_received_total", source="push"),
               metric(m, "driftgauge_samples_received_total", source="remote_write"), metric(m, "driftgauge_samples_received_total", source="scrape"),
               metric(m, "driftgauge_webhook_queue_length"), metric(m, "driftgauge_config_last_reload_successful"))
        report.append(row); print("min=%s rss_mib=%s push=%s remote_write=%s scrape=%s queue=%s reload_ok=%s" % row, flush=True)
    for t in threads: t.join()
    # Let the flapping receiver take the last deliveries (it is up half the time).
    for _ in range(60):
        m = get(base + "/metrics")
        if metric(m, "driftgauge_webhook_queue_length") == 0: break
        time.sleep(1)
    m = get(base + "/metrics")
    received_push = metric(m, "driftgauge_samples_received_total", source="push") or 0
    dg.send_signal(signal.SIGTERM); dg.wait(timeout=30); prom.terminate(); prom.wait(timeout=30)
    log.close()
    events = 0
    for line in open(f"{work}/driftgauge.log"):
        try: rec = json.loads(line)
        except ValueError: continue
        if rec.get("message") == "webhook delivery queued" or rec.get("fields", {}).get("message") == "webhook delivery queued":
            events += 1
    enq = sum(1 for line in open(f"{work}/driftgauge.log") if '"rule state changed"' in line and ('"to":"drifted"' in line or '"from":"drifted"' in line))
    lost_samples = sum(accepted) - received_push
    lost_webhooks = enq - len(Hook.keys)
    print(json.dumps({"minutes": args.minutes, "rss_mib_first": report[0][1] if report else None,
                      "rss_mib_max": max(r[1] for r in report) if report else None, "rss_mib_last": report[-1][1] if report else None,
                      "pushed_values_accepted": sum(accepted), "push_values_counted": received_push, "lost_samples": lost_samples,
                      "drift_transitions_with_webhook": enq, "distinct_webhook_events_received": len(Hook.keys),
                      "webhook_attempts": Hook.attempts, "lost_webhooks": lost_webhooks, "errors": errors[:20], "error_count": len(errors),
                      "workdir": work}, indent=1))
    sys.exit(0 if lost_samples == 0 and lost_webhooks == 0 and not errors else 1)

if __name__ == "__main__":
    main()
