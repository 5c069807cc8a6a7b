-- The one wrk script of the benchmarks (bench/wrk.py runs it): GET $BENCH_PATH, optionally with a
-- Cookie ($BENCH_COOKIE), a bearer token cycled from $BENCH_TOKENS (one per line) and, for the
-- verifier's own /verify, the original request nginx would name ($BENCH_ORIGINAL_URI, method GET);
-- one machine-readable summary line at the end. wrk.format does not merge wrk.headers, so every
-- header the request needs is listed here.
local path = os.getenv("BENCH_PATH") or "/"
local cookie = os.getenv("BENCH_COOKIE")
local original_uri = os.getenv("BENCH_ORIGINAL_URI")
local tokens = {}
local tokens_file = os.getenv("BENCH_TOKENS")
if tokens_file and tokens_file ~= "" then
  for line in io.lines(tokens_file) do
    if line ~= "" then tokens[#tokens + 1] = line end
  end
end
local index = 0

request = function()
  local headers = { ["Host"] = wrk.host .. ":" .. wrk.port }
  if cookie and cookie ~= "" then headers["Cookie"] = cookie end
  if original_uri and original_uri ~= "" then
    headers["X-Original-Method"] = "GET"
    headers["X-Original-URI"] = original_uri
  end
  if #tokens > 0 then
    index = index % #tokens + 1
    headers["Authorization"] = "Bearer " .. tokens[index]
  end
  return wrk.format("GET", path, headers)
end

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d non2xx=%d socket_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
