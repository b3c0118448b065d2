-- Prints one machine-readable line when wrk is done; bench/load.py parses it.
-- Latencies are in microseconds. wrk counts a status of 400 or more as a
-- status error.

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "WRK_JSON {\"requests\": %d, \"duration_us\": %d, \"status\": %d, "
      .. "\"connect\": %d, \"read\": %d, \"write\": %d, \"timeout\": %d, "
      .. "\"p50_us\": %d, \"p99_us\": %d, \"mean_us\": %.1f}\n",
    summary.requests, summary.duration, errors.status,
    errors.connect, errors.read, errors.write, errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
