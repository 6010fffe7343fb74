/*
 * statsd-json-backend.js — a statsd backend used by bench/compare to read
 * what Etsy's statsd computed, instead of standing up Graphite.
 *
 * On every flush it folds the flushed metrics into one JSON file
 * (config.nxbench.out): counters summed across flushes, statsd's own
 * statsd.metrics_received / packets_received / bad_lines_seen summed, and for
 * timers and sets the figures of the LAST flush in which the key appeared
 * (statsd computes percentiles and distinct counts per flush only and cannot
 * merge them; bench/compare runs its accuracy workload inside one flush).
 *
 * It also turns SIGTERM into process.exit(0): statsd flushes on 'exit', so
 * bench/compare can stop statsd and get the final flush written. This does
 * not change how statsd receives or aggregates.
 */
'use strict';
const fs = require('fs');

exports.init = function (startupTime, config, events, logger) {
  const out = config.nxbench && config.nxbench.out;
  if (!out) {
    return false;
  }
  const acc = {flushes: 0, metrics_received: 0, packets_received: 0, bad_lines_seen: 0,
               counters: {}, timers: {}, sets: {}};
  events.on('flush', function (ts, m) {
    acc.flushes++;
    for (const k in m.counters) {
      const v = m.counters[k];
      if (k === 'statsd.metrics_received') { acc.metrics_received += v; continue; }
      if (k === 'statsd.packets_received') { acc.packets_received += v; continue; }
      if (k === 'statsd.bad_lines_seen') { acc.bad_lines_seen += v; continue; }
      if (v !== 0) {
        acc.counters[k] = (acc.counters[k] || 0) + v;
      }
    }
    for (const k in m.timer_data) {
      const t = m.timer_data[k];
      acc.timers[k] = {count: t.count, sum: t.sum, lower: t.lower, upper: t.upper,
                       median: t.median, upper_50: t.upper_50, upper_90: t.upper_90,
                       upper_99: t.upper_99};
    }
    for (const k in m.sets) {
      const n = m.sets[k].size();
      if (n > 0) {
        acc.sets[k] = n;
      }
    }
    fs.writeFileSync(out + '.tmp', JSON.stringify(acc));
    fs.renameSync(out + '.tmp', out);
  });
  process.on('SIGTERM', function () { process.exit(0); });
  return true;
};
