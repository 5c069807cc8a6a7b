-- wrk script for bench/verify.py: cycles through the tokens in $BENCH_TOKENS (one per line) and
-- prints one machine-readable summary line. wrk.format does not merge wrk.headers, so every
-- header the request needs is listed here.
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do
  tokens[#tokens + 1] = line
end
local index = 0

request = function()
  index = index % #tokens + 1
  return wrk.format("GET", "/verify", {
    ["Host"] = wrk.host .. ":" .. wrk.port,
    ["X-Original-Method"] = "GET",
    ["X-Original-URI"] = "/api/projects?page=1",
    ["Authorization"] = "Bearer " .. tokens[index],
  })
end

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d non2xx=%d socket_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
