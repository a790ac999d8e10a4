import { describe, expect, it } from 'vitest';
import { Counter, EventLoopLag, Gauge, Histogram, Registry, parsePrometheus } from './metrics.js';

describe('Prometheus exposition', () => {
  it('renders counters (labels escaped), gauges read at scrape time and cumulative histogram buckets', () => {
    const r = new Registry();
    const c = r.add(new Counter('t_requests_total', 'Requests.'));
    c.inc({ endpoint: '/v1/x', status: '200' });
    c.inc({ endpoint: '/v1/x', status: '200' }, 2);
    c.inc({ endpoint: 'a"b\\c\nd', status: '404' });
    let depth = 3;
    r.add(new Gauge('t_depth', 'Depth.', () => depth));
    const h = r.add(new Histogram('t_latency_seconds', 'Latency.', [0.01, 0.1, 1]));
    h.observe(0.005);
    h.observe(0.05, 3);
    h.observe(5);
    h.observe(Number.NaN); // ignored
    depth = 4;
    expect(r.render()).toBe(
      [
        '# HELP t_requests_total Requests.',
        '# TYPE t_requests_total counter',
        't_requests_total{endpoint="/v1/x",status="200"} 3',
        't_requests_total{endpoint="a\\"b\\\\c\\nd",status="404"} 1',
        '# HELP t_depth Depth.',
        '# TYPE t_depth gauge',
        't_depth 4',
        '# HELP t_latency_seconds Latency.',
        '# TYPE t_latency_seconds histogram',
        't_latency_seconds_bucket{le="0.01"} 1',
        't_latency_seconds_bucket{le="0.1"} 4',
        't_latency_seconds_bucket{le="1"} 4',
        't_latency_seconds_bucket{le="+Inf"} 5',
        't_latency_seconds_sum 5.155',
        't_latency_seconds_count 5',
        '',
      ].join('\n'),
    );
    const parsed = parsePrometheus(r.render());
    expect(parsed.get('t_requests_total{endpoint="/v1/x",status="200"}')).toBe(3);
    expect(parsed.get('t_latency_seconds_bucket{le="+Inf"}')).toBe(5);
    expect(parsed.get('t_depth')).toBe(4);
  });

  it('an unlabelled counter is exposed at 0 before its first increment', () => {
    expect(new Counter('t_total', 'T.').render()).toBe('# HELP t_total T.\n# TYPE t_total counter\nt_total 0');
  });

  it('the event-loop lag sampler sees a blocked loop', async () => {
    const h = new Histogram('t_lag_seconds', 'Lag.', [0.005, 0.05, 1]);
    const lag = new EventLoopLag(h, 5);
    lag.start();
    await new Promise((r) => setTimeout(r, 30));
    const end = performance.now() + 80;
    while (performance.now() < end) {
      /* block the loop for 80 ms */
    }
    await new Promise((r) => setTimeout(r, 30));
    lag.stop();
    const p = parsePrometheus(h.render());
    expect(p.get('t_lag_seconds_count')).toBeGreaterThan(2);
    // The blocked tick is late by about 75 ms: above the 50 ms bucket.
    expect((p.get('t_lag_seconds_count') as number) - (p.get('t_lag_seconds_bucket{le="0.05"}') as number)).toBeGreaterThanOrEqual(1);
  });
});
