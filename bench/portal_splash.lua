-- wrk script for bench/portal_bench.py: splash GETs exactly as CoovaChilli redirects produce them.
-- The paths (distinct MAC, fresh challenge, correct md for this portal's host:port) are written by
-- portal_bench.py, one per line, to the file named after `--`. Each wrk thread walks its own slice.
-- done() prints one line "PORTAL_JSON {...}" with the summary and latency percentiles in microseconds.

local paths = {}
local nthreads = 0
local index = 0

function setup(thread)
  thread:set("slot", nthreads)
  nthreads = nthreads + 1
end

function init(args)
  for line in io.lines(args[1]) do
    paths[#paths + 1] = line
  end
  local share = math.floor(#paths / tonumber(args[2] or "1"))
  index = (slot or 0) * share
end

function request()
  index = index % #paths + 1
  return wrk.format("GET", paths[index])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'PORTAL_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d, "bad_status": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
